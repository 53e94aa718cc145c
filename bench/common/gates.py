"""Approving every gate of many runs as soon as Temporal's visibility shows one waiting."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError

from bench.common.output import stop_loop
from models.workflow import PHASE_ATTRIBUTE, ApproveRequest

PHASE = SearchAttributeKey.for_keyword(PHASE_ATTRIBUTE)
GATE_PHASES = ("awaiting-flip-approval", "awaiting-decommission-approval")
APPROVER = "bench"


@dataclass
class GateApprover:
    """Approves every gate as soon as Temporal's visibility shows a run waiting at one.

    It lists runs by the ``CutoverPhase`` search attribute (what ``starter.py list --phase`` does),
    reads the plan digest from the memo and sends the ``approve`` update: no status queries, so
    it adds no work to the worker however many runs wait. The time until it notices is gate time
    (a human's), not overhead. An update that gets no answer in time is sent again after
    ``retry_after`` seconds (each attempt costs the worker a validation); one rejected because the
    gate is no longer awaited means an earlier attempt landed, and is not repeated.
    """

    client: Client
    interval: float = 0.2
    retry_after: float = 2.0
    approved: list[tuple[str, str, float]] = field(default_factory=list)
    problems: Counter[str] = field(default_factory=Counter)
    """Why attempts failed (normalised), with counts."""
    _handled: set[tuple[str, str, str]] = field(default_factory=set)
    _retry_at: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> GateApprover:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await stop_loop(self._task)
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    @property
    def failed_attempts(self) -> int:
        """Attempts that did not approve (rejected or unanswered)."""
        return sum(self.problems.values())

    async def _run(self) -> None:
        phases = ", ".join(f'"{phase}"' for phase in GATE_PHASES)
        query = f'ExecutionStatus = "Running" AND {PHASE_ATTRIBUTE} IN ({phases})'
        while True:
            try:
                async for execution in self.client.list_workflows(query):
                    phase = execution.typed_search_attributes.get(PHASE) or ""
                    gate = phase.removeprefix("awaiting-").removesuffix("-approval")
                    key = (execution.id, execution.run_id or "", gate)
                    if key in self._handled or self._retry_at.get(key, 0.0) > time.monotonic():
                        continue
                    self._handled.add(key)
                    digest = await execution.memo_value("plan_digest", type_hint=str)
                    task = asyncio.get_running_loop().create_task(self._approve(execution.id, gate, digest, key))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
            except RPCError as exc:
                self.problems[f"listing runs failed: {exc}"[:160]] += 1
            await asyncio.sleep(self.interval)

    async def _approve(self, workflow_id: str, gate: str, digest: str, key: tuple[str, str, str]) -> None:
        handle = self.client.get_workflow_handle(workflow_id)
        request = ApproveRequest(gate=gate, by=APPROVER, digest=digest, comment="benchmark auto-approval")
        try:
            await handle.execute_update("approve", request, result_type=str)
        except WorkflowUpdateFailedError as exc:
            reason = str(exc.cause or exc)
            self.problems[normalised_reason(f"rejected: {reason}")] += 1
            if "not awaited" not in reason and "has ended" not in reason:
                self._retry_later(key)
            return
        except (RPCTimeoutOrCancelledError, RPCError) as exc:
            self.problems[normalised_reason(f"no answer: {type(exc).__name__}: {exc}")] += 1
            self._retry_later(key)
            return
        self.approved.append((workflow_id, gate, time.time()))

    def _retry_later(self, key: tuple[str, str, str]) -> None:
        self._retry_at[key] = time.monotonic() + self.retry_after
        self._handled.discard(key)


def normalised_reason(reason: str) -> str:
    """A reason without run-specific names and digests, so equal reasons are counted together."""
    return re.sub(r"[0-9a-f]{64}|bench-\d{3}|cutover-[\w-]+", "<...>", reason)[:160]
