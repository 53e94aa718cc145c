"""The decommission activities in Temporal's ActivityEnvironment, against the local Resource Manager."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import google.oauth2.credentials
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.decommission import DecommissionActivities
from models.decommission import DecommissionInput
from models.policy import WorkerPolicy
from models.telemetry import DrainProof
from providers.secrets import EnvSecrets
from tests.fakes.resource_manager import ResourceManagerFake
from tests.telemetry.kong_lines import A_IP, B_IP, ago, kong_line

A_PROJECT = "a-project-123"
WORKFLOW_ID = "cutover-orders-api"
RM = "cloudresourcemanager."


@pytest.fixture
def drained_log(tmp_path) -> str:
    """Kong's file-log: B served requests in the last seconds, A nothing for far longer than quiet_period."""
    path = tmp_path / "file-log.json"
    lines = [kong_line(at=ago(1200), tries=[(A_IP, None)])] + [kong_line(at=ago(20 - i)) for i in range(10)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def monitor(path: str) -> dict[str, Any]:
    return {"source": {"kind": "kong-file-log", "path": path}}


@pytest.fixture
async def fake() -> AsyncIterator[ResourceManagerFake]:
    async with ResourceManagerFake() as server:
        server.add_project(A_PROJECT)
        yield server


def activities() -> DecommissionActivities:
    return DecommissionActivities(
        secrets=EnvSecrets({}), credentials=google.oauth2.credentials.Credentials(token="test-access-token")
    )


def gcp_input(
    fake: ResourceManagerFake, proof: DrainProof | None = None, log: str | None = None, **section: Any
) -> DecommissionInput:
    return DecommissionInput.model_validate(
        {
            "decommission": {
                "kind": "gcp-project",
                "project_id": A_PROJECT,
                "api_endpoint": fake.endpoint,
                "quiet_period": "10m",
                **section,
            },
            "workflow_id": WORKFLOW_ID,
            "dns_project": "dns-project-789",
            "drain_proof": proof.model_dump(mode="json") if proof else None,
            "monitor": monitor(log) if log else None,
            "a_addresses": [A_IP],
            "b_addresses": [B_IP],
        }
    )


def proof(drained: bool = True, quiet: float = 600) -> DrainProof:
    return DrainProof(
        drained=drained,
        reason="A received no request in the last 10m" if drained else "A still received 3 request(s)",
        quiet_period_seconds=quiet,
        a_requests=0 if drained else 3,
        b_requests=420,
        total_requests=420,
    )


async def run(method: Any, input: DecommissionInput, heartbeats: list[Any] | None = None) -> Any:
    env = ActivityEnvironment()
    if heartbeats is not None:
        env.on_heartbeat = lambda *details: heartbeats.append(details)
    return await env.run(method, input)


def write_log(tmp_path, *lines: str) -> str:
    path = tmp_path / "file-log.json"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("handed-in proof", "computes itself, and this run passed no traffic source"),
        ("A via another service", "A is not proven drained (every Kong service counted): A (10.10.0.1) still"),
        ("silence", "silence proves nothing"),
        ("no A addresses", "A's addresses are not known"),
    ],
)
async def test_delete_refuses_unless_it_proves_a_drained_itself(
    fake: ResourceManagerFake, tmp_path, case: str, why: str
) -> None:
    b_traffic = [kong_line(at=ago(20 - i)) for i in range(10)]
    if case == "handed-in proof":
        # A proof computed elsewhere (even one saying "drained") is not enough for a destructive kind.
        input = gcp_input(fake, proof())
    elif case == "A via another service":
        # The monitored Service is drained, but another Kong Service still sends requests to A's address.
        log = write_log(tmp_path, *b_traffic, kong_line(at=ago(5), tries=[(A_IP, None)], service="legacy-api"))
        input = gcp_input(fake, log=log)
    elif case == "silence":
        input = gcp_input(fake, log=write_log(tmp_path, kong_line(at=ago(1200), tries=[(A_IP, None)])))
    else:
        input = gcp_input(fake, log=write_log(tmp_path, *b_traffic)).model_copy(update={"a_addresses": ()})
    with pytest.raises(ApplicationError) as raised:
        await run(activities().delete, input)
    assert raised.value.type == "DecommissionRefused"
    assert raised.value.non_retryable
    assert why in raised.value.message
    assert fake.calls == []
    assert fake.projects[A_PROJECT].state == "ACTIVE"


