"""Fail fast, and say why, when the Java time-skipping test server stops.

It skips time only while nothing holds its time lock. A task scheduled that no worker polls holds
it; so, for good, does a child workflow that ends after its parent closed or continued as new (the
child holds the lock until its parent records the ending, and a closed run never does:
TestWorkflowMutableStateImpl, "notify parent"). Two more of its bugs leave a run open for good: a
workflow task that continues as new while a query waits for it (the new run starts, the old one's
task then fails), and one that cancels an activity which completed meanwhile. A result awaited then
sits until pytest's own timeout; these helpers bound the wait and name what is still open.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import (
    ListClosedWorkflowExecutionsRequest,
    ListOpenWorkflowExecutionsRequest,
)
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

RESULT_TIMEOUT = 90.0
"""Real seconds a time-skipped workflow may take to end: passing campaign tests take 1-5 s."""


async def open_workflows(env: WorkflowEnvironment) -> str:
    """One line per open run (pending activities, children, last events) and per closed run with children open."""
    lines = []
    try:
        listed = await env.client.workflow_service.list_open_workflow_executions(
            ListOpenWorkflowExecutionsRequest(namespace=env.client.namespace, maximum_page_size=50)
        )
        for execution in listed.executions:
            workflow_id, run_id = execution.execution.workflow_id, execution.execution.run_id
            run = env.client.get_workflow_handle(workflow_id, run_id=run_id)
            described = (await run.describe()).raw_description
            activities = [f"{a.activity_type.name} (attempt {a.attempt})" for a in described.pending_activities]
            children = [c.workflow_id for c in described.pending_children]
            events = (await run.fetch_history()).events[-4:]
            last = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]
            lines.append(
                f"  {workflow_id} (run {run_id[:8]}, {execution.type.name}): pending activities "
                f"{activities or 'none'}, children {children or 'none'}, last events {last}"
            )
        closed = await env.client.workflow_service.list_closed_workflow_executions(
            ListClosedWorkflowExecutionsRequest(namespace=env.client.namespace, maximum_page_size=200)
        )
        for execution in closed.executions:
            workflow_id, run_id = execution.execution.workflow_id, execution.execution.run_id
            described = (await env.client.get_workflow_handle(workflow_id, run_id=run_id).describe()).raw_description
            if described.pending_children:
                children = [c.workflow_id for c in described.pending_children]
                lines.append(f"  closed {workflow_id} before its children {children} ended")
        lines.append(f"  server time {await env.get_current_time():%Y-%m-%d %H:%M:%S}")
    except Exception as exc:  # a report of a stall must not hide the stall
        lines.append(f"  (could not list the open workflows: {exc!r})")
    return "\n".join(lines)


async def result_or_stall(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], timeout: float = RESULT_TIMEOUT
) -> Any:
    """``handle.result()``, or an AssertionError listing the open workflows after ``timeout`` real seconds."""
    try:
        return await asyncio.wait_for(handle.result(), timeout)
    except TimeoutError:
        report = await open_workflows(env)
    raise AssertionError(
        f"{handle.id} did not end within {timeout:.0f} s of real time: the time-skipping server stopped "
        f"(see tests/workflows/stalls.py). Open workflows:\n{report}"
    )


async def quiet(handle: WorkflowHandle[Any, Any], attempts: int = 200) -> None:
    """Wait until the run has neither a workflow task nor an activity in flight: call it before cancelling.

    The Java test server wedges a workflow task that cancels an activity which completed while the
    task ran: the task fails with ACTIVITY_UNKNOWN after the server already moved it on, then with
    INTERNAL on every retry, and the run never takes another task (a real server takes it). The test
    server's describe shows no workflow task, so its history is read: nothing after the last
    completed task but the commands of that task. With time locked (no ``result()`` awaited), a run
    that is quiet stays so until its next timer fires in real time.
    """
    in_flight = (
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    )
    for _ in range(attempts):
        events = (await handle.fetch_history()).events
        completed = max(i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        if not any(e.event_type in in_flight for e in events[completed:]):
            if not (await handle.describe()).raw_description.pending_activities:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} was never quiet for {attempts * 0.05:.0f} s")
