"""webhook decommission against a real loopback HTTP server; the none kind."""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from models.plan import NoDecommission, WebhookDecommission
from models.policy import WorkerPolicy
from providers.decommission.none import LeaveInPlace
from providers.decommission.webhook import DeletionContext, WebhookDecommissioner
from providers.errors import ConfigError, DecommissionRefused, DecommissionUnavailable, PolicyViolation
from providers.secrets import EnvSecrets
from tests.kong.fixtures import header_echoing_server

WORKFLOW_ID = "cutover-orders-api"
TOKEN = "decommission-token-value-0123"
SIGNING_KEY = "signing-key-value-4567"
SECRETS = EnvSecrets({"DECOM_TOKEN": TOKEN, "DECOM_TEAM": "platform", "DECOM_SIGNING": SIGNING_KEY})
CONTEXT = DeletionContext(
    workflow_id=WORKFLOW_ID,
    run_id="run-1",
    plan_digest="d" * 64,
    record="a-project.example.test.",
    target="b-project.example.test.",
    a_addresses=("127.0.0.2",),
)


class DecommissionSystem:
    """The user's own decommission endpoint: records what it receives, answers what the test says."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 202
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = await request.json()
        self.received.append({"method": request.method, "headers": dict(request.headers), "body": body, "raw": raw})
        return web.json_response({"ticket": "DECOM-1"}, status=self.status)

    async def __aenter__(self) -> DecommissionSystem:
        app = web.Application()
        app.router.add_route("*", "/projects/a", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/projects/a"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def system() -> AsyncIterator[DecommissionSystem]:
    async with DecommissionSystem() as server:
        yield server


def webhook(url: str, secrets: EnvSecrets = SECRETS, **fields: Any) -> WebhookDecommissioner:
    section = WebhookDecommission.model_validate(
        {
            "kind": "webhook",
            "url": url,
            "method": "DELETE",
            "headers_env": {"X-Api-Key": "DECOM_TOKEN", "X-Team": "DECOM_TEAM"},
            "timeout": "2s",
            **fields,
        }
    )
    return WebhookDecommissioner(section, CONTEXT, secrets=secrets)


async def test_webhook_call_carries_headers_from_env_and_the_idempotency_key(system: DecommissionSystem) -> None:
    result = await webhook(system.url).delete()
    (call,) = system.received
    assert call["method"] == "DELETE"
    assert call["headers"]["X-Api-Key"] == TOKEN
    assert call["headers"]["X-Team"] == "platform"
    assert call["headers"]["Idempotency-Key"] == hashlib.sha256(f"run-1:{'d' * 64}".encode()).hexdigest()
    assert call["body"] == {
        "action": "decommission",
        "workflow_id": WORKFLOW_ID,
        "run_id": "run-1",
        "plan_digest": "d" * 64,
        "record": "a-project.example.test.",
        "target": "b-project.example.test.",
        "a_addresses": ["127.0.0.2"],
    }
    assert "X-Cutover-Signature" not in call["headers"]
    assert result.done and result.state == "webhook 202" and result.kind == "webhook"
    assert TOKEN not in result.model_dump_json()


async def test_the_idempotency_key_is_the_same_for_a_retry_and_new_for_another_run_or_plan() -> None:
    again = DeletionContext(workflow_id=WORKFLOW_ID, run_id="run-1", plan_digest="d" * 64)
    other_run = DeletionContext(workflow_id=WORKFLOW_ID, run_id="run-2", plan_digest="d" * 64)
    other_plan = DeletionContext(workflow_id=WORKFLOW_ID, run_id="run-1", plan_digest="e" * 64)
    assert again.idempotency_key == CONTEXT.idempotency_key
    assert len({CONTEXT.idempotency_key, other_run.idempotency_key, other_plan.idempotency_key}) == 3


async def test_the_body_is_signed_with_a_key_that_is_never_sent(system: DecommissionSystem) -> None:
    before = int(time.time())
    await webhook(system.url, headers_env={}, signature_secret_env="DECOM_SIGNING").delete()
    (call,) = system.received
    stamp, mac = call["headers"]["X-Cutover-Signature"].split(",")
    at = int(stamp.removeprefix("t="))
    expected = hmac.new(SIGNING_KEY.encode(), f"{at}.".encode() + call["raw"], hashlib.sha256).hexdigest()
    assert before <= at <= time.time() and mac == f"v1={expected}"
    assert SIGNING_KEY not in str(call["headers"]) and SIGNING_KEY.encode() not in call["raw"]


async def test_under_a_policy_a_header_variable_goes_only_where_it_is_bound(system: DecommissionSystem) -> None:
    elsewhere = WorkerPolicy.model_validate(
        {
            "endpoints": {"webhook": ["http://127.0.0.1:*"]},
            "network": {"allow_loopback": True},
            "secrets": {"DECOM_TOKEN": {"kong_admin": ["http://127.0.0.1:*"]}},
        }
    )
    secrets = EnvSecrets({"DECOM_TOKEN": TOKEN}, elsewhere)
    with pytest.raises(PolicyViolation, match=r"DECOM_TOKEN .* may be sent to kong_admin, not to webhook"):
        await webhook(system.url, secrets, headers_env={"X-Api-Key": "DECOM_TOKEN"}).delete()
    assert system.received == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, DecommissionRefused),
        (409, DecommissionRefused),
        (429, DecommissionUnavailable),
        (503, DecommissionUnavailable),
    ],
)
async def test_unexpected_statuses(system: DecommissionSystem, status: int, error: type[Exception]) -> None:
    system.status = status
    with pytest.raises(error, match=f"answered {status}") as raised:
        await webhook(system.url).delete()
    assert TOKEN not in str(raised.value)


async def test_expected_statuses_come_from_the_plan(system: DecommissionSystem) -> None:
    system.status = 200
    with pytest.raises(DecommissionRefused, match="expected 204"):
        await webhook(system.url, expect_status=[204]).delete()


async def test_unreachable_system_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DecommissionUnavailable, match="retrying is safe") as raised:
        await webhook(f"http://127.0.0.1:{port}/projects/a").delete()
    assert TOKEN not in str(raised.value)


async def test_preflight_checks_the_header_variables_without_calling(system: DecommissionSystem) -> None:
    ready = await webhook(system.url).preflight()
    assert ready.ok and not ready.reversible
    assert "header X-Api-Key is set from DECOM_TOKEN" in ready.checks
    assert TOKEN not in ready.model_dump_json()

    missing = await webhook(system.url, EnvSecrets({"DECOM_TEAM": "platform"})).preflight()
    assert not missing.ok
    assert len(missing.problems) == 1 and "DECOM_TOKEN" in missing.problems[0]
    assert system.received == []

    with pytest.raises(ConfigError, match="DECOM_TOKEN"):
        await webhook(system.url, EnvSecrets({})).delete()
    assert system.received == []


async def test_webhook_cannot_be_undone(system: DecommissionSystem) -> None:
    with pytest.raises(DecommissionRefused, match="can't be undone by cutover"):
        await webhook(system.url).undo()
    assert system.received == []


async def test_none_leaves_a_in_place() -> None:
    provider = LeaveInPlace(NoDecommission())
    preflight = await provider.preflight()
    assert preflight.ok and preflight.reversible
    result = await provider.delete()
    assert (result.kind, result.done, result.state) == ("none", True, "left in place")
    assert "yours to delete" in result.detail
    assert (await provider.undo()).state == "left in place"


async def test_a_transport_error_quoting_a_header_secret_is_reported_without_it() -> None:
    async with header_echoing_server("X-Api-Key") as url:
        with pytest.raises(DecommissionUnavailable) as failed:
            await webhook(url + "/projects/a").delete()
    assert TOKEN in str(failed.value.__cause__)
    assert TOKEN not in str(failed.value) and "RemoteProtocolError" in str(failed.value)
