"""Record the golden histories the replay test checks: ``python -m tests.workflows.record_histories``.

Each scenario runs CutoverWorkflow on the time-skipping server against the fake world and saves its
history as tests/workflows/histories/<scenario>.json. Only scenarios without a file are recorded:
an existing history stands for the open runs of the code that wrote it, and replaying it is what
catches an accidental non-deterministic change, so it is never re-recorded (guard a deliberate change
with ``workflow.patched(...)``). ``--only NAME`` records one scenario (its file must not exist).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.plan import CutoverPlan
from models.workflow import AbortRequest, ApproveRequest, CutoverStatus
from tests.conftest import base_plan_data
from tests.temporal_env import time_skipping_env
from tests.workflows.fake_world import ALIAS, A, FakeWorld
from tests.workflows.helpers import activities_for, until_phase
from workflows.lock import record_lock_id
from workflows.registry import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"


def plan(
    strategy: str = "cname",
    *,
    flip: bool = False,
    decommission: bool = False,
    sections: dict[str, Any] | None = None,
    **extra: Any,
) -> CutoverPlan:
    data = base_plan_data()
    data["strategy"] = strategy
    if strategy == "alias":
        data["dns"]["record"] = ALIAS
    data["approvals"] = {"flip": flip, "decommission": decommission, "timeout": "1h", **extra.pop("approvals", {})}
    data["notify"] = {"webhook_env": "CUTOVER_NOTIFY_WEBHOOK"}
    data.update(extra)
    data.update(sections or {})
    return CutoverPlan.model_validate(data)


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


async def approve_both_gates(env, handle, p, world) -> None:
    await until_phase(env, handle, "awaiting-flip-approval")
    await handle.execute_update("approve", ApproveRequest(gate="flip", by="alice", digest=p.digest()))
    await until_phase(env, handle, "awaiting-decommission-approval")
    await handle.execute_update("approve", ApproveRequest(gate="decommission", by="bob", digest=p.digest()))


async def cancel_at_decommission_gate(env, handle, p, world) -> None:
    await until_phase(env, handle, "awaiting-decommission-approval")
    await handle.cancel()


async def approve_after_the_timeout(env, handle, p, world) -> None:
    await until_phase(env, handle, "awaiting-flip-approval")
    await env.sleep(timedelta(hours=1, minutes=5))  # past approvals.timeout: on_timeout wait keeps the gate open
    await handle.execute_update("approve", ApproveRequest(gate="flip", by="alice", digest=p.digest()))


async def malformed_signals_then_abort(env, handle, p, world) -> None:
    await until_phase(env, handle, "awaiting-flip-approval")
    await handle.signal("approve")
    await handle.signal("approve", args=[{"gate": "flip"}, {"by": "mallory"}])
    await handle.signal("approve", "yes")
    await handle.signal("abort")
    await handle.signal("abort", args=[1, 2])
    await handle.signal("abort", AbortRequest(by="oncall", reason="after malformed signals"))


async def second_run_of_the_record(env, handle, p, world) -> None:
    """``handle`` is the loser: started while another run holds the record's lock (see record_lock_conflict)."""
    return None


HYBRID = {**base_plan_data()["kong"], "status_urls": ["http://127.0.0.1:8100"]}
WAIT = {"on_timeout": "wait"}
GCP_DECOMMISSION = {"kind": "gcp-project", "project_id": "a-project-123", "protected_projects": ["b-project-456"]}


def failing_kong_restore(world: FakeWorld) -> None:
    """The alias is cutover's own; B turns out unhealthy and Kong's Admin API is down for the undo."""
    del world.records[ALIAS]
    world.verdicts = ["unhealthy"]
    world.fail("kong_restore_service", "Kong Admin API down")


