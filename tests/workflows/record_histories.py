"""Record the golden histories the replay test checks: ``python -m tests.workflows.record_histories``.

Each scenario runs CutoverWorkflow on the time-skipping server against the fake world and saves its
history as tests/workflows/histories/<scenario>.json. Re-record only when a change is meant to be
incompatible *and* no run of the old code can still be open; otherwise guard the change with
``workflow.patched(...)`` and keep the old histories: replaying them is what catches an accidental
non-deterministic change.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.plan import CutoverPlan
from models.workflow import AbortRequest, ApproveRequest, CutoverStatus
from tests.conftest import base_plan_data
from tests.temporal_env import time_skipping_env
from tests.workflows.fake_world import ALIAS, FakeWorld
from tests.workflows.helpers import activities_for, until_phase
from workflows import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"


def plan(strategy: str = "cname", *, flip: bool = False, decommission: bool = False, **extra: Any) -> CutoverPlan:
    data = base_plan_data()
    data["strategy"] = strategy
    if strategy == "alias":
        data["dns"]["record"] = ALIAS
    data["approvals"] = {"flip": flip, "decommission": decommission, "timeout": "1h", **extra.get("approvals", {})}
    data["notify"] = {"webhook_env": "CUTOVER_NOTIFY_WEBHOOK"}
    return CutoverPlan.model_validate(data)


async def phase_of(handle: WorkflowHandle[Any, Any]) -> str:
    return (await handle.query("status", result_type=CutoverStatus)).phase


Scenario = Callable[[WorkflowEnvironment, WorkflowHandle[Any, Any], CutoverPlan, FakeWorld], Awaitable[None]]


async def gates_by_signal_and_update(env, handle, p, world) -> None:
    await until_phase(env, handle, "awaiting-flip-approval")
    await handle.signal("approve", {"gate": "flip", "by": "mallory", "digest": "wrong"})
    await handle.execute_update("approve", ApproveRequest(gate="flip", by="alice", digest=p.digest()))
    await until_phase(env, handle, "awaiting-decommission-approval")
    await handle.signal("approve", ApproveRequest(gate="decommission", by="bob", digest=p.digest()))


async def abort_while_draining(env, handle, p, world) -> None:
    await until_phase(env, handle, "awaiting-flip-approval")
    await handle.execute_update("approve", ApproveRequest(gate="flip", by="alice", digest=p.digest()))
    await until_phase(env, handle, "draining")
    await handle.execute_update("abort", AbortRequest(by="oncall", reason="recorded abort"))


async def nothing(env, handle, p, world) -> None:
    return None


SCENARIOS: dict[str, tuple[CutoverPlan, Scenario, Callable[[FakeWorld], None]]] = {
    "completed-cname": (plan(), nothing, lambda w: None),
    "completed-alias-gates": (plan("alias", flip=True, decommission=True), gates_by_signal_and_update, lambda w: None),
    "rolled-back-abort-alias": (plan("alias", flip=True), abort_while_draining, lambda w: None),
    "rolled-back-unhealthy": (plan(), nothing, lambda w: setattr(w, "verdicts", ["unhealthy"])),
    "rolled-back-approval-timeout": (plan(flip=True), nothing, lambda w: None),
    "refused-not-ready": (plan(), nothing, lambda w: setattr(w, "ready", False)),
    "planned-dry-run": (plan("alias").model_copy(update={"dry_run": True}), nothing, lambda w: None),
}


async def record() -> None:
    HISTORIES.mkdir(exist_ok=True)
    async with time_skipping_env() as env:
        for name, (p, drive, prepare) in SCENARIOS.items():
            world = FakeWorld()
            prepare(world)
            queue = str(uuid.uuid4())
            async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=activities_for(env, world)):
                handle = await env.client.start_workflow("CutoverWorkflow", p, id=f"cutover-{name}", task_queue=queue)
                await drive(env, handle, p, world)
                try:
                    await handle.result()
                except WorkflowFailureError:
                    pass
                history = await handle.fetch_history()
            path = HISTORIES / f"{name}.json"
            path.write_text(json.dumps(history.to_json_dict(), indent=1) + "\n")
            print(f"recorded {path} ({len(history.events)} events)")


if __name__ == "__main__":
    asyncio.run(record())
