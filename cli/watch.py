"""``python starter.py watch ID``: follow any run in the terminal until it ends, and exit with its outcome.

It reads only what the workflow already exposes (the ``status`` query, and ``describe`` for runs that
end without an outcome), so it follows a run started by ``starter.py start``, the Temporal CLI, the
web UI or another program alike, and several people can watch one run. The view is cli/live.py's:
a live panel on a TTY with the open gate's commands pinned, plain lines elsewhere.

Exit codes (``watch`` in a script waits for the run and branches on the outcome):

====  =====================================================================================
0     completed (a dry run: planned)
3     rolled back: every change was undone
4     failed: something may be left changed; the output lists it and what to finish by hand
5     ended without an outcome: terminated, cancelled or timed out in Temporal
1     Temporal unreachable, or no run with that id
130   interrupted (Ctrl-C): watch stops, the run goes on
====  =====================================================================================
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from cli.live import RunView, final_lines
from models.workflow import TERMINAL_PHASES, CutoverStatus

EXIT_COMPLETED = 0
EXIT_ERROR = 1
EXIT_ROLLED_BACK = 3
EXIT_FAILED = 4
EXIT_ENDED_WITHOUT_OUTCOME = 5
EXIT_INTERRUPTED = 130
OUTCOME_CODES = {"completed": EXIT_COMPLETED, "planned": EXIT_COMPLETED, "rolled-back": EXIT_ROLLED_BACK}
DESCRIBE_EVERY = 5.0
"""Seconds between ``describe`` calls that notice a run terminated from outside (its status can't say)."""


def exit_code(phase: str) -> int:
    """The exit code for a terminal phase (``failed`` and anything unknown: 4)."""
    return OUTCOME_CODES.get(phase, EXIT_FAILED)


async def _status(handle: WorkflowHandle[Any, Any]) -> CutoverStatus:
    status: CutoverStatus = await handle.query("status", result_type=CutoverStatus, rpc_timeout=timedelta(seconds=5))
    return status


async def watch(client: Client, workflow_id: str, *, view: RunView | None = None, interval: float = 1.0) -> int:
    """Show the run until it ends; its outcome as an exit code (see the module docstring)."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
    except RPCError as exc:
        print(f"error: no run {workflow_id} on this Temporal namespace ({exc})")
        return EXIT_ERROR
    view = view or RunView()
    last_problem = ""
    next_describe = time.monotonic() + DESCRIBE_EVERY
    try:
        while True:
            try:
                status = await _status(handle)
            except (RPCError, ValidationError) as exc:
                problem = f"status query failed (retrying): {exc}".splitlines()[0]
                if problem != last_problem:
                    view.event(problem)
                    last_problem = problem
            else:
                last_problem = ""
                view.update(status)
                if status.phase in TERMINAL_PHASES:
                    view.close()
                    for line in final_lines(status):
                        view.event(line)
                    return exit_code(status.phase)
            if time.monotonic() >= next_describe:
                next_describe = time.monotonic() + DESCRIBE_EVERY
                described = await handle.describe()
                if described.status not in (None, WorkflowExecutionStatus.RUNNING):
                    # A run that ended with an outcome shows it in the status on the next look.
                    final: CutoverStatus | None
                    try:
                        final = await _status(handle)
                    except (RPCError, ValidationError):
                        final = None
                    if final is not None and final.phase in TERMINAL_PHASES:
                        continue
                    view.close()
                    name = described.status.name.lower() if described.status else "closed"
                    view.event(f"{workflow_id} ended without an outcome: {name} in Temporal")
                    return EXIT_ENDED_WITHOUT_OUTCOME
            await asyncio.sleep(interval)
    except asyncio.CancelledError:
        view.close()
        raise
    finally:
        view.close()
