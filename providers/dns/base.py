"""One interface for every DNS provider: read a name, compare-and-swap it, prove it on every nameserver.

:class:`DnsProvider` is a template: :meth:`DnsProvider.apply` does the checks, the idempotency test,
the compare-and-swap decision and the read-back for every provider; a provider only says how to read
the rrsets at a name (:meth:`DnsProvider._read`) and how to send one atomic change
(:meth:`DnsProvider._submit`). Snapshots, propagation proofs and address resolution go to the
authoritative nameservers directly (:mod:`providers.dns.nameservers`), the same way for every provider.

What "applied" means: the provider's own read-back of the name equals the desired rrsets, TTLs
included. BIND and Cloud DNS accept some invalid changes without an error (a CNAME beside other data
is silently ignored, RFC 2136 §3.4.2.2), so an apply is never trusted without reading it back.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import ClassVar

import dns.asyncresolver
import dns.name

from models.dns import (
    AddressMap,
    DnsChange,
    DnsChangeResult,
    DnsSnapshot,
    NameserverState,
    PropagationReport,
    RRset,
    describe_rrsets,
)
from models.names import split_host_port
from providers.dns import discovery, propagation, resolution
from providers.dns import nameservers as ns
from providers.dns.nameservers import Nameserver, canonical_name, canonical_rrset, only_types, sorted_rrsets
from providers.errors import InvalidChange, NotInZone, PolicyViolation, PreconditionFailed
from providers.netguard import NetworkGuard
from providers.resources import AsyncResource

PROTECTED_TYPES = frozenset({"SOA", "NS", "DNSKEY", "DS", "RRSIG", "NSEC", "NSEC3", "NSEC3PARAM"})
"""Types cutover never writes: they belong to the zone's delegation and signing, not to a record move."""

ProgressCallback = Callable[[PropagationReport], Awaitable[None] | None]


def normalized_change(change: DnsChange) -> DnsChange:
    """The change with canonical names and record text, so comparisons with server data are exact.

    Raises:
        InvalidChange: a record's text is not valid for its type.
    """
    try:
        return DnsChange(
            name=canonical_name(change.name),
            expected=sorted_rrsets(canonical_rrset(r) for r in change.expected),
            desired=sorted_rrsets(canonical_rrset(r) for r in change.desired),
            reason=change.reason,
        )
    except ValueError as exc:
        raise InvalidChange(f"change of {change.name}: {exc}") from exc


def change_types(change: DnsChange) -> set[str]:
    """The types a change compares and writes: those it expects or desires."""
    return {r.type for r in change.expected} | {r.type for r in change.desired}


def check_change(change: DnsChange, zone: str) -> None:
    """Refuse a change that could never be right, before reading or sending anything.

    Raises:
        NotInZone: the name is outside the provider's zone.
        InvalidChange: every problem at once: rrsets at another name, a type listed twice, SOA/NS,
            a CNAME at the apex, a CNAME with other data or with several targets.
    """
    name = dns.name.from_text(change.name)
    if not name.is_subdomain(dns.name.from_text(zone)):
        raise NotInZone(f"{change.name} is not in the zone {zone}: this provider can only change names inside it")
    problems: list[str] = []
    for label, rrsets in (("expected", change.expected), ("desired", change.desired)):
        types = [r.type for r in rrsets]
        for rrset in rrsets:
            if canonical_name(rrset.name) != change.name:
                problems.append(f"{label} rrset {rrset.describe()} is not at {change.name}")
        duplicated = sorted({t for t in types if types.count(t) > 1})
        if duplicated:
            problems.append(f"{label} lists {', '.join(duplicated)} more than once (an rrset is written whole)")
    protected = sorted(change_types(change) & PROTECTED_TYPES)
    if protected:
        problems.append(f"cutover does not change {', '.join(protected)} records")
    desired_types = {r.type for r in change.desired}
    if "CNAME" in desired_types:
        if change.name == canonical_name(zone):
            problems.append(
                f"{change.name} is the zone apex: a CNAME cannot live there, because the apex always holds "
                "SOA and NS records (RFC 1034 §3.6.2, RFC 1912 §2.4)"
            )
        others = sorted(desired_types - {"CNAME"})
        if others:
            problems.append(f"a CNAME cannot share {change.name} with {', '.join(others)} (RFC 1034 §3.6.2)")
        cname = next(r for r in change.desired if r.type == "CNAME")
        if len(cname.rdatas) != 1:
            problems.append(f"a CNAME has exactly one target, not {len(cname.rdatas)}")
    if problems:
        raise InvalidChange(f"change of {change.name} ({change.reason}) is invalid: " + "; ".join(problems))


