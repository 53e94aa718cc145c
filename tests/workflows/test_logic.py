"""CutoverWorkflow's orchestration on the time-skipping server, with the outside world faked by name.

Hour-long TTLs and approval timeouts pass in seconds. The fake world keeps compare-and-swap DNS
semantics, so "restored" below means the fake records and Kong Service are exactly as before.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey
from temporalio.worker import Worker

from models.workflow import AbortRequest, ApproveRequest, CutoverStatus
from tests.conftest import base_plan_data
from tests.workflows.fake_world import ALIAS, A, B, FakeWorld
from tests.workflows.helpers import activities_for, failure_of, make, snapshot, started, status_of, until_phase
from workflows.registry import WORKFLOWS

# --- happy paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["cname", "alias"])
async def test_happy_path_with_hour_long_ttls(ts_env, strategy):
    world = FakeWorld()
    for name in world.records:
        world.records[name] = tuple(r.with_ttl(3600) for r in world.records[name])
    plan = make(strategy, decommission_gate=True)
    async with started(ts_env, world, plan) as handle:
        await until_phase(ts_env, handle, "awaiting-decommission-approval")
        await handle.execute_update("approve", ApproveRequest(gate="decommission", by="alice", digest=plan.digest()))
        status = await handle.result()
    record = plan.dns.record
    assert status.phase == "completed"
    assert world.records[record] == (world.records[record][0].model_copy(update={"type": "CNAME"}),)
    assert world.records[record][0].rdatas == (B,) and world.records[record][0].ttl == 300
    assert world.deleted is True
    waits = [w for w in status.waits if w.phase == "lowering-ttl"]
    assert waits and waits[0].seconds == 3600 + 5, "waits the old TTL as observed + margin"
    assert status.cache_bound is not None
    assert [a.gate for a in status.approvals] == ["decommission"]
    assert all(c.state == "not-needed" for c in status.compensations)
    # Each proof starts from the read-back of the change it follows, taken at the change's serial.
    assert world.proofs and all(
        change is not None and (proof.read_back, proof.min_serial) == (change.readback, change.serial_after)
        for proof, change in world.proofs
    )
    if strategy == "alias":
        assert world.service["host"] == "origin-api.example.test"
        assert world.records[A][0].type == "A", "the alias strategy leaves A's own record alone"
    else:
        assert world.service["host"] == "a-project.example.test", "the cname strategy leaves Kong untouched"


async def test_search_attributes_and_memo(ts_env):
    world = FakeWorld()
    plan = make()
    async with started(ts_env, world, plan) as handle:
        await handle.result()
        description = await handle.describe()
    assert description.typed_search_attributes.get(SearchAttributeKey.for_keyword("CutoverPhase")) == "completed"
    assert description.typed_search_attributes.get(SearchAttributeKey.for_keyword("CutoverRecord")) == A
    assert (await description.memo_value("plan_digest")) == plan.digest()


# --- gates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["signal", "update"])
async def test_each_gate_approved(ts_env, via):
    world = FakeWorld()
    plan = make(flip_gate=True, decommission_gate=True)
    async with started(ts_env, world, plan) as handle:
        for gate in ("flip", "decommission"):
            status = await until_phase(ts_env, handle, f"awaiting-{gate}-approval")
            assert status.gates_awaited == (gate,)
            request = ApproveRequest(gate=gate, by="alice", digest=plan.digest(), comment="ok")
            if via == "signal":
                await handle.signal("approve", request)
            else:
                assert await handle.execute_update("approve", request, result_type=str) == f"{gate} approved by alice"
        status = await handle.result()
    assert status.phase == "completed"
    assert [(a.gate, a.by, a.via) for a in status.approvals] == [("flip", "alice", via), ("decommission", "alice", via)]


async def test_update_rejects_wrong_gate_and_wrong_digest_and_signal_is_recorded_as_ignored(ts_env):
    world = FakeWorld()
    plan = make(flip_gate=True)
    async with started(ts_env, world, plan) as handle:
        await until_phase(ts_env, handle, "awaiting-flip-approval")
        with pytest.raises(WorkflowUpdateFailedError) as wrong_gate:
            await handle.execute_update("approve", ApproveRequest(gate="decommission", by="bob", digest=plan.digest()))
        assert "'decommission' is not awaited" in str(wrong_gate.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as wrong_digest:
            await handle.execute_update("approve", ApproveRequest(gate="flip", by="bob", digest="0" * 64))
        assert "does not match this run's plan digest" in str(wrong_digest.value.cause)
        await handle.signal("approve", ApproveRequest(gate="flip", by="mallory", digest="deadbeef"))
        await handle.signal("approve", {"gate": 7, "unexpected": True})
        for _ in range(100):
            status = await status_of(handle)
            if len(status.ignored) == 2:
                break
            await asyncio.sleep(0.02)
        assert status.phase == "awaiting-flip-approval", "bad approvals don't open the gate"
        assert [m.by for m in status.ignored] == ["mallory", None]
        assert "digest" in status.ignored[0].reason
        assert not status.approvals
        await handle.signal("abort", AbortRequest(by="alice", reason="done testing"))
        await failure_of(handle)


@pytest.mark.parametrize("on_timeout", ["abort", "wait"])
async def test_approval_timeout(ts_env, on_timeout):
    world = FakeWorld()
    before = snapshot(world)
    plan = make(flip_gate=True, approvals={"on_timeout": on_timeout, "timeout": "1h"})
    async with started(ts_env, world, plan) as handle:
        await until_phase(ts_env, handle, "awaiting-flip-approval")
        if on_timeout == "abort":
            error = await failure_of(handle)
            assert "no flip approval within 1h" in str(error)
            assert snapshot(world) == before, "timeout rolled everything back"
            assert (await status_of(handle)).phase == "rolled-back"
            return
        await ts_env.sleep(3 * 3600 + 60)
        status = await status_of(handle)
        assert status.phase == "awaiting-flip-approval"
        assert any("still pending" in w for w in status.warnings)
        await handle.execute_update("approve", ApproveRequest(gate="flip", by="alice", digest=plan.digest()))
        assert (await handle.result()).phase == "completed"


# --- abort and rollback ----------------------------------------------------------------------------

ABORT_POINTS = [
    ("cname", "lowering-ttl", True),
    ("cname", "awaiting-flip-approval", False),
    ("cname", "draining", True),
    ("cname", "monitoring", False),
    ("cname", "awaiting-decommission-approval", False),
    ("alias", "repointing", True),
    ("alias", "lowering-ttl", True),
    ("alias", "awaiting-flip-approval", False),
    ("alias", "draining", True),
    ("alias", "monitoring", False),
    ("alias", "awaiting-decommission-approval", False),
]


@pytest.mark.parametrize(("strategy", "phase", "in_timer"), ABORT_POINTS)
async def test_abort_in_every_phase_restores_everything(ts_env, strategy, phase, in_timer):
    await _abort_in_phase(ts_env, strategy, phase, in_timer)


async def _abort_in_phase(ts_env, strategy, phase, in_timer):
    world = FakeWorld()
    world.monitor_seconds = 30
    before = snapshot(world)
    plan = make(strategy, flip_gate=True, decommission_gate=True)
    async with started(ts_env, world, plan) as handle:
        if phase in ("draining", "monitoring", "awaiting-decommission-approval"):
            await until_phase(ts_env, handle, "awaiting-flip-approval")
            await handle.execute_update("approve", ApproveRequest(gate="flip", by="a", digest=plan.digest()))
        if phase == "awaiting-decommission-approval":
            world.monitor_seconds = 0
        await until_phase(ts_env, handle, phase, waiting=in_timer)
        if phase == "monitoring":
            await world.monitor_started.wait()
        message = await handle.execute_update("abort", AbortRequest(by="oncall", reason="pager"), result_type=str)
        assert message.startswith("aborting")
        error = await failure_of(handle)
        status = await status_of(handle)
        if phase == "monitoring":
            await asyncio.wait_for(world.monitor_cancelled.wait(), timeout=10)
    assert error.type == "CutoverRolledBack" and "aborted by oncall: pager" in str(error)
    assert status.phase == "rolled-back"
    assert snapshot(world) == before, "records and Kong Service exactly as before"
    assert status.compensations, "something was changed and undone"
    assert [c.state for c in status.compensations] == ["done"] * len(status.compensations)


async def test_compensations_run_in_reverse_order(ts_env):
    world = FakeWorld()
    plan = make("alias", flip_gate=True)
    async with started(ts_env, world, plan) as handle:
        await until_phase(ts_env, handle, "awaiting-flip-approval")
        await handle.execute_update("approve", ApproveRequest(gate="flip", by="a", digest=plan.digest()))
        await until_phase(ts_env, handle, "draining", waiting=True)
        await handle.signal("abort", AbortRequest(by="oncall", reason="test order"))
        await failure_of(handle)
        status = await status_of(handle)
    registered = [c.id for c in status.compensations]
    assert registered == ["restore-kong-service", "restore-ttl", "restore-record"]
    undo_calls = [c for c in world.calls if c.startswith("changed:restore") or c == "kong_restore_service"]
    assert undo_calls == [
        "changed:restore origin-api.example.test. as it was before the flip",
        "changed:restore the TTL of origin-api.example.test.",
        "kong_restore_service",
    ], "undone in reverse order of registration"


async def test_abort_is_rejected_after_the_point_of_no_return(ts_env):
    world = FakeWorld()
    world.decommission_seconds = 2
    plan = make(decommission_gate=True)
    async with started(ts_env, world, plan) as handle:
        await until_phase(ts_env, handle, "awaiting-decommission-approval")
        await handle.execute_update("approve", ApproveRequest(gate="decommission", by="a", digest=plan.digest()))
        await until_phase(ts_env, handle, "decommissioning")
        with pytest.raises(WorkflowUpdateFailedError) as late:
            await handle.execute_update("abort", AbortRequest(by="oncall", reason="too late"))
        await handle.signal("abort", AbortRequest(by="oncall", reason="too late, by signal"))
        status = await handle.result()
    assert "point of no return" in str(late.value.cause)
    assert status.phase == "completed" and world.deleted
    assert [m.name for m in status.ignored] == ["abort"] and "point of no return" in status.ignored[0].reason


async def test_cancellation_compensates(ts_env):
    world = FakeWorld()
    before = snapshot(world)
    plan = make(flip_gate=True)
    async with started(ts_env, world, plan) as handle:
        await until_phase(ts_env, handle, "awaiting-flip-approval")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        status = await status_of(handle)
    assert status.phase == "rolled-back"
    assert snapshot(world) == before


# --- failures ------------------------------------------------------------------------------------

STEP_FAILURES = [
    ("kong_repoint_service", 1, "alias"),
    ("dns_apply", 1, "alias"),
    ("dns_apply", 2, "alias"),
    ("dns_apply", 1, "cname"),
    ("dns_apply", 2, "cname"),
    ("dns_verify_propagation", 2, "cname"),
    ("traffic_monitor", 1, "cname"),
]


@pytest.mark.parametrize(("activity", "nth", "strategy"), STEP_FAILURES)
async def test_failure_of_each_step_rolls_back(ts_env, activity, nth, strategy):
    world = FakeWorld()
    before = snapshot(world)
    world.fail_at[activity] = nth
    async with started(ts_env, world, make(strategy)) as handle:
        error = await failure_of(handle)
        status = await status_of(handle)
    assert error.type == "CutoverRolledBack", error
    assert "injected failure" in str(error)
    failed = next(s for s in status.timeline if not s.ok and "injected failure" in s.result)
    assert f"rolled back: {failed.step}: " in str(error), "the reason names the step that failed"
    assert status.phase == "rolled-back"
    assert snapshot(world) == before


async def test_final_ttl_failure_after_the_point_of_no_return_is_described(ts_env):
    world = FakeWorld()
    world.fail_at["dns_apply"] = 3
    async with started(ts_env, world, make()) as handle:
        error = await failure_of(handle)
        status = await status_of(handle)
    assert error.type == "CutoverFailed"
    assert "failed after the point of no return" in str(error) and "rollback" not in str(error)
    assert status.phase == "failed" and status.point_of_no_return_passed
    assert world.records[A][0].type == "CNAME", "past the point of no return the cutover is kept"
    deadline = make().dns.retry_deadline
    assert world.apply_deadlines == [deadline, deadline, deadline * 5], "past it, nothing to roll back to: patient"
    assert any("keeps TTL 30" in item for item in status.left_changed)
    assert any("to 300 by hand" in step for step in status.manual_steps)


@pytest.mark.parametrize("activity", ["dns_snapshot", "kong_inspect", "readiness_probe", "dns_resolve"])
async def test_failure_while_verifying_changes_nothing(ts_env, activity):
    world = FakeWorld()
    before = snapshot(world)
    world.fail(activity)
    async with started(ts_env, world, make()) as handle:
        error = await failure_of(handle)
    assert "injected failure" in str(error)
    assert snapshot(world) == before
    assert not [c for c in world.calls if c in ("dns_apply", "kong_repoint_service")]


async def test_unhealthy_verdict_rolls_back_with_evidence(ts_env):
    world = FakeWorld()
    before = snapshot(world)
    world.verdicts = ["unhealthy"]
    async with started(ts_env, world, make()) as handle:
        error = await failure_of(handle)
        status = await status_of(handle)
    assert "B is unhealthy behind Kong" in str(error)
    assert status.phase == "rolled-back"
    assert status.last_verdict is not None and status.last_verdict.status == "unhealthy"
    assert status.last_verdict.error_ratio == 0.5
    assert snapshot(world) == before


async def test_inconclusive_asks_a_human_even_without_a_decommission_gate(ts_env):
    world = FakeWorld()
    world.verdicts = ["inconclusive"]
    plan = make(decommission_gate=False)
    async with started(ts_env, world, plan) as handle:
        status = await until_phase(ts_env, handle, "awaiting-decommission-approval")
        assert any("inconclusive" in w for w in status.warnings)
        await handle.execute_update("approve", ApproveRequest(gate="decommission", by="a", digest=plan.digest()))
        assert (await handle.result()).phase == "completed"


async def test_inconclusive_wait_watches_another_window(ts_env):
    world = FakeWorld()
    world.verdicts = ["inconclusive", "healthy"]
    base = base_plan_data()
    plan = make(monitor={**base["monitor"], "on_inconclusive": "wait"})
    async with started(ts_env, world, plan) as handle:
        status = await handle.result()
    assert world.calls.count("traffic_monitor") == 2
    assert status.phase == "completed"


async def test_concurrent_edit_before_flip_is_never_clobbered(ts_env):
    world = FakeWorld()
    plan = make(flip_gate=True)
    async with started(ts_env, world, plan) as handle:
        await until_phase(ts_env, handle, "awaiting-flip-approval")
        outside = (world.records[A][0].model_copy(update={"rdatas": ("127.0.0.9",), "ttl": 120}),)
        world.records[A] = outside
        await handle.execute_update("approve", ApproveRequest(gate="flip", by="a", digest=plan.digest()))
        error = await failure_of(handle)
        status = await status_of(handle)
    assert world.records[A] == outside, "the outside edit stays"
    assert status.phase == "failed"
    assert error.type == "CutoverFailed"
    states = {c.id: c.state for c in status.compensations}
    assert states == {"restore-ttl": "failed", "restore-record": "not-needed"}, "the refused flip wrote nothing"
    assert any(item.startswith("left alone: the record a-project.example.test.") for item in status.left_changed)
    assert any("Review the record a-project.example.test. by hand" in step for step in status.manual_steps)
    assert not any("set a-project.example.test. to" in step for step in status.manual_steps), (
        "never tell the on-call to overwrite someone else's edit"
    )


async def test_not_drained_keeps_a_and_fails_after_the_point_of_no_return(ts_env):
    world = FakeWorld()
    world.drained = False
    plan = make(decommission_gate=False, decommission={"kind": "webhook", "url": "http://127.0.0.1:9/hook"})
    async with started(ts_env, world, plan) as handle:
        error = await failure_of(handle)
        status = await status_of(handle)
    assert world.deleted is False
    assert "not drained" in str(error)
    assert status.phase == "failed" and status.point_of_no_return_passed
    assert world.records[A][0].type == "CNAME" and world.records[A][0].ttl == 300, "TTL restored anyway"
    assert any("A was not deleted" in item for item in status.left_changed)


# --- refusals, dry run, bad input --------------------------------------------------------------------


async def test_not_ready_b_is_refused_before_any_change(ts_env):
    world = FakeWorld()
    world.ready = False
    before = snapshot(world)
    async with started(ts_env, world, make()) as handle:
        error = await failure_of(handle)
    assert error.type == "CutoverRefused" and "B is not ready" in str(error)
    assert snapshot(world) == before


async def test_cname_strategy_refuses_a_record_kong_does_not_use(ts_env):
    world = FakeWorld(service_host="somewhere-else.example.test")
    async with started(ts_env, world, make()) as handle:
        error = await failure_of(handle)
    assert "not to the record a-project.example.test." in str(error)
    assert "dns_apply" not in world.calls


async def test_dry_run_plans_without_changing(ts_env):
    world = FakeWorld()
    before = snapshot(world)
    plan = make("alias").model_copy(update={"dry_run": True})
    async with started(ts_env, world, plan) as handle:
        status = await handle.result()
    assert status.phase == "planned" and status.dry_run
    assert snapshot(world) == before
    assert [c.phase for c in status.planned_changes] == [
        "repointing",
        "lowering-ttl",
        "flipping",
        "decommissioning",
        "restoring-ttl",
    ]
    assert status.plan_digest == plan.digest()
    assert {w.phase for w in status.waits} >= {"lowering-ttl", "draining", "monitoring"}


async def test_bad_input_fails_at_once_with_the_validation_message(ts_env):
    world = FakeWorld()
    queue = str(uuid.uuid4())
    bad = base_plan_data()
    bad["dns"]["cutover_ttl"] = 0
    bad["dns"]["record"] = "example.test."
    async with Worker(ts_env.client, task_queue=queue, workflows=WORKFLOWS, activities=activities_for(ts_env, world)):
        handle = await ts_env.client.start_workflow("CutoverWorkflow", bad, id=str(uuid.uuid4()), task_queue=queue)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), timeout=20)
    text = str(info.value.cause) + str(getattr(info.value.cause, "cause", ""))
    assert "cutover_ttl" in text and "zone apex" in text
    assert world.calls == []


# --- review findings ------------------------------------------------------------------------------


async def test_a_new_alias_waits_out_negative_caching_before_kong_uses_it(ts_env):
    world = FakeWorld()
    del world.records[ALIAS]
    async with started(ts_env, world, make("alias")) as handle:
        status = await handle.result()
    assert status.phase == "completed"
    reasons = [w.reason for w in status.waits if w.phase == "repointing"]
    assert reasons[0].startswith("negative-caching TTL 60 s"), reasons
    assert world.calls.index("kong_repoint_service") > world.calls.index("dns_apply")


async def test_hybrid_data_planes_must_apply_the_repoint(ts_env):
    world = FakeWorld()
    world.data_planes_in_sync = False
    before = snapshot(world)
    plan = make("alias", kong={**base_plan_data()["kong"], "status_urls": ["http://127.0.0.1:8100"]})
    async with started(ts_env, world, plan) as handle:
        error = await failure_of(handle)
    assert "data planes did not apply the repointed Service" in str(error)
    assert snapshot(world) == before
    assert world.calls.count("kong_await_data_planes") == 2, "after the repoint, and after restoring it"


async def test_an_abort_while_verifying_stops_every_later_change(ts_env):
    world = FakeWorld()
    world.readiness_seconds = 3
    before = snapshot(world)
    async with started(ts_env, world, make("alias")) as handle:
        await until_phase(ts_env, handle, "verifying")
        await world.readiness_started.wait()
        await handle.execute_update("abort", AbortRequest(by="oncall", reason="not today"))
        error = await failure_of(handle)
    assert "aborted by oncall" in str(error)
    assert "dns_apply" not in world.calls and "kong_repoint_service" not in world.calls
    assert snapshot(world) == before


async def test_a_failed_notification_becomes_a_warning(ts_env):
    world = FakeWorld()
    world.notify_ok = False
    plan = make(notify={"webhook_env": "CUTOVER_NOTIFY_WEBHOOK"})
    async with started(ts_env, world, plan) as handle:
        status = await handle.result()
    assert status.phase == "completed"
    assert any(w == "notification completed was not delivered (see the worker log)" for w in status.warnings)


async def test_a_secondary_that_disagrees_is_refused_before_any_change(ts_env):
    world = FakeWorld()
    world.secondary_answers = (world.records[A][0].model_copy(update={"rdatas": ("127.0.0.9",)}),)
    async with started(ts_env, world, make()) as handle:
        error = await failure_of(handle)
    assert error.type == "CutoverRefused"
    assert "nameserver 127.0.0.1:5354 answers" in str(error) and "wait until the servers agree" in str(error)
    assert "dns_apply" not in world.calls


async def test_cancelling_during_a_rollback_still_runs_every_undo(ts_env):
    world = FakeWorld()
    world.undo_seconds = 1.5
    before = snapshot(world)
    plan = make("alias", flip_gate=True)
    async with started(ts_env, world, plan) as handle:
        await until_phase(ts_env, handle, "awaiting-flip-approval")
        await handle.execute_update("approve", ApproveRequest(gate="flip", by="a", digest=plan.digest()))
        await until_phase(ts_env, handle, "draining", waiting=True)
        await handle.signal("abort", AbortRequest(by="oncall", reason="rollback then cancel"))
        await until_phase(ts_env, handle, "rolling-back")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        status = await status_of(handle)
    assert status.phase == "rolled-back"
    assert [c.state for c in status.compensations] == ["done", "done", "done"]
    assert snapshot(world) == before
    assert any("cancellation requested during rollback" in w for w in status.warnings)


# --- no request reaches A after it is deleted (issue 12 §2) --------------------------------------------


def about(delta, seconds: int) -> bool:
    """Within a second: the flip's time is taken once its propagation was proven, a moment after the step."""
    return abs(delta - timedelta(seconds=seconds)) < timedelta(seconds=1)


