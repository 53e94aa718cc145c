"""The record lock on a real dev server: released when a run completes, and by the parent-close policy on terminate.

The time-skipping test server applies no parent-close policy (test_hardening covers taking over a
stale lock); the dev server is a real Temporal server, and it does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from models.workflow import CutoverStatus
from tests.temporal_env import local_env
from tests.workflows.fake_world import A
from tests.workflows.helpers import activities_for, quick_plan, quick_world, start, status_of
from worker import build_worker
from workflows.lock import record_lock_id

LOCK_LOOKUP = "Who holds the lock"


@pytest_asyncio.fixture(scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    async with local_env() as env:
        yield env


async def lock_status(env: WorkflowEnvironment, holder: WorkflowHandle) -> WorkflowExecutionStatus | None:
    """The status of the lock workflow this holder started (the lock id is reused by later holders)."""
    async for execution in env.client.list_workflows(f"WorkflowId = '{record_lock_id(A)}'"):
        if execution.parent_id == holder.id:
            return execution.status
    return None


async def until_lock(env: WorkflowEnvironment, holder: WorkflowHandle, wanted: WorkflowExecutionStatus) -> None:
    status = None
    for _ in range(150):
        status = await lock_status(env, holder)
        if status == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the lock of {holder.id} is {status}, not {wanted}")


async def until_gate(handle: WorkflowHandle) -> CutoverStatus:
    for _ in range(300):
        status = await status_of(handle)
        if status.phase == "awaiting-flip-approval":
            return status
        assert status.phase not in ("rolled-back", "failed"), status.error
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id} never reached the flip gate: {status.phase}")


async def test_a_terminated_run_frees_its_record_lock_through_the_parent_close_policy(dev_server):
    env = dev_server
    queue = f"cutover-{uuid.uuid4().hex[:8]}"
    async with build_worker(env.client, queue, activities_for(env, quick_world())):
        first = await start(env, quick_plan("terminated", flip_gate=True), queue)
        await until_gate(first)
        assert await lock_status(env, first) == WorkflowExecutionStatus.RUNNING
        await first.terminate("operator terminated it mid-run")
        await until_lock(env, first, WorkflowExecutionStatus.TERMINATED)

    queue = f"cutover-{uuid.uuid4().hex[:8]}"
    async with build_worker(env.client, queue, activities_for(env, quick_world())):
        second = await start(env, quick_plan("after-terminate", flip_gate=True), queue)
        status = await until_gate(second)
        await second.terminate("test over")
    assert not any(step.step.startswith(LOCK_LOOKUP) for step in status.timeline), "the lock was free at once"


async def test_a_completed_run_frees_its_record_lock_at_once(dev_server):
    env = dev_server
    queue = f"cutover-{uuid.uuid4().hex[:8]}"
    async with build_worker(env.client, queue, activities_for(env, quick_world())):
        first = await start(env, quick_plan("completes"), queue)
        assert (await asyncio.wait_for(first.result(), 120)).phase == "completed"
        await until_lock(env, first, WorkflowExecutionStatus.COMPLETED)  # released by its signal, not terminated

    queue = f"cutover-{uuid.uuid4().hex[:8]}"
    async with build_worker(env.client, queue, activities_for(env, quick_world())):
        second = await start(env, quick_plan("next-one", flip_gate=True), queue)
        status = await until_gate(second)
        await second.terminate("test over")
    assert not any(step.step.startswith(LOCK_LOOKUP) for step in status.timeline), "the lock was free at once"
