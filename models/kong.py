"""What cutover knows about Kong: the Service, how it reaches its backend, and its DNS cache.

``compute_cache_bound`` is pure so that the workflow, the dry run and the tests all reach the same
number from the same facts (see shared/reference/kong.md §1.5 for the table it encodes).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from models.names import is_ip
from models.plan import KongSection


class _Model(BaseModel):
    # Unknown fields are ignored, not refused: during a rolling deploy a newer activity may return a
    # field an older workflow doesn't know, and a decode error would fail the run without rollback.
    model_config = ConfigDict(extra="ignore", frozen=True)


KongMode = Literal["traditional", "hybrid-control-plane", "hybrid-data-plane", "db-less", "konnect"]


class KongDnsSettings(_Model):
    """Kong's effective DNS client settings, with where they were read."""

    client: Literal["legacy", "new"]
    valid_ttl: int | None
    """``dns_valid_ttl`` / ``resolver_valid_ttl``: overrides every record TTL when set."""
    stale_ttl: int
    not_found_ttl: int
    error_ttl: int
    order: tuple[str, ...] = ()
    version: str | None = None
    source: str
    """Where these came from, e.g. "GET / on http://cp:8001" or "plan dns_overrides"."""


class CacheBound(_Model):
    """How long after a DNS change Kong workers may still use the old address, and why."""

    seconds: int
    reasoning: tuple[str, ...]
    hazards: tuple[str, ...] = ()
    """Conditions that stretch the bound (e.g. legacy client, A record becoming a CNAME)."""
    warnings: tuple[str, ...] = ()
    """Things the operator should know (e.g. ``dns_valid_ttl`` makes lowering the TTL useless)."""


class ServiceSnapshot(_Model):
    """A Kong Service as read, enough to detect a concurrent change and restore it exactly."""

    id: str
    name: str | None
    host: str
    port: int
    protocol: str
    path: str | None = None
    updated_at: int | None = None
    entity: dict[str, Any]
    """The whole entity as the Admin API returned it."""


class RouteInfo(_Model):
    """The parts of a Route that decide the Host header Kong sends."""

    id: str
    name: str | None = None
    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    preserve_host: bool = False


class TargetInfo(_Model):
    """An Upstream target."""

    target: str
    weight: int


class UpstreamInfo(_Model):
    """The Upstream a Service's host names, if it names one."""

    id: str
    name: str
    host_header: str | None = None
    targets: tuple[TargetInfo, ...] = ()
    passive_unhealthy: dict[str, int] = {}
    """``healthchecks.passive.unhealthy`` thresholds above 0 (``http_failures``, ``tcp_failures``,
    ``timeouts``): passive checks are on and can mark an address unhealthy."""
    active_unhealthy: dict[str, int] = {}
    """The same for ``healthchecks.active.unhealthy`` when ``active.unhealthy.interval`` > 0."""


class KongRequestShape(_Model):
    """The Host header and TLS SNI Kong will send to the backend, and why."""

    scheme: str
    host_header: str
    sni: str | None
    """None for plain http."""
    port: int
    path: str | None = None
    tls_verify: bool | None = None
    preserve_host_hosts: tuple[str, ...] = ()
    """Client Host values that reach the backend unchanged through routes with ``preserve_host``."""
    explanation: tuple[str, ...] = ()


class KongInspection(_Model):
    """Everything read from Kong before a cutover."""

    mode: KongMode
    writable: bool
    version: str | None = None
    service: ServiceSnapshot
    routes: tuple[RouteInfo, ...] = ()
    upstream: UpstreamInfo | None = None
    dns: KongDnsSettings
    shape_after: KongRequestShape
    """What Kong will send to B once the cutover is done."""
    config_hashes: dict[str, str] = {}
    """Data-plane status URL -> configuration_hash (hybrid)."""
    warnings: tuple[str, ...] = ()


# --- activity inputs -----------------------------------------------------------------------------


class KongInspectInput(_Model):
    """Read the Service, its routes/upstream, Kong's DNS settings and mode."""

    kong: KongSection
    strategy: Literal["cname", "alias"]
    record: str
    target: str


