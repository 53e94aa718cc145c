"""The benchmarks' arithmetic: overhead from a run's status, spreads, client segments, DNS and history times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench.figures import (
    EventRow,
    FigureError,
    Observation,
    OverheadBreakdown,
    OverheadItem,
    PlanWaits,
    RollbackTimes,
    Spread,
    derive_overhead,
    first_on_all,
    item_medians,
    last_failure,
    median,
    phase_medians,
    quantile,
    render_shares,
    rollback_target,
    segments,
    target_mark,
    task_times,
    within_ratio,
)
from models.plan import CutoverPlan
from models.workflow import ApprovalRecord, CutoverStatus, StepRecord, WaitRecord
from sandbox.load import RequestRecord
from tests.conftest import base_plan_data

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def step(phase: str, text: str, start: float, end: float | None) -> StepRecord:
    return StepRecord(
        phase=phase, step=text, started_at=at(start), finished_at=None if end is None else at(end), ok=end is not None
    )


def wait(phase: str, start: float, seconds: float, reason: str) -> WaitRecord:
    return WaitRecord(phase=phase, seconds=seconds, reason=reason, until=at(start + seconds))


def status(timeline, waits=(), approvals=(), phase="completed") -> CutoverStatus:
    return CutoverStatus(
        name="orders-api",
        workflow_id="cutover-orders-api",
        phase=phase,
        plan_digest="d",
        strategy="cname",
        record="a-project.example.test.",
        target="b-project.example.test.",
        timeline=tuple(timeline),
        waits=tuple(waits),
        approvals=tuple(approvals),
    )


def approval(gate: str, seconds: float) -> ApprovalRecord:
    return ApprovalRecord(gate=gate, by="bench", via="update", at=at(seconds))


PLAN_WAITS = PlanWaits(monitor_window=20.0, readiness_spacing=2.0)


def a_completed_run() -> CutoverStatus:
    """A clean run: called at 0, result at 67.0; its waits and gates are known exactly."""
    return status(
        [
            step("verifying", "Snapshot a-project on every nameserver", 0.05, 0.15),
            step("verifying", "Probe B with Host a-project / SNI a-project", 0.15, 2.25),  # 2.0 spacing + 0.10
            step("lowering-ttl", "Lower TTL to 5 s", 2.30, 2.40),
            step("lowering-ttl", "Wait 22s: old TTL 20 s + margin", 2.40, 24.45),  # 22.0 + 0.05 late
            # gap 24.45 -> 25.00: flip gate opened at 24.45, approved at 24.95 (0.50 gate), flip at 25.00
            step("flipping", "Flip a-project -> CNAME b-project", 25.00, 25.10),
            step("draining", "Wait 19s: cutover TTL + Kong cache bound + margin", 25.20, 44.21),  # 19.0 + 0.01
            step("monitoring", "Monitor traffic window 1 (20s)", 44.21, 64.30),  # 20.0 + 0.09
            # gap 64.30 -> 65.00: decommission gate approved at 64.90 (0.60 gate)
            step("decommissioning", "Decommission A (webhook)", 65.00, 65.50),
            step("restoring-ttl", "Restore TTL 60 s", 65.50, 66.80),
        ],
        waits=[
            wait("lowering-ttl", 2.40, 22.0, "old TTL 20 s + margin"),
            wait("draining", 25.20, 19.0, "cutover TTL + cache bound + margin"),
        ],
        approvals=[approval("flip", 24.95), approval("decommission", 64.90)],
    )


def test_overhead_is_wall_minus_the_waits_read_from_the_run():
    breakdown = derive_overhead(a_completed_run(), PLAN_WAITS, called_at=at(0.0), result_at=at(67.0))
    assert breakdown.wall == pytest.approx(67.0)
    kinds = breakdown.mandatory_by_kind()
    assert kinds == pytest.approx({"readiness-spacing": 2.0, "timer": 41.0, "gate": 1.10, "monitor-window": 20.0})
    assert breakdown.mandatory_seconds == pytest.approx(64.10)
    assert breakdown.overhead == pytest.approx(2.90)
    assert breakdown.strict_overhead == pytest.approx(4.90)  # readiness spacing counted as overhead
    assert sum(item.seconds for item in breakdown.items) == pytest.approx(breakdown.overhead)


def test_overhead_items_say_where_the_time_went():
    breakdown = derive_overhead(a_completed_run(), PLAN_WAITS, called_at=at(0.0), result_at=at(67.0))
    items = {(item.phase, item.what): item.seconds for item in breakdown.items}
    assert items[("starting", "start_workflow call -> first step")] == pytest.approx(0.05)
    assert items[("verifying", "Probe B with Host a-project / SNI a-project")] == pytest.approx(0.10)
    assert items[("lowering-ttl", "Wait 22s: old TTL 20 s + margin")] == pytest.approx(0.05)
    # The gap holding the flip gate: only what came after the approval is overhead.
    assert items[("awaiting-flip-approval", "after: Wait 22s: old TTL 20 s + margin")] == pytest.approx(0.05)
    assert items[("awaiting-decommission-approval", "after: Monitor traffic window 1 (20s)")] == pytest.approx(0.10)
    assert items[("completed", "last step -> result")] == pytest.approx(0.20)
    phases = breakdown.by_phase()
    assert list(phases)[:3] == ["starting", "verifying", "lowering-ttl"]
    assert phases["restoring-ttl"] == pytest.approx(1.30)
    gates = [w for w in breakdown.mandatory if w.kind == "gate"]
    assert [(g.phase, round(g.seconds, 3)) for g in gates] == [
        ("awaiting-flip-approval", 0.5),
        ("awaiting-decommission-approval", 0.6),
    ]


def test_a_wait_step_shorter_than_its_record_counts_only_what_it_took():
    run = status(
        [step("lowering-ttl", "Wait 22s", 0.0, 10.0)],
        waits=[wait("lowering-ttl", 0.0, 22.0, "old TTL")],
        phase="rolled-back",
    )
    breakdown = derive_overhead(run, PLAN_WAITS, called_at=at(0.0), result_at=at(10.0))
    assert breakdown.mandatory_seconds == pytest.approx(10.0)
    assert breakdown.overhead == pytest.approx(0.0)


def test_plan_waits_come_from_the_plan():
    plan = CutoverPlan.model_validate(
        base_plan_data(
            readiness={"url": "https://127.0.0.3:8443/h", "successes": 4, "interval": "1500ms"},
            monitor={"source": {"kind": "kong-file-log", "path": "/x"}, "window": "45s"},
        )
    )
    assert PlanWaits.of(plan) == PlanWaits(monitor_window=45.0, readiness_spacing=4.5)


@pytest.mark.parametrize(
    ("run", "message"),
    [
        (status([]), "no timeline"),
        (status([step("verifying", "Probe B", 0.0, None)]), "has not finished"),
        (
            status([step("verifying", "Snapshot", 0.0, 0.1)], waits=[wait("lowering-ttl", 5.0, 22.0, "old TTL")]),
            "no timeline step: old TTL",
        ),
        (
            status([step("verifying", "Snapshot", 0.0, 0.1)], approvals=[approval("flip", -1.0)]),
            "outside the gaps",
        ),
    ],
)
def test_a_status_that_cannot_give_the_figure_says_why(run, message):
    with pytest.raises(FigureError, match=message):
        derive_overhead(run, PLAN_WAITS, called_at=at(-1.5), result_at=at(1.0))


def test_quantiles_and_spreads():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert median(values) == 3.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    assert quantile(values, 0.95) == 5.0
    assert quantile(values, 0.2) == 1.0
    spread = Spread.of(values)
    assert (spread.count, spread.median, spread.p95, spread.max) == (5, 3.0, 5.0, 5.0)
    assert spread.render() == "median 3.00 s, p95 5.00 s, max 5.00 s (n=5)"
    with pytest.raises(FigureError):
        median([])


def test_targets():
    assert target_mark(2.0, 2.0) == "PASS"
    assert target_mark(2.01, 2.0) == "MISS"
    assert within_ratio(1.10, 1.0, 0.10)
    assert not within_ratio(1.11, 1.0, 0.10)
    assert rollback_target(2.0) == 4.0


def breakdown(phase_seconds: dict[str, float]) -> OverheadBreakdown:
    items = tuple(OverheadItem(phase, f"step of {phase}", seconds) for phase, seconds in phase_seconds.items())
    return OverheadBreakdown(wall=sum(phase_seconds.values()), mandatory=(), items=items)


def test_phase_medians_count_a_missing_phase_as_zero():
    runs = [
        breakdown({"verifying": 1.0, "repointing": 3.0}),
        breakdown({"verifying": 2.0}),
        breakdown({"verifying": 3.0}),
    ]
    assert phase_medians(runs) == {"verifying": 2.0, "repointing": 0.0}


def test_item_medians_group_items_of_different_runs():
    first = OverheadBreakdown(1.0, (), (OverheadItem("flipping", "Flip bench-001", 0.4),))
    second = OverheadBreakdown(1.0, (), (OverheadItem("flipping", "Flip bench-002", 0.2),))
    rows = item_medians([first, second], normalize=lambda text: text.rsplit(" ", 1)[0])
    assert [(phase, what) for phase, what, _ in rows] == [("flipping", "Flip")]
    assert rows[0][2] == pytest.approx(0.3)


def request(started: float, status_code: int | None, served_by: str | None) -> RequestRecord:
    return RequestRecord(started=started, offset=started - 100.0, status=status_code, served_by=served_by, latency=0.01)


def test_segments_split_the_load_by_the_runs_own_instants():
    records = [
        request(100.0, 200, "A"),
        request(101.0, 200, "A"),
        request(102.0, 502, None),
        request(103.0, 200, "B"),
        request(104.0, 200, "B"),
        request(105.0, None, None),
    ]
    before, during, after = segments(records, [("before", 100.0), ("during", 102.0), ("after", 104.0)], end=106.0)
    assert (before.requests, before.failed, before.share("A")) == (2, 0, 1.0)
    assert (during.requests, during.failures, during.served) == (2, {"502": 1}, {"B": 1})
    assert after.failures == {"connection error: unknown": 1}
    assert after.share("B") == 0.5
    assert render_shares(before.served, before.requests) == "A 100% / B 0%"
    assert render_shares({}, 0) == "A - / B -"


def test_first_on_all_is_the_latest_first_answer_of_the_servers():
    ns1, ns2 = "127.0.0.1:5353", "127.0.0.1:5354"
    temporary = "CNAME a-project--cutover-rollback.example.test."
    seen = [
        Observation(10.0, ns1, "A 127.0.0.2", 20, "127.0.0.2"),
        Observation(10.0, ns2, "A 127.0.0.2", 20, "127.0.0.2"),
        Observation(11.0, ns1, "CNAME b-project.example.test.", 5, "127.0.0.3"),
        Observation(11.2, ns2, "CNAME b-project.example.test.", 5, "127.0.0.3"),
        Observation(14.0, ns1, temporary, 5, "127.0.0.2"),
        Observation(14.1, ns2, temporary, 5, "127.0.0.2"),
        Observation(15.0, ns1, "A 127.0.0.2", 5, "127.0.0.2"),
        Observation(15.3, ns2, "A 127.0.0.2", 5, "127.0.0.2"),
        Observation(15.9, ns1, "A 127.0.0.2", 20, "127.0.0.2"),
    ]
    assert first_on_all(seen, [ns1, ns2], after=0.0, answer="CNAME b-project.example.test.") == 11.2
    assert first_on_all(seen, [ns1, ns2], after=11.0, addresses="127.0.0.2") == 14.1  # back through the temporary name
    assert first_on_all(seen, [ns1, ns2], after=11.0, answer="A 127.0.0.2") == 15.3
    assert first_on_all(seen, [ns1, ns2], after=11.0, answer="A 127.0.0.2", ttl=20) is None  # ns2 never had TTL 20
    assert first_on_all(seen, [ns1], after=11.0, answer="A 127.0.0.2", ttl=20) == 15.9


def test_last_failure_after_an_instant():
    records = [request(99.0, 502, None), request(100.5, 503, "B"), request(101.0, 200, "A"), request(101.5, 200, "A")]
    assert last_failure(records, after=100.0) == 100.5
    assert last_failure(records[2:], after=100.0) is None


def test_rollback_times_from_detection_and_from_failure():
    times = RollbackTimes(
        failed_at=100.0,
        first_error_at=100.01,
        detected_at=101.9,
        monitor_done_at=101.95,
        addresses_back_at=102.1,
        restored_at=124.0,
        ttl_restored_at=124.6,
        ended_at=125.0,
        last_error_at=102.2,
    )
    assert times.from_detection == pytest.approx(0.2)
    assert times.from_failure == pytest.approx(2.1)
    assert times.record_from_detection == pytest.approx(22.1)


def test_task_times_pair_scheduled_started_and_closed_events():
    events = [
        EventRow(1, "WORKFLOW_EXECUTION_STARTED", 0.0),
        EventRow(2, "WORKFLOW_TASK_SCHEDULED", 0.0),
        EventRow(3, "WORKFLOW_TASK_STARTED", 0.1, 2),
        EventRow(4, "WORKFLOW_TASK_COMPLETED", 0.15, 2),
        EventRow(5, "ACTIVITY_TASK_SCHEDULED", 0.15),
        EventRow(6, "ACTIVITY_TASK_STARTED", 0.35, 5),
        EventRow(7, "ACTIVITY_TASK_COMPLETED", 1.35, 5),
        EventRow(8, "WORKFLOW_TASK_SCHEDULED", 1.35),
        EventRow(9, "WORKFLOW_TASK_STARTED", 1.40, 8),
        EventRow(10, "WORKFLOW_TASK_COMPLETED", 1.42, 8),
        EventRow(11, "TIMER_STARTED", 1.42),
    ]
    times = task_times(events)
    assert times.workflow_task_wait == pytest.approx(0.15)
    assert times.workflow_task_run == pytest.approx(0.07)
    assert times.activity_wait == pytest.approx(0.20)
    assert times.activity_run == pytest.approx(1.0)
    assert (times.workflow_tasks, times.activities) == (2, 1)
