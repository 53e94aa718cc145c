"""Pure planning: from a plan and what verifying read, the exact changes, waits and risks of a run.

The workflow runs these functions both for the dry run and for the real run, so the plan a human
approves and the changes the run makes cannot disagree. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from models.dns import DnsChange, DnsSnapshot, RRset, describe_rrsets
from models.kong import (
    QUERY_ALLOWANCE,
    CacheBound,
    KongDnsSettings,
    KongInspectInput,
    KongInspection,
    compute_cache_bound,
    kong_host,
)
from models.kong_hazards import DecommissionTiming, decommission_timing, kong_risks
from models.plan import CutoverPlan
from models.workflow import PlannedChange, WaitRecord

ADDRESS_TYPES = ("A", "AAAA")
WORKER_STATE_UPDATE_FREQUENCY = 5
DB_UPDATE_FREQUENCY = 5
KONG_CONFIG_DELAY = WORKER_STATE_UPDATE_FREQUENCY + DB_UPDATE_FREQUENCY
"""Seconds until every worker of every traditional node routes a Service change: another node sees
the change at its next ``db_update_frequency`` poll (5 s), then each worker rebuilds its router at
its next ``worker_state_update_frequency`` check (5 s) (kong.conf.default, both defaults)."""


@dataclass(frozen=True)
class Reality:
    """What the plan's record looks like today, classified for the chosen strategy."""

    record_rrsets: tuple[RRset, ...]
    """The rrsets at the record that take part in the cutover (address records or the CNAME)."""
    old_name: str
    """A's name: what Kong resolves today (absolute)."""
    flip_kind: str
    """``a-to-cname`` or ``cname-to-cname``."""
    alias_exists: bool
    repoint_needed: bool


def _types(rrsets: tuple[RRset, ...]) -> set[str]:
    return {r.type for r in rrsets}


def kong_inspect_input(plan: CutoverPlan) -> KongInspectInput:
    """What ``kong_inspect`` is told: the Service, the strategy, the record and the target."""
    return KongInspectInput(kong=plan.kong, strategy=plan.strategy, record=plan.dns.record, target=plan.dns.target)


def nameserver_problems(snapshot: DnsSnapshot) -> list[str]:
    """Reasons not to start: a server that doesn't answer, or that disagrees with the primary.

    Every change is proven on every server; starting while one is down or behind would change the
    record and then roll back when the proof fails.
    """
    problems = []
    expected = describe_rrsets(snapshot.rrsets)
    for server in snapshot.nameservers:
        if server.error:
            problems.append(f"nameserver {server.server} did not answer for {snapshot.name}: {server.error}")
        elif not server.authoritative:
            problems.append(f"nameserver {server.server} is not authoritative for {snapshot.zone}")
        elif set(server.rrsets) != set(snapshot.rrsets):
            problems.append(
                f"nameserver {server.server} answers {describe_rrsets(server.rrsets)} for {snapshot.name} but the "
                f"primary holds {expected}: wait until the servers agree"
            )
    return problems


