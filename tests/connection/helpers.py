"""A whole cutover driven the operator's way: starter.py subprocesses, a worker connected by our settings."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client
from temporalio.worker import Worker

from models.workflow import CutoverStatus
from tests.conftest import base_plan_data
from tests.workflows.fake_world import ALIAS, FakeWorld
from workflows.cutover import CutoverWorkflow

ROOT = Path(__file__).resolve().parents[2]


def run(
    *args: str, env: dict[str, str], script: str = "starter.py", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """A cutover command as an operator types it, with exactly the Temporal settings in ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "CUTOVER_"))}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean, **env},
        cwd=ROOT,
    )


async def arun(*args: str, env: dict[str, str], script: str = "starter.py") -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run, *args, env=env, script=script)


def alias_plan(tmp_path: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """A short alias cutover against the fake world (TTL 1 s, no margin), both gates on."""
    data: dict[str, Any] = base_plan_data(name=name)
    data["strategy"] = "alias"
    data["dns"].update(record=ALIAS, cutover_ttl=1, wait_margin="0s")
    data["approvals"] = {"flip": True, "decommission": True, "timeout": "1h"}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, data


async def wait_phase(client: Client, workflow_id: str, phase: str, tries: int = 150) -> CutoverStatus:
    handle = client.get_workflow_handle(workflow_id)
    status: CutoverStatus | None = None
    for _ in range(tries):
        status = await handle.query("status", result_type=CutoverStatus)
        if status.phase == phase:
            return status
        await asyncio.sleep(0.2)
    raise AssertionError(f"{workflow_id} never reached {phase}: {status and status.phase}")


async def full_cutover(client: Client, env: dict[str, str], tmp_path: Path) -> tuple[str, CutoverStatus]:
    """Start with starter.py, approve both gates with starter.py, and return the completed status."""
    name = f"secure-{uuid.uuid4().hex[:6]}"
    path, _ = alias_plan(tmp_path, name)
    queue = f"cutover-{uuid.uuid4().hex[:6]}"
    env = {**env, "CUTOVER_TASK_QUEUE": queue}
    world = FakeWorld()
    for record in world.records:
        world.records[record] = tuple(r.with_ttl(1) for r in world.records[record])
    workflow_id = f"cutover-{name}"
    async with Worker(client, task_queue=queue, workflows=[CutoverWorkflow], activities=world.activities()):
        started = await arun("start", str(path), "--by", "sam", env=env)
        assert started.returncode == 0, started.stderr
        await wait_phase(client, workflow_id, "awaiting-flip-approval")
        flip = await arun("approve", workflow_id, "--gate", "flip", "--by", "alice", "--plan", str(path), env=env)
        assert flip.returncode == 0, flip.stderr
        await wait_phase(client, workflow_id, "awaiting-decommission-approval")
        decommission = await arun(
            "approve", workflow_id, "--gate", "decommission", "--by", "bob", "--plan", str(path), env=env
        )
        assert decommission.returncode == 0, decommission.stderr
        status = await client.get_workflow_handle(workflow_id, result_type=CutoverStatus).result()
    assert world.records[ALIAS][0].rdatas == ("b-project.example.test.",), "the alias points at B"
    return workflow_id, status
