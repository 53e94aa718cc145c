"""The benchmark scripts' pure parts: plans they build, arguments they accept, answers and instants they read."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import dns.message
import dns.rrset
import pytest

from bench.common import describe_answer, machine_busy_share, normalised_reason, resolved_addresses
from bench.load_failures import segment_bounds, strategy_list
from bench.overhead import plan_for as overhead_plan
from bench.scale import count_list, fitted_timings, plan_for, record_names
from models.plan import CutoverPlan
from models.workflow import CutoverStatus, StepRecord
from sandbox.topology import Topology


@pytest.fixture
def topo(tmp_path):
    """A topology object that is never started: enough to render plans."""
    return Topology(tmp_path / "sandbox", ports="auto", timings=fitted_timings(0.5))


def test_scale_plans_one_record_service_and_sink_each(topo):
    plan = plan_for(topo, "bench-007", "http://127.0.0.1:9", "auto", readiness_timeout="5m")
    assert plan.workflow_id == "cutover-bench-007"
    assert plan.dns.record == "bench-007.example.test."
    assert plan.dns.target == "b-project.example.test."
    assert plan.kong.service == plan.monitor_service == "bench-007"
    assert plan.decommission.kind == "webhook"
    assert str(plan.decommission.url) == "http://127.0.0.1:9/projects/bench-007"
    assert plan.decommission.headers_env == {}  # the sandbox receiver's secret never goes to the sink
    assert plan.decommission.require_drained
    assert plan.readiness.timeout == timedelta(minutes=5)
    assert plan.monitor.min_requests == 5  # half of 0.5 req/s x 20 s
    assert plan.approvals.flip and plan.approvals.decommission


def test_scale_plans_keep_the_sandbox_readiness_timeout_unless_told(topo):
    plan = plan_for(topo, "bench-001", "http://127.0.0.1:9", "off")
    assert plan.readiness.timeout == timedelta(seconds=30)
    assert not plan.approvals.flip and not plan.approvals.decommission


def test_overhead_plan_is_the_sandbox_plan(topo):
    cname = overhead_plan(topo, "cname", "auto")
    assert cname.digest() == CutoverPlan.model_validate(topo.render_plan("cname")).digest()  # unchanged
    assert cname.dns.record == "a-project.example.test." and cname.kong.service == "orders-api"
    assert cname.decommission.kind == "webhook" and str(cname.decommission.url) == topo.decommission_url
    alias = overhead_plan(topo, "alias", "off")
    assert alias.strategy == "alias" and alias.dns.record == "origin-api.example.test."
    assert not alias.approvals.flip and not alias.approvals.decommission
    assert cname.approvals.flip and cname.approvals.decommission


def test_record_names_and_min_requests():
    assert record_names(3) == ["bench-001", "bench-002", "bench-003"]
    assert fitted_timings(0.5).min_requests == 5
    assert fitted_timings(0.01).min_requests == 1
    assert fitted_timings(100).min_requests == 50  # never above the sandbox plan's


@pytest.mark.parametrize("text", ["", "0", "1000", "1,x", "5,-1"])
def test_count_list_refuses_bad_counts(text):
    with pytest.raises(argparse.ArgumentTypeError):
        count_list(text)


def test_count_and_strategy_lists():
    assert count_list("1, 50,200") == [1, 50, 200]
    assert strategy_list("alias") == ["alias"]
    with pytest.raises(argparse.ArgumentTypeError, match="cname and/or alias"):
        strategy_list("cname,weighted")


def test_describe_answer_reads_the_records_own_rrset():
    query = dns.message.make_query("a-project.example.test.", "A")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("a-project.example.test.", 5, "IN", "CNAME", "b-project.example.test."))
    response.answer.append(dns.rrset.from_text("b-project.example.test.", 20, "IN", "A", "127.0.0.3"))
    assert describe_answer(response, "a-project.example.test.") == ("CNAME b-project.example.test.", 5)
    assert describe_answer(response, "other.example.test.") == ("none", None)
    assert resolved_addresses(response, "a-project.example.test.") == "127.0.0.3"
    assert resolved_addresses(response, "other.example.test.") == ""


def test_segment_bounds_follow_the_runs_timeline():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def step(phase, second):
        moment = t0 + timedelta(seconds=second)
        return StepRecord(phase=phase, step=phase, started_at=moment, finished_at=moment, ok=True)

    status = CutoverStatus(
        name="n",
        workflow_id="w",
        phase="completed",
        plan_digest="d",
        strategy="cname",
        record="r.",
        target="t.",
        timeline=(step("verifying", 1), step("flipping", 30), step("flipping", 31), step("monitoring", 50)),
    )
    bounds = segment_bounds(status, load_started=t0.timestamp(), result_at=t0.timestamp() + 70)
    assert [(label, at - t0.timestamp()) for label, at in bounds] == [
        ("before the flip", 0.0),
        ("flip -> monitoring (Kong draining A)", 30.0),
        ("monitoring + decommission", 50.0),
        ("after the run (A deleted)", 70.0),
    ]


def test_machine_busy_share():
    assert machine_busy_share((100, 1000), (250, 1200)) == 0.75
    assert machine_busy_share((100, 1000), (100, 1000)) == 0.0


def test_approval_problems_are_counted_without_run_names():
    digest = "ab" * 32
    first = normalised_reason(f"rejected: digest {digest!r} of cutover-bench-001 does not match bench-001")
    second = normalised_reason(f"rejected: digest {digest!r} of cutover-bench-002 does not match bench-002")
    assert first == second == "rejected: digest '<...>' of <...> does not match <...>"


def test_scale_plans_can_leave_a_in_place(topo):
    plan = plan_for(topo, "bench-007", "http://127.0.0.1:9", "auto", decommission="none")
    assert plan.decommission.kind == "none" and plan.kong.service == "bench-007"
    assert plan.approvals.flip and plan.approvals.decommission