def resulting_rrsets(current: Sequence[RRset], change: DnsChange) -> tuple[RRset, ...]:
    """What the name would hold after the change: untouched types stay, the change's types become desired."""
    touched = change_types(change)
    return sorted_rrsets([r for r in current if r.type not in touched] + list(change.desired))


def check_cname_exclusive(current: Sequence[RRset], change: DnsChange) -> None:
    """Refuse a change that would leave a CNAME beside other data (servers would silently ignore it).

    Raises:
        InvalidChange: naming the data the CNAME would collide with.
    """
    after = resulting_rrsets(current, change)
    types = {r.type for r in after}
    if "CNAME" in types and len(types) > 1:
        others = [r for r in after if r.type != "CNAME"]
        raise InvalidChange(
            f"{change.name} would hold a CNAME beside {describe_rrsets(others)}: a CNAME excludes all other data "
            "(RFC 1034 §3.6.2), and DNS servers silently ignore such an update. List the other rrsets in the "
            "change's expected data to replace them, or pick a name without other data"
        )


class DnsProvider(AsyncResource, ABC):
    """A zone cutover can read and change, plus the authoritative servers that publish it.

    Subclasses implement :meth:`_read`, :meth:`_submit`, :meth:`negative_ttl` and
    :meth:`_discover_nameservers`; everything else is shared. Use as ``async with provider:`` so
    network clients are closed.
    """

    kind: ClassVar[str]

    def __init__(
        self,
        *,
        zone: str,
        nameservers: Sequence[str] | None,
        query_timeout: float,
        resolver: dns.asyncresolver.Resolver | None = None,
        guard: NetworkGuard | None = None,
    ) -> None:
        """Set up the shared parts.

        Args:
            zone: the zone's absolute name.
            nameservers: ``host:port`` of the authoritative servers to prove changes on; None to
                discover the zone's NS set (port 53).
            query_timeout: seconds to wait for one DNS answer.
            resolver: recursive resolver for names outside the zone; default: the worker's.
            guard: where queries may go (the worker policy's nameservers, no metadata/link-local address);
                default: the rules that need no policy.
        """
        self.zone = canonical_name(zone)
        self.guard = guard or NetworkGuard()
        self._configured_nameservers = list(nameservers) if nameservers is not None else None
        self._nameservers: list[Nameserver] | None = None
        self.query_timeout = query_timeout
        self.resolver = resolver
        self.log = logging.getLogger(f"{type(self).__name__}[{self.zone}]")

    async def aclose(self) -> None:
        """Release network clients; subclasses holding one extend this. Forgets discovered nameservers."""
        self._nameservers = None

    # --- provider hooks ----------------------------------------------------------------------------

    @abstractmethod
    async def _read(self, name: str, types: Iterable[str] = ()) -> tuple[int | None, tuple[RRset, ...]]:
        """Every rrset at ``name`` as the provider holds it, and the zone serial when the provider shows one.

        ``types`` are the types the caller compares: a provider that reads by DNS queries must ask for
        them explicitly (an ANY answer may be minimal, RFC 8482).
        """

    @abstractmethod
    async def _submit(self, change: DnsChange) -> str | None:
        """Send ``change`` as one atomic compare-and-swap on the expected rrsets; return a change id.

        Raises:
            PreconditionFailed: the provider refused because its data is not ``change.expected``.
        """

    @abstractmethod
    async def negative_ttl(self) -> int:
        """min(SOA TTL, SOA MINIMUM) of the zone (RFC 2308 §3)."""

    @abstractmethod
    async def _discover_nameservers(self) -> list[Nameserver]:
        """The zone's authoritative servers, when the plan does not list them."""

    async def _read_server(self) -> Nameserver | None:
        """The authoritative server ``_read`` asks by DNS, when it does: its answer is that server's view too."""
        return None

    async def _resolution_servers(self) -> list[Nameserver]:
        """Servers to resolve in-zone names at, best first (a primary puts itself first)."""
        return await self.nameservers()

    # --- shared operations -------------------------------------------------------------------------

    async def nameservers(self) -> list[Nameserver]:
        """The authoritative servers: the plan's list, or the zone's NS set on port 53."""
        if self._nameservers is None:
            if self._configured_nameservers is not None:
                for index, entry in enumerate(self._configured_nameservers):
                    host, port = split_host_port(entry, 53)
                    self.guard.check_server("nameserver", host, port, f"dns.nameservers.{index}")
                servers = await discovery.configured_nameservers(self._configured_nameservers, self.resolver)
            else:
                servers = await self._discover_nameservers()
                for server in servers:
                    # Discovered from the zone's NS set: the address (or its NS name) must be allowed.
                    label = f"nameserver {server.ns_name or server.host} of {self.zone}"
                    try:
                        self.guard.check_server("nameserver", server.host, server.port, label)
                    except PolicyViolation:
                        if server.ns_name is None:
                            raise
                        self.guard.check_server("nameserver", server.ns_name, server.port, label)
            for server in servers:
                self.guard.check_address(server.host, f"nameserver {server.ns_name or server.host}")
            self._nameservers = servers
        return self._nameservers

    async def apply(self, change: DnsChange) -> DnsChangeResult:
        """Apply one compare-and-swap change and read it back; idempotent.

        * the name already holds ``desired`` (TTL included): outcome ``already-applied``, nothing sent;
        * it holds ``expected``: one atomic change is sent, then read back; outcome ``applied``;
        * anything else: someone else changed the name, nothing is sent.

        Raises:
            NotInZone: the name is outside the zone.
            InvalidChange: the change breaks DNS rules, or the server accepted it without applying it.
            PreconditionFailed: the name holds neither ``expected`` nor ``desired``; nothing changed.
            DnsAuthError, DnsRefused, DnsUnavailable: the provider failed.
        """
        change = normalized_change(change)
        check_change(change, self.zone)
        types = change_types(change)
        serial_before, current = await self._read(change.name, types)
        if only_types(current, types) == change.desired:
            self.log.info("apply: %s already holds %s", change.name, describe_rrsets(change.desired))
            return DnsChangeResult(
                outcome="already-applied", serial_before=serial_before, serial_after=serial_before, readback=current
            )
        if only_types(current, types) != change.expected:
            raise self._conflict(change, only_types(current, types))
        check_cname_exclusive(current, change)
        self.log.info(
            "apply: %s: %s -> %s (%s)",
            change.name,
            describe_rrsets(change.expected),
            describe_rrsets(change.desired),
            change.reason,
        )
        try:
            change_id = await self._submit(change)
        except PreconditionFailed:
            serial_now, now = await self._read(change.name, types)
            if only_types(now, types) == change.desired:
                return DnsChangeResult(
                    outcome="already-applied", serial_before=serial_now, serial_after=serial_now, readback=now
                )
            raise self._conflict(change, only_types(now, types)) from None
        serial_after, readback = await self._read(change.name, types)
        if only_types(readback, types) != change.desired:
            if only_types(readback, types) == change.expected:
                raise InvalidChange(
                    f"the server accepted the change of {change.name} ({change.reason}) but ignored it: it still "
                    f"holds {describe_rrsets(only_types(readback, types))}; nothing was changed"
                )
            raise PreconditionFailed(
                f"{change.name} changed while cutover applied its change ({change.reason}): it now holds "
                f"{describe_rrsets(only_types(readback, types))}, wanted {describe_rrsets(change.desired)}; "
                "someone else edited it at the same time. Check the record before going on"
            )
        self.log.info(
            "apply: %s now holds %s (serial %s -> %s)",
            change.name,
            describe_rrsets(readback),
            serial_before,
            serial_after,
        )
        return DnsChangeResult(
            outcome="applied",
            serial_before=serial_before,
            serial_after=serial_after,
            readback=readback,
            change_id=change_id,
        )

    def _conflict(self, change: DnsChange, found: tuple[RRset, ...]) -> PreconditionFailed:
        return PreconditionFailed(
            f"{change.name}: expected {describe_rrsets(change.expected)}, found {describe_rrsets(found)}: "
            f"someone else changed the record since cutover read it; nothing was changed ({change.reason})"
        )

    async def snapshot(self, name: str) -> DnsSnapshot:
        """The name as the provider holds it and as every authoritative server answers it."""
        name = canonical_name(name)
        if not dns.name.from_text(name).is_subdomain(dns.name.from_text(self.zone)):
            raise NotInZone(f"{name} is not in the zone {self.zone}")
        serial, rrsets = await self._read(name)
        negative_ttl = await self.negative_ttl()
        servers = await self.nameservers()
        read_at = await self._read_server()
        known = {
            s.label: NameserverState(
                server=s.label, ns_name=s.ns_name, serial=serial, authoritative=True, rrsets=rrsets
            )
            for s in servers
            if read_at is not None and (s.host, s.port) == (read_at.host, read_at.port)
        }
        asked = [s for s in servers if s.label not in known]
        found = await ns.nameserver_views(
            asked, self.zone, name, timeout=self.query_timeout, types=[r.type for r in rrsets]
        )
        by_label = {**known, **{view.server: view for view in found}}
        views = tuple(by_label[s.label] for s in servers)
        max_ttl = max([r.ttl for r in rrsets] + [v.max_ttl for v in views], default=0)
        return DnsSnapshot(
            zone=self.zone,
            name=name,
            rrsets=rrsets,
            serial=serial,
            nameservers=views,
            max_ttl=max_ttl,
            negative_ttl=negative_ttl,
            taken_at=datetime.now(UTC),
        )

    async def prove_propagation(
        self,
        name: str,
        desired: Sequence[RRset],
        *,
        min_serial: int | None = None,
        read_back: Sequence[RRset] | None = None,
        timeout: float,
        on_progress: ProgressCallback | None = None,
    ) -> PropagationReport:
        """Wait until every authoritative server answers exactly ``desired`` at ``name``.

        ``desired`` is the whole content of the name (every type), TTLs included; ``min_serial``, when
        given, must be reached too (RFC 1982 comparison). ``read_back``, the change's read-back taken at
        ``min_serial`` from the server reads go to, is where the proof starts for that server.

        Raises:
            PropagationTimeout: naming each server that still lags and what it answers.
        """
        read_at = await self._read_server() if read_back is not None and min_serial is not None else None
        return await propagation.prove_propagation(
            await self.nameservers(),
            self.zone,
            canonical_name(name),
            desired,
            min_serial=min_serial,
            read_back=(read_at, tuple(read_back)) if read_at is not None and read_back is not None else None,
            timeout=timeout,
            query_timeout=self.query_timeout,
            on_progress=on_progress,
        )

    async def resolve(self, names: Sequence[str]) -> AddressMap:
        """Addresses each name reaches through CNAMEs (authoritative data for names in the zone)."""
        servers = await self._resolution_servers()
        return await resolution.resolve_names(
            names, self.zone, servers, resolver=self.resolver, timeout=self.query_timeout
        )