SCENARIOS: dict[str, tuple[CutoverPlan, Scenario, Callable[[FakeWorld], None]]] = {
    "completed-cname": (plan(), nothing, lambda w: None),
    # recorded with the patch lock-release-awaited: the run ends after its locks have ended
    "completed-locks-awaited": (plan(), nothing, lambda w: None),
    "completed-alias-gates": (plan("alias", flip=True, decommission=True), gates_by_signal_and_update, lambda w: None),
    "rolled-back-abort-alias": (plan("alias", flip=True), abort_while_draining, lambda w: None),
    "rolled-back-unhealthy": (plan(), nothing, lambda w: setattr(w, "verdicts", ["unhealthy"])),
    "rolled-back-approval-timeout": (plan(flip=True), nothing, lambda w: None),
    "refused-not-ready": (plan(), nothing, lambda w: setattr(w, "ready", False)),
    "planned-dry-run": (plan("alias").model_copy(update={"dry_run": True}), nothing, lambda w: None),
    "cancelled-before-point-of-no-return": (plan(decommission=True), cancel_at_decommission_gate, lambda w: None),
    "completed-hybrid-data-planes": (plan("alias", sections={"kong": HYBRID}), nothing, lambda w: None),
    "completed-gate-timeout-wait": (plan(flip=True, approvals=WAIT), approve_after_the_timeout, lambda w: None),
    "failed-undo-kong-restore": (plan("alias"), nothing, failing_kong_restore),
    # the third record change of a cname run is the final TTL restore, past the point of no return
    "failed-after-point-of-no-return": (plan(), nothing, lambda w: w.fail_at.update(dns_apply=3)),
    "failed-gcp-delete-undeleted": (
        plan(flip=True, decommission=True, sections={"decommission": GCP_DECOMMISSION}),
        approve_both_gates,
        lambda w: w.fail("decommission_delete"),
    ),
    "rolled-back-malformed-signals": (plan(flip=True), malformed_signals_then_abort, lambda w: None),
}
LOCK_CONFLICT = ("refused-record-locked", "lock-released")
"""Recorded together by :func:`record_lock_conflict`: the refused second run, and the holder's lock."""


def save(name: str, history: WorkflowHistory, ending: str) -> None:
    path = HISTORIES / f"{name}.json"
    path.write_text(json.dumps(history.to_json_dict(), indent=1) + "\n")
    print(f"recorded {path} ({len(history.events)} events): {ending}")


async def ending_of(handle: WorkflowHandle[Any, Any]) -> str:
    """The run's last phase and error, to check the scenario ended the way its name says."""
    status = await handle.query("status", result_type=CutoverStatus)
    return f"{status.phase}; {status.error or ''}"[:300]


async def ended(handle: WorkflowHandle[Any, Any]) -> None:
    try:
        await handle.result()
    except WorkflowFailureError:
        pass


async def record_scenario(name: str) -> None:
    p, drive, prepare = SCENARIOS[name]
    world = FakeWorld()
    prepare(world)
    queue = str(uuid.uuid4())
    async with time_skipping_env() as env:
        async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=activities_for(env, world)):
            handle = await env.client.start_workflow("CutoverWorkflow", p, id=f"cutover-{name}", task_queue=queue)
            await drive(env, handle, p, world)
            await ended(handle)
            history = await handle.fetch_history()
            ending = await ending_of(handle)
    save(name, history, ending)


async def record_lock_conflict() -> None:
    """A second run of the same record while the first waits at its gate: refused, naming the holder."""
    world = FakeWorld()
    queue = str(uuid.uuid4())
    holder_plan = plan(flip=True, approvals=WAIT)
    async with time_skipping_env() as env:
        async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=activities_for(env, world)):
            holder = await env.client.start_workflow(
                "CutoverWorkflow", holder_plan, id="cutover-lock-holder", task_queue=queue
            )
            await until_phase(env, holder, "awaiting-flip-approval")
            second = await env.client.start_workflow(
                "CutoverWorkflow", plan(name="orders-api-again"), id="cutover-refused-record-locked", task_queue=queue
            )
            await ended(second)
            await holder.execute_update("abort", AbortRequest(by="oncall", reason="free the record"))
            await ended(holder)
            lock = env.client.get_workflow_handle(record_lock_id(A))
            for _ in range(100):  # the release signal's last workflow task
                try:
                    await lock.result()
                    break
                except RPCError:
                    await asyncio.sleep(0.1)
            save(LOCK_CONFLICT[0], await second.fetch_history(), await ending_of(second))
            save(LOCK_CONFLICT[1], await lock.fetch_history(), str((await lock.describe()).status))


async def record(only: str | None = None) -> None:
    HISTORIES.mkdir(exist_ok=True)
    existing = {path.stem for path in HISTORIES.glob("*.json")}
    names = [only] if only else [*SCENARIOS, LOCK_CONFLICT[0]]
    for name in names:
        if name in existing:
            if only:
                raise SystemExit(f"{name}.json exists: existing histories are never re-recorded")
            continue
        if name in LOCK_CONFLICT:
            await record_lock_conflict()
        else:
            await record_scenario(name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=[*SCENARIOS, LOCK_CONFLICT[0]])
    asyncio.run(record(parser.parse_args().only))
