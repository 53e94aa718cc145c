"""bench.cost's floor: the null workflow makes the history of the shape it is given, item for item.

On the time-skipping server (the timers' durations pass at once), through a worker registering only
the null workflow, its lock-like child and its activity.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.cost import history_counts
from bench.null_workflow import NullLock, NullShape, NullWorkflow, null_activity
from tests.temporal_env import time_skipping_env

SHAPE = NullShape(
    activities=3,
    timer_seconds=[20.0, 5.0],
    timers_cancelled=1,
    children=2,
    updates=2,
    summaries=6,
    upserts=2,
    memos=1,
    markers=2,
)


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_env() as started:
        yield started


async def made(env: WorkflowEnvironment, shape: NullShape) -> dict[str, object]:
    """Run one null workflow of ``shape`` (sending its updates); its history's counts."""
    queue = str(uuid.uuid4())
    async with Worker(env.client, task_queue=queue, workflows=[NullWorkflow, NullLock], activities=[null_activity]):
        handle = await env.client.start_workflow(NullWorkflow.run, shape, id=f"null-{queue}", task_queue=queue)
        for number in range(shape.updates):
            await handle.execute_update(NullWorkflow.approve, f"gate-{number}")
        assert await handle.result() == shape.activities
        return history_counts(await handle.fetch_history())


@pytest.mark.parametrize("shape", [SHAPE, SHAPE.bare()], ids=["same-commands", "issue-shape"])
async def test_the_null_workflow_makes_its_shape(env: WorkflowEnvironment, shape: NullShape) -> None:
    counts = await made(env, shape)
    expected = {
        "activities": shape.activities,
        "children": shape.children,
        "updates": shape.updates,
        "signals": shape.signals,
        "summaries": shape.summaries,
        "upserts": shape.upserts,
        "memos": shape.memos,
        "markers": shape.markers,
        "timers_cancelled": shape.timers_cancelled,
        "timer_seconds": shape.timer_seconds,
    }
    assert {name: counts[name] for name in expected} == expected
