"""Hostile plans against the real outside world: refused in verifying, BIND and the Kong emulator untouched.

Real BIND primary + secondary, the Kong emulator's Admin API, runtimes A and B over HTTPS, the real
activities under a worker policy (tests/workflows/test_real_world.py's world). Each hostile plan is
started for real (not a dry run): the run must end refused, naming the rule, with every record on
both nameservers and the Kong Service exactly as before. The same plan under a policy that allows it
runs its dry run through verifying to ``planned``. A last test bypasses ``policy_check`` and calls
the change activities directly: the providers refuse on their own (defense in depth).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.dns import DnsActivities
from activities.kong import KongActivities
from models.dns import ApplyInput, DnsChange, RRset
from models.kong import KongInspectInput, RepointInput
from models.plan import CutoverPlan
from models.policy import WorkerPolicy
from models.workflow import CutoverStatus
from providers.secrets import EnvSecrets
from tests.conftest import TSIG_ENV
from tests.workflows.test_real_world import ScriptedTraffic, World, plan_for
from worker import build_activities
from workflows.cutover import CutoverWorkflow
from workflows.registry import WORKFLOWS

Edit = Callable[[dict[str, Any], World], None]


def world_policy(world: World, **overrides: Any) -> dict[str, Any]:
    """A policy allowing exactly this world: its BIND pair, its emulator, A and B; the TSIG key to the primary."""
    runtime_b = f"https://127.0.0.3:{world.runtime_port}/orders/"
    runtime_a = f"https://127.0.0.2:{world.runtime_a_port}/orders/"
    data: dict[str, Any] = {
        "name": "real-world",
        "network": {"allow_loopback": True},
        "endpoints": {
            "kong_admin": [world.kong_admin],
            "dns_servers": [world.bind.primary.address],
            "nameservers": world.bind.nameservers,
            "readiness": [runtime_b, runtime_a],
            "webhook": ["https://decom.example.test/"],
            "notify": [world.notify_url],
        },
        "secrets": {
            TSIG_ENV: {"dns_server": [world.bind.primary.address]},
            "CUTOVER_NOTIFY_WEBHOOK": {"notify": [world.notify_url]},
        },
        "gcp_projects": {"deletable": ["a-project-123"]},
    }
    for path, value in overrides.items():
        *parents, last = path.split("__")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return data


def token_is_the_tsig_secret(data: dict[str, Any], world: World) -> None:
    data["kong"]["token_env"] = TSIG_ENV


def readiness_at_the_kong_admin_api(data: dict[str, Any], world: World) -> None:
    data["readiness"]["url"] = world.kong_admin + "/"


def readiness_at_the_metadata_server(data: dict[str, Any], world: World) -> None:
    data["readiness"]["url"] = "http://169.254.169.254/computeMetadata/v1/"


def gcp_project_without_the_flip_gate(data: dict[str, Any], world: World) -> None:
    data["approvals"]["flip"] = False
    data["decommission"] = {"kind": "gcp-project", "project_id": "a-project-123"}


def plan_as_is(data: dict[str, Any], world: World) -> None:
    """The plan is fine: the policy is what refuses it."""


def webhook_sends_the_tsig_secret(data: dict[str, Any], world: World) -> None:
    data["decommission"] = {
        "kind": "webhook",
        "url": "https://decom.example.test/projects/a",
        "headers_env": {"Authorization": TSIG_ENV},
    }


HOSTILE: list[tuple[Edit, dict[str, Any], str, Callable[[World], dict[str, Any]] | None]] = [
    # (plan edit, policy overrides, the rule named, a policy that allows the plan)
    (
        token_is_the_tsig_secret,
        {},
        "secrets.binding",
        lambda w: {f"secrets__{TSIG_ENV}": {"dns_server": [w.bind.primary.address], "kong_admin": [w.kong_admin]}},
    ),
    (
        readiness_at_the_kong_admin_api,
        {},
        "endpoints.readiness",
        lambda w: {"endpoints__readiness": [w.kong_admin + "/", f"https://127.0.0.2:{w.runtime_a_port}/orders/"]},
    ),
    (readiness_at_the_metadata_server, {}, "network.metadata", None),
    (gcp_project_without_the_flip_gate, {}, "destructive.force_approvals", None),
    (webhook_sends_the_tsig_secret, {}, "secrets.binding", None),
    (plan_as_is, {"endpoints__kong_admin": ["http://127.0.0.1:1"]}, "endpoints.kong_admin", None),
    (plan_as_is, {f"secrets__{TSIG_ENV}": {"dns_server": ["10.0.0.53:53"]}}, "secrets.binding", None),
]


async def run_plan(env: Any, plan: CutoverPlan, policy: WorkerPolicy) -> CutoverStatus | BaseException:
    """Run ``plan`` with the worker's real activities under ``policy`` (telemetry scripted)."""
    queue = str(uuid.uuid4())
    activities = build_activities(env.client, EnvSecrets(policy=policy))
    names = {"traffic_baseline", "traffic_monitor", "traffic_prove_drained"}
    activities = [a for a in activities if a.__temporal_activity_definition.name not in names]  # type: ignore[attr-defined]
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=activities + ScriptedTraffic().activities(),
    ):
        handle = await env.client.start_workflow(
            CutoverWorkflow.run, plan, id=f"cutover-{uuid.uuid4()}", task_queue=queue, result_type=CutoverStatus
        )
        try:
            return await asyncio.wait_for(handle.result(), timeout=60)
        except WorkflowFailureError as exc:
            return exc