class RepointInput(_Model):
    """Point the Service's host at ``new_host`` if it is still exactly ``expected``."""

    kong: KongSection
    expected: ServiceSnapshot
    new_host: str


class RestoreServiceInput(_Model):
    """Put back ``original`` if the Service is still as cutover left it (host ``repointed_host``)."""

    kong: KongSection
    original: ServiceSnapshot
    repointed_host: str


def kong_host(name: str) -> str:
    """Kong stores host names without the trailing dot."""
    return name.rstrip(".")


DEFAULT_PORTS = {"http": 80, "grpc": 80, "ws": 80, "https": 443, "grpcs": 443, "wss": 443}
"""The port Kong leaves out of the Host header for each Service protocol."""


def host_header_for(hostname: str, port: int, scheme: str) -> str:
    """``$upstream_host``: the name, with ``:port`` unless it is the scheme's default (kong.md §5)."""
    if ":" in hostname and not is_ip(hostname):
        return hostname
    if DEFAULT_PORTS.get(scheme) == port:
        return hostname
    return f"{hostname}:{port}"


# --- the cache bound -----------------------------------------------------------------------------

QUERY_ALLOWANCE = 2
"""Seconds allowed for Kong's refresh query itself (kong.md §1.5 ``q``, healthy resolver)."""
TARGET_TIMER_LAG = 2
"""Upstream targets are re-resolved by a 1 s timer, 0.5 s after expiry: up to ~1.5 s
(kong/runloop/balancer/targets.lua:286-310 the 1 s timer, 318-346 renewal at expiry + 0.5 s)."""

FlipKind = Literal["a-to-cname", "cname-to-cname"]


