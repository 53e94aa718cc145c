"""Kong activities: thin Temporal adapters over providers/gateway/kong.py.

Each activity builds a ``KongAdminClient`` for the plan's ``kong`` section, does one thing and
closes it. The Admin API token is read here, on the worker, from the variable the plan names; it is
never an argument, a result, a heartbeat or a log line. Provider errors leave as
``ApplicationError`` typed with the error's class name (``GatewayConflict``, ``GatewayReadOnly``...),
retryable only for ``GatewayUnavailable``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from temporalio import activity

from activities.errors import maps_provider_errors
from models.kong import KongInspectInput, KongInspection, RepointInput, RestoreServiceInput, ServiceSnapshot
from models.plan import KongSection
from providers.gateway.kong import KongAdminClient, inspect_service, repoint_service, restore_service
from providers.secrets import EnvSecrets


class KongActivities:
    """Inspect Kong, repoint the Service to the alias, and restore it (compensation)."""

    def __init__(self, secrets: EnvSecrets | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """Hold what clients are built from.

        Args:
            secrets: where ``kong.token_env`` is read; default: the worker's environment.
            transport: httpx transport (tests, proxies); default: the network.
        """
        self._secrets = secrets or EnvSecrets()
        self._transport = transport

    def activities(self) -> list[Callable[..., Any]]:
        """The activity callables to register on a worker."""
        return [self.inspect, self.repoint_service, self.restore_service]

    def _client(self, section: KongSection) -> KongAdminClient:
        return KongAdminClient(section, secrets=self._secrets, transport=self._transport)

    @activity.defn(name="kong_inspect")
    @maps_provider_errors
    async def inspect(self, input: KongInspectInput) -> KongInspection:
        """Read mode, Service, routes, Upstream, DNS settings and the Host/SNI Kong will send B."""
        async with self._client(input.kong) as client:
            inspection = await inspect_service(
                client, strategy=input.strategy, record=input.record, target=input.target
            )
        activity.logger.info(
            "kong_inspect: %s node, Service %s -> %s:%s (%s); after the cutover Kong sends Host %s, SNI %s; "
            "DNS %s client, valid_ttl %s, stale_ttl %s",
            inspection.mode,
            inspection.service.name or inspection.service.id,
            inspection.service.host,
            inspection.service.port,
            inspection.service.protocol,
            inspection.shape_after.host_header,
            inspection.shape_after.sni,
            inspection.dns.client,
            inspection.dns.valid_ttl,
            inspection.dns.stale_ttl,
        )
        return inspection

    @activity.defn(name="kong_repoint_service")
    @maps_provider_errors
    async def repoint_service(self, input: RepointInput) -> ServiceSnapshot:
        """Set the Service host to ``new_host`` if nobody changed the Service since it was read."""
        async with self._client(input.kong) as client:
            snapshot = await repoint_service(client, input.expected, input.new_host)
        activity.logger.info(
            "kong_repoint_service: Service %s host %s -> %s",
            snapshot.name or snapshot.id,
            input.expected.host,
            snapshot.host,
        )
        return snapshot

    @activity.defn(name="kong_restore_service")
    @maps_provider_errors
    async def restore_service(self, input: RestoreServiceInput) -> ServiceSnapshot:
        """Put the Service host back, only if it is still as cutover left it."""
        async with self._client(input.kong) as client:
            snapshot = await restore_service(client, input.original, input.repointed_host)
        activity.logger.info(
            "kong_restore_service: Service %s host is %s (original %s)",
            snapshot.name or snapshot.id,
            snapshot.host,
            input.original.host,
        )
        return snapshot
