"""The step runner: every activity and every durable wait of a run, as a line of its timeline.

``Steps.call`` runs one activity with its timeouts and retries, optionally interruptible by ``abort``,
and decodes its result itself so that a result this code can't read fails the step (and rolls back)
instead of failing the whole run. ``Steps.wait`` is a durable timer an abort can interrupt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    import pydantic

    from models.decommission import NotifyInput
    from models.durations import format_duration
    from models.workflow import StepRecord, WaitRecord
    from workflows.activity_refs import NOTIFY, ActivityRef
    from workflows.errors import Aborted, StepFailed, describe_failure, failure_type
    from workflows.state import Run
    from workflows.status import refresh_details, short_result

InputT = TypeVar("InputT")
ResultT = TypeVar("ResultT")

# Retries: short reads retry fast; changes retry with backoff long enough to ride out a DNS primary
# or Kong restart; undos retry longer still, because giving up leaves the world half-changed.
READ_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=5))
CHANGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=15)
)
NOTIFY_RETRY = RetryPolicy(maximum_attempts=3)


def decode(result_type: type[ResultT], raw: Any) -> ResultT:
    """An activity result, decoded here rather than by the converter (see the module docstring)."""
    if isinstance(result_type, type) and issubclass(result_type, pydantic.BaseModel):
        return result_type.model_validate(raw)
    return raw  # type: ignore[no-any-return]


def wire_type(result_type: type[Any]) -> type[Any]:
    """What the converter decodes an activity result into: plain JSON for models."""
    return dict if isinstance(result_type, type) and issubclass(result_type, pydantic.BaseModel) else result_type


class Steps:
    """Runs activities and timers for one run, recording each in its timeline."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def started(self, step: str) -> int:
        """Open a timeline line; returns its index."""
        self.run.timeline.append(StepRecord(phase=self.run.phase, step=step, started_at=workflow.now()))
        return len(self.run.timeline) - 1

    def finished(self, index: int, ok: bool, result: str) -> None:
        """Close a timeline line."""
        record = self.run.timeline[index]
        self.run.timeline[index] = record.model_copy(update={"finished_at": workflow.now(), "ok": ok, "result": result})

    async def call(
        self,
        activity: ActivityRef[InputT, ResultT],
        argument: InputT,
        summary: str,
        *,
        attempt_timeout: timedelta = timedelta(minutes=2),
        deadline: timedelta | None = None,
        heartbeat: timedelta | None = None,
        retry: RetryPolicy = READ_RETRY,
        abortable: bool = False,
    ) -> ResultT:
        """Run one activity as a timeline step; optionally interruptible by ``abort``.

        ``attempt_timeout`` bounds one attempt, ``deadline`` all attempts (default three attempts' worth).
        """
        if self.run.abort_pending():
            raise Aborted()
        step = self.started(summary)
        coroutine: Awaitable[Any] = workflow.execute_activity(
            activity.name,
            argument,
            result_type=wire_type(activity.result_type),
            start_to_close_timeout=attempt_timeout,
            schedule_to_close_timeout=deadline or attempt_timeout * 3,
            heartbeat_timeout=heartbeat,
            retry_policy=retry,
            # On abort, wait until the activity has really stopped (it learns of it at its next
            # heartbeat): an undo never races the step it undoes, and nothing keeps running unseen.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=summary[:190],
        )
        try:
            raw = await (self._abortable(coroutine) if abortable else coroutine)
            result = decode(activity.result_type, raw)
        except Aborted:
            self.finished(step, False, "interrupted by abort")
            raise
        except (ActivityError, pydantic.ValidationError) as exc:
            self.finished(step, False, describe_failure(exc))
            raise StepFailed(f"{summary}: {describe_failure(exc)}", failure_type(exc)) from exc
        self.finished(step, True, short_result(result))
        return result

    async def _abortable(self, coroutine: Awaitable[Any]) -> Any:
        task = asyncio.ensure_future(coroutine)
        await workflow.wait_condition(lambda: task.done() or self.run.abort is not None)
        if not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, ActivityError):
                pass
            raise Aborted()
        return task.result()

    async def wait(self, duration: timedelta, reason: str, *, interruptible: bool = True) -> None:
        """A durable timer that an abort interrupts (unless it is part of a rollback)."""
        run = self.run
        until = workflow.now() + duration
        run.waits.append(WaitRecord(phase=run.phase, seconds=duration.total_seconds(), reason=reason, until=until))
        summary = f"Wait {format_duration(duration)}: {reason}"
        run.details = f"{summary}, until {until:%H:%M:%S} UTC."
        refresh_details(run)
        step = self.started(summary)
        try:
            await workflow.wait_condition(
                lambda: interruptible and run.abort is not None, timeout=duration, timeout_summary=summary[:190]
            )
        except TimeoutError:
            self.finished(step, True, "waited")
            return
        self.finished(step, False, "interrupted by abort")
        raise Aborted()

    async def notify(self, event: str, text: str) -> None:
        """Best effort: a failing notification never fails the cutover."""
        plan = self.run.plan
        if plan.notify is None or plan.dry_run:
            return
        try:
            delivered = await workflow.execute_activity(
                NOTIFY.name,
                NotifyInput(
                    webhook_env=plan.notify.webhook_env, event=event, text=text, workflow_id=workflow.info().workflow_id
                ),
                result_type=bool,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=NOTIFY_RETRY,
                summary=f"Notify: {event}",
            )
        except ActivityError as exc:
            self.run.warnings.append(f"notification {event} failed: {describe_failure(exc)}")
            return
        if not delivered:
            self.run.warnings.append(f"notification {event} was not delivered (see the worker log)")