async def test_delete_proves_a_drained_itself_then_undo(fake: ResourceManagerFake, drained_log: str) -> None:
    heartbeats: list[Any] = []
    input = gcp_input(fake, log=drained_log)
    preflight = await run(activities().preflight, input)
    assert preflight.ok and preflight.reversible

    result = await run(activities().delete, input, heartbeats)
    assert result.state == "DELETE_REQUESTED"
    assert result.drain_proof is not None and result.drain_proof.drained and result.drain_proof.b_requests == 10
    assert fake.projects[A_PROJECT].state == "DELETE_REQUESTED"
    assert heartbeats

    restored = await run(activities().undo, input)
    assert restored.state == "ACTIVE"
    assert fake.projects[A_PROJECT].state == "ACTIVE"


async def test_require_drained_false_is_refused_for_a_destructive_kind_unless_the_policy_relaxes_it(
    fake: ResourceManagerFake,
) -> None:
    input = gcp_input(fake, None, require_drained=False)
    with pytest.raises(ApplicationError) as raised:
        await run(activities().delete, input)
    assert raised.value.type == "DecommissionRefused" and fake.projects[A_PROJECT].state == "ACTIVE"
    relaxed = WorkerPolicy.model_validate(
        {
            "destructive": {"force_require_drained": False},
            "gcp_projects": {"deletable": [A_PROJECT]},
            "network": {"allow_loopback": True},
            "endpoints": {"google": {"resource_manager": fake.endpoint}},
        }
    )
    decommission = DecommissionActivities(
        secrets=EnvSecrets({}, relaxed), credentials=google.oauth2.credentials.Credentials(token="t")
    )
    result = await run(decommission.delete, input)
    assert result.state == "DELETE_REQUESTED"


async def test_a_handed_in_proof_still_serves_a_kind_the_policy_does_not_call_destructive(tmp_path) -> None:
    input = DecommissionInput.model_validate(
        {
            "decommission": {"kind": "webhook", "url": "http://127.0.0.1:9/x", "quiet_period": "10m"},
            "workflow_id": WORKFLOW_ID,
            "drain_proof": proof(drained=False).model_dump(mode="json"),
        }
    )
    with pytest.raises(ApplicationError) as raised:
        await run(activities().delete, input)
    assert "A is not proven drained: A still received 3 request" in raised.value.message


@pytest.mark.parametrize(
    ("policy", "labels", "allowed"),
    [
        ({"deletable": [A_PROJECT]}, {}, True),
        ({"require_label": "cutover-deletable=true"}, {"cutover-deletable": "true"}, True),
        ({"require_label": "cutover-deletable=true"}, {"cutover-deletable": "false"}, False),
        ({"deletable": ["another-project-1"]}, {}, False),
        ({"deletable": [A_PROJECT], "protected": [A_PROJECT]}, {}, False),
    ],
)
async def test_the_worker_policy_decides_which_projects_may_be_deleted(
    drained_log: str, policy: dict[str, Any], labels: dict[str, str], allowed: bool
) -> None:
    async with ResourceManagerFake() as fake:
        fake.add_project(A_PROJECT, labels=labels)
        worker_policy = WorkerPolicy.model_validate(
            {
                "gcp_projects": policy,
                "endpoints": {"google": {"resource_manager": fake.endpoint}},
                "network": {"allow_loopback": True},
            }
        )
        decommission = DecommissionActivities(
            secrets=EnvSecrets({}, worker_policy), credentials=google.oauth2.credentials.Credentials(token="t")
        )
        input = gcp_input(fake, log=drained_log)
        preflight = await run(decommission.preflight, input)
        assert preflight.ok is allowed, preflight.problems
        if allowed:
            assert (await run(decommission.delete, input)).state == "DELETE_REQUESTED"
        else:
            with pytest.raises(ApplicationError) as raised:
                await run(decommission.delete, input)
            assert raised.value.type == "DecommissionRefused"
            assert fake.projects[A_PROJECT].state == "ACTIVE"