def compute_cache_bound(
    settings: KongDnsSettings,
    *,
    record_ttl: int,
    flip: FlipKind,
    via_upstream_target: bool = False,
    target_address_ttl: int | None = None,
) -> CacheBound:
    """Bound how long after a DNS flip Kong may still send requests to the old address.

    Args:
        settings: Kong's effective DNS settings.
        record_ttl: the authoritative TTL of the record at the moment of the flip (the cutover TTL).
        flip: ``a-to-cname`` when the name Kong resolves holds A/AAAA records today and becomes a
            CNAME; ``cname-to-cname`` when it is already an alias.
        via_upstream_target: the name is an Upstream target (balancer timer) instead of a Service host.
        target_address_ttl: for an Upstream target that is a CNAME today (``cname-to-cname``), the TTL of
            the address records it dereferences to (A's records). The balancer keeps those addresses and
            renews them at *their* expiry, not the CNAME's (kong/runloop/balancer/targets.lua:318-346,
            509-531: ``queryDns`` stores ``dns_client.resolve``'s dereferenced records and schedules the
            renewal at their ``expire``), so their TTL adds to the bound. None: unknown or not a CNAME.

    The rules follow shared/reference/kong.md §1.5; each term is explained in ``reasoning`` so the
    number can be checked by a human before the run waits on it.
    """
    reasoning: list[str] = []
    hazards: list[str] = []
    warnings: list[str] = []
    stale = settings.stale_ttl
    valid = settings.valid_ttl
    setting = "dns_valid_ttl" if settings.client == "legacy" else "resolver_valid_ttl"
    stale_setting = "dns_stale_ttl" if settings.client == "legacy" else "resolver_stale_ttl"
    reasoning.append(f"Kong's {settings.client} DNS client ({settings.source}).")

    if valid is not None:
        kong_ttl = valid
        seconds = record_ttl + valid
        reasoning.append(
            f"{setting}={valid} overrides every record TTL: a resolver may hand Kong the old answer for up "
            f"to the record TTL ({record_ttl} s), and Kong then keeps it {valid} s: {record_ttl} + {valid} s."
        )
        warnings.append(
            f"{setting}={valid} makes Kong ignore record TTLs, so lowering the TTL does not shorten Kong's "
            f"cache; Kong caches every answer for {valid} s."
        )
    else:
        kong_ttl = record_ttl
        seconds = record_ttl
        reasoning.append(f"Kong caches the answer for the record TTL: {record_ttl} s.")

    if via_upstream_target:
        if settings.client == "legacy":
            seconds += TARGET_TIMER_LAG
            reasoning.append(
                f"Upstream targets are re-resolved by the balancer timer about 0.5-1.5 s after expiry: "
                f"+{TARGET_TIMER_LAG} s."
            )
        else:
            extra = min(stale, 60) + TARGET_TIMER_LAG
            seconds += extra
            reasoning.append(
                f"With the new client a target may keep the stale answer's expiry, min({stale_setting}, 60) "
                f"+ timer lag: +{extra} s."
            )
    seconds += QUERY_ALLOWANCE
    reasoning.append(
        f"The first request per worker after expiry still uses the old address while the refresh query "
        f"runs: +{QUERY_ALLOWANCE} s for that query."
    )

    # Until an entry is evicted Kong may hold the old answer: a resolver can hand it out for up to the
    # record TTL, and Kong then keeps it for its own TTL (the record's, or valid_ttl), plus stale_ttl.
    fresh_until = record_ttl + valid if valid is not None else record_ttl
    if flip == "a-to-cname" and settings.client == "legacy":
        hazard_seconds = fresh_until + stale + QUERY_ALLOWANCE + (TARGET_TIMER_LAG if via_upstream_target else 0)
        hazards.append(
            f"The legacy DNS client keeps a stale A record when the name becomes a CNAME (the refresh answer "
            f"holds no A record owned by that name, and empty answers never replace stale data), until the "
            f"entry is evicted at TTL + {stale_setting} = {kong_ttl} + {stale} s."
        )
        terms = f"record TTL + {setting}" if valid is not None else "TTL"
        lag = " + timer lag" if via_upstream_target else ""
        reasoning.append(
            f"Legacy client and an A record turning into a CNAME: the bound is {terms} + {stale_setting} "
            f"+ query{lag} = {hazard_seconds} s."
        )
        warnings.append(
            "To avoid the A->CNAME stale window: use the alias strategy (CNAME->CNAME flip), enable "
            "new_dns_client, lower dns_stale_ttl, or run `kong reload` on every data plane after the flip."
        )
        seconds = max(seconds, hazard_seconds)
    if via_upstream_target and flip == "cname-to-cname":
        if target_address_ttl is not None:
            seconds += target_address_ttl
            reasoning.append(
                f"The Upstream target is a CNAME: the balancer renews it when the addresses it dereferenced expire "
                f"(their TTL {target_address_ttl} s), and only then sees the new CNAME: +{target_address_ttl} s."
            )
        else:
            warnings.append(
                "For an Upstream target that is a CNAME, the balancer renews on the expiry of the dereferenced "
                "A records of the old target, not of the CNAME: their TTL adds to this bound and could not be read "
                "(kong/runloop/balancer/targets.lua:318-346)."
            )
    if stale > 0:
        warnings.append(
            f"If Kong's DNS refresh fails (SERVFAIL, timeout) it keeps serving the old address for up to "
            f"{'record TTL + ' + setting if valid is not None else 'TTL'} + {stale_setting} = "
            f"{fresh_until + stale} s; monitoring watches the addresses Kong really uses."
        )
    return CacheBound(seconds=seconds, reasoning=tuple(reasoning), hazards=tuple(hazards), warnings=tuple(warnings))


class DataPlaneSyncInput(_Model):
    """Wait until every listed data plane runs a configuration other than the one read before a change."""

    kong: KongSection
    previous_hashes: dict[str, str]
    """Status URL -> configuration_hash read before the Service change (``KongInspection.config_hashes``)."""
    timeout_seconds: float


class DataPlaneSync(_Model):
    """Which data planes have applied the Control Plane's new configuration."""

    in_sync: bool
    hashes: dict[str, str]
    """Status URL -> configuration_hash now."""
    lagging: tuple[str, ...] = ()
    """Status URLs still on the old configuration (or unreachable), with the reason."""
