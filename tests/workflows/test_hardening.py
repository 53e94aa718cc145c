"""The ways a real run went wrong before (issue 11), each as a test on the time-skipping server.

Malformed signals froze a run; a failing settle skipped the remaining undos; the alias was deleted
while Kong still pointed at it; a cancel after the point of no return skipped the TTL restore; phase
upserts on every call made worker upgrades non-deterministic; two runs of one record fought.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from models.dns import RRset
from models.kong import TargetInfo, UpstreamInfo
from models.workflow import AbortRequest, ApproveRequest
from tests.conftest import base_plan_data
from tests.workflows.fake_world import ALIAS, A, FakeWorld
from tests.workflows.helpers import failure_of, make, snapshot, started, status_of, until_phase
from workflows.lock import record_lock_id

HYBRID = {**base_plan_data()["kong"], "status_urls": ["http://127.0.0.1:8100"]}


def bounded(awaitable, seconds: float = 60):
    """A run that froze shows up as this test failing, not as the suite hanging."""
    return asyncio.wait_for(awaitable, seconds)


# --- messages ------------------------------------------------------------------------------------


async def test_signals_without_input_or_with_two_inputs_are_ignored_and_the_run_stays_abortable(ts_env):
    world = FakeWorld()
    before = snapshot(world)
    plan = make(flip_gate=True)
    async with started(ts_env, world, plan) as handle:
        await until_phase(ts_env, handle, "awaiting-flip-approval")
        await handle.signal("approve")
        await handle.signal("approve", args=[{"gate": "flip"}, {"by": "mallory"}])
        await handle.signal("abort")
        await handle.signal("approve", "yes")
        await handle.signal("abort", args=[1, 2, 3])
        ignored = (await bounded(status_of(handle), 30)).ignored
        await bounded(handle.execute_update("abort", AbortRequest(by="oncall", reason="after bad signals")), 30)
        error = await bounded(failure_of(handle))
    assert "aborted by oncall" in str(error)
    assert snapshot(world) == before
    reasons = [(m.name, m.reason) for m in ignored]
    assert reasons == [
        ("approve", 'no payload: send one JSON object, e.g. {"gate":..., "by":..., "digest":...}'),
        ("approve", "2 payloads: send exactly one JSON object"),
        ("abort", 'no payload: send one JSON object, e.g. {"by":..., "reason":...}'),
        ("approve", "malformed: payload: Input should be a valid dictionary or instance of ApproveRequest"),
        ("abort", "3 payloads: send exactly one JSON object"),
    ]


async def test_an_approval_while_an_abort_is_pending_is_ignored(ts_env):
    world = FakeWorld()
    plan = make(flip_gate=True)
    async with started(ts_env, world, plan) as handle:
        await until_phase(ts_env, handle, "awaiting-flip-approval")
        approve = ApproveRequest(gate="flip", by="alice", digest=plan.digest())
        await handle.signal("abort", AbortRequest(by="oncall", reason="stop"))
        await handle.signal("approve", approve)
        await handle.signal("approve", approve)
        await bounded(failure_of(handle))
        status = await status_of(handle)
    assert status.phase == "rolled-back" and status.approvals == ()
    assert [m.reason for m in status.ignored if m.name == "approve"] == ["an abort is pending (by oncall)"] * 2


# --- rollback engine -------------------------------------------------------------------------------


async def test_a_failing_settle_during_rollback_still_runs_the_other_undos_and_keeps_the_alias(ts_env):
    world = FakeWorld()
    del world.records[ALIAS]
    world.verdicts = ["unhealthy"]
    world.fail_at["kong_await_data_planes"] = 2  # the settle after restoring Kong's Service
    async with started(ts_env, world, make("alias", kong=HYBRID)) as handle:
        error = await bounded(failure_of(handle))
        status = await status_of(handle)
    states = {c.id: c.state for c in status.compensations}
    assert status.phase == "failed" and error.type == "CutoverFailed"
    assert states == {"delete-alias": "failed", "restore-kong-service": "done", "restore-record": "done"}
    assert world.records[A][0].type == "A" and world.service["host"] == "a-project.example.test"
    assert ALIAS in world.records, "Kong may still use the alias until it has applied the restore"
    assert any("origin-api.example.test. is left in place" in line for line in status.left_changed)
    assert any("data planes" in line for line in status.left_changed)
    assert any("delete the alias origin-api.example.test." in step for step in status.manual_steps)


async def test_a_settle_that_never_succeeds_is_bounded(ts_env):
    world = FakeWorld()
    world.verdicts = ["unhealthy"]
    async with started(ts_env, world, make("alias", kong=HYBRID)) as handle:
        await until_phase(ts_env, handle, "draining", waiting=True)
        world.flaky.add("kong_await_data_planes")
        await bounded(failure_of(handle), 120)
        status = await status_of(handle)
    assert status.phase == "failed"
    assert any("data planes" in line for line in status.left_changed)


async def test_a_failed_kong_restore_keeps_the_alias_kong_points_at(ts_env):
    world = FakeWorld()
    del world.records[ALIAS]
    world.verdicts = ["unhealthy"]
    world.fail("kong_restore_service", "Kong Admin API down")
    async with started(ts_env, world, make("alias")) as handle:
        await bounded(failure_of(handle))
        status = await status_of(handle)
    states = {c.id: c.state for c in status.compensations}
    assert states["restore-kong-service"] == "failed" and states["delete-alias"] == "failed"
    assert world.service["host"] == "origin-api.example.test"
    assert ALIAS in world.records, "deleting the alias Kong points at would be the outage"
    assert any("origin-api.example.test. is left in place" in line for line in status.left_changed)


async def test_the_alias_is_deleted_when_kong_is_back_on_a(ts_env):
    world = FakeWorld()
    del world.records[ALIAS]
    before = snapshot(world)
    world.verdicts = ["unhealthy"]
    async with started(ts_env, world, make("alias")) as handle:
        await bounded(failure_of(handle))
        status = await status_of(handle)
    assert status.phase == "rolled-back"
    assert snapshot(world) == before
    assert world.calls.count("kong_inspect") == 2, "read Kong fresh before deleting the alias"


# --- point of no return ----------------------------------------------------------------------------


async def test_a_cancel_during_decommissioning_finishes_the_decommission_and_the_ttl_restore(ts_env):
    world = FakeWorld()
    world.decommission_seconds = 2
    plan = make(decommission_gate=True)
    async with started(ts_env, world, plan) as handle:
        await until_phase(ts_env, handle, "awaiting-decommission-approval")
        await handle.execute_update("approve", ApproveRequest(gate="decommission", by="bob", digest=plan.digest()))
        await until_phase(ts_env, handle, "decommissioning")
        await handle.cancel()
        status = await bounded(handle.result())
    assert status.phase == "completed"
    assert world.deleted is True
    assert world.records[A][0].type == "CNAME" and world.records[A][0].ttl == 300, "final TTL restored"
    assert [m.name for m in status.ignored] == ["cancel"]
    assert "past the point of no return" in status.ignored[0].reason


async def test_a_cancel_before_the_point_of_no_return_still_rolls_back(ts_env):
    world = FakeWorld()
    before = snapshot(world)
    plan = make(decommission_gate=True)
    async with started(ts_env, world, plan) as handle:
        await until_phase(ts_env, handle, "awaiting-decommission-approval")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await bounded(handle.result())
    assert snapshot(world) == before


# --- versioning ------------------------------------------------------------------------------------


async def test_the_phase_is_upserted_only_when_it_changes(ts_env):
    world = FakeWorld()
    world.verdicts = ["inconclusive", "inconclusive", "healthy"]
    plan = make(monitor={**base_plan_data()["monitor"], "on_inconclusive": "wait", "max_windows": 3})
    async with started(ts_env, world, plan) as handle:
        await bounded(handle.result())
        history = await handle.fetch_history()
    phases = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            if "CutoverPhase" in fields:
                phases.append(json.loads(fields["CutoverPhase"].data))
    assert phases == [
        "verifying",
        "lowering-ttl",
        "flipping",
        "draining",
        "monitoring",
        "decommissioning",
        "restoring-ttl",
        "completed",
    ]


# --- one cutover per record and per Kong Service ----------------------------------------------------


async def test_a_second_cutover_of_the_same_record_started_at_once_is_refused_and_names_the_holder(ts_env):
    world = FakeWorld()
    patient = {"on_timeout": "wait"}  # skipping time while the loser ends must not end the winner's gate
    first = make(flip_gate=True, approvals=patient)
    second = make(flip_gate=True, approvals=patient, name="orders-api-again")
    async with started(ts_env, world, first) as one, started(ts_env, world, second) as two:
        outcomes = await asyncio.gather(
            bounded(until_phase(ts_env, one, "awaiting-flip-approval")),
            bounded(until_phase(ts_env, two, "awaiting-flip-approval")),
            return_exceptions=True,
        )
        assert sum(isinstance(o, BaseException) for o in outcomes) == 1, outcomes
        loser, winner = (one, two) if isinstance(outcomes[0], BaseException) else (two, one)
        error = await bounded(failure_of(loser))
        assert error.type == "CutoverRefused"
        assert f"record {A}" in str(error) and winner.id in str(error)
        await winner.execute_update("abort", AbortRequest(by="oncall", reason="free the record"))
        await bounded(failure_of(winner))
    async with started(ts_env, world, make(name="orders-api-third")) as third:
        assert (await bounded(third.result())).phase == "completed", "the lock is released when a run ends"


async def test_a_second_cutover_of_the_same_kong_service_is_refused(ts_env):
    world = FakeWorld()
    async with started(ts_env, world, make("alias", flip_gate=True)) as holder:
        await bounded(until_phase(ts_env, holder, "awaiting-flip-approval"))
        async with started(ts_env, world, make(name="other-record", flip_gate=True)) as other:
            error = await bounded(failure_of(other))
    assert error.type == "CutoverRefused"
    assert "Kong Service orders-api (svc-1)" in str(error) and holder.id in str(error)
    assert world.service["host"] == "origin-api.example.test", "the holder's repoint is untouched"


async def test_a_lock_left_behind_by_a_terminated_run_is_taken_over(ts_env):
    """The time-skipping server applies no parent-close policy: the lock outlives its terminated holder."""
    world = FakeWorld()
    async with started(ts_env, world, make(flip_gate=True)) as first:
        await bounded(until_phase(ts_env, first, "awaiting-flip-approval"))
        await first.terminate("operator terminated it")
    lock = ts_env.client.get_workflow_handle(record_lock_id(A))
    assert (await lock.describe()).status == WorkflowExecutionStatus.RUNNING, "stale, as after a race with the policy"
    async with started(ts_env, world, make(name="after-terminate")) as second:
        status = await bounded(second.result())
    assert status.phase == "completed"
    assert any(step.step.startswith("Who holds the lock") for step in status.timeline)


async def test_a_dry_run_needs_no_lock(ts_env):
    world = FakeWorld()
    async with started(ts_env, world, make(flip_gate=True)) as holder:
        await bounded(until_phase(ts_env, holder, "awaiting-flip-approval"))
        async with started(ts_env, world, make(name="dry", dry_run=True)) as dry:
            assert (await bounded(dry.result())).phase == "planned"


async def test_an_approval_bound_to_the_digest_keeps_working_while_waiting(ts_env):
    """The timeout_summary and the gate commands carry the digest the workflow fixed at start."""
    world = FakeWorld()
    plan = make(flip_gate=True)
    async with started(ts_env, world, plan) as handle:
        status = await until_phase(ts_env, handle, "awaiting-flip-approval")
        assert status.plan_digest == plan.digest()
        await ts_env.sleep(timedelta(minutes=5))
        await handle.execute_update("approve", ApproveRequest(gate="flip", by="alice", digest=plan.digest()))
        await until_phase(ts_env, handle, "completed")


async def test_an_upstream_target_that_is_a_cname_adds_as_ttl_to_the_cache_bound(ts_env):
    """Kong's balancer renews a CNAME target when A's addresses expire (kong/runloop/balancer/targets.lua)."""
    origin = "a-origin.example.test."

    def world_with_origin_ttl(ttl: int) -> FakeWorld:
        world = FakeWorld()
        world.upstream = UpstreamInfo(
            id="up-1", name="orders.upstream", targets=(TargetInfo(target="a-project.example.test:8443", weight=100),)
        )
        world.records[A] = (RRset(name=A, type="CNAME", ttl=300, rdatas=(origin,)),)
        world.records[origin] = (RRset(name=origin, type="A", ttl=ttl, rdatas=("127.0.0.2",)),)
        return world

    bounds = {}
    for ttl in (300, 30):
        async with started(ts_env, world_with_origin_ttl(ttl), make(dry_run=True, name=f"t{ttl}")) as handle:
            status = await bounded(handle.result())
        assert status.cache_bound is not None
        assert any(f"Read the TTL of {origin}" in s.step for s in status.timeline)
        bounds[ttl] = status.cache_bound.seconds
    assert bounds[300] - bounds[30] == 300 - 30, "A's address TTL counts in the bound"
