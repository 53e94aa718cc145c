"""Helpers shared by the workflow tests: follow a run's phases on the time-skipping server."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from models.workflow import TERMINAL_PHASES, CutoverStatus


async def status_of(handle: WorkflowHandle[Any, Any]) -> CutoverStatus:
    """The run's status query."""
    return await handle.query("status", result_type=CutoverStatus)


def in_timer(status: CutoverStatus) -> bool:
    """True while the run sits in one of its durable waits."""
    last = status.timeline[-1] if status.timeline else None
    return last is not None and last.ok is None and last.step.startswith("Wait")


async def until_phase(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], phase: str, *, waiting: bool = False
) -> CutoverStatus:
    """Poll the status until the run is in ``phase`` (and, with ``waiting``, inside a timer).

    Time only skips by itself while a test awaits a result, so the timers the run meets on the way are
    skipped here explicitly, to the end of the wait.
    """
    status = await status_of(handle)
    for _ in range(600):
        status = await status_of(handle)
        timing = in_timer(status)
        if status.phase == phase and (not waiting or timing):
            return status
        if status.phase in TERMINAL_PHASES and phase not in TERMINAL_PHASES:
            raise AssertionError(f"ended {status.phase} before {phase}: {status.error}")
        if timing and status.waits and status.waits[-1].until is not None:
            remaining = status.waits[-1].until - await env.get_current_time()
            await env.sleep(max(remaining, timedelta(0)) + timedelta(seconds=1))
            continue
        await asyncio.sleep(0.025)
    raise AssertionError(f"never reached {phase}: {status.phase}")
