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
from models.telemetry import DrainProof
from providers.secrets import EnvSecrets
from tests.fakes.resource_manager import ResourceManagerFake

A_PROJECT = "a-project-123"
WORKFLOW_ID = "cutover-orders-api"
RM = "cloudresourcemanager."


@pytest.fixture
async def fake() -> AsyncIterator[ResourceManagerFake]:
    async with ResourceManagerFake() as server:
        server.add_project(A_PROJECT)
        yield server


def activities() -> DecommissionActivities:
    return DecommissionActivities(
        secrets=EnvSecrets({}), credentials=google.oauth2.credentials.Credentials(token="test-access-token")
    )


def gcp_input(fake: ResourceManagerFake, proof: DrainProof | None = None, **section: Any) -> DecommissionInput:
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


@pytest.mark.parametrize(
    ("drain", "why"),
    [
        (None, "no drain proof"),
        (proof(drained=False), "A still received 3 request"),
        (proof(quiet=60), "covers 60s, less than the plan's quiet_period 10m"),
    ],
)
async def test_delete_refuses_without_a_sufficient_drain_proof(
    fake: ResourceManagerFake, drain: DrainProof | None, why: str
) -> None:
    with pytest.raises(ApplicationError) as raised:
        await run(activities().delete, gcp_input(fake, drain))
    assert raised.value.type == "DecommissionRefused"
    assert raised.value.non_retryable
    assert why in raised.value.message
    assert fake.calls == []
    assert fake.projects[A_PROJECT].state == "ACTIVE"


async def test_delete_with_a_drain_proof_then_undo(fake: ResourceManagerFake) -> None:
    heartbeats: list[Any] = []
    input = gcp_input(fake, proof())
    preflight = await run(activities().preflight, input)
    assert preflight.ok and preflight.reversible

    result = await run(activities().delete, input, heartbeats)
    assert result.state == "DELETE_REQUESTED"
    assert fake.projects[A_PROJECT].state == "DELETE_REQUESTED"
    assert heartbeats

    restored = await run(activities().undo, input)
    assert restored.state == "ACTIVE"
    assert fake.projects[A_PROJECT].state == "ACTIVE"


async def test_require_drained_false_waives_the_proof(fake: ResourceManagerFake) -> None:
    result = await run(activities().delete, gcp_input(fake, None, require_drained=False))
    assert result.state == "DELETE_REQUESTED"


async def test_none_never_needs_a_proof() -> None:
    input = DecommissionInput.model_validate({"decommission": {"kind": "none"}, "workflow_id": WORKFLOW_ID})
    result = await run(activities().delete, input)
    assert (result.state, result.done) == ("left in place", True)


async def test_protected_project_error_is_not_retryable(fake: ResourceManagerFake) -> None:
    input = gcp_input(fake, proof(), protected_projects=[A_PROJECT])
    preflight = await run(activities().preflight, input)
    assert not preflight.ok
    with pytest.raises(ApplicationError) as raised:
        await run(activities().delete, input)
    assert (raised.value.type, raised.value.non_retryable) == ("DecommissionRefused", True)
    assert fake.projects[A_PROJECT].state == "ACTIVE"


async def test_transient_failure_is_retryable(fake: ResourceManagerFake) -> None:
    fake.fail_next(503)
    with pytest.raises(ApplicationError) as raised:
        await run(activities().delete, gcp_input(fake, proof()))
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


async def test_google_credentials_are_loaded_once_per_activities_object(fake: ResourceManagerFake) -> None:
    loads: list[tuple[str | None, str, int]] = []

    def loader(env: str | None, purpose: str, secrets: EnvSecrets | None) -> Any:
        loads.append((env, purpose, threading.get_ident()))
        return google.oauth2.credentials.Credentials(token="loaded-once-token")

    decommission = DecommissionActivities(secrets=EnvSecrets({}), credentials_loader=loader)
    input = gcp_input(fake, proof(), credentials_env="RM_KEY_FILE")
    preflight = await run(decommission.preflight, input)
    result = await run(decommission.delete, input)
    assert preflight.ok and result.state == "DELETE_REQUESTED"
    assert [(env, purpose) for env, purpose, _ in loads] == [("RM_KEY_FILE", "decommission.credentials_env")]
    assert loads[0][2] != threading.get_ident()  # loaded in a thread, not on the event loop


async def test_delete_keeps_heartbeating_through_slow_calls_and_operation_polls() -> None:
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
        result = await env.run(decommission.delete, gcp_input(slow, proof()))
        finished = time.monotonic()
    assert result.state == "DELETE_REQUESTED" and finished - started >= 1.5
    assert beats[0][1] == "decommissioning A (gcp-project)"
    assert any(message.startswith("waiting for operations/") for _, message in beats)
    times = [started] + [at for at, _ in beats] + [finished]
    assert max(b - a for a, b in itertools.pairwise(times)) < 0.6  # never silent for the 1 s poll pause