def step_started(status: CutoverStatus, prefix: str):
    return next(s.started_at for s in status.timeline if s.step.startswith(prefix))


async def test_a_is_never_deleted_before_idle_kong_workers_moved_on(ts_env):
    world = FakeWorld()
    world.kong_stale_ttl = 3600
    # The alias strategy flips CNAME -> CNAME: Kong's cache bound (drain) is 30 + 2 s, but an idle worker
    # keeps A's answer until TTL + dns_stale_ttl.
    plan = make(
        "alias", decommission_gate=True, decommission={"kind": "webhook", "url": "https://hooks.example.test/a"}
    )
    async with started(ts_env, world, plan) as handle:
        at_gate = await until_phase(ts_env, handle, "awaiting-decommission-approval")
        await handle.execute_update("approve", ApproveRequest(gate="decommission", by="alice", digest=plan.digest()))
        status = await handle.result()
    flipped = next(s.finished_at for s in status.timeline if s.step.startswith("Flip"))
    assert at_gate.decommission_not_before == status.decommission_not_before
    assert about(status.decommission_not_before - flipped, 30 + 3600 + 2 + 5)
    assert step_started(status, "Decommission A") >= status.decommission_not_before
    assert step_started(status, "Prove A received nothing") >= status.decommission_not_before  # drain proof after
    waits = [w for w in status.waits if w.phase == "decommissioning" and "after the flip" in w.reason]
    assert len(waits) == 1 and "3637 s after the flip" in waits[0].reason
    assert world.deleted is True and status.phase == "completed"


