"""Topologies for the end-to-end tests: one shared by most scenarios, a fresh one where A must really go.

The shared topology carries a pool of lanes (``api-NN`` records, their Kong Services and routes), one
per test, so runs never see each other's records, Services or file-log lines. Tests run one at a
time, so the zone's SOA serial moves only with the current test's run. After every test the shared
topology is put back as a scenario may have left it (worker killed, primary stopped, B failing) and
a run the test left unfinished is terminated, so it can't change the zone under the next test.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from sandbox.topology import Topology
from tests.e2e.lanes import E2E_TIMINGS, Lane, create_kong_service, lane_hosts, lane_records, numbered_lane

LANES = 16
"""Records and Kong Services prepared on the shared topology: more than the tests that use it."""
_next_lane = itertools.count(1)


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def shared_topology(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Topology]:
    """One topology for every scenario that does not need a pristine A (stopped with the last e2e test)."""
    topo = Topology(
        tmp_path_factory.mktemp("e2e-shared") / "work",
        ports="auto",
        timings=E2E_TIMINGS,
        extra_records=lane_records(LANES, E2E_TIMINGS.record_ttl),
        extra_hosts=lane_hosts(LANES),
    )
    async with topo:
        yield topo


@pytest_asyncio.fixture
async def topo(shared_topology: Topology) -> AsyncIterator[Topology]:
    """The shared topology, restored after the test whatever the scenario did to it."""
    yield shared_topology
    await restore(shared_topology)


async def take_lanes(topo: Topology, count: int) -> list[Lane]:
    """``count`` lanes no other test uses, with their Kong Services created."""
    lanes = []
    for _ in range(count):
        index = next(_next_lane)
        assert index <= LANES, f"the shared topology has only {LANES} lanes: raise LANES"
        lanes.append(numbered_lane(index))
        await create_kong_service(topo, lanes[-1])
    return lanes


@pytest_asyncio.fixture
async def lane(topo: Topology) -> AsyncIterator[Lane]:
    """A lane of its own on the shared topology; a run it left unfinished is terminated afterwards."""
    (lane,) = await take_lanes(topo, 1)
    yield lane
    client = await topo.temporal_client()
    handle = client.get_workflow_handle(lane.workflow_id)
    with contextlib.suppress(RPCError):
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate(reason="the end-to-end test ended before the run")


@pytest_asyncio.fixture
async def fresh_topology(tmp_path: Path) -> AsyncIterator[Topology]:
    """A topology of its own: the decommission really stops runtime A, which no later test may need."""
    async with Topology(tmp_path / "work", ports="auto", timings=E2E_TIMINGS) as topo:
        yield topo


async def restore(topo: Topology) -> None:
    """Every component up and healthy again: Temporal, the worker, the BIND primary, A, and B not failing."""
    if not topo.components["temporal"].running:
        await topo.start_temporal()
    if not topo.components["worker"].running:
        await topo.start_worker()
    assert topo.bind is not None
    if not topo.bind.primary.running:
        await topo.start_bind_primary()
    if not topo.runtime_running("A"):
        await topo.start_runtime("A")
    await topo.runtime_control("B", "recover")
