"""An nginx worker idle since before the flip sends its next request to A (issue 12 §2), in the emulator.

The emulator pins each client connection to one worker, as nginx does, so one connection keeps
worker 0 busy while worker 1 stays idle. The idle worker's legacy cache still holds A's address: its
first request after the flip goes to A up to TTL + ``dns_stale_ttl`` later, long after the busy
worker moved to B. If A is gone by then, that request fails.
"""

from __future__ import annotations

import contextlib
import time

import httpx
import pytest

from sandbox.bind import BindPair, signed_update
from sandbox.free_ports import port_free_on
from sandbox.kong import running_emulator
from sandbox.pki import Pki
from sandbox.runtime import running_runtime
from tests.kong.fixtures import A_HOSTS, A_IP, B_HOSTS, B_IP, sandbox_config
from tests.kong.test_dataplane import ZONE

STALE = 4


async def served_by(client: httpx.AsyncClient) -> str:
    response = await client.get("/orders/v1/items")
    return str(response.json().get("served_by") if response.status_code == 200 else response.status_code)


@pytest.mark.parametrize("delete_a", [False, True], ids=["A-kept", "A-deleted"])
async def test_an_idle_workers_first_request_after_the_flip_goes_to_a(bind: BindPair, pki: Pki, delete_a: bool) -> None:
    await signed_update(
        bind, ZONE, ("replace", "origin-api", 1, "CNAME a-project"), ("replace", "a-project", 1, "A 127.0.0.2")
    )
    port = port_free_on([A_IP, B_IP])
    certs = pki.certs
    async with contextlib.AsyncExitStack() as stack, contextlib.AsyncExitStack() as a_stack:
        a = await a_stack.enter_async_context(
            running_runtime("A", host=A_IP, port=port, hosts=A_HOSTS, cert=certs["A"].cert, key=certs["A"].key)
        )
        await stack.enter_async_context(
            running_runtime("B", host=B_IP, port=port, hosts=B_HOSTS, cert=certs["B"].cert, key=certs["B"].key)
        )
        kong = await stack.enter_async_context(
            running_emulator(
                config=sandbox_config(a.port, host="origin-api.example.test", retries=0),
                dns=("127.0.0.1", bind.primary.port),
                upstream_ca=pki.ca,
                workers=2,
                dns_settings={"dns_stale_ttl": STALE},
            )
        )
        busy = await stack.enter_async_context(httpx.AsyncClient(base_url=kong.proxy_url or ""))
        idle = await stack.enter_async_context(httpx.AsyncClient(base_url=kong.proxy_url or ""))
        assert [await served_by(busy), await served_by(idle)] == ["A", "A"]  # worker 0, worker 1
        looked_up = time.monotonic()
        await signed_update(bind, ZONE, ("replace", "origin-api", 1, "CNAME b-project"))  # the flip
        seen_busy = []
        while time.monotonic() < looked_up + 2.5:  # the busy worker moves to B after the 1 s TTL
            seen_busy.append(await served_by(busy))
        assert seen_busy[-3:] == ["B", "B", "B"]  # a drain proof watching the traffic sees A quiet from here
        cache = (await busy.get(f"{kong.admin_url}/_emulator/dns-cache")).json()
        assert cache["workers"][1]["entries"]["CNAME:origin-api.example.test"]["records"] == ["a-project.example.test"]
        if delete_a:
            await a_stack.aclose()
        assert time.monotonic() < looked_up + 1 + STALE  # inside TTL + dns_stale_ttl of the idle worker's lookup
        first = await served_by(idle)
        then = await served_by(idle)  # the first one started the refresh
    assert (first, then) == (("502", "B") if delete_a else ("A", "B"))
