"""Decommission activities: preflight, delete A (only once it is proven drained), and undo.

The workflow calls them by name (``decommission_preflight``, ``decommission_delete``,
``decommission_undo``). Deleting a project that still serves traffic is the one mistake cutover must
never make, so ``decommission_delete`` decides on its own, from the worker policy, whether a drain
proof is needed (a destructive kind always needs one, whatever the plan says) and computes that
proof itself, just before deleting: it reads the plan's traffic source over the last
``quiet_period``, counting requests to A's addresses through *every* Kong service in the source (a
second Service still pointing at A keeps A alive), and refuses (``DecommissionRefused``, not
retried) unless A got none while traffic went elsewhere. A proof handed in by an older workflow is
accepted only for a kind the policy does not call destructive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import google.auth.credentials
import httpx
from temporalio import activity

from activities.errors import maps_provider_errors
from activities.heartbeats import KeepAlive
from models.decommission import DecommissionInput, DecommissionPreflight, DecommissionResult
from models.durations import format_duration
from models.plan import CloudLoggingSource, GcpProjectDecommission
from models.policy import DESTRUCTIVE_DEFAULT, WorkerPolicy
from models.telemetry import DrainProof, drain_proof
from providers.decommission.base import Decommissioner, ProjectRules, ignore_progress
from providers.decommission.factory import build_decommissioner
from providers.decommission.webhook import DeletionContext
from providers.errors import DecommissionRefused
from providers.google_auth import CredentialsLoader, GoogleCredentials
from providers.secrets import Destination, EnvSecrets
from providers.telemetry.base import HistoricalTelemetrySource, utc_now
from providers.telemetry.cloud_logging import LoggingClientFactory
from providers.telemetry.factory import build_telemetry_source
from providers.telemetry.records import normalise_addresses

KEEPALIVE_SECONDS = 5.0
"""Heartbeat at least this often during delete/undo, even while an API call or a poll pause lasts."""


@dataclass(frozen=True)
class DeletionPolicy:
    """What the worker policy makes of one decommission: drain proof needed, destructive, which projects."""

    require_drained: bool
    destructive: bool
    rules: ProjectRules


def deletion_policy(input: DecommissionInput, policy: WorkerPolicy | None) -> DeletionPolicy:
    """The worker's decision for ``input``: without a policy the defaults (gcp-project destructive, forced)."""
    section = input.decommission
    kinds = policy.destructive.kinds if policy else DESTRUCTIVE_DEFAULT
    forced = policy.destructive.force_require_drained if policy else True
    destructive = section.kind in kinds
    protected = list(policy.gcp_projects.protected) if policy else []
    if input.dns_project:
        protected.append(input.dns_project)
    if input.monitor is not None and isinstance(input.monitor.source, CloudLoggingSource):
        protected.append(input.monitor.source.project)
    if policy is None:
        rules = ProjectRules(protected=tuple(protected))
    elif policy.dev_loopback_only:
        rules = ProjectRules(protected=tuple(protected), deletable=())
    else:
        rules = ProjectRules(
            protected=tuple(protected),
            deletable=policy.gcp_projects.deletable,
            required_label=policy.gcp_projects.require_label,
        )
    return DeletionPolicy(
        require_drained=section.kind != "none" and (section.require_drained or (destructive and forced)),
        destructive=destructive,
        rules=rules,
    )


