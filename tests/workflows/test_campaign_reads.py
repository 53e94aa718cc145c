"""The campaign's read of a cutover that closed while no worker can answer its ``status`` query.

Such a run (its workflow code gone from the workers, or every worker down while it closed) used to
stay "in flight" in the campaign for ever, read again at every poll. Its closing event decides.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import activities.campaign as campaign_activities
from activities.campaign import CampaignActivities
from models.campaign_status import CutoverEntry
from workflows import campaign_logic as logic


@workflow.defn(name="ClosedRolledBack")
class ClosedRolledBack:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("rolled back: B answered 503 to 41% of requests", type="CutoverRolledBack")


@workflow.defn(name="ClosedFailed")
class ClosedFailed:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("Kong refused the PATCH", type="GatewayError")


@workflow.defn(name="ClosedCompleted")
class ClosedCompleted:
    @workflow.run
    async def run(self) -> str:
        return "done"


def in_flight(workflow_id: str) -> CutoverEntry:
    return CutoverEntry(
        name=workflow_id, workflow_id=workflow_id, wave=1, record="r", service="s", plan_digest="d", state="in-flight"
    )


async def test_a_closed_run_nobody_can_query_ends_by_its_closing_event(
    ts_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(campaign_activities, "RPC_TIMEOUT", timedelta(seconds=1))
    client, queue = ts_env.client, f"q-{uuid.uuid4()}"
    ids = {name: f"{name}-{uuid.uuid4()}" for name in ("ClosedRolledBack", "ClosedFailed", "ClosedCompleted")}
    async with Worker(
        client,
        task_queue=queue,
        workflows=[ClosedRolledBack, ClosedFailed, ClosedCompleted],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        for name, workflow_id in ids.items():
            handle = await client.start_workflow(name, id=workflow_id, task_queue=queue)
            if name == "ClosedCompleted":
                await handle.result()
            else:
                with pytest.raises(WorkflowFailureError):
                    await handle.result()
    # The worker is gone: no status query can be answered any more.
    never_ran = await client.start_workflow("CutoverWorkflow", id=f"never-{uuid.uuid4()}", task_queue=f"{queue}-none")
    await never_ran.terminate(reason="operator terminated it")

    reader = CampaignActivities(client)
    expected = {
        ids["ClosedRolledBack"]: ("rolled-back", "rolled back: B answered 503 to 41% of requests"),
        ids["ClosedFailed"]: ("failed", "GatewayError: Kong refused the PATCH"),
        ids["ClosedCompleted"]: ("completed", None),
        never_ran.id: (
            "failed",
            "terminated: operator terminated it (no undo ran: check its record and Kong Service by hand)",
        ),
    }
    for workflow_id, ending in expected.items():
        brief = await reader._read(workflow_id)
        assert brief.unreadable is None, brief
        assert logic.read_ending(in_flight(workflow_id), brief, watched=False) == ending
