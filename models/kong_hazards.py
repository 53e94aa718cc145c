"""Kong behaviour that can hurt a cutover, from reading Kong's own code (``../shared/kong-lua``).

Pure functions the planner calls: the earliest moment A may be deleted after the flip (idle workers
still hold A's answer), the IPv6-only refusal, and the risks of the Upstream's health checks and of
the new client behind a non-recursive resolver. Each cites the lines of Kong's code it rests on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from models.kong import QUERY_ALLOWANCE, CacheBound, KongDnsSettings, KongInspection, _Model
from models.plan import CutoverPlan

CachesCleared = Literal["no", "restart", "reload"]


class DecommissionTiming(_Model):
    """How long after the flip A must stay, even once the drain proof saw it quiet, and why."""

    seconds_after_flip: int
    reasoning: tuple[str, ...]
    shortened: bool = False
    """True when a confirmed restart/reload of the data planes replaced the stale-serving term."""


def earliest_decommission(
    settings: KongDnsSettings,
    bound: CacheBound,
    *,
    record_ttl: int,
    margin_seconds: int,
    via_upstream_target: bool = False,
    caches_cleared: CachesCleared = "no",
    confirmed: bool = False,
) -> DecommissionTiming:
    """The earliest moment after the flip at which no Kong worker can still send a request to A.

    An nginx worker (legacy client) or node (new client) that was idle since before the flip still
    holds A's answer. Both clients keep an entry stale-servable until its expiry + the stale TTL
    (legacy: lrucache ``lru_ttl = ttl + staleTtl``, kong/resty/dns/client.lua:252-255 and 279; new:
    ``_expire_at = expire + stale_ttl``, kong/dns/client.lua:562-566), and the first request after
    that idle time gets the stale answer while the refresh runs (legacy client.lua:960-968, new
    572-581): it goes to A. The old answer's expiry is at most the record TTL after the flip (Kong
    asked the authoritative server just before, or a resolver handed it out until its own copy
    expired), or ``valid_ttl`` after that when set. The drain proof cannot see that request coming:
    it only proves A was quiet so far.

    Shortening: data planes restarted after the flip (any client), or ``kong reload``-ed (legacy client
    only: its cache lives in the worker, which a reload replaces; the new client's ``kong_dns_cache``
    shared dict survives a reload), confirmed by the operator in the decommission approval. Or a
    lower ``dns_stale_ttl``/``resolver_stale_ttl`` set in Kong beforehand: it is read from Kong.
    Upstream targets are renewed by each worker's balancer timer whether or not traffic flows
    (kong/runloop/balancer/targets.lua:286-310), so for them the cache bound itself is the answer.
    """
    stale_setting = "dns_stale_ttl" if settings.client == "legacy" else "resolver_stale_ttl"
    valid_setting = "dns_valid_ttl" if settings.client == "legacy" else "resolver_valid_ttl"
    q, stale, valid = QUERY_ALLOWANCE, settings.stale_ttl, settings.valid_ttl
    reasoning = [f"Kong's {settings.client} DNS client, {stale_setting}={stale} ({settings.source})."]
    held = record_ttl + (valid or 0)
    if valid is not None:
        reasoning.append(
            f"An old answer expires at most {record_ttl} s (record TTL) + {valid} s ({valid_setting}) after the flip."
        )
    else:
        reasoning.append(f"An old answer expires at most {record_ttl} s (the record TTL) after the flip.")
    if via_upstream_target:
        seconds = record_ttl + bound.seconds
        reasoning.append(
            f"Upstream targets are renewed by every worker's balancer timer, traffic or not: the cache bound "
            f"({bound.seconds} s) after resolver caches ({record_ttl} s) = {seconds} s."
        )
    else:
        seconds = held + stale + q
        reasoning.append(
            f"A worker idle since before the flip serves it stale to its next request until expiry + {stale_setting}: "
            f"{held} + {stale} + {q} s (refresh query) = {seconds} s; that one request goes to A."
        )
        if bound.hazards and settings.client == "legacy":
            reasoning.append(
                "The legacy A->CNAME term is the same: the stale A record is dropped only at that eviction, "
                f"busy worker or idle ({bound.seconds} s)."
            )
    effective = caches_cleared
    if caches_cleared == "reload" and settings.client == "new":
        effective = "no"
        reasoning.append(
            "The plan says the data planes are `kong reload`ed after the flip, but a reload keeps the new client's "
            "shared cache (lua_shared_dict kong_dns_cache): it does not shorten this wait. Restart them instead."
        )
    if effective != "no" and not via_upstream_target:
        what = "restarted" if effective == "restart" else "reloaded (`kong reload`)"
        if confirmed:
            seconds = record_ttl + q
            reasoning.append(
                f"The operator confirmed in the decommission approval that every data plane was {what} at least "
                f"{record_ttl} s after the flip: new workers ask afresh, so {record_ttl} + {q} s = {seconds} s."
            )
        else:
            reasoning.append(
                f"The plan says every data plane is {what} after the flip; once the decommission approval confirms "
                f"it, this wait becomes {record_ttl + q} s."
            )
    if stale > 60 and not via_upstream_target:
        reasoning.append(
            f"To shorten it without restarts, lower {stale_setting} in Kong before the cutover (cutover reads it)."
        )
    seconds = max(seconds, bound.seconds) + margin_seconds
    reasoning.append(f"+ {margin_seconds} s margin: A may be deleted {seconds} s after the flip at the earliest.")
    return DecommissionTiming(
        seconds_after_flip=seconds,
        reasoning=tuple(reasoning),
        shortened=effective != "no" and confirmed and not via_upstream_target,
    )


def decommission_timing(
    plan: CutoverPlan, kong: KongInspection, bound: CacheBound, *, confirmed: bool = False
) -> DecommissionTiming:
    """The earliest moment after the flip at which A may be deleted (see ``earliest_decommission``).

    ``confirmed``: the decommission approval confirmed the restart/reload ``kong.dns_caches_cleared`` announces.
    """
    return earliest_decommission(
        kong.dns,
        bound,
        record_ttl=plan.dns.cutover_ttl,
        margin_seconds=math.ceil(plan.dns.wait_margin.total_seconds()),
        via_upstream_target=kong.upstream is not None,
        caches_cleared=plan.kong.dns_caches_cleared,
        confirmed=confirmed,
    )


def ipv6_only_refusal(kong: KongDnsSettings, addresses_b: Sequence[str]) -> str | None:
    """Why the cutover must not start when B has only IPv6 addresses and Kong never asks AAAA, or None.

    Kong's legacy client tries the types of ``dns_order`` (default ``LAST,SRV,A,CNAME``: no AAAA,
    kong/resty/dns/client.lua:1069-1130) and the new client asks AAAA only if ``resolver_family``
    holds it (default ``A,SRV``, kong/dns/client.lua:141-158, 481-491). Either way Kong would answer
    503 "name resolution failed" (empty record) for every request after the flip.
    """
    if not addresses_b or any(":" not in address for address in addresses_b):
        return None
    if "AAAA" in kong.order:
        return None
    setting = "dns_order" if kong.client == "legacy" else "resolver_family"
    example = "LAST,SRV,A,AAAA,CNAME" if kong.client == "legacy" else "A,AAAA,SRV"
    current = ",".join(kong.order) or "(default)"
    return (
        f"B has only IPv6 addresses ({', '.join(addresses_b)}), and Kong's {kong.client} DNS client never asks for "
        f"AAAA records ({setting}={current}): every request would fail with 503 after the flip. Set {setting} to "
        f"include AAAA (e.g. {setting} = {example}) on every data plane first."
    )


def kong_risks(strategy: str, kong: KongInspection) -> list[str]:
    """What in this Kong's configuration can hurt the cutover, as risks for the plan."""
    found: list[str] = []
    upstream = kong.upstream
    if upstream is not None and (upstream.passive_unhealthy or upstream.active_unhealthy):
        checks = {**upstream.passive_unhealthy, **upstream.active_unhealthy}
        found.append(
            f"The Upstream {upstream.name} has health checks that mark an address unhealthy "
            f"({', '.join(f'{k} {v}' for k, v in sorted(checks.items()))}): a few failures of B's new addresses "
            "right after the flip take them out of the balancer, and with none left Kong answers 503 'failure to "
            "get a peer from the ring-balancer' (kong/runloop/balancer/init.lua:350-356) until they are healthy "
            "again. Make sure B is warm, or relax the thresholds for the cutover."
        )
    if strategy == "cname" and kong.dns.client == "new":
        found.append(
            "Kong's new DNS client does not follow CNAMEs itself: it keeps only the records of the type it asked "
            "for (kong/dns/client.lua:311-324). After the flip the record is a CNAME to B's name, so Kong's "
            "resolver must return B's addresses with it: a recursive resolver does, a non-recursive one serving "
            "only the record's zone answers the CNAME alone and Kong fails with 503 (empty record). Check that "
            "the data planes' resolver_address is recursive (or authoritative for B's zone too)."
        )
    return found
