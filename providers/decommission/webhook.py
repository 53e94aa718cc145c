"""``kind: webhook``: ask the user's own decommission system to delete A, with one HTTP call.

The call carries ``Idempotency-Key: sha256("<run id>:<plan digest>")`` and the JSON body
``{"action": "decommission", "workflow_id", "run_id", "plan_digest", "record", "target",
"a_addresses"}``, so a retried call (after a timeout, a 5xx or a worker crash) is recognisably the same
request, and the receiving system knows exactly what it deletes and for which approved plan. Header
values come from the worker's environment by the variable names the plan gives (``headers_env``);
they appear in no result, error or log. With ``signature_secret_env`` the body is signed:
``X-Cutover-Signature: t=<unix time>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>``; the key never leaves
the worker (sandbox/decommission_receiver.py verifies it). cutover can't undo what another system did:
``undo`` refuses, saying so.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
from dataclasses import dataclass
from typing import ClassVar

import httpx

from models.decommission import DecommissionPreflight, DecommissionResult
from models.plan import WebhookDecommission
from providers.decommission.base import Decommissioner
from providers.errors import ConfigError, DecommissionRefused, DecommissionUnavailable, describe_transport_error
from providers.netguard import guarded_transport
from providers.secrets import Destination, EnvSecrets
from providers.tls import verify_context

SIGNATURE_HEADER = "X-Cutover-Signature"


@dataclass(frozen=True)
class DeletionContext:
    """What the decommission system is told: which run, which approved plan, which record and addresses."""

    workflow_id: str
    run_id: str = ""
    plan_digest: str = ""
    record: str = ""
    target: str = ""
    a_addresses: tuple[str, ...] = ()

    @property
    def idempotency_key(self) -> str:
        """sha256 of run id and plan digest: the same for every retry of this run's deletion, new for another run."""
        return hashlib.sha256(f"{self.run_id}:{self.plan_digest}".encode()).hexdigest()

    def body(self) -> bytes:
        """The JSON body, canonical (sorted keys), so the signature covers exactly the bytes sent."""
        data = {
            "action": "decommission",
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "plan_digest": self.plan_digest,
            "record": self.record,
            "target": self.target,
            "a_addresses": list(self.a_addresses),
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def sign(key: bytes, body: bytes, at: int) -> str:
    """The ``X-Cutover-Signature`` value for ``body`` sent at unix time ``at``."""
    mac = hmac.new(key, f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


class WebhookDecommissioner(Decommissioner):
    """Call the user's decommission endpoint once per run."""

    kind: ClassVar[str] = "webhook"

    def __init__(
        self,
        section: WebhookDecommission,
        context: DeletionContext,
        *,
        secrets: EnvSecrets | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.section = section
        self.context = context
        self._secrets = secrets or EnvSecrets()
        self._transport = transport
        self._destination = Destination("webhook", url=section.url)
        self._secrets.guard.check_url("webhook", section.url, "decommission.url")

    @property
    def workflow_id(self) -> str:
        """The run's workflow id."""
        return self.context.workflow_id

    def _headers(self, body: bytes) -> dict[str, str]:
        """The plan's headers with their values from the environment, the idempotency key and the signature.

        Raises:
            ConfigError: a named variable is not set (the message names the variable, never a value).
            PolicyViolation: the worker policy does not bind a variable to this URL.
        """
        headers = {
            name: self._secrets.require_header_value(variable, f"decommission.headers_env.{name}", self._destination)
            for name, variable in self.section.headers_env.items()
        }
        headers["Idempotency-Key"] = self.context.idempotency_key
        headers["Content-Type"] = "application/json"
        if self.section.signature_secret_env:
            key = self._secrets.require(
                self.section.signature_secret_env, "decommission.signature_secret_env", self._destination
            )
            headers[SIGNATURE_HEADER] = sign(key.encode(), body, int(time.time()))
        return headers

    def _verify(self) -> ssl.SSLContext:
        return verify_context(self.section.ca_bundle, "decommission.ca_bundle")

    async def preflight(self) -> DecommissionPreflight:
        """Check the headers' variables and the CA bundle; the endpoint itself is not called (that deletes)."""
        section = self.section
        checks = [f"will call {section.method} {section.url}, expecting {', '.join(map(str, section.expect_status))}"]
        problems = []
        for name, variable in section.headers_env.items():
            try:
                self._secrets.require_header_value(variable, f"decommission.headers_env.{name}", self._destination)
                checks.append(f"header {name} is set from {variable}")
            except ConfigError as exc:
                problems.append(str(exc))
        if section.signature_secret_env:
            try:
                self._secrets.require(
                    section.signature_secret_env, "decommission.signature_secret_env", self._destination
                )
                checks.append(
                    f"the body will be signed ({SIGNATURE_HEADER}) with the key in {section.signature_secret_env}"
                )
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
                f"ask {section.url} ({section.method}) to delete A, idempotency key "
                f"{self.context.idempotency_key}; cutover can't undo it"
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
        body = self.context.body()
        headers = self._headers(body)
        verify = self._verify()
        transport = self._transport or guarded_transport(self._secrets.guard, verify)
        async with httpx.AsyncClient(
            verify=verify, transport=transport, timeout=section.timeout.total_seconds()
        ) as client:
            try:
                response = await client.request(section.method, section.url, headers=headers, content=body)
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
                    f"(idempotency key {self.context.idempotency_key}); cutover can't undo it"
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
            f"to restore A (idempotency key {self.context.idempotency_key})"
        )
