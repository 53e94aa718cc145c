"""``kind: webhook``: ask the user's own decommission system to delete A, with one HTTP call.

The call carries ``Idempotency-Key: <workflow id>`` and the JSON body
``{"workflow_id": ..., "action": "decommission"}``, so a retried call (after a timeout, a 5xx or a
worker crash) is recognisably the same request. Header values come from the worker's environment by
the variable names the plan gives (``headers_env``); they appear in no result, error or log. cutover
can't undo what another system did: ``undo`` refuses, saying so.
"""

from __future__ import annotations

import ssl
from typing import ClassVar

import httpx

from models.decommission import DecommissionPreflight, DecommissionResult
from models.plan import WebhookDecommission
from providers.decommission.base import Decommissioner
from providers.errors import ConfigError, DecommissionRefused, DecommissionUnavailable, describe_transport_error
from providers.secrets import EnvSecrets
from providers.tls import verify_context


class WebhookDecommissioner(Decommissioner):
    """Call the user's decommission endpoint once per workflow."""

    kind: ClassVar[str] = "webhook"

    def __init__(
        self,
        section: WebhookDecommission,
        workflow_id: str,
        *,
        secrets: EnvSecrets | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.section = section
        self.workflow_id = workflow_id
        self._secrets = secrets or EnvSecrets()
        self._transport = transport

    def _headers(self) -> dict[str, str]:
        """The plan's headers with their values from the environment, plus the idempotency key.

        Raises:
            ConfigError: a named variable is not set (the message names the variable, never a value).
        """
        headers = {
            name: self._secrets.require_header_value(variable, f"decommission.headers_env.{name}")
            for name, variable in self.section.headers_env.items()
        }
        headers["Idempotency-Key"] = self.workflow_id
        return headers

    def _verify(self) -> ssl.SSLContext | bool:
        return verify_context(self.section.ca_bundle, "decommission.ca_bundle")

    async def preflight(self) -> DecommissionPreflight:
        """Check the headers' variables and the CA bundle; the endpoint itself is not called (that deletes)."""
        section = self.section
        checks = [f"will call {section.method} {section.url}, expecting {', '.join(map(str, section.expect_status))}"]
        problems = []
        for name, variable in section.headers_env.items():
            try:
                self._secrets.require_header_value(variable, f"decommission.headers_env.{name}")
                checks.append(f"header {name} is set from {variable}")
            except ConfigError as exc:
                problems.append(str(exc))
        try:
            self._verify()
        except ConfigError as exc:
            problems.append(str(exc))
        return DecommissionPreflight(
            ok=not problems,
            checks=tuple(checks),
            problems=tuple(problems),
            reversible=False,
            description=(
                f"ask {section.url} ({section.method}) to delete A, idempotency key {self.workflow_id}; "
                "cutover can't undo it"
            ),
        )

    async def delete(self) -> DecommissionResult:
        """Make the call; an expected status means the user's system took the deletion over.

        Raises:
            ConfigError: a header variable or the CA bundle is missing.
            DecommissionRefused: an unexpected 4xx (retrying the same request won't change it).
            DecommissionUnavailable: timeout, connection failure, 429 or 5xx (retrying is safe: same key).
        """
        section = self.section
        headers = self._headers()
        async with httpx.AsyncClient(
            verify=self._verify(), transport=self._transport, timeout=section.timeout.total_seconds()
        ) as client:
            try:
                response = await client.request(
                    section.method,
                    section.url,
                    headers=headers,
                    json={"workflow_id": self.workflow_id, "action": "decommission"},
                )
            except httpx.HTTPError as exc:
                # Never str(exc): h11's protocol errors repeat header lines, and these headers carry secrets.
                raise DecommissionUnavailable(
                    f"{section.method} {section.url} failed: {describe_transport_error(exc)}; A's deletion was not "
                    "confirmed (retrying is safe: the idempotency key is the same)"
                ) from exc
        status = response.status_code
        if status in section.expect_status:
            return DecommissionResult(
                kind=self.kind,
                done=True,
                state=f"webhook {status}",
                detail=(
                    f"{section.method} {section.url} answered {status}: deleting A is now up to that system "
                    f"(idempotency key {self.workflow_id}); cutover can't undo it"
                ),
            )
        expected = ", ".join(map(str, section.expect_status))
        if status == 429 or status >= 500:
            raise DecommissionUnavailable(
                f"{section.method} {section.url} answered {status} (expected {expected}); retrying is safe"
            )
        raise DecommissionRefused(
            f"{section.method} {section.url} answered {status} (expected {expected}): the decommission system "
            "refused; A is not known to be deleted"
        )

    async def undo(self) -> DecommissionResult:
        """Refuse: only the user's system can restore what it deleted.

        Raises:
            DecommissionRefused: always.
        """
        raise DecommissionRefused(
            f"a webhook decommission can't be undone by cutover: ask the system behind {self.section.url} "
            f"to restore A (idempotency key {self.workflow_id})"
        )
