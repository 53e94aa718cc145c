"""CutoverWorkflow: one durable, observable, reversible move of a record from A to B.

Phases (each upserted as the ``CutoverPhase`` search attribute and shown as Markdown current
details): verifying -> repointing (alias) -> lowering-ttl -> awaiting-flip-approval -> flipping ->
draining -> monitoring -> awaiting-decommission-approval (point of no return) -> decommissioning ->
restoring-ttl -> completed. Every change registers its undo *before* it runs; a failure, an
``abort`` or an unhealthy verdict runs the undos in reverse (``rolling-back``) and the run ends
``rolled-back``, or ``failed`` with exactly what is left changed when an undo itself fails.

This module holds the run's outline and its messages; the phases are in ``workflows/phases/``, the
rollback engine in ``workflows/saga.py``, the step runner in ``workflows/steps.py`` and the
rendering in ``workflows/status.py``. The workflow does no I/O.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    import pydantic

    from models.plan import CutoverPlan, describe_problems
    from models.workflow import (
        RECORD_ATTRIBUTE,
        WORKFLOW_TYPE,
        AbortRequest,
        ApproveRequest,
        CutoverStatus,
        IgnoredMessage,
    )
    from workflows.approvals import approval_record, rules_problem
    from workflows.errors import Aborted, Refused, StepFailed, describe_failure
    from workflows.kit import Kit
    from workflows.lock import record_lock_id
    from workflows.messages import (
        ABORT_EXAMPLE,
        APPROVE_EXAMPLE,
        abort_problem,
        approval_problem,
        decode_payload,
    )
    from workflows.phases.finish import decommission_a, restore_final_ttl
    from workflows.phases.gates import await_gate, decommission_question, pass_point_of_no_return
    from workflows.phases.prepare import lower_ttl, repoint
    from workflows.phases.switch import drain, flip, monitor
    from workflows.phases.verify import Verified, verify
    from workflows.state import Run
    from workflows.status import plan_markdown, set_phase, status_of
    from workflows.steps import uncancellable

RECORD = SearchAttributeKey.for_keyword(RECORD_ATTRIBUTE)
STABLE_DIGEST = "stable-digest"
RESOURCE_LOCKS = "resource-locks"
FINISH_DESPITE_CANCEL = "finish-despite-cancel"


def admission_error(problems: str) -> Exception:
    """What a plan that doesn't validate raises at the start of ``run``.

    A new run fails at once, with every problem listed. The plan is taken as plain JSON and validated
    by the workflow rather than by the data converter, because of open runs: when one is replayed by a
    newer worker whose plan rules are stricter, failing it would abandon its changes without rollback.
    A replay instead fails the workflow *task*, which Temporal retries until the worker is rolled back
    or fixed, while the run's changes stay as described in its history.
    """
    if workflow.unsafe.is_replaying():
        return RuntimeError(
            "this run's plan no longer validates with this worker's code; roll the worker back or make the new "
            f"rule accept existing plans: {problems}"
        )
    return ApplicationError(f"invalid plan: {problems}", type="InvalidPlan", non_retryable=True)


@workflow.defn(name=WORKFLOW_TYPE)
class CutoverWorkflow:
    """Cut a record over from A to B. Signals/updates: ``approve``, ``abort``; query: ``status``."""

    @workflow.init
    def __init__(self, plan: dict[str, Any]) -> None:
        self._invalid_plan: str | None = None
        try:
            valid = CutoverPlan.model_validate(plan)
            self._run = Run(plan=valid, digest="")
        except pydantic.ValidationError as exc:
            # Raised from run(), not here: an exception in init leaves the SDK's run coroutine unawaited.
            self._invalid_plan = describe_problems(exc)
            self._run = Run(plan=cast(CutoverPlan, None), digest="", phase="failed")
        self._kit = Kit.for_run(self._run)

    @workflow.run
    async def run(self, raw_plan: dict[str, Any]) -> CutoverStatus:
        """Run the phases; roll back on failure, abort or cancellation; release the locks at the end."""
        if self._invalid_plan is not None:
            raise admission_error(self._invalid_plan)
        run = self._run
        plan = run.plan
        # Fixed once, at the start: the digest leaves out default values, so a newer worker whose plan
        # model has a new defaulted field computes the same digest when it replays this run.
        run.digest = plan.digest() if workflow.patched(STABLE_DIGEST) else plan.legacy_digest()
        workflow.upsert_search_attributes([RECORD.value_set(plan.dns.record)])
        workflow.upsert_memo({"plan_digest": run.digest, "ticket": plan.ticket or ""})
        # Not ``finally``: evicting a run from the worker's cache closes this coroutine, and cleanup
        # must only happen when the run really ends (its failure or cancellation included).
        try:
            status = await self._run_and_end()
        except (ApplicationError, asyncio.CancelledError):
            await self._kit.locks.release_all()
            raise
        await self._kit.locks.release_all()
        return status

    async def _run_and_end(self) -> CutoverStatus:
        run, saga = self._run, self._kit.saga
        plan = run.plan
        try:
            await self._execute()
        except Refused as exc:
            run.error = str(exc)
            set_phase(run, "rolled-back", f"Refused before any change: {exc}")
            await self._kit.steps.notify("refused", f"cutover {plan.name} refused before any change: {exc}")
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(
                f"refused before any change: {exc}", type="CutoverRefused", non_retryable=True
            ) from None
        except Aborted:
            assert run.abort is not None
            reason = f"aborted by {run.abort.by}: {run.abort.reason}"
            await saga.shielded_roll_back(reason, "abort")
            raise ApplicationError(saga.ending_message(reason), type=saga.ending_type(), non_retryable=True) from None
        except asyncio.CancelledError:
            await saga.shielded_roll_back("the workflow was cancelled", "cancel")
            raise
        except (FailureError, StepFailed) as exc:
            # A step's failure already names the step ("Flip ...: <why>"); keep that, not only the why.
            reason = str(exc) if isinstance(exc, StepFailed) else describe_failure(exc)
            kind = exc.kind if isinstance(exc, StepFailed) else "failure"
            await saga.shielded_roll_back(reason, kind)
            raise ApplicationError(saga.ending_message(reason), type=saga.ending_type(), non_retryable=True) from exc
        await workflow.wait_condition(workflow.all_handlers_finished)
        return status_of(run)

    async def _execute(self) -> None:
        kit, run = self._kit, self._run
        plan = run.plan
        run.locking = not plan.dry_run and workflow.patched(RESOURCE_LOCKS)
        if run.locking:
            await kit.locks.acquire(f"record {plan.dns.record}", record_lock_id(plan.dns.record))
        verified = await verify(kit)
        if plan.dry_run:
            set_phase(run, "planned", plan_markdown(run))
            return
        current = verified.reality.record_rrsets
        if plan.strategy == "alias":
            current = await repoint(kit, verified)
        current = await lower_ttl(kit, current, verified.snapshot)
        if run.flip_gate:
            await await_gate(kit, "flip", f"flip {plan.dns.record} to CNAME {plan.dns.target}")
        await flip(kit, current)
        await drain(kit)
        ask_human = await monitor(kit, verified)
        if run.decommission_gate or ask_human:
            await await_gate(kit, "decommission", decommission_question(kit))
        pass_point_of_no_return(kit)
        if workflow.patched(FINISH_DESPITE_CANCEL):
            # Past the point of no return a cancellation is refused like an abort: stopping halfway
            # through deleting A, or before the TTL is restored, would leave the world half-done.
            await uncancellable(self._finish(verified), self._refuse_cancel)
        else:
            await self._finish(verified)

    async def _finish(self, verified: Verified) -> None:
        kit, run = self._kit, self._run
        plan = run.plan
        decommission_error = await decommission_a(kit, verified)
        await restore_final_ttl(kit)
        if decommission_error:
            raise StepFailed(decommission_error)
        set_phase(run, "completed", f"{plan.dns.record} now points at {plan.dns.target}; done.")
        await kit.steps.notify("completed", f"cutover {plan.name} completed: {plan.dns.record} -> {plan.dns.target}")

    def _refuse_cancel(self) -> None:
        self._ignore(
            "cancel",
            "past the point of no return: decommissioning A and restoring the TTL finish first; "
            "the cutover is kept, not rolled back",
        )

    # --- messages -------------------------------------------------------------------------------

    @workflow.query(name="status")
    def status(self) -> CutoverStatus:
        """Everything about the run, for ``starter.py status`` and ``temporal workflow query``."""
        if self._invalid_plan is not None:
            raise ValueError(f"invalid plan: {self._invalid_plan}")
        return status_of(self._run)

    def _ignore(self, name: str, reason: str, by: str | None = None) -> None:
        self._run.ignored.append(IgnoredMessage(name=name, at=workflow.now(), reason=reason, by=by))

    def _approval_problem(self, request: ApproveRequest) -> str | None:
        """The run's own checks (gate awaited, digest), then the policy's approval rules."""
        return approval_problem(self._run, request) or rules_problem(self._run, request)

    def _approve(self, request: ApproveRequest, via: str) -> str:
        run = self._run
        assert run.gate is not None and request.by and request.gate
        record = approval_record(run, request, via)
        run.gate.approval = record
        run.approvals.append(record)
        return f"{request.gate} approved by {request.by}"

    @workflow.signal(name="approve")
    def approve_signal(self, *args: Any) -> None:
        """Approve a gate. Malformed or invalid approvals are recorded in the status as ignored.

        The payload is taken as plain JSON, of any arity, and validated here: Temporal would otherwise
        drop a signal that fails to decode without telling anyone, or fail the run's workflow tasks.
        """
        request, malformed = decode_payload(args, ApproveRequest, APPROVE_EXAMPLE)
        if request is None:
            self._ignore("approve", malformed)
            return
        problem = self._approval_problem(request)
        if problem:
            self._ignore("approve", problem, request.by)
            return
        self._approve(request, "signal")

    @workflow.update(name="approve")
    def approve_update(self, *args: Any) -> str:
        """Approve a gate; the validator rejects a gate not awaited, a wrong digest, or what the rules refuse."""
        request, _ = decode_payload(args, ApproveRequest, APPROVE_EXAMPLE)
        assert request is not None  # the validator accepted it
        return self._approve(request, "update")

    @approve_update.validator
    def _validate_approve(self, *args: Any) -> None:
        request, malformed = decode_payload(args, ApproveRequest, APPROVE_EXAMPLE)
        problem = malformed if request is None else self._approval_problem(request)
        if problem:
            raise ValueError(problem)

    @workflow.signal(name="abort")
    def abort_signal(self, *args: Any) -> None:
        """Roll back from wherever the run is, until the point of no return."""
        request, malformed = decode_payload(args, AbortRequest, ABORT_EXAMPLE)
        if request is None:
            self._ignore("abort", malformed)
            return
        problem = abort_problem(self._run, request)
        if problem:
            self._ignore("abort", problem, request.by)
            return
        self._run.abort = request

    @workflow.update(name="abort")
    def abort_update(self, *args: Any) -> str:
        """Roll back from wherever the run is; rejected past the point of no return."""
        request, _ = decode_payload(args, AbortRequest, ABORT_EXAMPLE)
        assert request is not None  # the validator accepted it
        self._run.abort = request
        return f"aborting: rolling back from {self._run.phase}"

    @abort_update.validator
    def _validate_abort(self, *args: Any) -> None:
        request, malformed = decode_payload(args, AbortRequest, ABORT_EXAMPLE)
        problem = malformed if request is None else abort_problem(self._run, request)
        if problem:
            raise ValueError(problem)
