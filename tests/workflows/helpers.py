"""Helpers shared by the workflow tests: follow a run's phases on the time-skipping server."""

from __future__ import annotations

import asyncio
import copy
import uuid
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.locks import LockActivities
from models.plan import CutoverPlan
from models.workflow import TERMINAL_PHASES, CutoverStatus
from tests.conftest import base_plan_data
from tests.workflows.fake_world import ALIAS, FakeWorld
from workflows.cutover import CutoverWorkflow
from workflows.registry import WORKFLOWS


async def status_of(handle: WorkflowHandle[Any, Any]) -> CutoverStatus:
    """The run's status query."""
    return await handle.query("status", result_type=CutoverStatus)


def in_timer(status: CutoverStatus) -> bool:
    """True while the run sits in one of its durable waits."""
    last = status.timeline[-1] if status.timeline else None
    return last is not None and last.ok is None and last.step.startswith("Wait")


async def until_phase(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], phase: str, *, waiting: bool = False
) -> CutoverStatus:
    """Poll the status until the run is in ``phase`` (and, with ``waiting``, inside a timer).

    Time only skips by itself while a test awaits a result, so the timers the run meets on the way are
    skipped here explicitly, to the end of the wait.
    """
    status = await status_of(handle)
    for _ in range(600):
        status = await status_of(handle)
        timing = in_timer(status)
        if status.phase == phase and (not waiting or timing):
            return status
        if status.phase in TERMINAL_PHASES and phase not in TERMINAL_PHASES:
            raise AssertionError(f"ended {status.phase} before {phase}: {status.error}")
        if timing and status.waits and status.waits[-1].until is not None:
            remaining = status.waits[-1].until - await env.get_current_time()
            await env.sleep(max(remaining, timedelta(0)) + timedelta(seconds=1))
            continue
        await asyncio.sleep(0.025)
    raise AssertionError(f"never reached {phase}: {status.phase}")


def make(strategy: str = "cname", flip_gate: bool = False, decommission_gate: bool = False, **over: Any) -> CutoverPlan:
    data = base_plan_data(**over)
    data["strategy"] = strategy
    if strategy == "alias":
        data["dns"]["record"] = ALIAS
    data.setdefault("approvals", {})
    data["approvals"] = {
        "flip": flip_gate,
        "decommission": decommission_gate,
        "timeout": "1h",
        **over.get("approvals", {}),
    }
    data["dns"]["cutover_ttl"] = 30
    return CutoverPlan.model_validate(data)


@asynccontextmanager
async def started(env, world: FakeWorld, plan: CutoverPlan):
    queue = str(uuid.uuid4())
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=activities_for(env, world),
        max_heartbeat_throttle_interval=timedelta(seconds=1),
    ):
        handle = await env.client.start_workflow(
            CutoverWorkflow.run, plan, id=f"cutover-{uuid.uuid4()}", task_queue=queue, result_type=CutoverStatus
        )
        try:
            yield handle
        finally:
            await end_if_open(handle)


def activities_for(env: WorkflowEnvironment, world: FakeWorld) -> list[Any]:
    """The fake world's activities plus the real lock look-up (it asks this Temporal server)."""
    return [*world.activities(), *LockActivities(env.client).activities()]


async def end_if_open(handle: WorkflowHandle) -> None:
    """Terminate a run a test left open (its locks then go stale, and the next run takes them over)."""
    try:
        await handle.terminate("test finished")
    except RPCError:
        pass  # already closed


async def failure_of(handle: WorkflowHandle) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


def snapshot(world: FakeWorld) -> tuple[dict, dict]:
    return copy.deepcopy(world.records), copy.deepcopy(world.service)


def quick_world() -> FakeWorld:
    """Records with a 1 s TTL, so a real-time run's waits are a few seconds."""
    world = FakeWorld()
    for name in world.records:
        world.records[name] = tuple(r.with_ttl(1) for r in world.records[name])
    return world


def quick_plan(name: str, *, flip_gate: bool = False) -> CutoverPlan:
    data = base_plan_data(name=name)
    data["dns"].update(cutover_ttl=1, final_ttl=5, wait_margin="0s")
    data["approvals"] = {"flip": flip_gate, "decommission": False, "timeout": "1h"}
    return CutoverPlan.model_validate(data)


async def start(env: WorkflowEnvironment, plan: CutoverPlan, queue: str) -> WorkflowHandle[Any, CutoverStatus]:
    """Start a cutover of ``plan`` with a unique workflow id (a worker must poll ``queue``)."""
    return await env.client.start_workflow(
        "CutoverWorkflow",
        plan,
        id=f"cutover-{plan.name}-{uuid.uuid4().hex[:6]}",
        task_queue=queue,
        result_type=CutoverStatus,
    )