def assess_reality(plan: CutoverPlan, snapshot: DnsSnapshot, kong: KongInspection) -> tuple[Reality | None, list[str]]:
    """Check the plan against the world; return the classified reality or every reason to refuse."""
    problems: list[str] = nameserver_problems(snapshot)
    record, target = plan.dns.record, plan.dns.target
    rrsets = snapshot.rrsets
    types = _types(rrsets)
    service_host = kong.service.host.rstrip(".").lower() + "."
    upstream_targets = (
        {t.target.rsplit(":", 1)[0].rstrip(".").lower() + "." for t in kong.upstream.targets}
        if kong.upstream
        else set()
    )
    kong_names = upstream_targets if kong.upstream else {service_host}
    others = types - {"A", "AAAA", "CNAME"}
    cname = next((r for r in rrsets if r.type == "CNAME"), None)

    if plan.strategy == "cname":
        if record not in kong_names:
            problems.append(
                f"Kong's Service {kong.service.name or kong.service.id} sends traffic to "
                f"{', '.join(sorted(kong_names))}, not to the record {record}: making {record} a CNAME would not "
                f"move Kong's traffic. Set dns.record to the name Kong uses, or use the alias strategy."
            )
        if cname is not None and cname.rdatas == (target,):
            problems.append(f"{record} is already a CNAME to {target}: there is nothing to cut over.")
        elif cname is None and not (types & set(ADDRESS_TYPES)):
            problems.append(f"{record} holds no A/AAAA or CNAME record today: there is no old backend to move from.")
        if others:
            problems.append(
                f"{record} also holds {', '.join(sorted(others))} records: a CNAME cannot coexist with other data "
                "(RFC 1034 §3.6.2). Move them elsewhere, or use the alias strategy with a fresh name."
            )
        participating = tuple(r for r in rrsets if r.type in (*ADDRESS_TYPES, "CNAME"))
        old_name = cname.rdatas[0] if cname is not None else record
        flip_kind = "cname-to-cname" if cname is not None else "a-to-cname"
        reality = Reality(participating, old_name, flip_kind, alias_exists=True, repoint_needed=False)
    else:
        alias_host = kong_host(record)
        repoint_needed = kong.service.host.rstrip(".").lower() != alias_host
        if kong.upstream is not None:
            problems.append(
                f"Kong's Service host is the Upstream {kong.upstream.name}: the alias strategy repoints a Service "
                "whose host is a DNS name. Point the Upstream's target at the alias by hand, or use the cname "
                "strategy on the target's name."
            )
        if repoint_needed and not kong.writable:
            problems.append(
                f"Kong at {plan.kong.admin_url} is {kong.mode} and its Admin API is read-only: the alias strategy "
                "must repoint the Service. Point kong.admin_url at the Control Plane."
            )
        if types & set(ADDRESS_TYPES) or others:
            problems.append(
                f"The alias {record} holds {', '.join(sorted(types - {'CNAME'}))} records: an alias must be a CNAME "
                "(or absent, and cutover creates it)."
            )
        if cname is not None:
            old_name = cname.rdatas[0]
            if cname.rdatas == (target,):
                problems.append(f"The alias {record} already points at {target}: there is nothing to cut over.")
            elif repoint_needed and old_name != service_host:
                problems.append(
                    f"The alias {record} points at {old_name}, but Kong sends traffic to {service_host}: "
                    "repointing Kong at the alias would move traffic before the flip. Make the alias a CNAME to "
                    f"{service_host} first."
                )
        else:
            old_name = service_host
            if not repoint_needed:
                problems.append(
                    f"Kong already points at the alias {record}, but the alias does not exist in DNS: Kong cannot "
                    "be reaching A through it. Create the alias as a CNAME to A's name first."
                )
        participating = tuple(r for r in rrsets if r.type == "CNAME")
        reality = Reality(
            participating, old_name, "cname-to-cname", alias_exists=cname is not None, repoint_needed=repoint_needed
        )
    if plan.strategy == "alias" and kong.upstream is None and plan.dns.target == service_host:
        problems.append(f"Kong already sends traffic to the target {plan.dns.target}.")
    return (None if problems else reality), problems


def cache_bound_for(
    plan: CutoverPlan, kong: KongInspection, reality: Reality, target_address_ttl: int | None = None
) -> CacheBound:
    """Kong's cache bound for this flip, at the cutover TTL.

    ``target_address_ttl``: for an Upstream target that is a CNAME today, the TTL of A's address
    records it leads to (read in verifying); it adds to the bound (see ``compute_cache_bound``).
    """
    return compute_cache_bound(
        kong.dns,
        record_ttl=plan.dns.cutover_ttl,
        flip="a-to-cname" if reality.flip_kind == "a-to-cname" else "cname-to-cname",
        via_upstream_target=kong.upstream is not None,
        target_address_ttl=target_address_ttl,
    )


# --- the waits ------------------------------------------------------------------------------------
# One formula per wait, used by the real run and by the dry run's estimates alike.


