"""The rollback engine: undos registered before each step, run in reverse on failure, abort or cancel.

An undo that fails never stops the rollback: what it leaves changed and how to finish by hand are
recorded (``left_changed``, ``manual_steps``) and the run ends ``failed`` instead of ``rolled-back``.
Past the point of no return nothing is undone; the run ends ``failed`` with the cutover kept.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    import pydantic

    from models.dns import ApplyInput, DnsChange, DnsChangeResult, describe_rrsets
    from models.durations import format_duration
    from models.kong import DataPlaneSync, DataPlaneSyncInput
    from workflows import planning
    from workflows.activity_refs import DNS_APPLY, KONG_AWAIT_DATA_PLANES
    from workflows.dns_steps import UNDO_PATIENCE, DnsSteps
    from workflows.errors import CHANGED_OUTSIDE, UNREACHABLE, StepFailed, describe_failure, failure_type
    from workflows.state import Undo
    from workflows.status import refresh_details, set_phase, short_result
    from workflows.steps import CHANGE_RETRY, READ_RETRY, decode, wire_type
    from workflows.two_step import undo_flip_in_two_steps

KONG_SYNC_TIMEOUT = timedelta(minutes=2)


def data_plane_sync_input(dns: DnsSteps, previous_hashes: dict[str, str]) -> DataPlaneSyncInput:
    """What kong_await_data_planes is told: wait until every data plane's config hash moved on."""
    return DataPlaneSyncInput(
        kong=dns.steps.run.plan.kong,
        previous_hashes=previous_hashes,
        timeout_seconds=KONG_SYNC_TIMEOUT.total_seconds(),
    )


