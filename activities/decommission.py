"""Decommission activities: preflight, delete A (only once it is proven drained), and undo.

The workflow calls them by name (``decommission_preflight``, ``decommission_delete``,
``decommission_undo``). ``decommission_delete`` checks the drain proof itself even though the
workflow checks it too: deleting a project that still serves traffic is the one mistake cutover must
never make, so the last layer before the API refuses on its own (``DecommissionRefused``, not
retried) unless ``require_drained`` is off or the proof covers the plan's ``quiet_period``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import google.auth.credentials
import httpx
from temporalio import activity

from activities.errors import maps_provider_errors
from activities.heartbeats import KeepAlive
from models.decommission import DecommissionInput, DecommissionPreflight, DecommissionResult
from models.durations import format_duration
from models.plan import GcpProjectDecommission
from providers.decommission.base import Decommissioner, ignore_progress
from providers.decommission.factory import build_decommissioner
from providers.errors import DecommissionRefused
from providers.google_auth import CredentialsLoader, GoogleCredentials
from providers.secrets import EnvSecrets

KEEPALIVE_SECONDS = 5.0
"""Heartbeat at least this often during delete/undo, even while an API call or a poll pause lasts."""


def refusal_without_drain(input: DecommissionInput) -> str | None:
    """Why A may not be deleted yet, or None when the drain proof (or the plan) allows it."""
    section = input.decommission
    if section.kind == "none" or not section.require_drained:
        return None
    proof = input.drain_proof
    if proof is None:
        return (
            "A is not proven drained (no drain proof): cutover deletes A only after zero requests to it for "
            f"{format_duration(section.quiet_period)}, unless decommission.require_drained is false"
        )
    if not proof.drained:
        return f"A is not proven drained: {proof.reason}"
    if proof.quiet_period_seconds < section.quiet_period.total_seconds():
        return (
            f"the drain proof covers {proof.quiet_period_seconds:g}s, less than the plan's quiet_period "
            f"{format_duration(section.quiet_period)}"
        )
    return None


class DecommissionActivities:
    """Decommission activities over the plan's decommission kind.

    Args:
        secrets: where header and credential variables are read (default: the worker's environment).
        transport: httpx transport (tests).
        credentials: Google credentials for gcp-project (default: ``credentials_env`` key file or ADC,
            loaded once per variable by this object and reused by every activity).
        credentials_loader: how those are loaded (default ``load_credentials``, run in a thread).
        keepalive_seconds: longest gap between heartbeats of delete and undo.
    """

    def __init__(
        self,
        secrets: EnvSecrets | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        credentials: google.auth.credentials.Credentials | None = None,
        credentials_loader: CredentialsLoader | None = None,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self._secrets = secrets
        self._transport = transport
        self._credentials = credentials
        self._google = GoogleCredentials(secrets, loader=credentials_loader)
        self._keepalive = keepalive_seconds

    def activities(self) -> list[Callable[..., Any]]:
        """The activities to register on the worker."""
        return [self.preflight, self.delete, self.undo]

    async def _decommissioner(
        self, input: DecommissionInput, on_progress: Callable[[str], None] = ignore_progress
    ) -> Decommissioner:
        """Build the provider; Google credentials come from this object's cache (loaded in a thread once)."""
        section = input.decommission
        credentials = self._credentials
        if credentials is None and isinstance(section, GcpProjectDecommission):
            credentials = await self._google.get(section.credentials_env, "decommission.credentials_env")
        return build_decommissioner(
            section,
            workflow_id=input.workflow_id,
            dns_project=input.dns_project,
            secrets=self._secrets,
            transport=self._transport,
            credentials=credentials,
            on_progress=on_progress,
        )

    @activity.defn(name="decommission_preflight")
    @maps_provider_errors
    async def preflight(self, input: DecommissionInput) -> DecommissionPreflight:
        """Check, before the first change of the run, that deleting A later can succeed."""
        async with await self._decommissioner(input) as decommissioner:
            return await decommissioner.preflight()

    @activity.defn(name="decommission_delete")
    @maps_provider_errors
    async def delete(self, input: DecommissionInput) -> DecommissionResult:
        """Delete A, refusing unless it is proven drained (or the plan waives the proof)."""
        refusal = refusal_without_drain(input)
        if refusal:
            raise DecommissionRefused(refusal)
        async with KeepAlive(f"decommissioning A ({input.decommission.kind})", self._keepalive) as heartbeats:
            async with await self._decommissioner(input, heartbeats.progress) as decommissioner:
                return await decommissioner.delete()

    @activity.defn(name="decommission_undo")
    @maps_provider_errors
    async def undo(self, input: DecommissionInput) -> DecommissionResult:
        """Reverse a deletion where the kind allows it (GCP undelete within 30 days)."""
        first = f"undoing the decommission of A ({input.decommission.kind})"
        async with KeepAlive(first, self._keepalive) as heartbeats:
            async with await self._decommissioner(input, heartbeats.progress) as decommissioner:
                return await decommissioner.undo()