def old_ttl_wait(plan: CutoverPlan, snapshot: DnsSnapshot) -> tuple[timedelta, str]:
    """After lowering the TTL: what caches may still hold at the old TTL, as observed on the servers."""
    servers = ", ".join(ns.server for ns in snapshot.nameservers) or "the nameservers"
    return (
        timedelta(seconds=snapshot.max_ttl) + plan.dns.wait_margin,
        f"old TTL {snapshot.max_ttl} s as held at {servers} + margin",
    )


def negative_ttl_wait(plan: CutoverPlan, snapshot: DnsSnapshot) -> tuple[timedelta, str]:
    """After creating the alias: a cached NXDOMAIN for it lives for the zone's negative TTL."""
    return (
        timedelta(seconds=snapshot.negative_ttl) + plan.dns.wait_margin,
        f"negative-caching TTL {snapshot.negative_ttl} s of the new alias + margin",
    )


def kong_apply_wait(plan: CutoverPlan) -> tuple[timedelta, str]:
    """After a Service change without data-plane status URLs to check: Kong's update intervals."""
    return (
        timedelta(seconds=KONG_CONFIG_DELAY) + plan.dns.wait_margin,
        f"Kong applies the Service change (db_update_frequency {DB_UPDATE_FREQUENCY} s + "
        f"worker_state_update_frequency {WORKER_STATE_UPDATE_FREQUENCY} s) + margin",
    )


def drain_wait(plan: CutoverPlan, bound: CacheBound) -> tuple[timedelta, str]:
    """After the flip: resolver caches (cutover TTL), then Kong's own cache bound."""
    return (
        timedelta(seconds=plan.dns.cutover_ttl + bound.seconds) + plan.dns.wait_margin,
        f"cutover TTL {plan.dns.cutover_ttl} s (resolver caches) + Kong cache bound {bound.seconds} s + margin",
    )


def decommission_wait(plan: CutoverPlan, timing: DecommissionTiming) -> tuple[timedelta, str]:
    """Counted from the flip: A stays until every worker that was idle since before it has moved on."""
    return (
        timedelta(seconds=timing.seconds_after_flip),
        f"A stays until {timing.seconds_after_flip} s after the flip (idle Kong workers may still use it)",
    )


def estimated_waits(
    plan: CutoverPlan,
    snapshot: DnsSnapshot,
    reality: Reality,
    bound: CacheBound,
    kong: KongInspection | None = None,
) -> list[WaitRecord]:
    """The waits a run will make, for the dry run: the same formulas the run uses.

    With ``kong``, it also shows the earliest decommission time (counted from the flip, not from the
    previous wait), as the run will compute it without a confirmed restart.
    """
    waits: list[tuple[str, tuple[timedelta, str]]] = []
    if plan.strategy == "alias" and not reality.alias_exists:
        waits.append(("repointing", negative_ttl_wait(plan, snapshot)))
    if reality.repoint_needed and not plan.kong.status_urls:
        waits.append(("repointing", kong_apply_wait(plan)))
    if reality.alias_exists and lower_ttl_change(plan, reality.record_rrsets) is not None:
        waits.append(("lowering-ttl", old_ttl_wait(plan, snapshot)))
    waits.append(("draining", drain_wait(plan, bound)))
    waits.append(("monitoring", (plan.monitor.window, "monitoring window (may end early when unhealthy)")))
    decommission = plan.decommission
    if decommission.kind != "none" and decommission.require_drained:
        waits.append(("decommissioning", (decommission.quiet_period, "A must be quiet this long (at least)")))
    if decommission.kind != "none" and kong is not None:
        waits.append(("decommissioning", decommission_wait(plan, decommission_timing(plan, kong, bound))))
    return [WaitRecord(phase=phase, seconds=d.total_seconds(), reason=why) for phase, (d, why) in waits]


# --- the changes ----------------------------------------------------------------------------------


def create_alias_change(plan: CutoverPlan, old_name: str) -> DnsChange:
    """Create the alias as a CNAME to A's name, at the cutover TTL."""
    desired = (RRset(name=plan.dns.record, type="CNAME", ttl=plan.dns.cutover_ttl, rdatas=(old_name,)),)
    return DnsChange(name=plan.dns.record, expected=(), desired=desired, reason=f"create alias {plan.dns.record}")


