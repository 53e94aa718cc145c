"""Crashes: the worker killed -9 in every phase that changes or watches the world, and Temporal restarted.

Changes are compare-and-swap and the workflow resumes from its history, so whatever is killed and
restarted, each DNS step must change the zone exactly once: the SOA serial on the primary counts them.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from models.workflow import CutoverStatus, StepRecord
from sandbox.topology import Topology
from tests.e2e.dns_reads import assert_on_both, cname_record, dns_view, read_serial
from tests.e2e.lanes import B_TARGET, E2E_TIMINGS, Lane, plan_keeping_a
from tests.e2e.runs import finished_at, start_run, step
from tests.e2e.traffic import failures, load_generator

DNS_STEPS = ("Lower TTL", "Flip", "Restore TTL")
"""The cname strategy's three DNS changes."""
FINAL = cname_record(B_TARGET, E2E_TIMINGS.final_ttl)


async def crash_worker(topo: Topology) -> float:
    """kill -9 the worker (no shutdown, running activities die with it), start a new one; when it died."""
    topo.kill_worker(signal.SIGKILL)
    killed = time.time()
    assert not topo.components["worker"].running
    await topo.start_worker()
    return killed


def spans(record: StepRecord, moment: float) -> bool:
    """The step was running at ``moment``."""
    return record.started_at.timestamp() < moment < finished_at(record)


def dns_change_results(status: CutoverStatus) -> list[str]:
    """The result of every DNS change step, in order (e.g. "applied, serial 3 -> 4")."""
    return [s.result for s in status.timeline if s.step.startswith(DNS_STEPS)]


def one_increment_each(serial_before: int) -> list[str]:
    """What the three DNS steps must report: each applied once, one serial apart."""
    return [f"applied, serial {serial_before + i} -> {serial_before + i + 1}" for i in range(len(DNS_STEPS))]


@pytest.mark.e2e
@pytest.mark.timeout(150)
async def test_kill_9_of_the_worker_in_every_phase_changes_dns_exactly_once_per_step(
    topo: Topology, lane: Lane
) -> None:
    # A longer window leaves room to aim the kill inside it; it costs nothing, since the monitor resumes
    # only after its heartbeat timeout (30 s), when the window is over anyway.
    plan = plan_keeping_a(topo, lane, monitor={"window": "8s"})
    serial_before = read_serial(topo.nameservers[0])
    kills: dict[str, float] = {}
    async with load_generator(topo, lane) as load:
        await asyncio.sleep(0.5)
        run = await start_run(topo, plan)

        # lowering-ttl: the lowered TTL is applied and proven; the run waits out the old TTL.
        await run.until_phase("lowering-ttl", waiting=True)
        kills["lowering-ttl"] = await crash_worker(topo)

        # flipping: the flip takes milliseconds, too short to aim a kill at. With the primary stopped
        # just before the approval, dns_apply keeps failing and the run stays in flipping, waiting for
        # the next attempt: the kill lands there for sure. The primary and a new worker come back, and
        # the next attempt, on the new worker, applies the flip.
        await run.wait_for(lambda s: "flip" in s.gates_awaited, "the flip gate")
        await topo.stop_bind_primary()
        await run.approve("flip")
        flip_attempt = (await run.retries("dns_apply"))[-1].attempt
        topo.kill_worker(signal.SIGKILL)
        kills["flipping"] = time.time()
        await topo.start_bind_primary()
        await topo.start_worker()

        # draining: a durable timer, kept by the server.
        await run.until_phase("draining", waiting=True)
        kills["draining"] = await crash_worker(topo)

        # monitoring: once the monitor has heartbeated a checkpoint with polls (heartbeats reach the
        # server at most every 2 s), kill it mid-window.
        await run.until_phase("monitoring")
        await asyncio.sleep(3.0)
        assert (await run.status()).phase == "monitoring"
        kills["monitoring"] = await crash_worker(topo)

        outcome = await run.outcome(timeout=120)
    status = outcome.status
    assert outcome.failure_type is None and status.phase == "completed", run.describe(status)

    # Each kill landed inside its phase.
    assert spans(step(status, "lowering-ttl", "Wait"), kills["lowering-ttl"])
    assert spans(step(status, "flipping", "Flip"), kills["flipping"])
    assert spans(step(status, "draining", "Wait"), kills["draining"])
    monitor = step(status, "monitoring", "Monitor")
    assert spans(monitor, kills["monitoring"])

    # Exactly one effective change per DNS step, and nothing else changed the zone.
    assert dns_change_results(status) == one_increment_each(serial_before), run.describe(status)
    assert_on_both(dns_view(topo, lane.record), FINAL, serial_before + len(DNS_STEPS))
    # The flip was applied by the attempt the new worker ran after the primary came back.
    assert flip_attempt >= 2 and await run.activity_attempts("dns_apply") == [1, flip_attempt, 1]

    # The monitor resumed from its last heartbeat: the second attempt's verdict covers the window the
    # first one started before the crash, with what it had counted.
    assert await run.activity_attempts("traffic_monitor") == [2]
    verdict = status.last_verdict
    assert verdict is not None and verdict.status == "healthy", run.describe(status)
    window_start = verdict.summary.window_start
    assert window_start is not None and window_start.timestamp() < kills["monitoring"], verdict.summary
    assert abs(window_start.timestamp() - monitor.started_at.timestamp()) < 2.0, (window_start, monitor)
    assert len(load.records) > 0


@pytest.mark.e2e
@pytest.mark.timeout(90)
async def test_a_temporal_restart_mid_drain_leaves_the_run_going(topo: Topology, lane: Lane) -> None:
    plan = plan_keeping_a(topo, lane)
    serial_before = read_serial(topo.nameservers[0])
    async with load_generator(topo, lane) as load:
        await asyncio.sleep(0.5)
        run = await start_run(topo, plan)
        await run.approve("flip")
        await run.until_phase("draining", waiting=True)
        stopped = time.time()
        await topo.restart_temporal()
        outcome = await run.outcome()
    status = outcome.status
    assert outcome.failure_type is None and status.phase == "completed", run.describe(status)

    # The drain's timer survived the restart and kept its deadline.
    drain = step(status, "draining", "Wait")
    assert spans(drain, stopped) and drain.ok is True
    until = [w.until for w in status.waits if w.phase == "draining"]
    assert until[0] is not None and finished_at(drain) >= until[0].timestamp()

    assert dns_change_results(status) == one_increment_each(serial_before), run.describe(status)
    assert_on_both(dns_view(topo, lane.record), FINAL, serial_before + len(DNS_STEPS))
    assert failures(load.records) == []
