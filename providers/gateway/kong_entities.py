"""Kong Admin API answers as cutover's models: node mode, Service snapshots and diffs, Routes, health checks.

Pure translation of Kong's JSON entities, no I/O: the client returns entities as Kong sent them, and
the operations compare and describe them with these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.kong import KongMode, RouteInfo, ServiceSnapshot
from providers.gateway.kong_dns_settings import int_or_none


@dataclass(frozen=True)
class KongNode:
    """What ``GET /`` says about the node behind an Admin API URL."""

    mode: KongMode
    writable: bool
    version: str | None
    configuration: dict[str, Any]
    explanation: str


def node_mode(configuration: Mapping[str, Any]) -> tuple[KongMode, bool, str]:
    """Deployment mode from ``configuration.role`` and ``database`` (kong.md §2.1, §2.8)."""
    role = configuration.get("role") or "traditional"
    database = configuration.get("database")
    if role == "control_plane":
        return "hybrid-control-plane", True, "hybrid Control Plane: writable; data planes receive its config"
    if role == "data_plane":
        return (
            "hybrid-data-plane",
            False,
            "hybrid data plane: read-only Admin API; changes must go to the Control Plane's Admin API",
        )
    if database == "off":
        return (
            "db-less",
            False,
            "DB-less node: read-only Admin API (writes answer 405); change its declarative config, or the Control "
            "Plane if it is a data plane",
        )
    return "traditional", True, f"traditional node with database {database or 'unknown'}: writable"


def snapshot_of(entity: Mapping[str, Any]) -> ServiceSnapshot:
    """A ServiceSnapshot of a Service entity as the Admin API returned it."""
    return ServiceSnapshot(
        id=str(entity["id"]),
        name=entity.get("name"),
        host=str(entity.get("host") or ""),
        port=int(entity.get("port") or 0),
        protocol=str(entity.get("protocol") or "http"),
        path=entity.get("path"),
        updated_at=int_or_none(entity.get("updated_at")),
        entity=dict(entity),
    )


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """Keys whose values differ between two entity versions (absent == null, as Kong treats them)."""
    skip = set(ignore)
    return sorted(k for k in set(before) | set(after) if k not in skip and before.get(k) != after.get(k))


def describe_changes(before: Mapping[str, Any], after: Mapping[str, Any], fields: Sequence[str]) -> str:
    """``host: 'a' -> 'b', port: 443 -> 8443`` for error messages."""
    return ", ".join(f"{key}: {before.get(key)!r} -> {after.get(key)!r}" for key in fields)


def health_thresholds(healthchecks: Any) -> dict[str, dict[str, int]]:
    """The Upstream's unhealthy thresholds that are on (> 0), passive and active.

    Kong's Upstream schema: ``healthchecks.passive.unhealthy.{http_failures,tcp_failures,timeouts}``
    (0 = off, Kong's default) count failures of proxied requests; ``healthchecks.active.unhealthy``
    the same for probes, only when its ``interval`` is above 0. An address marked unhealthy gets no
    traffic; when all are, the balancer answers 503 "failure to get a peer from the ring-balancer"
    (kong/runloop/balancer/init.lua:350-356).
    """
    found: dict[str, dict[str, int]] = {"passive_unhealthy": {}, "active_unhealthy": {}}
    if not isinstance(healthchecks, Mapping):
        return found
    for kind in ("passive", "active"):
        section = healthchecks.get(kind)
        unhealthy = section.get("unhealthy") if isinstance(section, Mapping) else None
        if not isinstance(unhealthy, Mapping):
            continue
        if kind == "active" and not (int_or_none(unhealthy.get("interval")) or 0) > 0:
            continue
        for key in ("http_failures", "tcp_failures", "timeouts"):
            value = int_or_none(unhealthy.get(key))
            if value:
                found[f"{kind}_unhealthy"][key] = value
    return found


def route_info(entity: Mapping[str, Any]) -> RouteInfo:
    """The Host-relevant parts of a Route entity."""
    return RouteInfo(
        id=str(entity.get("id")),
        name=entity.get("name"),
        hosts=tuple(entity.get("hosts") or ()),
        paths=tuple(entity.get("paths") or ()),
        preserve_host=bool(entity.get("preserve_host")),
    )