async def test_none_never_needs_a_proof() -> None:
    input = DecommissionInput.model_validate({"decommission": {"kind": "none"}, "workflow_id": WORKFLOW_ID})
    result = await run(activities().delete, input)
    assert (result.state, result.done) == ("left in place", True)


async def test_protected_project_error_is_not_retryable(fake: ResourceManagerFake, drained_log: str) -> None:
    input = gcp_input(fake, log=drained_log, protected_projects=[A_PROJECT])
    preflight = await run(activities().preflight, input)
    assert not preflight.ok
    with pytest.raises(ApplicationError) as raised:
        await run(activities().delete, input)
    assert (raised.value.type, raised.value.non_retryable) == ("DecommissionRefused", True)
    assert fake.projects[A_PROJECT].state == "ACTIVE"


async def test_transient_failure_is_retryable(fake: ResourceManagerFake, drained_log: str) -> None:
    fake.fail_next(503)
    with pytest.raises(ApplicationError) as raised:
        await run(activities().delete, gcp_input(fake, log=drained_log))
    assert (raised.value.type, raised.value.non_retryable) == ("DecommissionUnavailable", False)


async def test_webhook_undo_is_refused() -> None:
    input = DecommissionInput.model_validate(
        {"decommission": {"kind": "webhook", "url": "http://127.0.0.1:9/decommission"}, "workflow_id": WORKFLOW_ID}
    )
    with pytest.raises(ApplicationError) as raised:
        await run(activities().undo, input)
    assert (raised.value.type, raised.value.non_retryable) == ("DecommissionRefused", True)
    assert "can't be undone" in raised.value.message


def test_worker_registration_lists_the_activity_names() -> None:
    names = [method.__temporal_activity_definition.name for method in activities().activities()]  # type: ignore[attr-defined]
    assert names == ["decommission_preflight", "decommission_delete", "decommission_undo"]


async def test_google_credentials_are_loaded_once_per_activities_object(
    fake: ResourceManagerFake, drained_log: str
) -> None:
    loads: list[tuple[str | None, str, int]] = []

    def loader(env: str | None, purpose: str, secrets: EnvSecrets | None) -> Any:
        loads.append((env, purpose, threading.get_ident()))
        return google.oauth2.credentials.Credentials(token="loaded-once-token")

    decommission = DecommissionActivities(secrets=EnvSecrets({}), credentials_loader=loader)
    input = gcp_input(fake, log=drained_log, credentials_env="RM_KEY_FILE")
    preflight = await run(decommission.preflight, input)
    result = await run(decommission.delete, input)
    assert preflight.ok and result.state == "DELETE_REQUESTED"
    assert [(env, purpose) for env, purpose, _ in loads] == [("RM_KEY_FILE", "decommission.credentials_env")]
    assert loads[0][2] != threading.get_ident()  # loaded in a thread, not on the event loop


async def test_delete_keeps_heartbeating_through_slow_calls_and_operation_polls(drained_log: str) -> None:
    async with ResourceManagerFake(operation_polls=1) as slow:
        slow.add_project(A_PROJECT)
        slow.delay = 0.3  # every Resource Manager answer takes 0.3 s; the operation poll pauses 1 s
        beats: list[tuple[float, str]] = []
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *details: beats.append((time.monotonic(), details[0]))
        decommission = DecommissionActivities(
            secrets=EnvSecrets({}),
            credentials=google.oauth2.credentials.Credentials(token="test-access-token"),
            keepalive_seconds=0.1,
        )
        started = time.monotonic()
        result = await env.run(decommission.delete, gcp_input(slow, log=drained_log))
        finished = time.monotonic()
    assert result.state == "DELETE_REQUESTED" and finished - started >= 1.5
    assert beats[0][1] == "decommissioning A (gcp-project)"
    assert any(message.startswith("waiting for operations/") for _, message in beats)
    times = [started] + [at for at, _ in beats] + [finished]
    assert max(b - a for a, b in itertools.pairwise(times)) < 0.6  # never silent for the 1 s poll pause