class Saga:
    """The undo stack of one run."""

    def __init__(self, dns: DnsSteps) -> None:
        self.dns = dns
        self.steps = dns.steps
        self.run = dns.steps.run

    def register(self, undo: Undo) -> Undo:
        """Register an undo *before* the step it undoes runs."""
        self.run.undos.append(undo)
        return undo

    def register_dns_undo(self, undo_id: str, change: DnsChange, left_changed: str) -> Undo:
        """Register the DNS change that puts a record back."""
        return self.register(
            Undo(
                id=undo_id,
                description=change.reason,
                activity=DNS_APPLY,
                argument=ApplyInput(dns=self.run.plan.dns, change=change),
                left_changed=left_changed,
                manual=f"set {change.name} to {describe_rrsets(change.desired)}",
                target=f"the record {change.name}",
                original=describe_rrsets(change.desired),
            )
        )

    async def shielded_roll_back(self, reason: str) -> None:
        """Roll back in a task a cancellation can't interrupt: half an undo is worse than none."""
        task = asyncio.ensure_future(self.roll_back(reason))
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                self.run.warnings.append("cancellation requested during rollback: finishing the undos first")

    async def roll_back(self, reason: str) -> None:
        """Run every registered undo in reverse, then end ``rolled-back`` or ``failed``."""
        run = self.run
        if run.point_of_no_return:
            self.end_failed_past_point_of_no_return(reason)
            await self.steps.notify("failed", f"cutover {run.plan.name}: {reason}")
            return
        run.rolling_back = True
        run.error = reason
        run.gate = None
        pending = [u for u in reversed(run.undos) if u.state == "registered"]
        set_phase(run, "rolling-back", f"Rolling back: {reason}. {len(pending)} undo(s) to run.")
        for undo in pending:
            await self.run_undo(undo)
        failed = [u for u in run.undos if u.state == "failed"]
        if failed:
            set_phase(run, "failed", f"Rollback incomplete: {len(failed)} undo(s) failed. {reason}")
        else:
            set_phase(run, "rolled-back", f"Rolled back: {reason}")
        event = "rolled-back" if not failed else "failed"
        await self.steps.notify(event, f"cutover {run.plan.name}: {run.phase}: {reason}")

    async def run_undo(self, undo: Undo) -> None:
        """Run one undo; on failure, record what is left and how to finish by hand."""
        run = self.run
        undo.state = "running"
        refresh_details(run)
        if undo.two_step is not None:
            await undo_flip_in_two_steps(self.dns, undo, undo.two_step)
            return
        step = self.steps.started(f"Undo: {undo.description}")
        try:
            raw = await workflow.execute_activity(
                undo.activity.name,
                undo.argument,
                result_type=wire_type(undo.activity.result_type),
                start_to_close_timeout=timedelta(minutes=2),
                schedule_to_close_timeout=run.plan.dns.retry_deadline * UNDO_PATIENCE,
                retry_policy=CHANGE_RETRY,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=f"Undo: {undo.description}"[:190],
            )
            result = decode(undo.activity.result_type, raw)
        except (ActivityError, pydantic.ValidationError) as exc:
            undo.detail = describe_failure(exc)
            undo.state = "failed"
            self._record_failed_undo(undo, failure_type(exc))
            self.steps.finished(step, False, undo.detail)
            return
        undo.state = "done"
        undo.detail = getattr(result, "outcome", "restored")
        self.steps.finished(step, True, short_result(result))
        if isinstance(result, DnsChangeResult) and result.outcome == "applied":
            change = ApplyInput.model_validate(undo.argument).change
            try:
                await self.dns.prove(change.name, change.desired, result)
            except StepFailed as exc:
                run.warnings.append(f"undo {undo.id} applied, but not yet seen on every nameserver: {exc}")
        if undo.settle:
            await self.settle_after(undo)

    def _record_failed_undo(self, undo: Undo, kind: str | None) -> None:
        run = self.run
        if kind in CHANGED_OUTSIDE:
            run.left_changed.append(
                f"left alone: {undo.target} was changed outside cutover after cutover's step ({undo.detail}); "
                "cutover did not overwrite it"
            )
            run.manual_steps.append(
                f"Review {undo.target} by hand: before the cutover it was {undo.original}; cutover's own change "
                "is no longer there to undo"
            )
        elif kind in UNREACHABLE:
            run.left_changed.append(
                f"unknown, {undo.target} could not be reached ({undo.detail}): if the step took effect, "
                f"{undo.left_changed}"
            )
            run.manual_steps.append(f"When it is reachable, check {undo.target}; if needed, {undo.manual}")
        else:
            run.left_changed.append(f"not undone: {undo.left_changed} (undo failed: {undo.detail})")
            run.manual_steps.append(undo.manual)

    async def settle_after(self, undo: Undo) -> None:
        """After restoring Kong's Service, let Kong apply it before anything it resolved is removed."""
        run = self.run
        plan = run.plan
        if plan.kong.status_urls and run.inspection is not None:
            raw = await workflow.execute_activity(
                KONG_AWAIT_DATA_PLANES.name,
                data_plane_sync_input(self.dns, run.repointed_hashes),
                result_type=dict,
                start_to_close_timeout=KONG_SYNC_TIMEOUT + timedelta(seconds=30),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=READ_RETRY,
                summary="Wait for the data planes to apply the restored Service",
            )
            sync = DataPlaneSync.model_validate(raw)
            if not sync.in_sync:
                run.warnings.append(f"data planes still on the repointed Service: {', '.join(sync.lagging)}")
        else:
            wait, reason = planning.kong_apply_wait(plan)
            await workflow.sleep(wait, summary=f"Wait {format_duration(wait)}: {reason}"[:190])

    def end_failed_past_point_of_no_return(self, reason: str) -> None:
        """Nothing is undone past the point of no return: say what is kept and why the run failed."""
        run = self.run
        run.error = reason
        run.gate = None
        kept = f"{run.plan.dns.record} points at {run.plan.dns.target}"
        run.left_changed.insert(0, f"the cutover is kept (past the point of no return): {kept}")
        set_phase(run, "failed", f"Failed after the point of no return: {reason}")

    def ending_type(self) -> str:
        """The ApplicationError type the run ends with."""
        return "CutoverRolledBack" if self.run.phase == "rolled-back" else "CutoverFailed"

    def ending_message(self, reason: str) -> str:
        """The run's final error message: why, and for ``failed``, what is left and how to finish."""
        run = self.run
        if run.phase == "rolled-back":
            return f"rolled back: {reason}"
        what = "failed after the point of no return" if run.point_of_no_return else "rollback incomplete"
        return (
            f"{what} ({reason}). Left changed: {'; '.join(run.left_changed)}. "
            f"To finish by hand: {'; '.join(run.manual_steps)}"
        )