def refusal_without_drain(input: DecommissionInput, require_drained: bool | None = None) -> str | None:
    """Why a proof handed in (older workflows) does not allow deleting A, or None when it does."""
    section = input.decommission
    needed = section.require_drained if require_drained is None else require_drained
    if section.kind == "none" or not needed:
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
        secrets: where header and credential variables are read, with the worker policy (default: the
            worker's environment, no policy).
        transport: httpx transport (tests).
        credentials: Google credentials for gcp-project (default: ``credentials_env`` key file or ADC,
            loaded once per variable by this object and reused by every activity).
        credentials_loader: how those are loaded (default ``load_credentials``, run in a thread).
        keepalive_seconds: longest gap between heartbeats of delete and undo.
        logging_client_factory: builds the Cloud Logging client the drain proof reads (tests).
    """

    def __init__(
        self,
        secrets: EnvSecrets | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        credentials: google.auth.credentials.Credentials | None = None,
        credentials_loader: CredentialsLoader | None = None,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        logging_client_factory: LoggingClientFactory | None = None,
    ) -> None:
        self._secrets = secrets
        self._transport = transport
        self._credentials = credentials
        self._google = GoogleCredentials(secrets, loader=credentials_loader)
        self._keepalive = keepalive_seconds
        self._logging_client_factory = logging_client_factory

    @property
    def _policy(self) -> WorkerPolicy | None:
        return self._secrets.policy if self._secrets is not None else None

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
            credentials = await self._google.get(
                section.credentials_env,
                "decommission.credentials_env",
                Destination("google", url=section.api_endpoint, api="resource_manager"),
            )
        info = activity.info()
        context = DeletionContext(
            workflow_id=input.workflow_id,
            run_id=info.workflow_run_id or "",
            plan_digest=input.plan_digest,
            record=input.record,
            target=input.target,
            a_addresses=input.a_addresses,
        )
        return build_decommissioner(
            section,
            workflow_id=input.workflow_id,
            context=context,
            rules=deletion_policy(input, self._policy).rules,
            dns_project=input.dns_project,
            secrets=self._secrets,
            transport=self._transport,
            credentials=credentials,
            on_progress=on_progress,
        )

    async def _prove_drained(self, input: DecommissionInput, progress: Callable[[str], None]) -> DrainProof:
        """Read the source over the last quiet period and judge A's drain, counting every Kong service."""
        assert input.monitor is not None
        quiet = input.decommission.quiet_period
        a_addresses = normalise_addresses(input.a_addresses)
        b_addresses = normalise_addresses(input.b_addresses)
        if not a_addresses:
            return DrainProof(
                drained=False,
                reason="A's addresses are not known, so what A still receives can't be counted",
                quiet_period_seconds=quiet.total_seconds(),
            )
        source = build_telemetry_source(
            input.monitor,
            None,
            secrets=self._secrets,
            transport=self._transport,
            logging_client_factory=self._logging_client_factory,
        )
        async with source:
            if not isinstance(source, HistoricalTelemetrySource) or not source.has_addresses:
                return drain_proof(source.empty_summary(), a_addresses, quiet, utc_now(), b_addresses=b_addresses)
            progress(f"proving A drained: reading the last {format_duration(quiet)} of {source.description}")
            summary, _ = await source.read_latest(quiet, progress=progress)
        return drain_proof(summary, a_addresses, quiet, summary.window_end or utc_now(), b_addresses=b_addresses)

    async def _drain_refusal(self, input: DecommissionInput, progress: Callable[[str], None]) -> DrainProof | None:
        """The proof this activity computed, or None when none is needed; raise when A may not be deleted.

        Raises:
            DecommissionRefused: A is not proven drained, or only a proof from elsewhere exists for a
                destructive kind.
        """
        decision = deletion_policy(input, self._policy)
        if not decision.require_drained:
            return None
        if input.monitor is None:
            if decision.destructive:
                raise DecommissionRefused(
                    f"a {input.decommission.kind} decommission deletes A only on a drain proof the decommission step "
                    "computes itself, and this run passed no traffic source to compute it from"
                )
            refusal = refusal_without_drain(input, require_drained=True)
            if refusal:
                raise DecommissionRefused(refusal)
            return input.drain_proof
        proof = await self._prove_drained(input, progress)
        if not proof.drained:
            raise DecommissionRefused(f"A is not proven drained (every Kong service counted): {proof.reason}")
        return proof

    @activity.defn(name="decommission_preflight")
    @maps_provider_errors
    async def preflight(self, input: DecommissionInput) -> DecommissionPreflight:
        """Check, before the first change of the run, that deleting A later can succeed."""
        async with await self._decommissioner(input) as decommissioner:
            return await decommissioner.preflight()

    @activity.defn(name="decommission_delete")
    @maps_provider_errors
    async def delete(self, input: DecommissionInput) -> DecommissionResult:
        """Delete A, refusing unless it is proven drained now (or neither plan nor policy asks for the proof)."""
        async with KeepAlive(f"decommissioning A ({input.decommission.kind})", self._keepalive) as heartbeats:
            proof = await self._drain_refusal(input, heartbeats.progress_from_thread)
            async with await self._decommissioner(input, heartbeats.progress) as decommissioner:
                result = await decommissioner.delete()
        return result.model_copy(update={"drain_proof": proof}) if proof is not None else result

    @activity.defn(name="decommission_undo")
    @maps_provider_errors
    async def undo(self, input: DecommissionInput) -> DecommissionResult:
        """Reverse a deletion where the kind allows it (GCP undelete within 30 days)."""
        first = f"undoing the decommission of A ({input.decommission.kind})"
        async with KeepAlive(first, self._keepalive) as heartbeats:
            async with await self._decommissioner(input, heartbeats.progress) as decommissioner:
                return await decommissioner.undo()