@pytest.mark.parametrize(
    ("edit", "overrides", "rule", "allowing"), HOSTILE, ids=[f"{row[0].__name__}-{row[2]}" for row in HOSTILE]
)
async def test_refused_in_verifying_and_nothing_changed(ts_env, world, edit, overrides, rule, allowing):
    plan_data = plan_for(world, "cname").model_dump(mode="json")
    edit(plan_data, world)
    plan = CutoverPlan.model_validate(plan_data)
    record_before = world.answers(plan.dns.record)
    service_before = await world.service()

    outcome = await run_plan(ts_env, plan, WorkerPolicy.model_validate(world_policy(world, **overrides)))

    assert isinstance(outcome, WorkflowFailureError), outcome
    assert "refused before any change: the worker policy (real-world) refuses this plan" in str(outcome.cause)
    assert f"(rule {rule})" in str(outcome.cause)
    assert world.answers(plan.dns.record) == record_before, "BIND unchanged"
    assert await world.service() == service_before, "the Kong Service unchanged"
    assert world.bind.serial() == world.bind.serial(world.bind.secondary)

    if allowing is not None:
        dry_run = plan.model_copy(update={"dry_run": True})
        allowed = WorkerPolicy.model_validate(world_policy(world, **{**overrides, **allowing(world)}))
        status = await run_plan(ts_env, dry_run, allowed)
        assert isinstance(status, CutoverStatus) and status.phase == "planned", status
        assert world.answers(plan.dns.record) == record_before


async def test_bypassing_policy_check_the_providers_refuse_at_use(world, monkeypatch):
    """Defense in depth: the change activities called directly still refuse what the policy forbids."""
    policy = WorkerPolicy.model_validate(
        world_policy(world, **{f"secrets__{TSIG_ENV}": {"dns_server": ["10.0.0.53:53"]}})
    )
    secrets = EnvSecrets(policy=policy)
    plan = plan_for(world, "cname")
    record_before = world.answers(plan.dns.record)
    change = DnsChange(
        name=plan.dns.record,
        expected=(RRset(name=plan.dns.record, type="A", ttl=3600, rdatas=("127.0.0.2",)),),
        desired=(RRset(name=plan.dns.record, type="CNAME", ttl=30, rdatas=(plan.dns.target,)),),
        reason="hostile",
    )
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as refused:
        await env.run(DnsActivities(secrets=secrets).apply, ApplyInput(dns=plan.dns, change=change))
    assert (refused.value.type, refused.value.non_retryable) == ("PolicyViolation", True)
    assert "may not be sent to" in refused.value.message and world.bind.secret not in refused.value.message
    assert world.answers(plan.dns.record) == record_before

    service_before = await world.service()
    hostile_kong = plan.kong.model_copy(update={"token_env": TSIG_ENV})
    kong = KongActivities(secrets=secrets)
    with pytest.raises(ApplicationError) as refused_kong:
        await env.run(
            kong.inspect,
            KongInspectInput(kong=hostile_kong, strategy="cname", record=plan.dns.record, target=plan.dns.target),
        )
    assert refused_kong.value.type == "PolicyViolation" and "not to kong_admin" in refused_kong.value.message
    inspection_plan = plan.kong
    inspection = await env.run(
        KongActivities(secrets=EnvSecrets(policy=policy)).inspect,
        KongInspectInput(kong=inspection_plan, strategy="cname", record=plan.dns.record, target=plan.dns.target),
    )
    with pytest.raises(ApplicationError):
        await env.run(
            kong.repoint_service,
            RepointInput(kong=hostile_kong, expected=inspection.service, new_host="attacker.example."),
        )
    assert await world.service() == service_before
