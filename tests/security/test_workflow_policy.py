"""The workflow and the worker policy, on the time-skipping server with the outside world faked by name.

``policy_check`` runs first in verifying: a violation refuses the run (and the dry run) before any
other activity, naming each rule; its effective settings (forced gates, drain proof) drive the run;
the decommission step gets what it proves A's drain from itself.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.worker import Worker

from activities.locks import LockActivities
from models.plan import CutoverPlan
from models.policy import WorkerPolicy
from models.policy_rules import EffectiveSettings, PolicyReport
from models.workflow import ApproveRequest, CutoverStatus
from tests.conftest import base_plan_data
from tests.security.cases import reference_policy
from tests.workflows.fake_world import FakeWorld
from tests.workflows.helpers import activities_for, status_of, until_phase
from workflows.cutover import CutoverWorkflow
from workflows.registry import WORKFLOWS


async def start(env, world: FakeWorld, data: dict[str, Any], queue: str) -> WorkflowHandle[Any, CutoverStatus]:
    return await env.client.start_workflow(
        CutoverWorkflow.run, data, id=f"cutover-{uuid.uuid4()}", task_queue=queue, result_type=CutoverStatus
    )


def worker(env, queue: str, world: FakeWorld) -> Worker:
    return Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=activities_for(env, world))


@pytest.mark.parametrize("dry_run", [False, True])
async def test_a_violation_refuses_the_run_before_anything_is_read_naming_the_rule(ts_env, dry_run):
    world = FakeWorld()
    world.policy = WorkerPolicy.model_validate(reference_policy())
    data = base_plan_data()
    data["kong"]["token_env"] = "CUTOVER_TSIG_SECRET"  # the TSIG key as the Kong token
    data["dry_run"] = dry_run
    queue = str(uuid.uuid4())
    async with worker(ts_env, queue, world):
        handle = await start(ts_env, world, data, queue)
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), timeout=30)
        status = await status_of(handle)
    assert world.calls == ["policy_check"], "nothing read, nothing changed"
    message = str(failed.value.cause)
    assert "refused before any change: the worker policy (reference) refuses this plan" in message
    assert (
        "kong.token_env: CUTOVER_TSIG_SECRET may be sent to dns_server, not to kong_admin (rule secrets.binding)"
        in (message)
    )
    assert status.phase == "rolled-back" and any("rule secrets.binding" in risk for risk in status.risks)


async def test_an_allowed_plan_runs_and_the_policy_check_is_its_first_step(ts_env):
    world = FakeWorld()
    world.policy = WorkerPolicy.model_validate(reference_policy())
    data = base_plan_data()
    data["dry_run"] = True
    queue = str(uuid.uuid4())
    async with worker(ts_env, queue, world):
        handle = await start(ts_env, world, data, queue)
        status = await asyncio.wait_for(handle.result(), timeout=30)
    assert status.phase == "planned"
    assert world.calls[0] == "policy_check" and world.calls[1] == "dns_snapshot"
    assert status.timeline[0].step == "Check the plan against the worker policy" and status.timeline[0].ok


async def test_the_runs_gates_and_drain_proof_come_from_the_policys_effective_settings(ts_env):
    """A policy that forces the gates (here: a plan without them, as a forcing policy reports it) is obeyed."""
    world = FakeWorld()
    data = base_plan_data()
    data["approvals"] = {"flip": False, "decommission": False, "timeout": "1h"}
    data["decommission"] = {"kind": "webhook", "url": "https://decom.example.test/x", "require_drained": False}
    plan = CutoverPlan.model_validate(data)
    forced = PolicyReport(
        policy="forcing",
        effective=EffectiveSettings(flip_gate=True, decommission_gate=True, require_drained=True, destructive=True),
    )
    activities = [a for a in world.activities() if getattr(a, "__name__", "") != "policy_check"]

    @activity.defn(name="policy_check")
    async def policy_check(input: Any) -> PolicyReport:
        world.calls.append("policy_check")
        return forced

    queue = str(uuid.uuid4())
    async with Worker(
        ts_env.client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=[*activities, policy_check, *LockActivities(ts_env.client).activities()],
    ):
        handle = await start(ts_env, world, data, queue)
        for gate in ("flip", "decommission"):
            await until_phase(ts_env, handle, f"awaiting-{gate}-approval")
            await handle.execute_update("approve", ApproveRequest(gate=gate, by="alice", digest=plan.digest()))
        status = await asyncio.wait_for(handle.result(), timeout=60)
    assert status.phase == "completed"
    assert "traffic_prove_drained" in world.calls, "the drain proof is forced too"
    (request,) = world.decommission_inputs
    assert request.monitor == plan.monitor and request.a_addresses == ("127.0.0.2",)
    assert request.plan_digest == plan.digest() and request.record == plan.dns.record
    assert request.target == plan.dns.target and request.drain_proof is None
