"""Notifications under a worker policy: the URL a variable holds is a secret, sent only where it is bound."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from models.decommission import NotifyInput
from models.policy import WorkerPolicy
from providers.secrets import EnvSecrets

NOTICE = NotifyInput(webhook_env="HOOK_URL", event="flipped", text="flipped", workflow_id="cutover-x")


@pytest.fixture
async def sink() -> AsyncIterator[tuple[str, list[Any]]]:
    received: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", received
    await runner.cleanup()


def policy(notify: list[str], bound: list[str]) -> WorkerPolicy:
    return WorkerPolicy.model_validate(
        {
            "network": {"allow_loopback": True},
            "endpoints": {"notify": notify},
            "secrets": {"HOOK_URL": {"notify": bound}, "OTHER": {"webhook": ["https://x.example/"]}},
        }
    )


async def test_a_bound_url_is_notified(sink):
    url, received = sink
    activities = NotifyActivities(EnvSecrets({"HOOK_URL": url}, policy(["http://127.0.0.1:*"], [url])))
    assert await ActivityEnvironment().run(activities.notify, NOTICE) is True
    assert received == [{"text": "flipped", "event": "flipped", "workflow_id": "cutover-x"}]


@pytest.mark.parametrize(
    ("variable", "listed", "bound", "why"),
    [
        ("HOOK_URL", [], ["http://127.0.0.1:*"], "not in the worker policy's notify allow-list"),
        ("OTHER", ["http://127.0.0.1:*"], ["http://127.0.0.1:*"], "may be sent to webhook, not to notify"),
        ("UNDECLARED", ["http://127.0.0.1:*"], ["http://127.0.0.1:*"], "not declared"),
    ],
)
async def test_a_url_the_policy_does_not_bind_is_never_called(sink, caplog, variable, listed, bound, why):
    url, received = sink
    secrets = EnvSecrets({variable: url}, policy(listed, bound))
    notice = NOTICE.model_copy(update={"webhook_env": variable})
    assert await ActivityEnvironment().run(NotifyActivities(secrets).notify, notice) is False
    assert received == []
    assert why in caplog.text and url not in caplog.text


async def test_plain_http_to_a_host_that_is_not_loopback_is_refused(caplog):
    secrets = EnvSecrets(
        {"HOOK_URL": "http://hooks.example.test/T0/B0/secret-path"},
        policy(["http://hooks.example.test"], ["http://hooks.example.test"]),
    )
    assert await ActivityEnvironment().run(NotifyActivities(secrets).notify, NOTICE) is False
    assert "plain http to a host that is not loopback" in caplog.text and "secret-path" not in caplog.text
