"""Who holds a cutover lock: the one look-up the workflow can't do itself (it needs the Temporal client).

The lock is a ``CutoverLock`` child workflow; its parent is the cutover that holds it. Describing it
is strongly consistent, unlike a visibility query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from models.workflow import LockHolder


class LockActivities:
    """Read the holder of a lock from Temporal."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def activities(self) -> list[Callable[..., Any]]:
        """The activity callables to register on a worker."""
        return [self.lock_holder]

    @activity.defn(name="lock_holder")
    async def lock_holder(self, lock_id: str) -> LockHolder:
        """The running cutover that holds ``lock_id``; ends a lock whose holder has ended (stale).

        A lock outlives its holder only briefly (the server applies the parent-close policy
        asynchronously) or on a server without that policy; either way nothing holds it any more.
        """
        lock = self._client.get_workflow_handle(lock_id)
        try:
            description = await lock.describe()
        except RPCError as exc:
            activity.logger.warning("lock_holder: %s could not be described: %s", lock_id, exc.message)
            return LockHolder(lock_id=lock_id, status="unknown")
        status = _status(description.status)
        if status != "RUNNING" or not description.parent_id:
            return LockHolder(lock_id=lock_id, status=status)
        holder = self._client.get_workflow_handle(description.parent_id, run_id=description.parent_run_id)
        holder_status = _status((await holder.describe()).status)
        if holder_status != "RUNNING":
            activity.logger.info(
                "lock_holder: %s outlived its holder %s (%s); ending it", lock_id, holder.id, holder_status
            )
            try:
                await lock.terminate(f"stale: its holder {holder.id} is {holder_status}")
            except RPCError:
                pass  # it ended meanwhile
            return LockHolder(lock_id=lock_id, status="STALE")
        return LockHolder(
            lock_id=lock_id, holder=description.parent_id, holder_run_id=description.parent_run_id, status=status
        )


def _status(status: WorkflowExecutionStatus | None) -> str:
    return status.name if status is not None else "unknown"
