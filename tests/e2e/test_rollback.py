"""Rollbacks under load: B failing after the flip, and an operator's abort from the CLI mid-drain."""

from __future__ import annotations

import asyncio
import time

import pytest

from sandbox.topology import Topology
from tests.e2e.cli import json_arg, starter_cli, temporal_cli
from tests.e2e.dns_reads import a_record, assert_on_both, dns_view, read_serial
from tests.e2e.lanes import A_ADDRESS, E2E_BY, E2E_TIMINGS, Lane
from tests.e2e.runs import kong_switch_seconds, start_run, step
from tests.e2e.traffic import failures, kong_dns_cache, load_generator, traffic_moved_to, what_clients_saw

RESTORED = a_record(A_ADDRESS, E2E_TIMINGS.record_ttl)
"""The lane's record as it was before the run: an A record for A at the zone's TTL."""
CHANGES_AND_UNDOS = 7
"""Serial increments of a run rolled back after its flip: lower TTL, flip; the flip undone in two steps
under Kong's legacy DNS client (temporary name with A's address, record CNAME to it, A record restored,
temporary name removed); TTL restored."""


@pytest.mark.e2e
@pytest.mark.timeout(90)
async def test_b_failing_after_the_flip_rolls_back_with_the_evidence(topo: Topology, lane: Lane) -> None:
    plan = lane.plan(topo)
    serial_before = read_serial(topo.nameservers[0])
    async with load_generator(topo, lane) as load:
        await asyncio.sleep(0.5)
        run = await start_run(topo, plan)
        await run.approve("flip")
        await run.until_phase("draining")
        await topo.runtime_control("B", "fail", {"status": 503})
        outcome = await run.outcome()
        ended = time.time()
        status = outcome.status
        assert outcome.failure_type == "CutoverRolledBack" and status.phase == "rolled-back", run.describe(status)

        # The evidence: an unhealthy verdict on B's 503s, with its numbers, and every undo done.
        verdict = status.last_verdict
        assert verdict is not None and verdict.status == "unhealthy", run.describe(status)
        assert verdict.error_ratio is not None and verdict.error_ratio > verdict.threshold
        assert dict(verdict.worst_statuses).get("503", 0) > 0 and verdict.share.b_requests > 0
        assert status.error is not None and "unhealthy" in status.error
        assert {c.id: c.state for c in status.compensations} == {"restore-record": "done", "restore-ttl": "done"}
        assert status.left_changed == () and status.manual_steps == ()

        # The world: the record restored on both nameservers, nothing decommissioned, B's failures seen by
        # clients until the rollback, then A serving again within Kong's cache bound.
        assert_on_both(dns_view(topo, lane.record), RESTORED, serial_before + CHANGES_AND_UNDOS)
        assert (await topo.receiver_state())["deletions"] == {}
        during = [r for r in load.records if r.started < ended]
        assert {r.served_by for r in during if not r.ok} == {"B"}, failures(during)
        back = await traffic_moved_to(load, "A", within=kong_switch_seconds(status))
        assert back, (
            f"traffic is not back on A {kong_switch_seconds(status)} s after the rollback: "
            f"{what_clients_saw(load, ended)}. Kong's DNS cache: {await kong_dns_cache(topo, lane.record)}"
        )


@pytest.mark.e2e
@pytest.mark.timeout(90)
async def test_an_abort_signal_from_the_cli_mid_drain_rolls_back_unnoticed_by_clients(
    topo: Topology, lane: Lane
) -> None:
    plan = lane.plan(topo)
    serial_before = read_serial(topo.nameservers[0])
    reason = "e2e: abort from the temporal CLI"
    async with load_generator(topo, lane) as load:
        await asyncio.sleep(0.5)
        run = await start_run(topo, plan)
        await run.wait_for(lambda s: "flip" in s.gates_awaited, "the flip gate")
        approve = await starter_cli(
            topo, "approve", run.workflow_id, "--gate", "flip", "--by", E2E_BY, "--digest", plan.digest()
        )
        assert approve.code == 0 and "flip approved by e2e" in approve.output, approve
        status = await run.until_phase("draining", waiting=True)
        assert await traffic_moved_to(load, "B", within=kong_switch_seconds(status)), what_clients_saw(load, 0)

        # As an operator would: the plain temporal CLI, which can only say the signal was delivered.
        abort = await temporal_cli(
            topo,
            "workflow",
            "signal",
            "--workflow-id",
            run.workflow_id,
            "--name",
            "abort",
            "--input",
            json_arg({"by": "operator", "reason": reason}),
        )
        assert abort.code == 0 and "Signal workflow succeeded" in abort.output, abort
        outcome = await run.outcome()
        ended = time.time()
        status = outcome.status
        assert outcome.failure_type == "CutoverRolledBack" and status.phase == "rolled-back", run.describe(status)
        assert status.error == f"aborted by operator: {reason}" and status.ignored == ()
        drain = step(status, "draining", "Wait")
        assert drain.ok is False and drain.result == "interrupted by abort"
        assert {c.id: c.state for c in status.compensations} == {"restore-record": "done", "restore-ttl": "done"}
        assert_on_both(dns_view(topo, lane.record), RESTORED, serial_before + CHANGES_AND_UNDOS)
        assert await run.idempotency_key() not in (await topo.receiver_state())["deletions"]

        # Clients: B was healthy all along, so neither the cutover nor its rollback may cost one request.
        back = await traffic_moved_to(load, "A", within=kong_switch_seconds(status))
        assert back and failures(load.records) == [], (
            f"after the rollback: {what_clients_saw(load, ended)}. "
            f"Kong's DNS cache: {await kong_dns_cache(topo, lane.record)}"
        )
