"""Upgrading workers with open runs, on a real dev server: the replay check and Worker Versioning.

The replay check is run as operators run it before a deploy (``worker.py --replay-check --since 1h``)
against runs a worker just made; the versioned worker is the one ``build_worker`` makes from
``CUTOVER_DEPLOYMENT_NAME``/``CUTOVER_BUILD_ID``, its version made current with the temporal CLI.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import VersioningBehavior
from temporalio.testing import WorkflowEnvironment

from tests.temporal_env import local_env, venv_binary
from tests.workflows.helpers import activities_for, quick_plan, quick_world, start
from worker import VersioningError, build_worker, deployment_config

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture(scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    async with local_env() as env:
        yield env


def address_of(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


async def temporal_cli(env: WorkflowEnvironment, *args: str) -> subprocess.CompletedProcess[str]:
    command = [venv_binary("temporal"), *args, "--address", address_of(env)]
    return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)


async def test_the_replay_check_passes_on_the_runs_a_worker_just_made(dev_server):
    env = dev_server
    handles, outcomes = [], []
    for name in ("replayed-one", "replayed-two"):  # one after the other: one cutover per record at a time
        queue = f"cutover-{uuid.uuid4().hex[:8]}"
        async with build_worker(env.client, queue, activities_for(env, quick_world())):
            handles.append(await start(env, quick_plan(name), queue))
            outcomes.append(await asyncio.wait_for(handles[-1].result(), 120))
    assert [o.phase for o in outcomes] == ["completed", "completed"]

    check = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "worker.py", "--replay-check", "--since", "1h"],
        cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": address_of(env), "TEMPORAL_NAMESPACE": "default"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    for handle in handles:
        assert any(line.startswith(f"ok    {handle.id} (run ") for line in lines), check.stdout
    assert any(line.startswith("ok    cutover-lock-record-") for line in lines), "the lock children replay too"
    assert "0 failed" in lines[-1]


def test_worker_versioning_needs_both_names():
    assert deployment_config(None, None) is None
    for name, build in (("cutover", None), (None, "b1"), ("cut.over", "b1")):
        with pytest.raises(VersioningError):
            deployment_config(name, build)
    config = deployment_config("cutover", "2026-05-01.1")
    assert config is not None and config.use_worker_versioning
    assert config.version.to_canonical_string() == "cutover.2026-05-01.1"


async def test_a_run_is_pinned_to_the_build_that_started_it(dev_server):
    env = dev_server
    queue = f"cutover-{uuid.uuid4().hex[:8]}"
    deployment_name = f"cutover-{uuid.uuid4().hex[:6]}"
    deployment = deployment_config(deployment_name, "build-1")
    worker = build_worker(env.client, queue, activities_for(env, quick_world()), deployment=deployment)
    async with worker:
        for _ in range(100):  # the version exists once the worker has polled
            made_current = await temporal_cli(
                env, "worker", "deployment", "set-current-version",
                "--deployment-name", deployment_name, "--build-id", "build-1", "--yes",
            )  # fmt: skip
            if made_current.returncode == 0:
                break
            await asyncio.sleep(0.2)
        assert made_current.returncode == 0, made_current.stderr
        handle = await start(env, quick_plan("pinned", flip_gate=True), queue)
        for _ in range(100):
            info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
            if info.behavior != VersioningBehavior.VERSIONING_BEHAVIOR_UNSPECIFIED:
                break
            await asyncio.sleep(0.1)
        described = await temporal_cli(
            env,
            "worker",
            "deployment",
            "describe-version",
            "--deployment-name",
            deployment_name,
            "--build-id",
            "build-1",
        )
        await handle.terminate("test over")
    assert info.behavior == VersioningBehavior.VERSIONING_BEHAVIOR_PINNED
    assert (info.deployment_version.deployment_name, info.deployment_version.build_id) == (deployment_name, "build-1")
    assert described.returncode == 0 and queue in described.stdout, described.stdout + described.stderr
