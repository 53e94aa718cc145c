"""The Temporal floor for bench.cost: a workflow shaped like a cutover whose activities do nothing.

Registered only on bench.cost's own worker (bench/cost_worker.py), never in the product. Its shape
is read from a real cutover's history in the same run (bench.cost ``history_shape``): as many
activities, timers (of the same durations), child workflows held like the cutover's locks and
released by a signal, and updates and signals received. What a cutover costs the worker beyond
this workflow is cutover's own work: its providers, models and status, not Temporal's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow

NULL_TYPE = "BenchNullWorkflow"
NULL_CHILD_TYPE = "BenchNullLock"
NULL_ACTIVITY = "bench_null_activity"


@dataclass
class NullShape:
    """How many of each history item one null run makes (and waits for)."""

    activities: int = 0
    timer_seconds: list[float] = field(default_factory=list)
    """The timers that fired, in order (their durations)."""
    timers_cancelled: int = 0
    """Timers started and cancelled before they fired (a gate's timeout when the approval came first)."""
    children: int = 0
    updates: int = 0
    signals: int = 0


@activity.defn(name=NULL_ACTIVITY)
async def null_activity(index: int) -> int:
    """Nothing: the floor of one activity (schedule, poll, start, complete, one payload each way)."""
    return index


@workflow.defn(name=NULL_CHILD_TYPE)
class NullLock:
    """Held until released, as a cutover's lock child is."""

    def __init__(self) -> None:
        self._released = False

    @workflow.run
    async def run(self, name: str) -> str:
        """Wait for ``release``."""
        await workflow.wait_condition(lambda: self._released)
        return name

    @workflow.signal(name="release")
    def release(self) -> None:
        """Let the run end."""
        self._released = True


@workflow.defn(name=NULL_TYPE)
class NullWorkflow:
    """Children first (the locks), then activities and timers interleaved, then wait for the messages."""

    def __init__(self) -> None:
        self._updates = 0
        self._signals = 0

    @workflow.run
    async def run(self, shape: NullShape) -> int:
        """Make the shape's history; return the number of activities run."""
        me = workflow.info().workflow_id
        children = [
            await workflow.start_child_workflow(NullLock.run, f"{me}-{i}", id=f"{me}-lock-{i}")
            for i in range(shape.children)
        ]
        steps = max(shape.activities, len(shape.timer_seconds), shape.timers_cancelled)
        for index in range(steps):
            pending = asyncio.ensure_future(workflow.sleep(3600)) if index < shape.timers_cancelled else None
            if index < shape.activities:
                await workflow.execute_activity(null_activity, index, start_to_close_timeout=timedelta(seconds=60))
            if pending is not None:
                pending.cancel()
            if index < len(shape.timer_seconds):
                await workflow.sleep(timedelta(seconds=shape.timer_seconds[index]))
        await workflow.wait_condition(lambda: self._updates >= shape.updates and self._signals >= shape.signals)
        for child in children:
            await child.signal(NullLock.release)
            await child
        return shape.activities

    @workflow.update(name="approve")
    def approve(self, gate: str) -> str:
        """Count an update, as a gate's approval would be."""
        self._updates += 1
        return gate

    @workflow.signal(name="poke")
    def poke(self) -> None:
        """Count a signal."""
        self._signals += 1
