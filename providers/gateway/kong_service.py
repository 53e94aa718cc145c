"""Repoint the Kong Service's host and restore it, compare-and-swap; wait until data planes run the change.

Kong has no conditional update, so writes are compare-and-swap by hand: re-read, compare with what
cutover read before, PATCH only ``host``. cutover never overwrites someone else's change blindly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from models.kong import DataPlaneSync, ServiceSnapshot, kong_host
from providers.errors import GatewayConflict, GatewayReadOnly
from providers.gateway.kong_admin import KongAdminClient
from providers.gateway.kong_entities import changed_fields, describe_changes, snapshot_of

log = logging.getLogger("cutover.providers.kong")


async def await_data_planes(
    client: KongAdminClient,
    previous_hashes: Mapping[str, str],
    *,
    timeout: float,
    on_progress: Callable[[str], object] | None = None,
    first_interval: float = 0.5,
    max_interval: float = 5.0,
) -> DataPlaneSync:
    """Poll every ``kong.status_urls`` data plane until each runs a configuration other than before.

    A data plane is on the new configuration when its ``/status`` ``configuration_hash`` differs from
    ``previous_hashes[url]`` (read before the Service change), or, when it had none then, as soon as
    it answers one. Polls at a growing interval (``first_interval`` doubling up to ``max_interval``),
    re-reading only the lagging ones, and reports each poll to ``on_progress``
    ("1/2 data planes on the new configuration; ...").

    Returns:
        ``in_sync=False`` with the lagging data planes and why after ``timeout`` seconds, instead of
        raising: whether to go on is the workflow's decision.
    """
    urls = list(dict.fromkeys(client.section.status_urls))
    if not urls:
        return DataPlaneSync(in_sync=True, hashes={})
    deadline = time.monotonic() + timeout
    interval = first_interval
    hashes: dict[str, str] = {}
    lagging: dict[str, str] = {url: f"{url}: not read yet" for url in urls}
    while True:
        pending = [url for url in urls if url in lagging]
        readings = await asyncio.gather(*(client.read_data_plane(url, settings=False) for url in pending))
        for url, reading in zip(pending, readings, strict=True):
            now = str(reading.config_hash) if reading.config_hash else None
            before = previous_hashes.get(url)
            if now is not None:
                hashes[url] = now
            if now is not None and now != before:
                del lagging[url]
            elif now is not None:
                lagging[url] = f"{url}: still on configuration {before}"
            else:
                lagging[url] = f"{url}: {'; '.join(reading.problems) or 'its /status has no configuration_hash'}"
        waiting = [lagging[url] for url in urls if url in lagging]
        if on_progress is not None:
            message = f"{len(urls) - len(waiting)}/{len(urls)} data planes on the new configuration"
            on_progress(message + (f"; waiting for {waiting[0]}" if waiting else ""))
        if not waiting:
            return DataPlaneSync(in_sync=True, hashes=hashes)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            log.warning("await_data_planes: after %gs, %d data plane(s) lag: %s", timeout, len(waiting), waiting)
            return DataPlaneSync(in_sync=False, hashes=hashes, lagging=tuple(waiting))
        await asyncio.sleep(min(interval, remaining))
        interval = min(interval * 2, max_interval)


async def _require_writable(client: KongAdminClient, action: str) -> None:
    node = await client.node()
    if not node.writable:
        raise GatewayReadOnly(
            f"cannot {action}: {client.admin_url} is a {node.mode} node ({node.explanation}). Set kong.admin_url to "
            "the Control Plane's Admin API."
        )


async def repoint_service(client: KongAdminClient, expected: ServiceSnapshot, new_host: str) -> ServiceSnapshot:
    """Set the Service host to ``new_host`` if the Service is still exactly ``expected``.

    Idempotent: when the host is already ``new_host``, this is cutover's own earlier write (an attempt
    whose answer was lost) and the current state is returned, applied, so its undo stays registered;
    another party's edit of *other* fields meanwhile is logged, not mistaken for a conflict. Refuses
    (GatewayConflict, nothing written) when the host is not ``new_host`` and anything changed since
    it was read.
    """
    new_host = kong_host(new_host)
    current = await client.get_service(expected.id)
    if str(current.get("host")) == new_host:
        others = changed_fields(expected.entity, current, ignore={"host", "updated_at"})
        if others:
            log.warning(
                "repoint_service: Service %s already has host %s (cutover's earlier attempt); other fields were "
                "changed outside cutover meanwhile (%s)",
                expected.id,
                new_host,
                describe_changes(expected.entity, current, others),
            )
        return snapshot_of(current)
    changed = changed_fields(expected.entity, current)
    if changed:
        raise GatewayConflict(
            f"Kong Service {expected.name or expected.id} changed since cutover read it "
            f"({describe_changes(expected.entity, current, changed)}); nothing was written. Check who changed it, "
            "then start the cutover again so it reads the current state."
        )
    await _require_writable(client, f"repoint Service {expected.name or expected.id}")
    updated = await client.patch_service(expected.id, {"host": new_host})
    others = changed_fields(expected.entity, updated, ignore={"host", "updated_at"})
    if others:
        log.warning(
            "repoint_service: Service %s also changed concurrently (%s); the PATCH touched only host",
            expected.id,
            describe_changes(expected.entity, updated, others),
        )
    return snapshot_of(updated)


async def restore_service(client: KongAdminClient, original: ServiceSnapshot, repointed_host: str) -> ServiceSnapshot:
    """Put the Service's host back to ``original`` if it is still as cutover left it.

    No-op when it already equals ``original``. Refuses (GatewayConflict) when anyone else changed it:
    cutover never overwrites someone else's change blindly.
    """
    repointed_host = kong_host(repointed_host)
    current = await client.get_service(original.id)
    if not changed_fields(original.entity, current, ignore={"updated_at"}):
        return snapshot_of(current)
    others = changed_fields(original.entity, current, ignore={"host", "updated_at"})
    if str(current.get("host")) != repointed_host or others:
        changed = changed_fields(original.entity, current, ignore={"updated_at"})
        raise GatewayConflict(
            f"Kong Service {original.name or original.id} is not as cutover left it "
            f"(expected host {repointed_host} and otherwise the original; found "
            f"{describe_changes(original.entity, current, changed)}); nothing was written. Restore it by hand: "
            f"PATCH /services/{original.name or original.id} with host={original.host} once you know who changed it."
        )
    await _require_writable(client, f"restore Service {original.name or original.id}")
    restored = await client.patch_service(original.id, {"host": original.host})
    return snapshot_of(restored)
