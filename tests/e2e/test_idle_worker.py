"""No request reaches A after A is deleted, even from a Kong worker that was idle since before the flip.

The Kong emulator runs two nginx workers and pins each client connection to one (as nginx does):
one connection keeps worker 0 busy through the whole cutover, the other asks worker 1 at the flip gate
(just before the flip) and once more right after A was deleted. Worker 1's legacy DNS cache still
holds A's answer until TTL + ``dns_stale_ttl`` after that lookup, long after the drain proof saw A quiet.

With the run's wait (A is kept until flip + cutover TTL + ``dns_stale_ttl`` + query + margin) that
late request reaches B. With the wait removed (a decommission approval that claims the data planes
were restarted when they were not) the same request still goes to A, which is gone: a 502.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.workflow import ApproveRequest
from sandbox.topology import Topology
from tests.e2e.lanes import E2E_BY, E2E_TIMINGS, sandbox_lane
from tests.e2e.runs import parse_time, start_run, step

STALE = 30
"""Kong's dns_stale_ttl here: longer than drain + monitoring + drain proof, so the hazard is real."""
TIMINGS = replace(E2E_TIMINGS, kong_dns_stale_ttl=STALE)


@contextlib.asynccontextmanager
async def pinned_clients(topo: Topology) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two keep-alive clients whose connections Kong pinned to different workers."""
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[int, httpx.AsyncClient] = {}
        for _ in range(6):
            client = await stack.enter_async_context(
                # httpx closes a connection idle for 5 s by default: the idle worker's must outlive the run
                httpx.AsyncClient(base_url=topo.kong_proxy_url, timeout=10, limits=httpx.Limits(keepalive_expiry=600))
            )
            response = await client.get("/orders/v1/items")
            assert response.status_code == 200 and response.json()["served_by"] == "A"
            local = response.extensions["network_stream"].get_extra_info("client_addr")
            state = (await client.get(f"{topo.kong_admin_url}/_emulator/state")).json()
            clients.setdefault(state["connections"][f"{local[0]}:{local[1]}"], client)
            if len(clients) == 2:
                break
        assert sorted(clients) == [0, 1], "could not get a connection on each worker"
        yield clients[0], clients[1]


async def deletion_seen(topo: Topology, key: str) -> dict[str, Any]:
    """The decommission receiver's state once it has deleted A (stopped runtime A) for this run."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = await topo.receiver_state()
        if key in state.get("deletions", {}):
            return dict(state)
        await asyncio.sleep(0.1)
    raise AssertionError("A was never deleted")


async def keep_busy(client: httpx.AsyncClient, stop: asyncio.Event, seen: list[tuple[float, str]]) -> None:
    while not stop.is_set():
        response = await client.get("/orders/v1/items")
        seen.append((time.time(), str(response.json().get("served_by") if response.status_code == 200 else 502)))
        await asyncio.sleep(0.04)


@pytest.mark.e2e
@pytest.mark.timeout(150)
@pytest.mark.parametrize("wait_removed", [False, True], ids=["with-the-wait", "wait-removed"])
async def test_an_idle_kong_worker_never_sends_a_request_to_a_deleted_a(tmp_path: Path, wait_removed: bool) -> None:
    async with Topology(tmp_path / "work", ports="auto", timings=TIMINGS, kong_workers=2) as topo:
        lane = sandbox_lane("alias")
        async with httpx.AsyncClient() as admin:  # one try per request: a retry could hide the failure
            patched = await admin.patch(f"{topo.kong_admin_url}/services/{lane.service}", json={"retries": 0})
            assert patched.status_code == 200
        plan = lane.plan(topo, "alias", kong={"dns_caches_cleared": "restart"})
        async with pinned_clients(topo) as (busy, idle):
            stop, seen = asyncio.Event(), list[tuple[float, str]]()
            busy_task = asyncio.create_task(keep_busy(busy, stop, seen))
            try:
                run = await start_run(topo, plan)
                await run.wait_for(lambda s: "flip" in s.gates_awaited, "the flip gate")
                for _ in range(2):  # the second one sees the entry the first refreshed (TTL lowered to 1 s)
                    assert (await idle.get("/orders/v1/items")).json()["served_by"] == "A"
                    await asyncio.sleep(0.3)
                looked_up = time.time()  # worker 1's last lookup before the flip
                await run.approve("flip")
                await run.wait_for(lambda s: "decommission" in s.gates_awaited, "the decommission gate")
                request = ApproveRequest(
                    gate="decommission", by=E2E_BY, digest=plan.digest(), caches_cleared=wait_removed or None
                )
                await run.handle.execute_update("approve", request, result_type=str)
                key = await run.idempotency_key()
                receiver = await deletion_seen(topo, key)
                late_at = time.time()
                late = await idle.get("/orders/v1/items")  # worker 1's first request since before the flip
                outcome = await run.outcome()
            finally:
                stop.set()
                await busy_task
    status = outcome.status
    assert outcome.failure_type is None and status.phase == "completed", run.describe(status)
    flipped = step(status, "flipping", "Flip").finished_at
    assert flipped is not None and status.decommission_not_before is not None
    deleted_at = parse_time(receiver["deletions"][key]["at"])
    assert {who for at, who in seen if at > flipped.timestamp() + 5} == {"B"}  # the busy worker moved on
    if wait_removed:
        # The operator's (false) restart confirmation shortened the wait to cutover TTL + q + margin.
        assert status.decommission_not_before - flipped < timedelta(seconds=5)
        assert late_at < looked_up + TIMINGS.cutover_ttl + STALE  # inside the idle worker's stale window
        assert late.status_code == 502, late.text  # the idle worker's request went to A, which is gone
    else:
        expected = TIMINGS.cutover_ttl + STALE + 2 + 1
        assert abs((status.decommission_not_before - flipped).total_seconds() - expected) < 1
        assert deleted_at >= status.decommission_not_before.timestamp()
        wait = step(status, "decommissioning", "Wait")
        assert "after the flip" in wait.step
        assert late.status_code == 200 and late.json()["served_by"] == "B", late.text
