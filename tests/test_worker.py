"""The worker process: search-attribute check, registration, metrics, graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
import pytest_asyncio
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from sandbox.free_ports import free_port, free_tcp_port
from tests.temporal_env import venv_binary
from worker import MissingSearchAttributes, build_activities, ensure_search_attributes
from workflows import activity_refs

ROOT = Path(__file__).resolve().parents[1]


@pytest_asyncio.fixture
async def bare_server() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server without cutover's search attributes, as a fresh cluster would be."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=venv_binary("temporal"),
        port=free_tcp_port(),
        dev_server_extra_args=["--log-level", "error"],
    )
    yield env
    await env.shutdown()
    await asyncio.sleep(0.3)


async def test_missing_search_attributes_say_exactly_what_to_run(bare_server):
    with pytest.raises(MissingSearchAttributes) as info:
        await ensure_search_attributes(bare_server.client, "default", register=False)
    message = str(info.value)
    assert all(name in message for name in ("CutoverPhase", "CutoverRecord", "CampaignName", "CampaignWave"))
    assert "temporal server start-dev --search-attribute CutoverPhase=Keyword" in message
    assert (
        "temporal operator search-attribute create --name CutoverPhase --name CutoverRecord --name CampaignName "
        "--name CampaignWave --type Keyword" in message
    )


async def test_register_creates_them(bare_server):
    await ensure_search_attributes(bare_server.client, "default", register=True)
    listed = await bare_server.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    assert {"CutoverPhase", "CutoverRecord", "CampaignName", "CampaignWave"} <= set(listed.custom_attributes)
    await ensure_search_attributes(bare_server.client, "default", register=False)


def test_every_activity_the_workflow_calls_is_registered():
    """The workflow calls activities only through workflows.activity_refs, which covers the worker's set."""
    registered = {fn.__temporal_activity_definition.name for fn in build_activities(cast(Client, None))}  # type: ignore[attr-defined]
    referenced = {value.name for value in vars(activity_refs).values() if isinstance(value, activity_refs.ActivityRef)}
    assert referenced == registered
    sources = "\n".join(path.read_text() for path in (ROOT / "workflows").rglob("*.py"))
    assert 'execute_activity("' not in sources, "call activities through workflows.activity_refs, not by name"


def test_the_worker_refuses_to_start_without_a_policy_or_with_a_bad_one(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "CUTOVER_POLICY"}
    env["TEMPORAL_ADDRESS"] = "127.0.0.1:1"  # never reached: the policy is checked first

    def worker(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "worker.py", *args],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    missing = worker()
    assert missing.returncode == 2 and "no worker policy" in missing.stderr and "CUTOVER_POLICY=dev" in missing.stderr
    bad = tmp_path / "policy.yaml"
    bad.write_text("network:\n  allow_loopback: yes please\nsecrets:\n  'bad name': {}\nbogus: 1\n")
    refused = worker("--policy", str(bad))
    assert refused.returncode == 2 and "3 problem(s)" in refused.stderr, refused.stderr
    for words in ("network.allow_loopback", "secrets.bad name", "bogus"):
        assert words in refused.stderr
    assert "Traceback" not in refused.stderr
    duplicate = tmp_path / "dup.yaml"
    duplicate.write_text("network: {}\nnetwork: {}\n")
    assert "duplicate key" in worker(CUTOVER_POLICY=str(duplicate)).stderr
    half_versioned = worker("--policy", "dev", CUTOVER_BUILD_ID="2026-05-01.1")
    assert half_versioned.returncode == 2
    assert "a build id without a deployment name: set CUTOVER_DEPLOYMENT_NAME" in half_versioned.stderr


async def test_worker_process_checks_serves_metrics_and_stops_on_sigterm(bare_server):
    address = bare_server.client.service_client.config.target_host
    env = {**os.environ, "TEMPORAL_ADDRESS": address, "CUTOVER_POLICY": "dev"}
    refused = await asyncio.to_thread(
        subprocess.run, [sys.executable, "worker.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert "lacks the search attributes" in refused.stderr

    metrics_port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "worker.py",
            "--register-search-attributes",
            "--metrics",
            f"127.0.0.1:{metrics_port}",
            "--otel",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        body = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=1) as response:
                    body = response.read().decode()
                    break
            except OSError:
                await asyncio.sleep(0.2)
        assert body, "the SDK metrics endpoint answers"
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "worker polling task queue cutover" in output
    assert "Worker Versioning off (CUTOVER_DEPLOYMENT_NAME and CUTOVER_BUILD_ID not set)" in output
    assert "OpenTelemetry tracing off: no tracer provider is configured" in output
    assert "shutting down" in output
