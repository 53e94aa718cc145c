"""CutoverWorkflow against the real outside world, on the time-skipping server.

Real BIND primary + secondary, the Kong emulator's Admin API, runtime B over HTTPS with a trustme
certificate, the real DNS, Kong, readiness, decommission and notify activities. Only the telemetry
activities are scripted (traffic behaviour is proven end to end in tests/e2e). Hour-long TTLs pass
in seconds; after every abort the records are read back from both nameservers with plain dnspython
and the Kong Service from the emulator's Admin API.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.decommission import DecommissionActivities
from activities.dns import DnsActivities
from activities.kong import KongActivities
from activities.locks import LockActivities
from activities.notify import NotifyActivities
from activities.policy import PolicyActivities
from activities.readiness import ReadinessActivities
from models.plan import CutoverPlan
from models.telemetry import (
    BaselineInput,
    DrainInput,
    DrainProof,
    MonitorInput,
    MonitorResult,
    WindowSummary,
)
from models.workflow import AbortRequest, ApproveRequest, CutoverStatus
from providers.secrets import EnvSecrets
from sandbox.bind import BindPair, bind_pair
from sandbox.kong.emulator import running_emulator
from sandbox.pki import issue
from sandbox.runtime import running_runtime
from tests.conftest import TSIG_ENV, base_plan_data
from tests.workflows.fake_world import judged
from tests.workflows.helpers import until_phase
from workflows.cutover import CutoverWorkflow
from workflows.registry import WORKFLOWS

HOUR_RECORDS = """\
ns1         A     127.0.0.1
ns2         A     127.0.0.1
a-project   3600  A 127.0.0.2
b-project   3600  A 127.0.0.3
origin-api  3600  CNAME a-project
"""


@dataclass
class World:
    """Everything one test runs against."""

    bind: BindPair
    kong_admin: str
    runtime_port: int
    runtime_a_port: int
    ca: Path
    notifications: list[dict[str, Any]]
    notify_url: str

    def answers(self, name: str) -> list[list[tuple[str, int, tuple[str, ...]]]]:
        """(type, ttl, rdatas) at ``name`` on each nameserver, asked without recursion."""
        views = []
        for server in (self.bind.primary, self.bind.secondary):
            query = dns.message.make_query(name, dns.rdatatype.ANY)
            query.flags &= ~dns.flags.RD
            response = dns.query.tcp(query, "127.0.0.1", port=server.port, timeout=2)
            views.append(
                sorted(
                    (dns.rdatatype.to_text(rrset.rdtype), rrset.ttl, tuple(sorted(r.to_text() for r in rrset)))
                    for rrset in response.answer
                )
            )
        return views

    def in_sync(self, name: str, expected: list[tuple[str, int, tuple[str, ...]]]) -> None:
        """Both nameservers answer exactly ``expected`` (after NOTIFY/IXFR settle)."""
        self.bind.wait_in_sync()
        assert self.answers(name) == [expected, expected]

    async def service(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.kong_admin}/services/orders-api")
            response.raise_for_status()
            return dict(response.json())


@pytest_asyncio.fixture
async def world(tmp_path, monkeypatch) -> AsyncIterator[World]:
    pki = issue(tmp_path / "pki")
    notifications: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        notifications.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    notify_url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    with bind_pair(records=HOUR_RECORDS) as pair:
        monkeypatch.setenv(TSIG_ENV, pair.secret)
        monkeypatch.setenv("CUTOVER_NOTIFY_WEBHOOK", notify_url)
        async with (
            running_runtime(
                "A",
                host="127.0.0.2",
                hosts=["a-project.example.test", "origin-api.example.test"],
                cert=pki.certs["A"].cert,
                key=pki.certs["A"].key,
            ) as runtime_a,
            running_runtime(
                "B",
                host="127.0.0.3",
                hosts=["b-project.example.test", "a-project.example.test", "origin-api.example.test"],
                cert=pki.certs["B"].cert,
                key=pki.certs["B"].key,
            ) as runtime,
        ):
            config = {
                "_format_version": "3.0",
                "services": [
                    {
                        "name": "orders-api",
                        "protocol": "https",
                        "host": "a-project.example.test",
                        "port": runtime.port,
                        "path": "/orders/v1",
                        "routes": [{"name": "orders", "paths": ["/orders/v1"]}],
                    }
                ],
            }
            async with running_emulator(config=config, proxy=None, dns=("127.0.0.1", pair.primary.port)) as kong:
                yield World(pair, kong.admin_url, runtime.port, runtime_a.port, pki.ca, notifications, notify_url)
    await runner.cleanup()


def plan_for(world: World, strategy: str, *, flip_gate: bool = True, decommission_gate: bool = True) -> CutoverPlan:
    data = base_plan_data()
    data["strategy"] = strategy
    data["dns"]["provider"]["server"] = world.bind.primary.address
    data["dns"]["nameservers"] = world.bind.nameservers
    data["dns"]["record"] = "origin-api.example.test." if strategy == "alias" else "a-project.example.test."
    data["kong"]["admin_url"] = world.kong_admin
    data["readiness"] = {
        "url": f"https://127.0.0.3:{world.runtime_port}/orders/v1/health",
        "parity_url": f"https://127.0.0.2:{world.runtime_a_port}/orders/v1/health",
        "ca_bundle": str(world.ca),
        "successes": 2,
        "interval": "100ms",
        "timeout": "20s",
    }
    data["approvals"] = {"flip": flip_gate, "decommission": decommission_gate, "timeout": "2h"}
    data["notify"] = {"webhook_env": "CUTOVER_NOTIFY_WEBHOOK"}
    return CutoverPlan.model_validate(data)


class ScriptedTraffic:
    """The three telemetry activities, answering from a script instead of logs."""

    def __init__(self) -> None:
        self.verdict = "healthy"
        self.monitoring = asyncio.Event()

    def activities(self) -> list[Any]:
        script = self

        @activity.defn(name="traffic_baseline")
        async def baseline(input: BaselineInput) -> WindowSummary:
            return WindowSummary(source="script", requests=500, requests_per_ip={"127.0.0.2": 500})

        @activity.defn(name="traffic_monitor")
        async def monitor(input: MonitorInput) -> MonitorResult:
            script.monitoring.set()
            if script.verdict == "hold":
                while True:
                    activity.heartbeat("watching")
                    await asyncio.sleep(0.1)
            errors = 60 if script.verdict == "unhealthy" else 0
            summary = WindowSummary(
                source="script", requests=300, upstream_errors=errors, requests_per_ip={"127.0.0.3": 300}
            )
            return MonitorResult(verdict=judged(summary, input), polls=3, stopped_early=errors > 0)

        @activity.defn(name="traffic_prove_drained")
        async def drained(input: DrainInput) -> DrainProof:
            return DrainProof(drained=True, reason="no request to A", quiet_period_seconds=input.quiet_period_seconds)

        return [baseline, monitor, drained]


def real_activities(script: ScriptedTraffic) -> list[Any]:
    secrets = EnvSecrets()
    groups: list[Any] = [
        PolicyActivities(secrets=secrets),
        DnsActivities(secrets=secrets),
        KongActivities(secrets=secrets),
        ReadinessActivities(),
        DecommissionActivities(secrets=secrets),
        NotifyActivities(secrets=secrets),
    ]
    return [fn for group in groups for fn in group.activities()] + script.activities()


async def start(env, plan: CutoverPlan, script: ScriptedTraffic, queue: str) -> WorkflowHandle:
    return await env.client.start_workflow(
        CutoverWorkflow.run, plan, id=f"cutover-{uuid.uuid4()}", task_queue=queue, result_type=CutoverStatus
    )


def worker(env, queue: str, script: ScriptedTraffic) -> Worker:
    return Worker(
        env.client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=[*real_activities(script), *LockActivities(env.client).activities()],
        max_heartbeat_throttle_interval=timedelta(seconds=1),
    )


ORIGINAL = {
    "cname": ("a-project.example.test.", [("A", 3600, ("127.0.0.2",))]),
    "alias": ("origin-api.example.test.", [("CNAME", 3600, ("a-project.example.test.",))]),
}


@pytest.mark.parametrize("strategy", ["cname", "alias"])
async def test_happy_path_with_hour_long_ttls(ts_env, world, strategy):
    script = ScriptedTraffic()
    plan = plan_for(world, strategy)
    queue = str(uuid.uuid4())
    async with worker(ts_env, queue, script):
        handle = await start(ts_env, plan, script, queue)
        for gate in ("flip", "decommission"):
            await until_phase(ts_env, handle, f"awaiting-{gate}-approval")
            await handle.execute_update("approve", ApproveRequest(gate=gate, by="alice", digest=plan.digest()))
        status = await asyncio.wait_for(handle.result(), timeout=60)
    record = plan.dns.record
    assert status.phase == "completed"
    world.in_sync(record, [("CNAME", 300, ("b-project.example.test.",))])
    service = await world.service()
    assert service["host"] == ("origin-api.example.test" if strategy == "alias" else "a-project.example.test")
    lowering = [w for w in status.waits if w.phase == "lowering-ttl"]
    assert lowering[0].seconds == 3600 + 5, "waited the old TTL as observed on the nameservers"
    assert any(w.phase == "draining" for w in status.waits)
    assert [n["event"] for n in world.notifications] == ["gate-flip", "flipped", "gate-decommission", "completed"]
    assert all(world.notify_url not in json.dumps(n) for n in world.notifications)


ABORTS = [
    ("cname", "lowering-ttl", True),
    ("cname", "awaiting-flip-approval", False),
    ("cname", "draining", True),
    ("cname", "monitoring", False),
    ("cname", "awaiting-decommission-approval", False),
    ("alias", "repointing", True),
    ("alias", "lowering-ttl", True),
    ("alias", "awaiting-flip-approval", False),
    ("alias", "draining", True),
    ("alias", "awaiting-decommission-approval", False),
]


@pytest.mark.parametrize(("strategy", "phase", "in_timer"), ABORTS)
async def test_abort_restores_bind_and_kong(ts_env, world, strategy, phase, in_timer):
    script = ScriptedTraffic()
    if phase == "monitoring":
        script.verdict = "hold"
    plan = plan_for(world, strategy)
    queue = str(uuid.uuid4())
    service_before = await world.service()
    async with worker(ts_env, queue, script):
        handle = await start(ts_env, plan, script, queue)
        if phase in ("draining", "monitoring", "awaiting-decommission-approval"):
            await until_phase(ts_env, handle, "awaiting-flip-approval")
            await handle.execute_update("approve", ApproveRequest(gate="flip", by="alice", digest=plan.digest()))
        await until_phase(ts_env, handle, phase, waiting=in_timer)
        if phase == "monitoring":
            await script.monitoring.wait()
        await handle.execute_update("abort", AbortRequest(by="oncall", reason=f"abort in {phase}"))
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), timeout=60)
        status = await handle.query("status", result_type=CutoverStatus)
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == "CutoverRolledBack"
    assert status.phase == "rolled-back"
    assert status.compensations and all(c.state == "done" for c in status.compensations)
    record, original = ORIGINAL[strategy]
    world.in_sync(record, original)
    service_after = await world.service()
    assert service_after["host"] == service_before["host"] == "a-project.example.test"
    assert {k: v for k, v in service_after.items() if k != "updated_at"} == {
        k: v for k, v in service_before.items() if k != "updated_at"
    }
    assert world.notifications[-1]["event"] == "rolled-back"


async def test_unhealthy_verdict_rolls_back_the_real_record(ts_env, world):
    script = ScriptedTraffic()
    script.verdict = "unhealthy"
    plan = plan_for(world, "cname", flip_gate=False, decommission_gate=False)
    queue = str(uuid.uuid4())
    async with worker(ts_env, queue, script):
        handle = await start(ts_env, plan, script, queue)
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), timeout=60)
        status = await handle.query("status", result_type=CutoverStatus)
    assert "B is unhealthy behind Kong" in str(failure.value.cause)
    assert status.last_verdict is not None and status.last_verdict.error_ratio == pytest.approx(0.2)
    world.in_sync("a-project.example.test.", [("A", 3600, ("127.0.0.2",))])


def history_text(history: Any) -> str:
    """The history as text with every payload decoded (payload data is base64 in the JSON form)."""
    parts = [json.dumps(history)]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, str) and "metadata" in node:
                parts.append(base64.b64decode(data).decode(errors="replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(history)
    return "\n".join(parts)


async def test_no_secret_in_history(ts_env, world):
    script = ScriptedTraffic()
    plan = plan_for(world, "alias", flip_gate=False, decommission_gate=False)
    queue = str(uuid.uuid4())
    async with worker(ts_env, queue, script):
        handle = await start(ts_env, plan, script, queue)
        await asyncio.wait_for(handle.result(), timeout=60)
        history = await handle.fetch_history()
    text = history_text(history.to_json_dict())
    assert "update-key" in text, "payloads were decoded (the TSIG key name is in the plan)"
    assert world.bind.secret not in text, "the TSIG secret never reaches Temporal"
    assert world.notify_url not in text, "the webhook URL (a secret) never reaches Temporal"
    assert TSIG_ENV in text, "only the variable's name travels"


async def test_b_certificate_without_the_old_name_is_refused(ts_env, world, tmp_path):
    script = ScriptedTraffic()
    narrow = issue(tmp_path / "narrow", {"B": ("b-project.example.test",)})
    plan = plan_for(world, "cname")
    async with running_runtime(
        "B2",
        host="127.0.0.3",
        hosts=["b-project.example.test", "a-project.example.test"],
        cert=narrow.certs["B"].cert,
        key=narrow.certs["B"].key,
    ) as narrow_b:
        readiness = plan.readiness.model_copy(
            update={"url": f"https://127.0.0.3:{narrow_b.port}/orders/v1/health", "ca_bundle": str(narrow.ca)}
        )
        plan = plan.model_copy(update={"readiness": readiness})
        queue = str(uuid.uuid4())
        async with worker(ts_env, queue, script):
            handle = await start(ts_env, plan, script, queue)
            with pytest.raises(WorkflowFailureError) as failure:
                await asyncio.wait_for(handle.result(), timeout=60)
    message = str(failure.value.cause)
    assert "B is not ready" in message and "a-project.example.test" in message
    world.in_sync("a-project.example.test.", [("A", 3600, ("127.0.0.2",))])
