"""The campaign's pure decisions: when the line stops, what may start, how a child's ending is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError, ChildWorkflowError, RetryState, TerminatedError

from activities.campaign import brief_of
from models.campaign import Campaign
from models.campaign_status import CutoverBrief, StopRecord
from models.workflow import CutoverStatus, StepRecord, WaitRecord
from tests.models.test_campaign import campaign
from workflows import campaign_logic as logic

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def running(count: int = 8, **settings):
    result = Campaign.from_data(campaign(count, **settings))
    status = logic.new_status(result, "campaign-fleet-1")
    status.current_wave = 1
    return result, status


@pytest.mark.parametrize(
    ("stop_on", "ended", "stops"),
    [
        ({"rollbacks": 1}, {"api-1": "rolled-back"}, "1 cutover(s) did not complete (api-1): stop_on.rollbacks is 1"),
        ({"rollbacks": 2}, {"api-1": "failed"}, None),
        ({"failures": 1}, {"api-1": "rolled-back", "api-2": "rolled-back"}, None),
        ({"failures": 1}, {"api-1": "failed"}, "1 cutover(s) failed (api-1): stop_on.failures is 1"),
        ({"error_budget": "25%"}, {"api-1": "rolled-back", "api-2": "failed"}, None),
        (
            {"error_budget": "25%"},
            {"api-1": "rolled-back", "api-2": "failed", "api-3": "failed"},
            "3 of wave 1's 8 cutovers did not complete (api-1, api-2, api-3): over the error budget of 25%",
        ),
        ({"error_budget": "0%"}, {"api-5": "failed"}, "1 of wave 1's 8 cutovers"),
    ],
)
def test_stop_on(stop_on, ended, stops):
    result, status = running(stop_on=stop_on)
    for name, state in ended.items():
        logic.end(status.entry(name), state, "why", NOW)
    reason = logic.stop_reason(status, result)
    assert (reason is None) if stops is None else (reason is not None and reason.startswith(stops))


def test_a_rollback_stops_the_line_when_it_starts():
    result, status = running(stop_on={"rollbacks": 1})
    entry = status.entry("api-3")
    entry.state, entry.phase = "in-flight", "monitoring"
    assert logic.stop_reason(status, result) is None
    entry.phase = "rolling-back"
    assert (
        logic.stop_reason(status, result)
        == "1 cutover(s) did not complete (api-3 (rolling back)): stop_on.rollbacks is 1"
    )


def test_acknowledged_failures_and_those_the_campaign_aborted_do_not_count():
    result, status = running(stop_on={"rollbacks": 1})
    logic.end(status.entry("api-1"), "rolled-back", "B down", NOW)
    status.acknowledged = ["api-1"]
    status.entry("api-2").abort_sent = "the line stopped"
    logic.end(status.entry("api-2"), "rolled-back", "aborted", NOW)
    assert logic.stop_reason(status, result) is None


def test_what_starts_respects_max_in_flight_resources_and_the_line():
    data = campaign(5, max_in_flight=2)
    data["plans"][1]["kong"]["service"] = "svc-api-1"
    result = Campaign.from_data(data)
    status = logic.new_status(result, "campaign-fleet-1")
    resources = {p.name: result.resources(p.name) for p in result.plans}
    assert logic.startable(status, resources) == [], "nothing before the first wave"
    status.current_wave = 1
    assert logic.startable(status, resources) == ["api-1", "api-3"], "api-2 shares api-1's Kong Service"
    status.entry("api-1").state = "in-flight"
    assert logic.startable(status, resources) == ["api-3"]
    status.entry("api-3").state = "in-flight"
    assert logic.startable(status, resources) == []
    logic.end(status.entry("api-1"), "completed", None, NOW)
    assert logic.startable(status, resources) == ["api-2"]
    status.stopped = StopRecord(by="x", reason="y", at=NOW, automatic=False)
    assert logic.startable(status, resources) == []


def test_how_a_child_ending_is_read():
    def child(cause: BaseException) -> ChildWorkflowError:
        error = ChildWorkflowError(
            "child failed",
            namespace="default",
            workflow_id="cutover-x",
            run_id="r",
            workflow_type="CutoverWorkflow",
            initiated_event_id=1,
            started_event_id=2,
            retry_state=RetryState.NON_RETRYABLE_FAILURE,
        )
        error.__cause__ = cause
        return error

    rolled = ApplicationError("rolled back: B is unhealthy", type="CutoverRolledBack")
    assert logic.ending_of_failure(child(rolled)) == ("rolled-back", "rolled back: B is unhealthy")
    refused = ApplicationError("refused before any change: B not ready", type="CutoverRefused")
    assert logic.ending_of_failure(child(refused))[0] == "rolled-back"
    failed = ApplicationError("rollback incomplete", type="CutoverFailed")
    assert logic.ending_of_failure(child(failed)) == ("failed", "CutoverFailed: rollback incomplete")
    state, why = logic.ending_of_failure(child(TerminatedError("by hand")))
    assert state == "failed" and "no undo ran" in why
    assert logic.ending_of_brief(CutoverBrief(workflow_id="w", phase="monitoring")) is None
    assert logic.ending_of_brief(CutoverBrief(workflow_id="w", phase="completed", closed="COMPLETED")) == (
        "completed",
        None,
    )
    terminated = CutoverBrief(workflow_id="w", phase="monitoring", closed="TERMINATED")
    assert logic.ending_of_brief(terminated) == ("failed", "the run ended terminated in phase monitoring")


def test_a_read_that_failed_or_raced_the_childs_result_ends_nothing():
    """bench.campaign, 3 of 200: a read raced a child's completion, its status query timed out, and the
    completed cutover was recorded as failed ("status query: Timeout expired")."""
    _, status = running()
    done, watched, orphan = status.entry("api-1"), status.entry("api-2"), status.entry("api-3")
    for entry in (done, watched, orphan):
        entry.state = "in-flight"
    timed_out = CutoverBrief(workflow_id="w", closed="COMPLETED", unreadable="status query: Timeout expired")
    logic.end(done, "completed", None, NOW)  # the child's own result arrived in the same task
    done.final = True
    assert logic.read_ending(done, timed_out, watched=True) is None
    assert logic.read_ending(done, CutoverBrief(workflow_id="w", phase="failed", closed="FAILED"), watched=True) is None
    # A child watched through its handle ends through it; one known only by reads (after continue-as-new)
    # ends by a read that got its status, not by one that did not.
    rolled = CutoverBrief(workflow_id="w", phase="rolled-back", closed="COMPLETED", error="B unhealthy")
    assert logic.read_ending(watched, rolled, watched=True) is None
    assert logic.read_ending(orphan, timed_out, watched=False) is None
    assert logic.read_ending(orphan, rolled, watched=False) == ("rolled-back", "B unhealthy")
    gone = CutoverBrief(workflow_id="w", closed="NOT_FOUND", unreadable="no such workflow")
    assert logic.read_ending(orphan, gone, watched=False) == ("failed", "no such workflow")
    # A child that ended badly through its handle is read once more for its final status.
    logic.end(watched, "rolled-back", "rolled back: B is unhealthy", NOW)
    assert logic.read_ending(watched, timed_out, watched=True) is None
    assert logic.read_ending(watched, rolled, watched=True) == ("rolled-back", "B unhealthy")


def test_reads_wait_for_the_cutovers_durable_waits():
    _, status = running()
    interval = timedelta(seconds=15)
    assert logic.next_read(status, NOW, interval) == NOW + interval
    waiting, working = status.entry("api-1"), status.entry("api-2")
    waiting.state, waiting.quiet_until = "in-flight", NOW + timedelta(minutes=5)
    assert logic.next_read(status, NOW, interval) == NOW + timedelta(minutes=5), "nothing to read before"
    working.state = "in-flight"
    assert logic.next_read(status, NOW, interval) == NOW + interval
    working.state, waiting.quiet_until = "completed", NOW + timedelta(seconds=3)
    assert logic.next_read(status, NOW, interval) == NOW + interval, "never more often than the interval"


def test_a_brief_knows_when_the_cutovers_wait_ends():
    until = NOW + timedelta(seconds=305)
    status = CutoverStatus(
        name="x", workflow_id="cutover-x", phase="lowering-ttl", plan_digest="d", strategy="cname",
        record="x.example.test.", target="b.example.test.",
        timeline=(StepRecord(phase="lowering-ttl", step="Wait 5m5s: old TTL", started_at=NOW),),
        waits=(WaitRecord(phase="lowering-ttl", seconds=305, reason="old TTL", until=until),),
    )  # fmt: skip
    assert brief_of("cutover-x", status, None).quiet_until == until
    done = status.model_copy(update={"timeline": (status.timeline[0].model_copy(update={"ok": True}),)})
    assert brief_of("cutover-x", done, None).quiet_until is None
    assert brief_of("cutover-x", status, None).fingerprint() != brief_of("cutover-x", done, None).fingerprint()


def test_a_cutover_whose_status_cannot_be_read_says_why_in_the_details():
    from workflows.campaign_render import details_markdown

    _, status = running()
    entry = status.entry("api-4")
    entry.state, entry.phase = "in-flight", "monitoring"
    logic.apply_brief(entry, CutoverBrief(workflow_id=entry.workflow_id, unreadable="status query: Timeout expired"))
    assert entry.phase == "monitoring"  # what was known is kept
    assert entry.read_problem == "status query: Timeout expired"
    details = details_markdown(status)
    assert "### Status not readable" in details
    assert f"- `{entry.workflow_id}`: status query: Timeout expired" in details
    logic.apply_brief(entry, CutoverBrief(workflow_id=entry.workflow_id, phase="draining"))
    assert entry.read_problem is None
    assert "Status not readable" not in details_markdown(status)
