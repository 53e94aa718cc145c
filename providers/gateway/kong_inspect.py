"""Read everything a cutover needs from Kong, and say what looks wrong before anything changes.

Kong's DNS settings come, in this order of precedence, from the plan's ``kong.dns_overrides``, the
data planes' own ``GET /``, this node's ``GET /``, or Kong's defaults (with a warning).
"""

from __future__ import annotations

from models.kong import (
    DEFAULT_PORTS,
    KongDnsSettings,
    KongInspection,
    TargetInfo,
    UpstreamInfo,
    kong_host,
)
from providers.gateway.kong_admin import KongAdminClient
from providers.gateway.kong_dns_settings import (
    apply_overrides,
    default_dns_settings,
    dns_settings_from_configuration,
    merge_worst_case,
)
from providers.gateway.kong_entities import health_thresholds, route_info, snapshot_of
from providers.gateway.kong_request_shape import Strategy, compute_request_shape, split_target


async def inspect_service(client: KongAdminClient, *, strategy: Strategy, record: str, target: str) -> KongInspection:
    """Read everything a cutover needs from Kong, and say what looks wrong, in plain words."""
    section = client.section
    warnings: list[str] = []
    node = await client.node()
    service = await client.get_service()
    routes = tuple(route_info(r) for r in await client.list_routes(str(service["id"])))
    upstream_entity = await client.find_upstream(str(service.get("host") or ""))
    upstream: UpstreamInfo | None = None
    if upstream_entity is not None:
        targets = await client.list_targets(str(upstream_entity["id"]))
        upstream = UpstreamInfo(
            id=str(upstream_entity["id"]),
            name=str(upstream_entity.get("name")),
            host_header=upstream_entity.get("host_header"),
            targets=tuple(TargetInfo(target=str(t["target"]), weight=int(t.get("weight", 100))) for t in targets),
            **health_thresholds(upstream_entity.get("healthchecks")),
        )

    # DNS settings: plan overrides > data planes' own GET / > this node's GET / > defaults.
    config_hashes: dict[str, str] = {}
    dp_settings: list[KongDnsSettings] = []
    for url in section.status_urls:
        reading = await client.read_data_plane(url)
        warnings.extend(reading.problems)
        if reading.config_hash:
            config_hashes[url] = str(reading.config_hash)
        if reading.settings is not None:
            dp_settings.append(reading.settings)
        elif reading.client is not None:
            warnings.append(
                f"data plane {url} exposes no GET / (Status API only): its DNS client is {reading.client} (from "
                "/status/dns), but its TTL settings can't be read; give them in kong.dns_overrides"
            )
    if dp_settings:
        settings = merge_worst_case(dp_settings)
    elif node.mode in ("traditional", "db-less", "hybrid-data-plane") and node.configuration:
        settings = dns_settings_from_configuration(
            node.configuration, version=node.version, source=f"GET / on {client.admin_url} ({node.mode})"
        )
    elif node.mode == "hybrid-control-plane" and node.configuration:
        settings = dns_settings_from_configuration(
            node.configuration, version=node.version, source=f"GET / on the Control Plane {client.admin_url}"
        )
        if not section.dns_overrides.model_dump(exclude_none=True):
            warnings.append(
                "Kong DNS settings were read from the Control Plane; data planes may run different dns_* / resolver_* "
                "settings (kong.md §2.1). List the data planes in kong.status_urls or set kong.dns_overrides."
            )
    else:
        settings = default_dns_settings()
        warnings.append(
            "Kong's DNS settings could not be read; assuming Kong 3.6+ defaults (legacy client, record TTL, "
            "dns_stale_ttl 3600 s). Set kong.dns_overrides to the data planes' real values."
        )
    settings = apply_overrides(settings, section.dns_overrides)

    if not node.writable:
        warnings.append(
            f"{client.admin_url} is a {node.mode} node: its Admin API is read-only, so cutover cannot repoint the "
            "Service there; changes must go to the Control Plane."
        )
    protocol = str(service.get("protocol") or "http")
    if protocol not in DEFAULT_PORTS:
        warnings.append(
            f"Service protocol {protocol}: there is no HTTP Host header; readiness can only check TLS and reachability."
        )
    record_host = kong_host(record).lower()
    service_host = str(service.get("host") or "").lower()
    target_host = kong_host(target).lower()
    if service_host == target_host:
        warnings.append(
            f"The Service host is already the target {target_host}: Kong already sends its traffic to B's name."
        )
    if strategy == "cname":
        if upstream is not None:
            names = {split_target(t.target)[0].lower() for t in upstream.targets}
            if record_host not in names:
                warnings.append(
                    f"The Service's Upstream {upstream.name} has targets {', '.join(sorted(names)) or '(none)'}, none "
                    f"of which is the plan's record {record_host}: flipping {record_host} would not move Kong's "
                    "traffic."
                )
        elif service_host != record_host:
            warnings.append(
                f"The Service host is {service_host}, not the plan's record {record_host}: flipping {record_host} "
                "would not move Kong's traffic."
            )
    else:
        if service_host == record_host:
            warnings.append(f"The Service host is already the alias {record_host}: no repoint is needed.")
        warnings.append(
            f"alias strategy: after the repoint Kong sends Host and SNI {record_host} to A, and after the flip to B; "
            "both must accept that name (and present a certificate for it if tls_verify is on)."
        )
        if upstream is not None:
            warnings.append(
                f"The Service host is the Upstream {upstream.name}: the alias strategy would bypass its targets."
            )
    shape = compute_request_shape(service, routes, upstream, strategy=strategy, record=record)
    return KongInspection(
        mode=node.mode,
        writable=node.writable,
        version=node.version,
        service=snapshot_of(service),
        routes=routes,
        upstream=upstream,
        dns=settings,
        shape_after=shape,
        config_hashes=config_hashes,
        warnings=tuple(dict.fromkeys(warnings)),
    )
