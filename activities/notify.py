"""Notifications for humans: a JSON POST (Slack-compatible ``text``) when a gate opens, on rollback, at the end.

The webhook URL is itself a secret (Slack's URLs carry their token), so the plan names the variable
that holds it and the URL never appears in a log line or a result. Under a worker policy the variable
must be bound to ``notify`` and the URL it holds must be in the ``notify`` allow-list, https unless
loopback, and reach no forbidden address (the connection goes through the network guard). A failing
or refused webhook never fails a cutover: the activity reports False and the workflow records a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from temporalio import activity

from models.decommission import NotifyInput
from providers.errors import ConfigError
from providers.netguard import guarded_transport
from providers.secrets import EnvSecrets
from providers.tls import default_trust


class NotifyActivities:
    """Send notices to the webhook a plan names."""

    def __init__(self, secrets: EnvSecrets | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._secrets = secrets or EnvSecrets()
        self._transport = transport

    def activities(self) -> list[Callable[..., Any]]:
        """The activity callables to register on a worker."""
        return [self.notify]

    @activity.defn(name="notify")
    async def notify(self, input: NotifyInput) -> bool:
        """POST ``{"text", "event", "workflow_id"}``; True when the webhook answered 2xx."""
        try:
            url = self._secrets.require_url(input.webhook_env, "notify.webhook_env", "notify")
        except ConfigError as exc:
            activity.logger.warning("notify %s skipped: %s", input.event, exc)
            return False
        body = {"text": input.text, "event": input.event, "workflow_id": input.workflow_id}
        trust = default_trust()
        transport = self._transport or guarded_transport(self._secrets.guard, trust)
        try:
            async with httpx.AsyncClient(transport=transport, timeout=10, verify=trust) as client:
                response = await client.post(url, json=body)
        except ConfigError as exc:
            activity.logger.warning("notify %s refused: %s", input.event, exc)
            return False
        except httpx.HTTPError as exc:
            activity.logger.warning("notify %s failed: %s", input.event, type(exc).__name__)
            return False
        if not response.is_success:
            activity.logger.warning("notify %s: webhook answered %s", input.event, response.status_code)
            return False
        return True
