"""A clean cutover under steady load, both strategies: what clients, DNS, Kong and project A went through."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest

from models.durations import parse_duration
from sandbox.topology import Topology
from tests.e2e.cli import tcp_refused
from tests.e2e.dns_reads import a_record, assert_on_both, cname_record, dns_view, read_serial
from tests.e2e.lanes import A_ADDRESS, B_TARGET, E2E_TIMINGS, kong_service_host, sandbox_lane
from tests.e2e.runs import finished_at, parse_time, start_run, step
from tests.e2e.traffic import assert_load_rate, failures, last_served_by, load_generator, served_by


@pytest.mark.e2e
@pytest.mark.timeout(120)
@pytest.mark.parametrize("strategy", ["cname", "alias"])
async def test_a_clean_cutover_moves_every_client_to_b_and_deletes_a_only_once_drained(
    fresh_topology: Topology, strategy: Literal["cname", "alias"]
) -> None:
    topo = fresh_topology
    lane = sandbox_lane(strategy)
    plan = lane.plan(topo, strategy)
    serial_before = read_serial(topo.nameservers[0])
    async with load_generator(topo, lane) as load:
        await asyncio.sleep(1.0)  # A alone, before the run
        run = await start_run(topo, plan)
        await run.approve("flip")
        await run.approve("decommission")
        outcome = await run.outcome()
        await asyncio.sleep(1.0)  # B alone, with A gone
    status = outcome.status
    assert outcome.failure_type is None and status.phase == "completed", run.describe(status)

    # Clients: not one non-2xx answer; A served everything before the flip, B everything after the drain.
    assert_load_rate(load)
    assert failures(load.records) == []
    flip = step(status, "flipping", "Flip")
    drain = step(status, "draining", "Wait")
    assert set(served_by(load.records, end=flip.started_at.timestamp())) == {"A"}
    assert set(served_by(load.records, start=finished_at(drain))) == {"B"}

    # A was deleted after the drain proof, and really had been quiet for the quiet period by then.
    proof = step(status, "decommissioning", "Prove A received nothing")
    receiver = await topo.receiver_state()
    key = await run.idempotency_key()
    assert list(receiver["deletions"]) == [key], receiver
    deletion = receiver["deletions"][key]
    deleted_at = parse_time(deletion["at"])
    assert deleted_at >= finished_at(proof), (deletion, proof)
    last_a = last_served_by(load.records, "A")
    assert last_a is not None
    quiet = parse_duration(E2E_TIMINGS.quiet_period).total_seconds()
    assert deleted_at - last_a >= quiet - 0.5, f"A served a request {deleted_at - last_a:.1f} s before its deletion"
    assert deletion["outcome"].startswith("stopped process")
    assert not topo.runtime_running("A") and tcp_refused(A_ADDRESS, topo.ports.runtime)
    assert status.decommission is not None and status.decommission.done

    # DNS: the record is a CNAME to B at the final TTL on both nameservers, after exactly three changes
    # (lower the TTL, flip, final TTL).
    assert_on_both(dns_view(topo, lane.record), cname_record(B_TARGET, E2E_TIMINGS.final_ttl), serial_before + 3)
    if strategy == "alias":
        assert await kong_service_host(topo, lane.service) == "origin-api.example.test"
        assert_on_both(dns_view(topo, "a-project.example.test."), a_record(A_ADDRESS, E2E_TIMINGS.record_ttl))
