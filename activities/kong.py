"""Kong activities: thin Temporal adapters over providers/gateway/kong_*.py.

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
from models.kong import (
    DataPlaneSync,
    DataPlaneSyncInput,
    KongInspectInput,
    KongInspection,
    RepointInput,
    RestoreServiceInput,
    ServiceSnapshot,
)
from models.plan import KongSection
from providers.gateway.kong_admin import KongAdminClient
from providers.gateway.kong_inspect import inspect_service
from providers.gateway.kong_service import await_data_planes, repoint_service, restore_service
from providers.secrets import EnvSecrets


class KongActivities:
    """Inspect Kong, repoint the Service to the alias, and restore it (compensation)."""

    def __init__(
        self,
        secrets: EnvSecrets | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        data_plane_poll: float = 0.5,
        data_plane_max_poll: float = 5.0,
    ) -> None:
        """Hold what clients are built from.

        Args:
            secrets: where ``kong.token_env`` is read; default: the worker's environment.
            transport: httpx transport (tests, proxies); default: the network.
            data_plane_poll: first pause between data-plane polls (``kong_await_data_planes``), doubled
                after each poll...
            data_plane_max_poll: ...up to this; well below any heartbeat timeout, since each poll heartbeats.
        """
        self._secrets = secrets or EnvSecrets()
        self._transport = transport
        self._data_plane_poll = data_plane_poll
        self._data_plane_max_poll = data_plane_max_poll

    def activities(self) -> list[Callable[..., Any]]:
        """The activity callables to register on a worker."""
        return [self.inspect, self.repoint_service, self.restore_service, self.await_data_planes]

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

    @activity.defn(name="kong_await_data_planes")
    @maps_provider_errors
    async def await_data_planes(self, input: DataPlaneSyncInput) -> DataPlaneSync:
        """Wait until every data plane in ``kong.status_urls`` runs a new configuration, or report which lag.

        Heartbeats after every poll ("1/2 data planes on the new configuration; waiting for ..."), so a
        cancellation reaches it between polls. Returns ``in_sync=False`` at ``timeout_seconds``
        instead of failing: the workflow decides what a lagging data plane means.
        """
        async with self._client(input.kong) as client:
            sync = await await_data_planes(
                client,
                input.previous_hashes,
                timeout=input.timeout_seconds,
                on_progress=activity.heartbeat,
                first_interval=self._data_plane_poll,
                max_interval=self._data_plane_max_poll,
            )
        if sync.in_sync:
            activity.logger.info("kong_await_data_planes: %d data plane(s) on the new configuration", len(sync.hashes))
        else:
            activity.logger.warning(
                "kong_await_data_planes: lagging after %gs: %s", input.timeout_seconds, sync.lagging
            )
        return sync
