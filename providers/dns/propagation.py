"""Prove a change reached every authoritative nameserver, and say which ones lag and why."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from models.dns import NameserverState, PropagationReport, RRset, describe_rrsets
from providers.dns.nameservers import (
    Nameserver,
    all_or_nothing,
    canonical_rrset,
    nameserver_view,
    read_soa,
    serial_at_least,
    sorted_rrsets,
)
from providers.errors import DnsError, DnsUnavailable, PropagationTimeout


def lag_reason(state: NameserverState, desired: Sequence[RRset], min_serial: int | None) -> str | None:
    """Why a server is not in sync yet, in words; None when it answers the desired data."""
    if state.error:
        return state.error if state.error.startswith(state.server) else f"{state.server}: {state.error}"
    if not state.authoritative:
        return f"{state.server}: not authoritative"
    parts = []
    if not serial_at_least(state.serial, min_serial):
        parts.append(f"at serial {state.serial}, want {min_serial}")
    if sorted_rrsets(state.rrsets) != sorted_rrsets(desired):
        parts.append(f"answers {describe_rrsets(state.rrsets)}, want {describe_rrsets(list(desired))}")
    return f"{state.server} {' and '.join(parts)}" if parts else None


def progress_text(report: PropagationReport, desired: Sequence[RRset], min_serial: int | None) -> str:
    """One short line for a heartbeat: ``2/2 in sync`` or the first lagging server and why."""
    desired = sorted_rrsets(canonical_rrset(r) for r in desired)
    total = len(report.servers)
    synced = total - len(report.lagging)
    if not report.lagging:
        return f"{synced}/{total} in sync"
    reasons = [lag_reason(s, desired, min_serial) for s in report.servers if s.server in report.lagging]
    return f"{synced}/{total} in sync; " + "; ".join(r for r in reasons if r)


async def _poll(
    server: Nameserver,
    zone: str,
    name: str,
    types: Sequence[str],
    last: NameserverState | None,
    *,
    min_serial: int | None,
    timeout: float,
) -> NameserverState:
    """One server's view for this poll: read again only when its zone may have moved since ``last``.

    With serials to compare (``min_serial`` known), one SOA query tells whether the server still serves
    the zone version ``last`` was read at; the same version holds the same data, so ``last`` stands.
    Without them (Cloud DNS hides its serial) every poll reads the name.
    """
    if last is not None and last.error is None and last.serial is not None and min_serial is not None:
        try:
            soa = await read_soa(server, zone, timeout=timeout)
        except DnsError as exc:
            return NameserverState(server=server.label, ns_name=server.ns_name, error=str(exc))
        if soa.serial == last.serial:
            return last
    return await nameserver_view(server, zone, name, timeout=timeout, types=types)


async def prove_propagation(
    servers: Sequence[Nameserver],
    zone: str,
    name: str,
    desired: Sequence[RRset],
    *,
    min_serial: int | None,
    read_back: tuple[Nameserver, tuple[RRset, ...]] | None = None,
    timeout: float,
    query_timeout: float,
    on_progress: Callable[[PropagationReport], Awaitable[None] | None] | None = None,
    first_interval: float = 0.1,
    max_interval: float = 1.0,
) -> PropagationReport:
    """Poll every server until each has answered exactly ``desired`` (TTLs included) at ``min_serial`` or newer.

    Polls at a growing interval (``first_interval`` doubling up to ``max_interval``), so a slow
    secondary is not hammered; each poll's report goes to ``on_progress`` (the activity heartbeats).
    A server that has answered ``desired`` is proven and not asked again; a lagging one is read again
    only when its serial moved (see :func:`_poll`), so a long wait costs one SOA query per poll. The
    server ``read_back`` was read from (the change's read-back, at ``min_serial``) starts from it and is
    read again only if its serial moved.

    Raises:
        PropagationTimeout: after ``timeout`` seconds, naming each lagging server and what it answers.
        DnsUnavailable: there is no server to ask.
    """
    if not servers:
        raise DnsUnavailable(f"no authoritative nameserver known for {zone}: nothing to prove propagation on")
    desired = sorted_rrsets(canonical_rrset(r) for r in desired)
    types = [r.type for r in desired]
    started = time.monotonic()
    deadline = started + timeout
    interval = first_interval
    # The server the change was read back from starts from that read-back (taken at min_serial): its first
    # poll asks the SOA only, and keeps the read-back if the server still serves that serial.
    views: dict[str, NameserverState] = {}
    if read_back is not None and min_serial is not None:
        read_at, rrsets = read_back
        views = {
            s.label: NameserverState(
                server=s.label, ns_name=s.ns_name, serial=min_serial, authoritative=True, rrsets=rrsets
            )
            for s in servers
            if (s.host, s.port) == (read_at.host, read_at.port)
        }
    proven: set[str] = set()
    while True:
        remaining = deadline - time.monotonic()
        query_time = max(0.2, min(query_timeout, remaining))
        asking = [s for s in servers if s.label not in proven]
        polled = await all_or_nothing(
            _poll(s, zone, name, types, views.get(s.label), min_serial=min_serial, timeout=query_time) for s in asking
        )
        for view in polled:
            views[view.server] = view
            if lag_reason(view, desired, min_serial) is None:
                proven.add(view.server)
        ordered = tuple(views[s.label] for s in servers)
        lagging = tuple(v.server for v in ordered if v.server not in proven)
        report = PropagationReport(
            name=name,
            in_sync=not lagging,
            servers=ordered,
            lagging=lagging,
            elapsed_seconds=round(time.monotonic() - started, 3),
        )
        if on_progress is not None:
            maybe = on_progress(report)
            if maybe is not None:
                await maybe
        if report.in_sync:
            return report
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            reasons = [lag_reason(v, desired, min_serial) for v in ordered if v.server in lagging]
            raise PropagationTimeout(
                f"after {timeout:g}s, {len(lagging)} of {len(ordered)} authoritative servers still lag for {name}: "
                + "; ".join(r for r in reasons if r)
            )
        await asyncio.sleep(min(interval, remaining))
        interval = min(interval * 2, max_interval)
