"""The rollback engine: undos registered before each step, run in reverse on failure, abort or cancel.

An undo that fails never stops the rollback: what it leaves changed and how to finish by hand are
recorded (``left_changed``, ``manual_steps``) and the run ends ``failed`` instead of ``rolled-back``.
Past the point of no return nothing is undone; the run ends ``failed`` with the cutover kept.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    import pydantic

    from models.dns import ApplyInput, DnsChange, DnsChangeResult, describe_rrsets
    from models.durations import format_duration
    from models.kong import DataPlaneSync, DataPlaneSyncInput, kong_host
    from workflows import metrics, planning
    from workflows.activity_refs import DNS_APPLY, KONG_AWAIT_DATA_PLANES, KONG_INSPECT
    from workflows.dns_steps import UNDO_PATIENCE, DnsSteps
    from workflows.errors import CHANGED_OUTSIDE, UNREACHABLE, StepFailed, describe_failure, failure_type
    from workflows.state import Undo
    from workflows.status import refresh_details, set_phase, short_result
    from workflows.steps import CHANGE_RETRY, READ_RETRY, decode, uncancellable, wire_type
    from workflows.two_step import undo_flip_in_two_steps

KONG_SYNC_TIMEOUT = timedelta(minutes=2)
UNDO_ATTEMPT = timedelta(minutes=2)
ROLLBACK_ENGINE_V2 = "rollback-engine-v2"
GUARD_KONG_OFF_ALIAS = "kong-off-alias"


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
        self.engine_v2 = True

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
                attempt_timeout=self.dns.attempt(),
            )
        )

    async def shielded_roll_back(self, reason: str, kind: str) -> None:
        """Roll back in a task a cancellation can't interrupt: half an undo is worse than none."""
        await uncancellable(
            self.roll_back(reason, kind),
            lambda: self.run.warnings.append("cancellation requested during rollback: finishing the undos first"),
        )

    async def roll_back(self, reason: str, kind: str) -> None:
        """Run every registered undo in reverse, then end ``rolled-back`` or ``failed``."""
        run = self.run
        if run.point_of_no_return:
            self.end_failed_past_point_of_no_return(reason)
            await self.steps.notify("failed", f"cutover {run.plan.name}: {reason}")
            return
        # Runs started before the engine learned dependencies, bounded settles and catch-all undos
        # replay with the old behaviour (workflow.patched): same commands, same order.
        self.engine_v2 = workflow.patched(ROLLBACK_ENGINE_V2)
        metrics.rolled_back(kind)
        run.rolling_back = True
        run.error = reason
        run.gate = None
        pending = [u for u in reversed(run.undos) if u.state == "registered"]
        set_phase(run, "rolling-back", f"Rolling back: {reason}. {len(pending)} undo(s) to run.")
        workflow.logger.warning("rolling back %s: %s (%d undos)", run.plan.name, reason, len(pending))
        for undo in pending:
            await self.run_undo(undo)
        failed = [u for u in run.undos if u.state == "failed"]
        if failed or (self.engine_v2 and run.left_changed):
            set_phase(run, "failed", f"Rollback incomplete: {len(failed)} undo(s) failed. {reason}")
        else:
            set_phase(run, "rolled-back", f"Rolled back: {reason}")
        event = "rolled-back" if run.phase == "rolled-back" else "failed"
        await self.steps.notify(event, f"cutover {run.plan.name}: {run.phase}: {reason}")

    async def run_undo(self, undo: Undo) -> None:
        """Run one undo; on any failure, record what is left and how to finish by hand, and go on."""
        undo.state = "running"
        refresh_details(self.run)
        try:
            if self.engine_v2:
                blocker = await self._blocker(undo)
                if blocker is not None:
                    self._keep(undo, blocker)
                    return
            if undo.two_step is not None:
                await undo_flip_in_two_steps(self.dns, undo, undo.two_step)
                return
            await self._run_activity_undo(undo)
        except Exception as exc:
            if not self.engine_v2:
                raise
            undo.state, undo.detail = "failed", describe_failure(exc)
            self._record_failed_undo(undo, failure_type(exc))

    async def _blocker(self, undo: Undo) -> str | None:
        """Why ``undo`` must not run now (an undo it depends on failed, or a fresh read says no), or None."""
        for required in undo.requires:
            other = next((u for u in self.run.undos if u.id == required), None)
            if other is None or other.state == "not-needed":
                continue
            if other.state != "done":
                return f"'{other.description}' did not succeed ({other.detail})"
            if not other.settled:
                return f"Kong may not have applied '{other.description}' on every data plane"
        if undo.guard == GUARD_KONG_OFF_ALIAS:
            return await self._kong_still_on_alias()
        return None

    async def _kong_still_on_alias(self) -> str | None:
        """Read Kong fresh: deleting the alias while its Service still points there is the outage."""
        plan = self.run.plan
        alias = kong_host(plan.dns.record)
        try:
            kong = await self.steps.call(
                KONG_INSPECT,
                planning.kong_inspect_input(plan),
                f"Read Kong Service {plan.kong.service} before deleting the alias",
                deadline=plan.dns.retry_deadline * UNDO_PATIENCE,
            )
        except StepFailed as exc:
            return f"Kong could not be read to prove it no longer uses the alias ({exc})"
        if kong.service.host == alias:
            return f"Kong Service {plan.kong.service} still points at {alias}"
        return None

    def _keep(self, undo: Undo, blocker: str) -> None:
        """An undo kept back: record it as not done, with what stays and how to finish safely."""
        run = self.run
        undo.state, undo.detail = "failed", f"kept: {blocker}"
        metrics.undo_failed(undo.id)
        run.left_changed.append(f"{undo.target.removeprefix('the record ')} is left in place ({blocker})")
        run.manual_steps.append(
            f"When Kong no longer uses it ({blocker}), {undo.description}: {undo.manual}"
            if undo.guard
            else f"After fixing what blocked it ({blocker}): {undo.manual}"
        )
        workflow.logger.warning("undo %s kept: %s", undo.id, blocker)

    async def _run_activity_undo(self, undo: Undo) -> None:
        run = self.run
        step = self.steps.started(f"Undo: {undo.description}")
        # As long as one attempt of the step it undoes (never shorter), or two minutes when unknown.
        attempt = undo.attempt_timeout or UNDO_ATTEMPT
        try:
            raw = await workflow.execute_activity(
                undo.activity.name,
                undo.argument,
                result_type=wire_type(undo.activity.result_type),
                start_to_close_timeout=attempt,
                schedule_to_close_timeout=max(run.plan.dns.retry_deadline * UNDO_PATIENCE, attempt),
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
            await self._settle(undo)

    async def _settle(self, undo: Undo) -> None:
        undo.settled = False
        try:
            undo.settled = await self.settle_after(undo)
        except Exception as exc:
            if not self.engine_v2:
                raise
            self.run.warnings.append(f"Kong did not confirm '{undo.description}': {describe_failure(exc)}")
        if not undo.settled and self.engine_v2:
            urls = ", ".join(self.run.plan.kong.status_urls)
            self.run.left_changed.append(
                f"unknown whether Kong's data planes applied '{undo.description}' (no confirmation from {urls})"
            )
            self.run.manual_steps.append(
                f"Check each data plane's configuration hash (GET <status_url>/status on {urls}) against the "
                "control plane's"
            )

    def _record_failed_undo(self, undo: Undo, kind: str | None) -> None:
        run = self.run
        metrics.undo_failed(undo.id)
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

    async def settle_after(self, undo: Undo) -> bool:
        """After restoring Kong's Service, let Kong apply it before anything it resolved is removed.

        Returns whether every data plane confirmed it (always True without status URLs: the wait is
        Kong's update interval). Bounded: the rollback never hangs on a data plane that never syncs.
        """
        run = self.run
        plan = run.plan
        if plan.kong.status_urls and run.inspection is not None:
            raw = await workflow.execute_activity(
                KONG_AWAIT_DATA_PLANES.name,
                data_plane_sync_input(self.dns, run.repointed_hashes),
                result_type=dict,
                start_to_close_timeout=KONG_SYNC_TIMEOUT + timedelta(seconds=30),
                schedule_to_close_timeout=KONG_SYNC_TIMEOUT + plan.dns.retry_deadline * UNDO_PATIENCE,
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=READ_RETRY,
                summary="Wait for the data planes to apply the restored Service",
            )
            sync = DataPlaneSync.model_validate(raw)
            if not sync.in_sync:
                run.warnings.append(f"data planes still on the repointed Service: {', '.join(sync.lagging)}")
            return sync.in_sync
        wait, reason = planning.kong_apply_wait(plan)
        await workflow.sleep(wait, summary=f"Wait {format_duration(wait)}: {reason}"[:190])
        return True

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