@pytest.mark.parametrize("confirmed", [True, False])
async def test_a_confirmed_restart_of_the_data_planes_lets_a_go_sooner(ts_env, confirmed):
    world = FakeWorld()
    world.kong_stale_ttl = 3600
    plan = make(
        "alias",
        decommission_gate=True,
        decommission={"kind": "webhook", "url": "https://hooks.example.test/a"},
        kong={"admin_url": "http://127.0.0.1:8001", "service": "orders-api", "dns_caches_cleared": "restart"},
    )
    async with started(ts_env, world, plan) as handle:
        await until_phase(ts_env, handle, "awaiting-decommission-approval")
        request = ApproveRequest(gate="decommission", by="alice", digest=plan.digest(), caches_cleared=confirmed)
        await handle.execute_update("approve", request)
        status = await handle.result()
    flipped = next(s.finished_at for s in status.timeline if s.step.startswith("Flip"))
    expected = 30 + 2 + 5 if confirmed else 30 + 3600 + 2 + 5
    assert about(status.decommission_not_before - flipped, expected)
    assert status.approvals[-1].caches_cleared is confirmed
    assert bool([w for w in status.waits if "after the flip" in w.reason]) is not confirmed  # monitoring took longer
    assert world.deleted is True


async def test_the_dry_run_shows_the_earliest_decommission_time(ts_env):
    world = FakeWorld()
    world.kong_stale_ttl = 20
    plan = make(decommission={"kind": "webhook", "url": "https://hooks.example.test/a"}).model_copy(
        update={"dry_run": True}
    )
    async with started(ts_env, world, plan) as handle:
        status = await handle.result()
    earliest = [w for w in status.waits if "after the flip" in w.reason]
    assert [w.seconds for w in earliest] == [30 + 20 + 2 + 5]
