"""The campaign's two activities: read its cutovers' phases, and approve a cutover's gate.

A workflow can signal another workflow but can neither query it nor send it an update, so these
go through a Temporal client in the worker. Both are light: a read returns only the cutovers whose
phase, gates or verdict changed since the last read (the campaign's history stays small), and an
approval is the cutover's own ``approve`` update, whose validator answers at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowContinuedAsNewError,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, TerminatedError
from temporalio.service import RPCError, RPCStatusCode

from models.campaign_status import (
    ROLLED_BACK_TYPES,
    BriefsInput,
    BriefsResult,
    ChildApproval,
    ChildApprovalResult,
    CutoverBrief,
    terminated_reason,
)
from models.workflow import ApproveRequest, CutoverStatus

READ_CONCURRENCY = 20
RPC_TIMEOUT = timedelta(seconds=10)
TEXT_LIMIT = 400
"""Verdicts and errors are cut to this many characters: the campaign shows many of them."""


def _short(text: str | None) -> str | None:
    return None if text is None else (text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…")


def quiet_until(status: CutoverStatus) -> datetime | None:
    """When the durable wait the run is in ends (its timeline's last step is that open wait), or None."""
    last = status.timeline[-1] if status.timeline else None
    if last is None or last.ok is not None or not last.step.startswith("Wait") or not status.waits:
        return None
    return status.waits[-1].until


def brief_of(workflow_id: str, status: CutoverStatus, closed: str | None) -> CutoverBrief:
    """The few fields of a cutover's status the campaign acts on."""
    verdict = status.last_verdict
    return CutoverBrief(
        workflow_id=workflow_id,
        phase=status.phase,
        gates_awaited=status.gates_awaited,
        point_of_no_return_passed=status.point_of_no_return_passed,
        verdict_status=verdict.status if verdict else None,
        verdict=_short(f"{verdict.status}: {verdict.reason}") if verdict else None,
        error=_short(status.error),
        closed=closed,
        quiet_until=quiet_until(status) if closed is None else None,
    )


class CampaignActivities:
    """Activities over a Temporal client: the campaign's eyes on its cutovers, and its hand on their gates."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def activities(self) -> list[Callable[..., Any]]:
        """The activity callables to register on a worker."""
        return [self.read_cutovers, self.approve_cutover]

    @activity.defn(name="campaign_read_cutovers")
    async def read_cutovers(self, input: BriefsInput) -> BriefsResult:
        """Each cutover's phase, gates, verdict and whether it has closed; only those that changed."""
        semaphore = asyncio.Semaphore(READ_CONCURRENCY)

        async def one(workflow_id: str) -> CutoverBrief:
            async with semaphore:
                return await self._read(workflow_id)

        briefs = await asyncio.gather(*(one(w) for w in input.workflow_ids))
        changed = [b for b in briefs if b.unreadable or input.known.get(b.workflow_id) != b.fingerprint()]
        return BriefsResult(briefs=tuple(changed))

    async def _read(self, workflow_id: str) -> CutoverBrief:
        handle = self._client.get_workflow_handle(workflow_id)
        try:
            described = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return CutoverBrief(workflow_id=workflow_id, closed="NOT_FOUND", unreadable="no such workflow")
            raise
        running = described.status in (None, WorkflowExecutionStatus.RUNNING)
        closed = None if running or described.status is None else described.status.name
        try:
            status = await handle.query("status", result_type=CutoverStatus, rpc_timeout=RPC_TIMEOUT)
        except RPCError as exc:
            if closed is not None:
                return await self._closed_unqueryable(handle, workflow_id, closed, exc)
            # A run whose first task has not run yet, or whose worker is busy, is read next time.
            return CutoverBrief(workflow_id=workflow_id, closed=closed, unreadable=_short(f"status query: {exc}"))
        return brief_of(workflow_id, status, closed)

    async def _closed_unqueryable(
        self, handle: WorkflowHandle[Any, Any], workflow_id: str, closed: str, query_error: RPCError
    ) -> CutoverBrief:
        """A closed run that no worker answers queries for: its closing event says how it ended.

        Without this, a run closed while nobody could replay it (its workflow code gone from the
        workers, say) stayed in flight in the campaign forever, read again at every poll.
        """
        try:
            await handle.result(follow_runs=False, rpc_timeout=RPC_TIMEOUT)
        except WorkflowFailureError as failed:
            cause = failed.cause
            if isinstance(cause, ApplicationError) and cause.type in ROLLED_BACK_TYPES:
                return CutoverBrief(
                    workflow_id=workflow_id, phase="rolled-back", error=_short(cause.message), closed=closed
                )
            if isinstance(cause, TerminatedError):
                why = terminated_reason(cause.message)
            else:
                kind = getattr(cause, "type", None) or type(cause).__name__
                why = f"{kind}: {getattr(cause, 'message', None) or cause}"
            return CutoverBrief(workflow_id=workflow_id, error=_short(why), closed=closed)
        except (RPCError, WorkflowContinuedAsNewError) as exc:
            return CutoverBrief(
                workflow_id=workflow_id,
                closed=closed,
                unreadable=_short(f"status query: {query_error}; closing event: {type(exc).__name__}: {exc}"),
            )
        return CutoverBrief(workflow_id=workflow_id, phase="completed", closed=closed)

    @activity.defn(name="campaign_approve_cutover")
    async def approve_cutover(self, input: ChildApproval) -> ChildApprovalResult:
        """Send the cutover's ``approve`` update; a refusal (gate not awaited, ended) is an answer, not an error."""
        request = ApproveRequest(gate=input.gate, by=input.by, digest=input.digest, comment=input.comment)
        handle = self._client.get_workflow_handle(input.workflow_id)
        try:
            answer = await handle.execute_update("approve", request, result_type=str, rpc_timeout=RPC_TIMEOUT)
        except WorkflowUpdateFailedError as exc:
            return ChildApprovalResult(approved=False, message=str(exc.cause or exc))
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                return ChildApprovalResult(approved=False, message=f"the cutover can't take updates: {exc}")
            raise ApplicationError(f"approve {input.workflow_id}: {exc}", type="TemporalUnavailable") from exc
        return ChildApprovalResult(approved=True, message=answer)
