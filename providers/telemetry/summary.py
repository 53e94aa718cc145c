"""Count Kong request records into a :class:`WindowSummary`, the one shape every source returns.

Parse failures and out-of-scope requests never raise: they are counted and summarised in a few short
notes (grouped by reason, never quoting a log line), so a verdict is always possible and its
evidence says how much was unreadable.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from models.telemetry import WindowSummary
from providers.telemetry.records import ProxiedRequest

MAX_NOTES = 20
"""Notes kept per summary: they travel in heartbeats and workflow history, so they stay few and short."""


def status_class(status: int) -> str:
    """``503`` -> ``"5xx"``."""
    return f"{status // 100}xx"


def bounded_notes(summary: WindowSummary) -> WindowSummary:
    """Keep at most :data:`MAX_NOTES` notes (merged summaries keep every distinct note of every poll)."""
    if len(summary.notes) <= MAX_NOTES:
        return summary
    kept = (*summary.notes[: MAX_NOTES - 1], f"{len(summary.notes) - MAX_NOTES + 1} more notes omitted")
    return summary.model_copy(update={"notes": kept})


class SummaryBuilder:
    """Accumulate one window's requests of one service."""

    def __init__(
        self,
        *,
        source: str,
        service: str | None,
        window_start: datetime | None,
        window_end: datetime | None,
        has_addresses: bool = True,
        only_within_window: bool = False,
    ) -> None:
        """Start an empty window.

        Args:
            source: the source's description.
            service: the Kong service that counts; other services' requests are ignored. None: every
                service counts (the drain proof before a deletion: A must get nothing through any service).
            window_start: start of the window the summary describes.
            window_end: end of the window the summary describes.
            has_addresses: whether the source records upstream addresses at all.
            only_within_window: drop requests that started outside ``[window_start, window_end)``
                (history reads); polls count everything newly written instead.
        """
        self._source = source
        self._service = service
        self._window_start = window_start
        self._window_end = window_end
        self._has_addresses = has_addresses
        self._only_within_window = only_within_window
        self._requests = 0
        self._status_classes: Counter[str] = Counter()
        self._upstream_statuses: Counter[str] = Counter()
        self._upstream_errors = 0
        self._retried = 0
        self._per_ip: Counter[str] = Counter()
        self._last_seen_per_ip: dict[str, datetime] = {}
        self._first_seen: datetime | None = None
        self._last_seen: datetime | None = None
        self._failures: Counter[str] = Counter()
        self._first_failure_at: dict[str, str] = {}
        self._other_services: Counter[str] = Counter()
        self._unlogged_status = 0
        self._unlogged_address = 0
        self._notes: list[str] = []

    def add(self, request: ProxiedRequest) -> bool:
        """Count ``request`` if it belongs to the service and the window; return whether it counted."""
        if not request.belongs_to(self._service):
            self._other_services[(request.services or ("(no service)",))[0]] += 1
            return False
        if self._only_within_window and (
            (self._window_start is not None and request.started_at < self._window_start)
            or (self._window_end is not None and request.started_at >= self._window_end)
        ):
            return False
        self._requests += 1
        self._status_classes[status_class(request.status)] += 1
        self._upstream_statuses[request.upstream_status] += 1
        if request.upstream_error:
            self._upstream_errors += 1
        if request.attempts > 1:
            self._retried += 1
        if not request.status_logged:
            self._unlogged_status += 1
        if not request.address_logged:
            self._unlogged_address += 1
        if request.upstream_ip:
            self._per_ip[request.upstream_ip] += 1
            seen = self._last_seen_per_ip.get(request.upstream_ip)
            if seen is None or request.started_at > seen:
                self._last_seen_per_ip[request.upstream_ip] = request.started_at
        if self._first_seen is None or request.started_at < self._first_seen:
            self._first_seen = request.started_at
        if self._last_seen is None or request.started_at > self._last_seen:
            self._last_seen = request.started_at
        return True

    def failure(self, reason: str, where: str) -> None:
        """Count an unreadable record; ``where`` locates the first one (file:offset, insertId)."""
        self._failures[reason] += 1
        self._first_failure_at.setdefault(reason, where)

    def note(self, text: str) -> None:
        """Record something the operator should know about this window (rotation, counter reset ...)."""
        if text not in self._notes:
            self._notes.append(text)

    def build(self) -> WindowSummary:
        """The summary of everything added so far."""
        notes = list(self._notes)
        for reason, count in self._failures.most_common():
            notes.append(f"{count} unreadable record(s): {reason} (first at {self._first_failure_at[reason]})")
        if self._other_services:
            names = ", ".join(name for name, _ in self._other_services.most_common(5))
            notes.append(
                f"{sum(self._other_services.values())} request(s) of other services ignored ({names}); "
                f"only service {self._service!r} counts"
            )
        if self._unlogged_status:
            notes.append(
                f"{self._unlogged_status} access line(s) without upstream_status: their client status stands "
                "in for the upstream status (add $upstream_status to the log format, docs/telemetry.md)"
            )
        has_addresses = self._has_addresses
        if self._unlogged_address:
            has_addresses = False
            notes.append(
                f"{self._unlogged_address} access line(s) without upstream_addr: the traffic share and the "
                "drain proof are unknown (add $upstream_addr to the log format, docs/telemetry.md)"
            )
        summary = WindowSummary(
            source=self._source,
            service=self._service,
            window_start=self._window_start,
            window_end=self._window_end,
            first_seen=self._first_seen,
            last_seen=self._last_seen,
            requests=self._requests,
            status_classes=dict(sorted(self._status_classes.items())),
            upstream_statuses=dict(sorted(self._upstream_statuses.items())),
            upstream_errors=self._upstream_errors,
            retried=self._retried,
            requests_per_ip=dict(sorted(self._per_ip.items())) if has_addresses else {},
            has_addresses=has_addresses,
            last_seen_per_ip=dict(sorted(self._last_seen_per_ip.items())) if has_addresses else {},
            parse_failures=sum(self._failures.values()),
            notes=tuple(notes),
        )
        return bounded_notes(summary)
