"""Kong's effective DNS client settings, read from a node's ``GET /`` configuration (kong.md §1.1, §2.1).

How long Kong keeps using an address after DNS changes depends on these settings, so they are read
from Kong itself; settings left at ``NONE`` are absent, so a missing ``dns_valid_ttl`` means
"record TTL". The plan's ``kong.dns_overrides`` win field by field, and readings of several data
planes merge into the slowest to forget an address.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from models.kong import KongDnsSettings
from models.plan import KongDnsOverrides

LEGACY_DEFAULT_ORDER = ("LAST", "SRV", "A", "CNAME")
NEW_CLIENT_DEFAULT_FAMILY = ("A", "SRV")


def int_or_none(value: Any) -> int | None:
    """A whole number of seconds, rounded *up*.

    Kong's TTL settings may be fractional (``dns_stale_ttl = 2.5``) and its clients use them as they
    are (kong/resty/dns/client.lua:252-255 adds ``staleTtl`` unrounded): truncating would shorten every
    wait built on them.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return math.ceil(number) if math.isfinite(number) else None


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("on", "true", "yes", "1")
    return bool(value)


def _order(value: Any, default: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip().upper() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        return tuple(str(part).upper() for part in value)
    return tuple(default)


def _version_tuple(version: str | None) -> tuple[int, int]:
    if not version:
        return (3, 9)
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return (3, 9)


def default_stale_ttl(version: str | None) -> int:
    """``dns_stale_ttl`` default: 3600 s from 3.6.0, 4 s before (kong.md §1.1)."""
    return 3600 if _version_tuple(version) >= (3, 6) else 4


def dns_settings_from_configuration(
    configuration: Mapping[str, Any], *, version: str | None, source: str
) -> KongDnsSettings:
    """Kong's effective DNS client settings from ``GET /`` ``configuration`` (kong.md §1.1, §2.1).

    Absent keys take Kong's defaults, except ``*_valid_ttl`` whose absence means "record TTL".
    """
    if _flag(configuration.get("new_dns_client", False)):
        error_ttl = int_or_none(configuration.get("resolver_error_ttl"))
        stale = int_or_none(configuration.get("resolver_stale_ttl"))
        return KongDnsSettings(
            client="new",
            valid_ttl=int_or_none(configuration.get("resolver_valid_ttl")),
            stale_ttl=3600 if stale is None else stale,
            not_found_ttl=1 if error_ttl is None else error_ttl,
            error_ttl=1 if error_ttl is None else error_ttl,
            order=_order(configuration.get("resolver_family"), NEW_CLIENT_DEFAULT_FAMILY),
            version=version,
            source=source,
        )
    stale = int_or_none(configuration.get("dns_stale_ttl"))
    not_found = int_or_none(configuration.get("dns_not_found_ttl"))
    error = int_or_none(configuration.get("dns_error_ttl"))
    return KongDnsSettings(
        client="legacy",
        valid_ttl=int_or_none(configuration.get("dns_valid_ttl")),
        stale_ttl=default_stale_ttl(version) if stale is None else stale,
        not_found_ttl=30 if not_found is None else not_found,
        error_ttl=1 if error is None else error,
        order=_order(configuration.get("dns_order"), LEGACY_DEFAULT_ORDER),
        version=version,
        source=source,
    )


def default_dns_settings(source: str = "Kong 3.6+ defaults (nothing could be read)") -> KongDnsSettings:
    """Kong 3.6+ defaults: legacy client, record TTL, ``dns_stale_ttl`` 3600 s."""
    return dns_settings_from_configuration({}, version=None, source=source)


def apply_overrides(settings: KongDnsSettings, overrides: KongDnsOverrides) -> KongDnsSettings:
    """Let the plan's ``kong.dns_overrides`` win, field by field; the source says which were overridden."""
    given = overrides.model_dump(exclude_none=True)
    if not given:
        return settings
    client = settings.client
    if overrides.new_dns_client is not None:
        client = "new" if overrides.new_dns_client else "legacy"
    prefix = "resolver" if client == "new" else "dns"
    valid = getattr(overrides, f"{prefix}_valid_ttl")
    stale = getattr(overrides, f"{prefix}_stale_ttl")
    error = getattr(overrides, f"{prefix}_error_ttl")
    not_found = overrides.resolver_error_ttl if client == "new" else overrides.dns_not_found_ttl
    order = overrides.dns_order if client == "legacy" else None
    base = (
        settings
        if client == settings.client
        else dns_settings_from_configuration(
            {"new_dns_client": client == "new"}, version=settings.version, source=settings.source
        )
    )
    return KongDnsSettings(
        client=client,
        valid_ttl=base.valid_ttl if valid is None else valid,
        stale_ttl=base.stale_ttl if stale is None else stale,
        not_found_ttl=base.not_found_ttl if not_found is None else not_found,
        error_ttl=base.error_ttl if error is None else error,
        order=base.order if order is None else tuple(o.upper() for o in order),
        version=settings.version,
        source=f"{settings.source}; plan kong.dns_overrides ({', '.join(sorted(given))}) win",
    )


def merge_worst_case(readings: Sequence[KongDnsSettings]) -> KongDnsSettings:
    """One setting set that is at least as slow to forget an address as every node read."""
    if len(readings) == 1:
        return readings[0]
    client: Literal["legacy", "new"] = "legacy" if any(r.client == "legacy" for r in readings) else "new"
    valid = [r.valid_ttl for r in readings if r.valid_ttl is not None]
    first = next(r for r in readings if r.client == client)
    return KongDnsSettings(
        client=client,
        valid_ttl=max(valid) if valid else None,
        stale_ttl=max(r.stale_ttl for r in readings),
        not_found_ttl=max(r.not_found_ttl for r in readings),
        error_ttl=max(r.error_ttl for r in readings),
        order=first.order,
        version=first.version,
        source="worst case of " + "; ".join(r.source for r in readings),
    )
