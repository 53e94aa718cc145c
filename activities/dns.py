"""DNS activities: thin Temporal adapters over the DNS providers.

Each activity builds the provider the plan's ``dns`` section names, does one thing and closes it.
Secrets (the TSIG secret, a Google key file) are resolved here, on the worker, from the variables the
plan names; no secret is an argument, a result, a heartbeat or a log line. Provider errors leave as
``ApplicationError`` typed with the error's class name, retryable only when retrying can help
(``DnsUnavailable``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import google.auth.credentials
import httpx
from temporalio import activity

from activities.errors import maps_provider_errors
from models.dns import (
    AddressMap,
    ApplyInput,
    DnsChangeResult,
    DnsSnapshot,
    PropagationInput,
    PropagationReport,
    ResolveInput,
    SnapshotInput,
    describe_rrsets,
)
from models.plan import CloudDnsProvider, DnsSection
from providers.dns.base import DnsProvider
from providers.dns.factory import build_dns_provider
from providers.dns.propagation import progress_text
from providers.google_auth import CredentialsLoader, GoogleCredentials
from providers.secrets import Destination, EnvSecrets


class DnsActivities:
    """Snapshot, change (lower TTL, flip, restore: all compare-and-swap), prove and resolve DNS."""

    def __init__(
        self,
        secrets: EnvSecrets | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        credentials: google.auth.credentials.Credentials | None = None,
        credentials_loader: CredentialsLoader | None = None,
    ) -> None:
        """Hold what providers are built from.

        Args:
            secrets: where secret variables are read; default: the worker's environment.
            transport: httpx transport for Cloud DNS (tests); default: the network.
            credentials: Google credentials (tests); default: from the plan's ``credentials_env`` or ADC,
                loaded once per variable by this object and reused by every activity.
            credentials_loader: how those are loaded (default ``load_credentials``, run in a thread).
        """
        self._secrets = secrets or EnvSecrets()
        self._transport = transport
        self._credentials = credentials
        self._google = GoogleCredentials(self._secrets, loader=credentials_loader)

    def activities(self) -> list[Callable[..., Any]]:
        """The activity callables to register on a worker."""
        return [self.snapshot, self.apply, self.verify_propagation, self.resolve]

    async def _provider(self, section: DnsSection) -> DnsProvider:
        credentials = self._credentials
        if credentials is None and isinstance(section.provider, CloudDnsProvider):
            credentials = await self._google.get(
                section.provider.credentials_env,
                "dns.provider.credentials_env",
                Destination("google", url=section.provider.api_endpoint, api="dns"),
            )
        return build_dns_provider(section, secrets=self._secrets, transport=self._transport, credentials=credentials)

    @activity.defn(name="dns_snapshot")
    @maps_provider_errors
    async def snapshot(self, input: SnapshotInput) -> DnsSnapshot:
        """Read the name at the provider and on every authoritative nameserver."""
        async with await self._provider(input.dns) as provider:
            snapshot = await provider.snapshot(input.name)
        activity.logger.info(
            "dns_snapshot: %s holds %s (serial %s, max TTL %ss, negative TTL %ss, %d nameservers)",
            snapshot.name,
            describe_rrsets(snapshot.rrsets),
            snapshot.serial,
            snapshot.max_ttl,
            snapshot.negative_ttl,
            len(snapshot.nameservers),
        )
        return snapshot

    @activity.defn(name="dns_apply")
    @maps_provider_errors
    async def apply(self, input: ApplyInput) -> DnsChangeResult:
        """Apply one compare-and-swap change and read it back; a repeat finds it already applied."""
        change = input.change
        async with await self._provider(input.dns) as provider:
            result = await provider.apply(change)
        activity.logger.info(
            "dns_apply: %s %s: %s -> %s (%s), serial %s -> %s",
            change.name,
            result.outcome,
            describe_rrsets(change.expected),
            describe_rrsets(result.readback),
            change.reason,
            result.serial_before,
            result.serial_after,
        )
        return result

    @activity.defn(name="dns_verify_propagation")
    @maps_provider_errors
    async def verify_propagation(self, input: PropagationInput) -> PropagationReport:
        """Wait (up to ``dns.propagation_timeout``) until every authoritative server answers ``desired``.

        Heartbeats after every poll with a short progress line, so a stuck secondary is visible
        while the activity runs, and cancellation reaches it between polls.
        """

        def heartbeat(report: PropagationReport) -> None:
            activity.heartbeat(progress_text(report, input.desired, input.min_serial))

        async with await self._provider(input.dns) as provider:
            report = await provider.prove_propagation(
                input.name,
                input.desired,
                min_serial=input.min_serial,
                read_back=input.read_back,
                timeout=input.dns.propagation_timeout.total_seconds(),
                on_progress=heartbeat,
            )
        activity.logger.info(
            "dns_verify_propagation: %s: %d servers answer %s after %.1fs",
            report.name,
            len(report.servers),
            describe_rrsets(input.desired),
            report.elapsed_seconds,
        )
        return report

    @activity.defn(name="dns_resolve")
    @maps_provider_errors
    async def resolve(self, input: ResolveInput) -> AddressMap:
        """Addresses of each name, following CNAMEs (authoritatively inside the zone)."""
        async with await self._provider(input.dns) as provider:
            addresses = await provider.resolve(input.names)
        activity.logger.info("dns_resolve: %s", "; ".join(f"{n} -> {a}" for n, a in addresses.addresses.items()))
        return addresses
