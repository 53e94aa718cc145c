"""A cutover run driven as an operator would (start, approve, abort) and read through its status and history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

import starter
from models.plan import CutoverPlan
from models.workflow import TERMINAL_PHASES, ApproveRequest, CutoverStatus, StepRecord
from providers.decommission.webhook import DeletionContext
from sandbox.demo import _worker_problems as worker_problems
from sandbox.topology import Topology
from settings import TemporalSettings
from tests.e2e.lanes import E2E_BY


@dataclass(frozen=True)
class Outcome:
    """How a run ended: its final status, and for a failed workflow the failure's type."""

    status: CutoverStatus
    failure_type: str | None


@dataclass
class Run:
    """One cutover run, driven through the public client API as the CLI and the demo do."""

    topo: Topology
    handle: WorkflowHandle[Any, CutoverStatus]
    plan: CutoverPlan

    @property
    def workflow_id(self) -> str:
        """The run's workflow id."""
        return self.handle.id

    async def idempotency_key(self) -> str:
        """The key a webhook decommission of this run carries: sha256 of its run id and plan digest."""
        run_id = (await self.handle.describe()).run_id
        context = DeletionContext(workflow_id=self.workflow_id, run_id=run_id, plan_digest=self.plan.digest())
        return context.idempotency_key

    async def status(self, timeout: float = 60) -> CutoverStatus:
        """The ``status`` query; retried while a killed worker or a restarting server can't answer."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await self.handle.query("status", result_type=CutoverStatus, rpc_timeout=timedelta(seconds=3))
            except RPCError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    async def wait_for(
        self, predicate: Callable[[CutoverStatus], bool], what: str, timeout: float = 60
    ) -> CutoverStatus:
        """Poll the status until ``predicate`` holds; fail with the status if the run ends or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            status = await self.status()
            if predicate(status):
                return status
            if status.phase in TERMINAL_PHASES or time.monotonic() > deadline:
                raise AssertionError(f"waiting for {what}, the run is {status.phase}:\n{self.describe(status)}")
            await asyncio.sleep(0.2)

    async def until_phase(self, phase: str, *, waiting: bool = False, timeout: float = 60) -> CutoverStatus:
        """Until the run is in ``phase`` (and, with ``waiting``, inside one of its timers)."""
        return await self.wait_for(
            lambda s: s.phase == phase and (not waiting or in_timer(s)),
            f"phase {phase}" + (" (in its wait)" if waiting else ""),
            timeout,
        )

    async def approve(self, gate: str) -> str:
        """Approve ``gate`` with the update, quoting the digest of the plan this test built."""
        await self.wait_for(lambda s: gate in s.gates_awaited, f"the {gate} gate")
        request = ApproveRequest(gate=gate, by=E2E_BY, digest=self.plan.digest(), comment="end-to-end test")
        return await self.handle.execute_update("approve", request, result_type=str)

    async def outcome(self, timeout: float = 90) -> Outcome:
        """Wait for the end: the returned status, or the failure's type and the status query after it."""
        try:
            status = await asyncio.wait_for(self.handle.result(), timeout)
        except WorkflowFailureError as exc:
            cause = exc.cause
            failure_type = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
            return Outcome(await self.status(), failure_type)
        return Outcome(status, None)

    def describe(self, status: CutoverStatus | None = None) -> str:
        """The status as ``starter.py status`` prints it, and the worker's warnings (for failure messages)."""
        text = starter.render_status(status) if status is not None else "(no status)"
        return f"{text}\n{worker_problems(self.topo)}"

    async def activity_attempts(self, activity: str) -> list[int]:
        """The attempt number each completed or failed ``activity`` finished on (from the history)."""
        scheduled: dict[int, str] = {}
        attempts = []
        async for event in self.handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                attributes = event.activity_task_started_event_attributes
                if scheduled.get(attributes.scheduled_event_id) == activity:
                    attempts.append(attributes.attempt)
        return attempts

    async def retries(self, activity: str, until_attempt: int = 2, timeout: float = 30) -> list[Retry]:
        """Watch ``activity`` fail and wait in its retry backoff until attempt ``until_attempt`` is next.

        Only the server knows about retries (the history records the last attempt only), so this reads
        the pending activity from ``describe``: one :class:`Retry` per backoff seen, in order.
        """
        seen: dict[int, Retry] = {}
        deadline = time.monotonic() + timeout
        while True:
            described = await self.handle.describe(rpc_timeout=timedelta(seconds=3))
            for pending in described.raw_description.pending_activities:
                if (
                    pending.activity_type.name == activity
                    and pending.attempt >= 2
                    and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
                ):
                    seen.setdefault(
                        pending.attempt,
                        Retry(
                            pending.attempt,
                            pending.current_retry_interval.ToTimedelta().total_seconds(),
                            pending.last_failure.message,
                        ),
                    )
            if seen and max(seen) >= until_attempt:
                return [seen[attempt] for attempt in sorted(seen)]
            if time.monotonic() > deadline:
                raise AssertionError(f"{activity} is not retrying: {described.raw_description.pending_activities}")
            await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Retry:
    """One backoff of a failing activity, as the server shows it."""

    attempt: int
    """The attempt it waits for."""
    interval: float
    """Seconds of backoff before that attempt."""
    failure: str
    """Why the previous attempt failed."""


async def start_run(topo: Topology, plan: CutoverPlan) -> Run:
    """Start the plan exactly as ``python starter.py start`` (and the demo) do."""
    client = await topo.temporal_client()
    workflow_id = await starter.start(client, TemporalSettings(address=topo.temporal_address), plan)
    return Run(topo, client.get_workflow_handle(workflow_id, result_type=CutoverStatus), plan)


def in_timer(status: CutoverStatus) -> bool:
    """True while the run sits in one of its durable waits."""
    last = status.timeline[-1] if status.timeline else None
    return last is not None and last.ok is None and last.step.startswith("Wait")


def step(status: CutoverStatus, phase: str, starts_with: str) -> StepRecord:
    """The one timeline step of ``phase`` whose text starts with ``starts_with``."""
    found = [s for s in status.timeline if s.phase == phase and s.step.startswith(starts_with)]
    assert len(found) == 1, f"expected one {phase} step {starts_with!r}, found {found}"
    return found[0]


def kong_switch_seconds(status: CutoverStatus) -> float:
    """How long Kong may keep using a record's previous answer after a change, as the run computed it.

    That is the draining wait: cutover TTL + Kong's cache bound + margin. A rollback's reverse change is
    the same kind of change, so traffic should be back on A within it.
    """
    waits = [w.seconds for w in status.waits if w.phase == "draining"]
    assert waits, f"the run computed no draining wait: {status.waits}"
    return waits[0]


def finished_at(record: StepRecord) -> float:
    """Epoch seconds a step finished."""
    assert record.finished_at is not None, f"step still running: {record}"
    return record.finished_at.timestamp()


def parse_time(text: str) -> float:
    """Epoch seconds of an ISO 8601 time (the receiver's)."""
    return datetime.fromisoformat(text).timestamp()