def lower_ttl_change(plan: CutoverPlan, rrsets: tuple[RRset, ...]) -> DnsChange | None:
    """Lower every participating rrset to the cutover TTL, or None when they already are that low."""
    if all(r.ttl <= plan.dns.cutover_ttl for r in rrsets):
        return None
    desired = tuple(r.with_ttl(plan.dns.cutover_ttl) for r in rrsets)
    return DnsChange(
        name=plan.dns.record,
        expected=rrsets,
        desired=desired,
        reason=f"lower the TTL of {plan.dns.record} to {plan.dns.cutover_ttl} s before the flip",
    )


def flip_change(plan: CutoverPlan, current: tuple[RRset, ...]) -> DnsChange:
    """Replace whatever the record holds with a CNAME to the target, in one atomic change."""
    desired = (RRset(name=plan.dns.record, type="CNAME", ttl=plan.dns.cutover_ttl, rdatas=(plan.dns.target,)),)
    return DnsChange(
        name=plan.dns.record,
        expected=current,
        desired=desired,
        reason=f"flip {plan.dns.record} to CNAME {plan.dns.target}",
    )


def final_ttl_change(plan: CutoverPlan) -> DnsChange:
    """Raise the flipped record's TTL to ``final_ttl``."""
    record, target = plan.dns.record, plan.dns.target
    return DnsChange(
        name=record,
        expected=(RRset(name=record, type="CNAME", ttl=plan.dns.cutover_ttl, rdatas=(target,)),),
        desired=(RRset(name=record, type="CNAME", ttl=plan.dns.final_ttl, rdatas=(target,)),),
        reason=f"restore the TTL of {record} to {plan.dns.final_ttl} s",
    )


def rollback_name(plan: CutoverPlan) -> str:
    """A temporary in-zone name holding A's addresses while a flip is rolled back in two steps."""
    label, _, parent = plan.dns.record.partition(".")
    suffix = "--cutover-rollback"
    return f"{label[: 63 - len(suffix)]}{suffix}.{parent}"


@dataclass(frozen=True)
class TwoStepRollback:
    """Undo an A->CNAME flip without Kong's legacy client failing to resolve the name.

    After the flip Kong cached "no A record" for the name (``dns_not_found_ttl``), and its last
    successful type is CNAME. Putting the A record straight back would leave Kong unable to resolve
    the name until that negative entry expires: 503s for up to ``dns_not_found_ttl``. So: retarget the
    CNAME at a temporary name that holds A's addresses (a CNAME->CNAME change Kong follows at once),
    wait for the negative entry to expire, restore the A record, wait out Kong's stale CNAME, and
    remove the temporary name.
    """

    create_temporary: DnsChange
    retarget: DnsChange
    restore: DnsChange
    remove_temporary: DnsChange


def two_step_rollback(plan: CutoverPlan, flipped: tuple[RRset, ...], before: tuple[RRset, ...]) -> TwoStepRollback:
    """The four changes of a two-step rollback of the flip from ``before`` to ``flipped``."""
    record, temporary, ttl = plan.dns.record, rollback_name(plan), plan.dns.cutover_ttl
    held = tuple(r.model_copy(update={"name": temporary, "ttl": ttl}) for r in before if r.type in ADDRESS_TYPES)
    pointer = (RRset(name=record, type="CNAME", ttl=ttl, rdatas=(temporary,)),)
    return TwoStepRollback(
        create_temporary=DnsChange(
            name=temporary, expected=(), desired=held, reason=f"rollback: {temporary} holds A's addresses"
        ),
        retarget=DnsChange(
            name=record, expected=flipped, desired=pointer, reason=f"rollback: {record} CNAME {temporary} (A)"
        ),
        restore=DnsChange(name=record, expected=pointer, desired=before, reason=f"rollback: restore {record}"),
        remove_temporary=DnsChange(
            name=temporary, expected=held, desired=(), reason=f"rollback: remove the temporary {temporary}"
        ),
    )


