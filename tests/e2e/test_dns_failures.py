"""The DNS world misbehaving during the flip: the primary down for a while or for good, and an outside edit."""

from __future__ import annotations

import asyncio

import dns.rcode
import pytest

from models.workflow import CutoverStatus
from sandbox.topology import Topology
from tests.e2e.dns_reads import Rrset, a_record, assert_on_both, cname_record, dns_view, read_serial, signed_replace
from tests.e2e.lanes import A_ADDRESS, B_TARGET, E2E_TIMINGS, Lane, plan_keeping_a
from tests.e2e.runs import finished_at, start_run, step
from tests.e2e.traffic import load_generator

RETRY_DEADLINE = 1
"""Seconds the flip may keep retrying an unreachable primary (``dns.retry_deadline``) in the "stays down" case."""
ATTEMPT_SLACK = 5
"""Seconds past the deadline for the attempt in flight (each fails at once: the primary refuses connections)."""
LOWERED = a_record(A_ADDRESS, E2E_TIMINGS.cutover_ttl)
"""The lane's record after the TTL lowering, before the flip."""


def false_claims(status: CutoverStatus, lane: Lane, truth: tuple[Rrset, ...]) -> list[str]:
    """The ``left_changed`` lines that say the record was flipped to B while it holds ``truth``."""
    flipped = f"{lane.record} is a CNAME to {B_TARGET}"
    is_flipped = truth == cname_record(B_TARGET, E2E_TIMINGS.cutover_ttl)
    return [line for line in status.left_changed if flipped in line and not is_flipped]


@pytest.mark.e2e
@pytest.mark.timeout(90)
async def test_a_primary_down_during_the_flip_is_retried_with_backoff_until_it_is_back(
    topo: Topology, lane: Lane
) -> None:
    plan = plan_keeping_a(topo, lane)
    serial_before = read_serial(topo.nameservers[0])
    async with load_generator(topo, lane):
        await asyncio.sleep(0.5)
        run = await start_run(topo, plan)
        await run.wait_for(lambda s: "flip" in s.gates_awaited, "the flip gate")
        await topo.stop_bind_primary()
        await run.approve("flip")
        retries = await run.retries("dns_apply", until_attempt=3)
        assert (await run.status()).phase == "flipping"
        await topo.start_bind_primary()
        outcome = await run.outcome()
    status = outcome.status
    assert outcome.failure_type is None and status.phase == "completed", run.describe(status)

    # Retried with a growing backoff, each attempt failing on the unreachable primary.
    intervals = [retry.interval for retry in retries]
    assert intervals == sorted(intervals) and intervals[-1] > intervals[0], retries
    assert all("unreachable" in retry.failure and topo.nameservers[0] in retry.failure for retry in retries), retries
    assert await run.activity_attempts("dns_apply") == [1, retries[-1].attempt, 1]

    # Completed once the primary was back: one change per step, the final record on both nameservers.
    assert step(status, "flipping", "Flip").result == f"applied, serial {serial_before + 1} -> {serial_before + 2}"
    final = cname_record(B_TARGET, E2E_TIMINGS.final_ttl)
    assert_on_both(dns_view(topo, lane.record), final, serial_before + 3)


@pytest.mark.e2e
@pytest.mark.timeout(90)
async def test_a_primary_down_past_the_retry_deadline_ends_with_what_is_left_changed(
    topo: Topology, lane: Lane
) -> None:
    plan = plan_keeping_a(topo, lane, dns={"retry_deadline": f"{RETRY_DEADLINE}s"})
    serial_before = read_serial(topo.nameservers[0])
    async with load_generator(topo, lane):  # the monitor's source must exist for the baseline
        await asyncio.sleep(0.5)
        run = await start_run(topo, plan)
        await run.wait_for(lambda s: "flip" in s.gates_awaited, "the flip gate")
        await topo.stop_bind_primary()
        await run.approve("flip")
        outcome = await run.outcome()
    status = outcome.status
    assert topo.bind is not None and not topo.bind.primary.running, "the primary must stay down to the end"
    flip = step(status, "flipping", "Flip")
    assert flip.ok is False, run.describe(status)
    retried = finished_at(flip) - flip.started_at.timestamp()
    assert retried <= RETRY_DEADLINE + ATTEMPT_SLACK, (
        f"the flip kept retrying the unreachable primary for {retried:.0f} s; dns.retry_deadline is "
        f"{RETRY_DEADLINE} s\n{run.describe(status)}"
    )

    # What the world really is, once the primary is back: the TTL lowering happened, the flip never did.
    await topo.start_bind_primary()
    truth = dns_view(topo, lane.record)
    assert_on_both(truth, LOWERED, serial_before + 1)

    # No undo could reach the primary, so the run can't have rolled back: it failed, and says exactly
    # what is left changed and how to finish by hand.
    assert outcome.failure_type == "CutoverFailed" and status.phase == "failed", run.describe(status)
    assert any(lane.record in line and "TTL" in line for line in status.left_changed), run.describe(status)
    assert false_claims(status, lane, truth.primary) == [], (
        f"the status says the record was flipped, but both nameservers hold {truth}:\n{run.describe(status)}"
    )
    original = f"{lane.record} {E2E_TIMINGS.record_ttl} A {A_ADDRESS}"
    assert any(original in line for line in status.manual_steps), run.describe(status)


@pytest.mark.e2e
@pytest.mark.timeout(90)
async def test_an_outside_edit_between_snapshot_and_flip_is_never_clobbered(topo: Topology, lane: Lane) -> None:
    plan = plan_keeping_a(topo, lane)
    serial_before = read_serial(topo.nameservers[0])
    async with load_generator(topo, lane):
        await asyncio.sleep(0.5)
        run = await start_run(topo, plan)
        await run.wait_for(lambda s: "flip" in s.gates_awaited, "the flip gate")

        # Someone else repoints the record by hand (to B's address) while the run waits for the approval.
        edit = Rrset("A", 9, ("127.0.0.3",))
        assert signed_replace(topo, lane.record, edit) == dns.rcode.NOERROR
        edited = serial_before + 2  # the TTL lowering, then the outside edit
        for _ in range(50):
            if dns_view(topo, lane.record).secondary_serial == edited:
                break
            await asyncio.sleep(0.1)
        assert_on_both(dns_view(topo, lane.record), (edit,), edited)

        await run.approve("flip")
        outcome = await run.outcome()
    status = outcome.status

    # Nothing was written after the edit: both nameservers still hold it, at the serial it made.
    truth = dns_view(topo, lane.record)
    assert_on_both(truth, (edit,), edited)

    # The run stopped, refused to overwrite the edit (its undos too), and says so: the record, its data.
    assert outcome.failure_type == "CutoverFailed" and status.phase == "failed", run.describe(status)
    flip = step(status, "flipping", "Flip")
    assert flip.ok is False and "someone else changed the record" in flip.result, run.describe(status)
    error = status.error or ""
    assert lane.record in error and "127.0.0.3" in error, run.describe(status)
    assert not any(c.state == "done" for c in status.compensations), run.describe(status)
    assert any(lane.record in line and "127.0.0.3" in line for line in status.left_changed), run.describe(status)
    assert false_claims(status, lane, truth.primary) == [], (
        f"the status says the record was flipped, but both nameservers hold {truth}:\n{run.describe(status)}"
    )
