"""The Temporal floor for bench.cost: a workflow shaped like a cutover whose activities do nothing.

Registered only on bench.cost's own worker (bench/cost_worker.py), never in the product. Its shape
is read from a real cutover's history in the same run (bench.cost ``median_shape``): as many
activities, timers (of the same durations), child workflows held like the cutover's locks and
released by a signal, and updates and signals received; and, unless bench.cost strips them (the
issue's literal shape), the same other commands: as many summaries for the UI (on its activities,
timers and children), search-attribute upserts, memo upserts and markers. What a cutover costs the
worker beyond this workflow is cutover's own work: its providers, models and status, not Temporal's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from models.workflow import PHASE_ATTRIBUTE

NULL_TYPE = "BenchNullWorkflow"
NULL_CHILD_TYPE = "BenchNullLock"
NULL_ACTIVITY = "bench_null_activity"
NULL_PHASE = SearchAttributeKey.for_keyword(PHASE_ATTRIBUTE)
"""The attribute a cutover upserts at every phase change (registered by the worker on start)."""


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
    summaries: int = 0
    """Activities and timers carrying a summary for the UI."""
    upserts: int = 0
    """Search-attribute upserts made by the workflow (a cutover's ``CutoverPhase`` at every phase change)."""
    memos: int = 0
    markers: int = 0
    """Markers (a cutover's ``workflow.patched`` calls; each brings an upsert of ``TemporalChangeVersion``)."""

    def bare(self) -> NullShape:
        """Only the activities, timers, children and messages: the issue's literal shape."""
        return NullShape(
            activities=self.activities,
            timer_seconds=list(self.timer_seconds),
            timers_cancelled=self.timers_cancelled,
            children=self.children,
            updates=self.updates,
            signals=self.signals,
        )


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
        summaries = iter(range(shape.summaries))

        def summary(what: str) -> str | None:
            number = next(summaries, None)
            return None if number is None else f"Null step {number}: {what}, as a cutover's step would say"

        for index in range(shape.markers):
            workflow.patched(f"bench-null-{index}")
        for index in range(shape.memos):
            workflow.upsert_memo({"bench": index})
        # A child's static summary goes to the child's own history, so it isn't counted in ``summaries``:
        # the cutover gives its locks one, and so does this workflow unless it is of the shape.
        lock_summary = "Lock on a null record, held by a null workflow" if shape.summaries else None
        children = [
            await workflow.start_child_workflow(
                NullLock.run, f"{me}-{i}", id=f"{me}-lock-{i}", static_summary=lock_summary
            )
            for i in range(shape.children)
        ]
        steps = max(shape.activities, len(shape.timer_seconds), shape.timers_cancelled, shape.upserts)
        for index in range(steps):
            if index < shape.upserts:
                workflow.upsert_search_attributes([NULL_PHASE.value_set(f"null-{index}")])
            pending = (
                asyncio.ensure_future(workflow.sleep(3600, summary=summary("a gate's timeout")))
                if index < shape.timers_cancelled
                else None
            )
            if index < shape.activities:
                await workflow.execute_activity(
                    null_activity,
                    index,
                    start_to_close_timeout=timedelta(seconds=60),
                    summary=summary("an activity doing nothing"),
                )
            if pending is not None:
                pending.cancel()
            if index < len(shape.timer_seconds):
                await workflow.sleep(timedelta(seconds=shape.timer_seconds[index]), summary=summary("a wait"))
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