def negative_entry_expiry(plan: CutoverPlan, kong: KongDnsSettings) -> timedelta:
    """How long after the flip Kong may hold its "no A record" entry for the record (legacy client).

    The entry is cached when Kong falls through after dropping the stale A record (at most cutover
    TTL + stale TTL + the refresh query after the flip), and lives ``dns_not_found_ttl``.
    """
    return timedelta(seconds=plan.dns.cutover_ttl + kong.stale_ttl + QUERY_ALLOWANCE + kong.not_found_ttl)


def stale_cname_window(plan: CutoverPlan, kong: KongDnsSettings) -> timedelta:
    """How long Kong may keep using the record's previous CNAME after it changes to something else."""
    return timedelta(seconds=plan.dns.cutover_ttl + kong.stale_ttl + QUERY_ALLOWANCE)


def undo_of(change: DnsChange, reason: str) -> DnsChange:
    """The compare-and-swap inverse of a change: from what it made back to what it found."""
    return DnsChange(name=change.name, expected=change.desired, desired=change.expected, reason=reason)


def planned_changes(plan: CutoverPlan, reality: Reality, kong: KongInspection) -> list[PlannedChange]:
    """The changes a run makes, in order, each with its undo; what the dry run prints."""
    changes: list[PlannedChange] = []
    record, target = plan.dns.record, plan.dns.target
    if plan.strategy == "alias" and not reality.alias_exists:
        changes.append(
            PlannedChange(
                phase="repointing",
                description=f"create {record} CNAME {reality.old_name} (TTL {plan.dns.cutover_ttl})",
                undo=f"delete {record}",
            )
        )
    if reality.repoint_needed:
        changes.append(
            PlannedChange(
                phase="repointing",
                description=f"Kong Service {plan.kong.service}: host {kong.service.host} -> {kong_host(record)}",
                undo=f"host back to {kong.service.host}, if nobody else changed the Service",
            )
        )
    lowering = lower_ttl_change(plan, reality.record_rrsets) if reality.alias_exists else None
    if lowering is not None:
        changes.append(
            PlannedChange(
                phase="lowering-ttl",
                description=f"{describe_rrsets(lowering.expected)} -> TTL {plan.dns.cutover_ttl}",
                undo=f"TTL back to {describe_rrsets(lowering.expected)}",
            )
        )
    before = lowering.desired if lowering is not None else reality.record_rrsets
    if not reality.alias_exists:
        before = create_alias_change(plan, reality.old_name).desired
    changes.append(
        PlannedChange(
            phase="flipping",
            description=f"{describe_rrsets(before)} -> {record} {plan.dns.cutover_ttl} CNAME {target}",
            undo=f"back to {describe_rrsets(before)}",
        )
    )
    decommission = plan.decommission
    if decommission.kind == "gcp-project":
        what = f"delete GCP project {decommission.project_id} (undeletable for 30 days)"
    elif decommission.kind == "webhook":
        what = f"{decommission.method} {decommission.url} (idempotency key {plan.workflow_id})"
    else:
        what = "leave A in place (decommission kind none)"
    changes.append(PlannedChange(phase="decommissioning", description=what, undo=None))
    changes.append(
        PlannedChange(
            phase="restoring-ttl",
            description=f"{record} CNAME {target}: TTL {plan.dns.cutover_ttl} -> {plan.dns.final_ttl}",
            undo=None,
        )
    )
    return changes


def risks(plan: CutoverPlan, reality: Reality, kong: KongInspection, bound: CacheBound) -> list[str]:
    """What could hurt, found before anything changes."""
    found: list[str] = list(bound.hazards) + list(bound.warnings) + list(kong.warnings)
    if kong.shape_after.preserve_host_hosts:
        found.append(
            "Routes with preserve_host send the client's Host to B: B must also accept "
            + ", ".join(kong.shape_after.preserve_host_hosts)
        )
    found.extend(kong_risks(plan.strategy, kong))
    if plan.decommission.kind != "none" and not plan.decommission.require_drained:
        found.append("require_drained is false: A may be deleted while Kong still sends it traffic.")
    if not plan.approvals.flip and not plan.approvals.decommission:
        found.append("No human gate: the run flips and decommissions without asking anyone.")
    return list(dict.fromkeys(found))
