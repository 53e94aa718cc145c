"""One cutover per record and per Kong Service: a lock that Temporal's workflow ids make exact.

A cutover holds a lock by running a ``CutoverLock`` child workflow whose id names the resource
(``cutover-lock-record-<name>``, ``cutover-lock-kong-service-<id>``). Temporal allows one running
workflow per id, so a second cutover's start of the same child fails at once, even in the same
second as the first (a visibility query would be eventually consistent). The lock ends when its
holder releases it, and, with the parent-close policy TERMINATE, on *every* ending of the holder:
completion, failure, cancellation, termination, timeout. A holder that releases its locks waits for
them to end before it ends itself, so no lock outlives the run that held it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from models.workflow import LockRequest
    from workflows.activity_refs import LOCK_HOLDER
    from workflows.errors import Refused
    from workflows.steps import Steps

LOCK_TYPE = "CutoverLock"
ATTEMPTS = 3
RELEASE_AWAITED = "lock-release-awaited"
"""Patch: runs recorded before it closed right after signalling the release, without waiting for the locks."""
RELEASE_WAIT = timedelta(minutes=1)
"""A released lock ends at its next workflow task; past this, the parent-close policy ends it."""


def record_lock_id(record: str) -> str:
    """The lock id of a DNS record (its canonical, absolute, lower-case name)."""
    return f"cutover-lock-record-{record.lower().rstrip('.')}."


def service_lock_id(service_id: str) -> str:
    """The lock id of a Kong Service (its id: a UUID, unique across Kong clusters)."""
    return f"cutover-lock-kong-service-{service_id}"


@workflow.defn(name=LOCK_TYPE)
class CutoverLock:
    """Held while it runs; ``release`` (or the holder's end) frees it."""

    def __init__(self) -> None:
        self._released = False

    @workflow.run
    async def run(self, request: LockRequest) -> str:
        """Wait until released."""
        await workflow.wait_condition(lambda: self._released)
        return f"{request.resource}: released by {request.holder}"

    @workflow.signal(name="release")
    def release(self, *args: Any) -> None:
        """Free the lock (any payload, or none)."""
        self._released = True


class Locks:
    """The locks one cutover holds."""

    def __init__(self, steps: Steps) -> None:
        self.steps = steps
        self.held: list[workflow.ChildWorkflowHandle[Any, Any]] = []

    async def acquire(self, resource: str, lock_id: str) -> None:
        """Hold ``lock_id`` for this run, or refuse the run naming the one that holds it."""
        for attempt in range(1, ATTEMPTS + 1):
            handle = await self._start(resource, lock_id)
            if handle is not None:
                self.held.append(handle)
                return
            found = await self.steps.call(
                LOCK_HOLDER, lock_id, f"Who holds the lock on {resource}", attempt_timeout=timedelta(seconds=30)
            )
            if found.holder is None and attempt < ATTEMPTS:
                # Released just now, or left behind by a run that has ended (and ended by the look-up):
                # the server may take a moment to let the id go.
                await workflow.sleep(timedelta(seconds=1), summary=f"Lock on {resource} is being released")
                continue
            who = f"run {found.holder} ({found.holder_run_id})" if found.holder else f"another run ({found.status})"
            raise Refused(
                f"{resource} is already being cut over by {who}: one cutover per record and per Kong Service. "
                f"Wait for it to end, or abort it (temporal workflow update execute -w {found.holder} --name abort)"
            )

    async def _start(self, resource: str, lock_id: str) -> workflow.ChildWorkflowHandle[Any, Any] | None:
        holder = workflow.info().workflow_id
        try:
            return await workflow.start_child_workflow(
                LOCK_TYPE,
                LockRequest(resource=resource, holder=holder),
                id=lock_id,
                result_type=str,
                parent_close_policy=ParentClosePolicy.TERMINATE,
                static_summary=f"Lock on {resource}, held by {holder}"[:190],
            )
        except WorkflowAlreadyStartedError:
            return None

    async def release_all(self) -> None:
        """Release every lock held and wait until each has ended (a minute at most).

        Without the wait the holder could close while a lock's last workflow task is still to run:
        the next cutover of the record or Kong Service would find the lock still held (and look its
        holder up, and retry), and the lock would report its end to a closed parent, which stops
        Temporal's time-skipping test server from ever skipping time again.
        """
        held = list(reversed(self.held))
        for handle in held:
            try:
                await handle.signal("release")
            except Exception:  # the lock ends with this run regardless (parent-close policy)
                workflow.logger.warning("could not signal the release of %s; it ends with this run", handle.id)
        self.held.clear()
        if held and workflow.patched(RELEASE_AWAITED):
            ended = asyncio.gather(*held, return_exceptions=True)
            try:
                await workflow.wait_condition(ended.done, timeout=RELEASE_WAIT, timeout_summary="locks released")
            except TimeoutError:
                workflow.logger.warning("locks %s still running; they end with this run", [h.id for h in held])
