"""Upstream targets in the emulator: the balancer's per-worker address lists and their renewal timer.

Kong's balancer keeps, per worker, the addresses a target resolved to (for a CNAME target: the
dereferenced A records) and renews them at *their* expiry from a 1 s timer, traffic or not
(kong/runloop/balancer/targets.lua). So a CNAME target flipped to B is followed only once A's own
records expire (their TTL adds to the cache bound), and a worker with no traffic is renewed anyway:
unlike a Service host, an idle worker's first request after the flip does not go to A.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx

from sandbox.bind import BindPair, signed_update
from sandbox.kong import running_emulator
from sandbox.pki import Pki
from tests.kong.fixtures import runtimes_ab
from tests.kong.test_dataplane import ZONE
from tests.kong.test_idle_worker import served_by

A_TTL = 3


def upstream_config(port: int) -> dict:
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "orders-api",
                "protocol": "https",
                "host": "orders.upstream",
                "path": "/orders/v1",
                "retries": 0,
                "routes": [{"name": "orders", "paths": ["/orders/v1"]}],
            }
        ],
        "upstreams": [{"name": "orders.upstream", "targets": [{"target": f"origin-api.example.test:{port}"}]}],
    }


async def test_a_cname_target_follows_the_flip_when_a_records_expire_and_idle_workers_are_renewed(
    bind: BindPair, pki: Pki
) -> None:
    await signed_update(
        bind, ZONE, ("replace", "origin-api", 1, "CNAME a-project"), ("replace", "a-project", A_TTL, "A 127.0.0.2")
    )
    async with runtimes_ab(pki) as (a, _), contextlib.AsyncExitStack() as stack:
        kong = await stack.enter_async_context(
            running_emulator(
                config=upstream_config(a.port),
                dns=("127.0.0.1", bind.primary.port),
                upstream_ca=pki.ca,
                workers=2,
                dns_settings={"dns_stale_ttl": 30},
            )
        )
        busy = await stack.enter_async_context(httpx.AsyncClient(base_url=kong.proxy_url or ""))
        idle = await stack.enter_async_context(httpx.AsyncClient(base_url=kong.proxy_url or ""))
        looked_up = time.monotonic()
        assert [await served_by(busy), await served_by(idle)] == ["A", "A"]  # worker 0, worker 1
        await signed_update(
            bind, ZONE, ("replace", "origin-api", 1, "CNAME b-project")
        )  # the flip; the CNAME's TTL is 1 s
        seen = []
        while time.monotonic() < looked_up + A_TTL + 3:
            seen.append((time.monotonic() - looked_up, await served_by(busy)))
            await asyncio.sleep(0.05)
        late = await served_by(idle)  # worker 1's first request since the flip, well inside the 30 s stale time
    switched = next(t for t, who in seen if who == "B")
    assert all(who == "A" for t, who in seen if t < A_TTL - 0.1), seen  # not after the CNAME's 1 s TTL
    assert A_TTL <= switched <= A_TTL + 2.5, seen  # at A's expiry (+0.5 s renewal, 1 s timer, refresh)
    assert all(who == "B" for t, who in seen if t >= switched)
    assert late == "B"  # the timer renewed the idle worker's list without any request
