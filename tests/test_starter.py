"""starter.py as operators run it: a subprocess with a plan file and Temporal settings from env."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest_asyncio
import temporalio.workflow
import yaml
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from cli.approve_digest import digest_for_run
from models.plan import CutoverPlan
from sandbox.bind import BindPair
from tests.conftest import TSIG_ENV, base_plan_data, plan_for_bind
from tests.temporal_env import local_env
from tests.workflows.fake_world import ALIAS, FakeWorld
from tests.workflows.helpers import activities_for, quick_plan, quick_world, start, status_of
from workflows.cutover import STABLE_DIGEST
from workflows.registry import WORKFLOWS

ROOT = Path(__file__).resolve().parents[1]


def starter(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def test_validate_prints_the_digest(tmp_path):
    data = base_plan_data()
    as_yaml, as_json = tmp_path / "plan.yaml", tmp_path / "plan.json"
    as_yaml.write_text(yaml.safe_dump(data))
    as_json.write_text(json.dumps(dict(reversed(list(data.items())))))
    digest = CutoverPlan.model_validate(data).digest()
    for path in (as_yaml, as_json):
        result = starter("validate", str(path))
        assert result.returncode == 0, result.stderr
        assert digest in result.stdout


def test_validate_lists_every_problem_and_exits_2(tmp_path):
    data = base_plan_data()
    data["dns"]["record"] = "example.test."
    data["dns"]["final_ttl"] = 10
    data["dns"]["provider"]["tsig_secret_env"] = "GnWTbplSquw/AX29Dp+isOysGi9valVxnGk6MsCIVQ4="
    data["kong"]["extra"] = 1
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data))
    result = starter("validate", str(path))
    assert result.returncode == 2
    assert "problem(s)" in result.stderr
    for words in ("dns.record", "zone apex", "dns.cutover_ttl", "kong.extra", "never contain the secret"):
        assert words in result.stderr, words
    assert "GnWTbplSquw" not in result.stderr


def test_validate_reports_unreadable_and_malformed_files(tmp_path):
    missing = starter("validate", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = starter("validate", str(broken))
    assert result.returncode == 2 and "not valid JSON" in result.stderr


def file_log_line(ip: str, status: int, started_at: float, service: str = "orders-api") -> str:
    return json.dumps(
        {
            "request": {"method": "GET", "uri": "/orders/v1/x"},
            "response": {"status": status},
            "upstream_status": str(status),
            "tries": [{"ip": ip, "port": 8443}],
            "service": {"name": service},
            "started_at": int(started_at * 1000),
            "latencies": {"kong": 1, "proxy": 2, "request": 3},
        }
    )


def test_traffic_reports_summary_verdict_and_share(bind: BindPair, tmp_path):
    now = time.time()
    log = tmp_path / "file-log.json"
    lines = [file_log_line("127.0.0.2", 200, now - 60 + i * 0.5) for i in range(60)]
    lines += [file_log_line("127.0.0.2", 502, now - 5), "garbage"]
    log.write_text("\n".join(lines) + "\n")
    data = plan_for_bind(bind)
    data["monitor"]["source"] = {"kind": "kong-file-log", "path": str(log)}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data))
    # A read: the worker's TSIG secret is not in this environment, and is not needed.
    result = starter("traffic", str(path), "--since", "10m", env={TSIG_ENV: ""})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["summary"]["requests"] == 61
    assert report["summary"]["parse_failures"] == 1
    assert report["verdict"]["status"] == "unhealthy"
    assert report["addresses"]["target (B)"] == ["127.0.0.3"]
    assert report["share"]["a_requests"] == 61


@pytest_asyncio.fixture(scope="module")
async def dev_server():
    async with local_env() as env:
        yield env


async def run_starter(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(starter, *args, env=env)


async def test_start_status_approve_abort_list(dev_server, tmp_path):
    world = FakeWorld()
    for name in world.records:
        world.records[name] = tuple(r.with_ttl(1) for r in world.records[name])
    data: dict[str, Any] = base_plan_data(name=f"starter-{uuid.uuid4().hex[:6]}")
    # The alias strategy: its rollback is one step (an A record's would wait out Kong's negative cache).
    data["strategy"] = "alias"
    data["dns"].update(record=ALIAS, cutover_ttl=1, wait_margin="0s")
    data["approvals"] = {"flip": True, "decommission": True, "timeout": "1h"}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data))
    queue = f"cutover-{uuid.uuid4().hex[:6]}"
    env = {
        "TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "CUTOVER_TASK_QUEUE": queue,
    }
    workflow_id = f"cutover-{data['name']}"
    async with Worker(
        dev_server.client, task_queue=queue, workflows=WORKFLOWS, activities=activities_for(dev_server, world)
    ):
        started = await run_starter("start", str(path), env=env)
        assert started.returncode == 0, started.stderr
        assert f"started {workflow_id}" in started.stdout
        assert f"/namespaces/default/workflows/{workflow_id}" in started.stdout
        assert "temporal workflow update execute" in started.stdout

        for _ in range(100):
            status = await run_starter("status", workflow_id, "--json", env=env)
            if json.loads(status.stdout)["phase"] == "awaiting-flip-approval":
                break
            await asyncio.sleep(0.2)
        text = await run_starter("status", workflow_id, env=env)
        assert "awaiting approval: flip" in text.stdout

        listed = ""
        for _ in range(50):
            listed = (await run_starter("list", "--phase", "awaiting-flip-approval", env=env)).stdout
            if workflow_id in listed:
                break
            await asyncio.sleep(0.2)
        assert workflow_id in listed

        unconfirmed = await run_starter("approve", workflow_id, "--gate", "flip", "--by", "alice", env=env)
        assert unconfirmed.returncode == 2 and "pass --digest" in unconfirmed.stderr
        digest = json.loads((await run_starter("status", workflow_id, "--json", env=env)).stdout)["plan_digest"]
        wrong = await run_starter(
            "approve", workflow_id, "--gate", "decommission", "--by", "eve", "--digest", digest, env=env
        )
        assert wrong.returncode == 1 and "not awaited" in wrong.stderr
        approved = await run_starter(
            "approve", workflow_id, "--gate", "flip", "--by", "alice", "--plan", str(path), env=env
        )
        assert approved.returncode == 0, approved.stderr
        assert "flip approved by alice" in approved.stdout

        for _ in range(100):
            phase = json.loads((await run_starter("status", workflow_id, "--json", env=env)).stdout)["phase"]
            if phase == "awaiting-decommission-approval":
                break
            await asyncio.sleep(0.2)
        aborted = await run_starter("abort", workflow_id, "--reason", "changed my mind", "--by", "bob", env=env)
        assert aborted.returncode == 0, aborted.stderr
        final = {}
        for _ in range(100):
            final = json.loads((await run_starter("status", workflow_id, "--json", env=env)).stdout)
            if final["phase"] == "rolled-back":
                break
            await asyncio.sleep(0.2)
    assert final["phase"] == "rolled-back"
    assert "aborted by bob: changed my mind" in final["error"]
    assert world.records[ALIAS][0].rdatas == ("a-project.example.test.",), "the alias points at A again"
    assert world.service["host"] == "a-project.example.test", "Kong's Service is restored"


async def test_approve_with_the_plan_file_sends_an_old_runs_legacy_digest(dev_server, tmp_path, monkeypatch):
    """A run started before the stable digest shows (and expects) the legacy one; --plan FILE still approves it.

    The run is made old the way its history makes it old on replay: ``workflow.patched("stable-digest")``
    answers False. The workflow runs unsandboxed so the test can say so.
    """
    unpatched = temporalio.workflow.patched
    monkeypatch.setattr(temporalio.workflow, "patched", lambda patch: patch != STABLE_DIGEST and unpatched(patch))
    world = quick_world()
    plan = quick_plan(f"legacy-{uuid.uuid4().hex[:6]}", flip_gate=True)
    assert plan.legacy_digest() != plan.digest()
    path = tmp_path / "plan.json"
    path.write_text(plan.model_dump_json(exclude_defaults=True))
    queue = f"cutover-{uuid.uuid4().hex[:6]}"
    env = {"TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host, "CUTOVER_TASK_QUEUE": queue}
    async with Worker(
        dev_server.client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=activities_for(dev_server, world),
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await start(dev_server, plan, queue)
        for _ in range(200):
            status = await status_of(handle)
            if status.phase == "awaiting-flip-approval":
                break
            await asyncio.sleep(0.1)
        assert status.phase == "awaiting-flip-approval", status.error
        assert status.plan_digest == plan.legacy_digest(), "an old run's digest"
        approved = await run_starter(
            "approve", handle.id, "--gate", "flip", "--by", "alice", "--plan", str(path), env=env
        )
        await handle.terminate("test over")
    assert approved.returncode == 0, approved.stderr
    assert "flip approved by alice" in approved.stdout
    assert f"approving its digest {plan.legacy_digest()}" in approved.stderr


def test_the_digest_sent_is_always_one_of_the_plans_own():
    plan = quick_plan("digests")
    assert digest_for_run(plan, plan.digest()) == plan.digest()
    assert digest_for_run(plan, plan.legacy_digest()) == plan.legacy_digest()
    assert digest_for_run(plan, None) == plan.digest(), "no answer: the stable digest"
    assert digest_for_run(plan, "f" * 64) == plan.digest(), "another plan's run rejects it, naming its digest"
