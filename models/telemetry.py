"""Traffic as Kong saw it, summarised per window, and the verdicts drawn from it.

Every telemetry source (file-log, Cloud Logging, Prometheus) produces the same ``WindowSummary``;
``evaluate`` turns a summary into a verdict and ``drain_proof`` into a proof that A is drained, with
pure arithmetic, so the workflow, the activities, the ``starter.py traffic`` command and the tests
agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.durations import format_duration
from models.plan import MonitorSection


class _Model(BaseModel):
    # Unknown fields are ignored, not refused: during a rolling deploy a newer activity may return a
    # field an older workflow doesn't know, and a decode error would fail the run without rollback.
    model_config = ConfigDict(extra="ignore", frozen=True)


class WindowSummary(_Model):
    """Requests seen in one window of time."""

    source: str
    """e.g. "kong-file-log /var/log/kong/file-log.json"."""
    service: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    requests: int = 0
    status_classes: dict[str, int] = {}
    """Client-facing status classes: "2xx" -> count."""
    upstream_statuses: dict[str, int] = {}
    """Final upstream status -> count ("" when Kong answered without reaching an upstream)."""
    upstream_errors: int = 0
    """Requests whose final upstream status (or Kong's own 502/503/504) is a 5xx."""
    retried: int = 0
    """Requests Kong tried more than once ("502, 200")."""
    requests_per_ip: dict[str, int] = {}
    """Upstream address of the final try -> count. Empty when the source has no addresses."""
    has_addresses: bool = True
    """False for sources that can't tell which upstream address served (Prometheus)."""
    last_seen_per_ip: dict[str, datetime] = {}
    parse_failures: int = 0
    notes: tuple[str, ...] = ()

    @property
    def error_ratio(self) -> float | None:
        """Upstream error share, or None without requests."""
        return self.upstream_errors / self.requests if self.requests else None


def merge_summaries(first: WindowSummary, second: WindowSummary) -> WindowSummary:
    """Combine two consecutive windows into one (counts add, bounds widen)."""

    def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
        out = dict(a)
        for key, value in b.items():
            out[key] = out.get(key, 0) + value
        return out

    def earliest(a: datetime | None, b: datetime | None) -> datetime | None:
        return min((x for x in (a, b) if x is not None), default=None)

    def latest(a: datetime | None, b: datetime | None) -> datetime | None:
        return max((x for x in (a, b) if x is not None), default=None)

    last_seen_per_ip = dict(first.last_seen_per_ip)
    for ip, seen in second.last_seen_per_ip.items():
        last_seen_per_ip[ip] = max(seen, last_seen_per_ip.get(ip, seen))
    return WindowSummary(
        source=first.source,
        service=first.service or second.service,
        window_start=earliest(first.window_start, second.window_start),
        window_end=latest(first.window_end, second.window_end),
        first_seen=earliest(first.first_seen, second.first_seen),
        last_seen=latest(first.last_seen, second.last_seen),
        requests=first.requests + second.requests,
        status_classes=add(first.status_classes, second.status_classes),
        upstream_statuses=add(first.upstream_statuses, second.upstream_statuses),
        upstream_errors=first.upstream_errors + second.upstream_errors,
        retried=first.retried + second.retried,
        requests_per_ip=add(first.requests_per_ip, second.requests_per_ip),
        has_addresses=first.has_addresses and second.has_addresses,
        last_seen_per_ip=last_seen_per_ip,
        parse_failures=first.parse_failures + second.parse_failures,
        notes=tuple(dict.fromkeys(first.notes + second.notes)),
    )


class TrafficShare(_Model):
    """Which share of requests reached A's and B's addresses."""

    known: bool
    """False when the source has no upstream addresses."""
    a_requests: int = 0
    b_requests: int = 0
    other_requests: int = 0
    a_ratio: float | None = None
    b_ratio: float | None = None
    other_addresses: tuple[str, ...] = ()

    def describe(self) -> str:
        """E.g. "Kong sends 100% to B (240 requests)"."""
        if not self.known:
            return "the telemetry source does not record upstream addresses"
        total = self.a_requests + self.b_requests + self.other_requests
        if not total:
            return "no requests seen"
        parts = [f"{100 * self.b_requests / total:.0f}% to B", f"{100 * self.a_requests / total:.0f}% to A"]
        if self.other_requests:
            parts.append(f"{100 * self.other_requests / total:.0f}% elsewhere {list(self.other_addresses)}")
        return f"Kong sends {', '.join(parts)} ({total} requests)"


VerdictStatus = Literal["healthy", "unhealthy", "inconclusive"]


class Verdict(_Model):
    """Is B healthy behind Kong, with the evidence."""

    status: VerdictStatus
    reason: str
    requests: int
    error_ratio: float | None = None
    threshold: float
    baseline_ratio: float | None = None
    worst_statuses: tuple[tuple[str, int], ...] = ()
    share: TrafficShare
    summary: WindowSummary


def traffic_share(summary: WindowSummary, a_addresses: list[str], b_addresses: list[str]) -> TrafficShare:
    """Split the summary's requests by upstream address into A, B and elsewhere."""
    if not summary.has_addresses:
        return TrafficShare(known=False)
    a_set, b_set = set(a_addresses), set(b_addresses)
    a = sum(n for ip, n in summary.requests_per_ip.items() if ip in a_set)
    b = sum(n for ip, n in summary.requests_per_ip.items() if ip in b_set)
    others = {ip: n for ip, n in summary.requests_per_ip.items() if ip not in a_set | b_set}
    total = a + b + sum(others.values())
    return TrafficShare(
        known=True,
        a_requests=a,
        b_requests=b,
        other_requests=sum(others.values()),
        a_ratio=a / total if total else None,
        b_ratio=b / total if total else None,
        other_addresses=tuple(sorted(others)),
    )


def _percent(part: int, total: int) -> str:
    """``part`` of ``total`` as a whole percentage that never rounds a non-zero share down to "0%"."""
    share = part / total
    if 0 < share < 0.005:
        return "<1%"
    return f"{share:.0%}"


def evaluate(
    summary: WindowSummary,
    monitor: MonitorSection,
    *,
    a_addresses: list[str],
    b_addresses: list[str],
    baseline: WindowSummary | None = None,
) -> Verdict:
    """Judge a window: unhealthy beats inconclusive beats healthy.

    The error threshold is ``max_error_ratio``; with a baseline it becomes
    ``max(max_error_ratio, baseline_ratio + max_error_ratio)``: B may not be worse than A was by more
    than ``max_error_ratio``.

    * **unhealthy**: at least ``min_requests`` requests and an error ratio above the threshold. A
      handful of early errors is not enough (one 502 among the first requests of a healthy cutover
      must not roll it back); the monitor judges the accumulated window after every poll, so a B
      that fails outright is still caught within a poll of ``min_requests`` being reached.
    * **inconclusive**: no requests, fewer than ``min_requests``, or, when the source records
      upstream addresses, Kong still sending requests to A (its DNS cache hasn't drained) or no
      request reaching B: the errors then say nothing about B.
    * **healthy** otherwise. When the source can't tell addresses apart (Prometheus) or B's
      addresses are unknown, the share is not checked and the reason says so.
    """
    share = traffic_share(summary, a_addresses, b_addresses)
    baseline_ratio = baseline.error_ratio if baseline is not None and monitor.baseline else None
    threshold = monitor.max_error_ratio
    if baseline_ratio is not None:
        threshold = max(threshold, baseline_ratio + monitor.max_error_ratio)
    ratio = summary.error_ratio
    worst = tuple(
        sorted(
            ((status, n) for status, n in summary.upstream_statuses.items() if status.startswith("5") or not status),
            key=lambda item: -item[1],
        )[:5]
    )
    common = {
        "requests": summary.requests,
        "error_ratio": ratio,
        "threshold": threshold,
        "baseline_ratio": baseline_ratio,
        "worst_statuses": worst,
        "share": share,
        "summary": summary,
    }
    errors = summary.upstream_errors
    counted = f"({errors} of {summary.requests})"
    if ratio is not None and ratio > threshold and summary.requests >= monitor.min_requests:
        return Verdict(
            status="unhealthy",
            reason=(
                f"upstream error ratio {ratio:.2%} {counted} exceeds {threshold:.2%}"
                + (f" (A's baseline {baseline_ratio:.2%})" if baseline_ratio is not None else "")
            ),
            **common,
        )
    if summary.requests == 0:
        # Even with min_requests=0: silence says nothing about B.
        return Verdict(status="inconclusive", reason="no requests seen", **common)
    if summary.requests < monitor.min_requests:
        return Verdict(
            status="inconclusive",
            reason=f"only {summary.requests} requests seen, fewer than min_requests={monitor.min_requests}",
            **common,
        )
    if share.known and share.a_requests:
        routed = share.a_requests + share.b_requests + share.other_requests
        return Verdict(
            status="inconclusive",
            reason=(
                f"Kong still sends {_percent(share.a_requests, routed)} of requests to A "
                f"(addresses {', '.join(a_addresses)}; {share.a_requests} of {routed}): its DNS cache hasn't "
                f"drained, so the upstream error ratio {ratio or 0:.2%} {counted} is not B's alone"
            ),
            **common,
        )
    if share.known and b_addresses and not share.b_requests:
        elsewhere = f" ({share.describe()})" if share.other_requests else ""
        return Verdict(
            status="inconclusive",
            reason=(
                f"no request reached B (addresses {', '.join(b_addresses)}) among {summary.requests}{elsewhere}: "
                "the error ratio says nothing about B"
            ),
            **common,
        )
    unchecked = ""
    if not share.known:
        unchecked = "; the traffic share couldn't be checked (the source records no upstream addresses)"
    elif not b_addresses:
        unchecked = "; the traffic share couldn't be checked (B's addresses are unknown)"
    elif share.other_requests:
        unchecked = (
            f"; {share.other_requests} request(s) went to addresses neither A's nor B's {list(share.other_addresses)}"
        )
    return Verdict(
        status="healthy",
        reason=f"upstream error ratio {ratio or 0:.2%} {counted} within {threshold:.2%}{unchecked}",
        **common,
    )


class DrainProof(_Model):
    """Has A stopped receiving traffic through Kong."""

    drained: bool
    reason: str
    quiet_period_seconds: float
    window_start: datetime | None = None
    window_end: datetime | None = None
    a_requests: int = 0
    """Requests A received in the whole window read (it may have got some before its quiet period)."""
    b_requests: int = 0
    total_requests: int = 0
    last_a_request_at: datetime | None = None


def drain_proof(
    summary: WindowSummary,
    a_addresses: Sequence[str],
    quiet_period: timedelta,
    now: datetime,
    *,
    b_addresses: Sequence[str] = (),
) -> DrainProof:
    """Judge whether A is drained, from everything seen since ``summary.window_start`` up to ``now``.

    A is drained when ``now - max(A's last request, window start) >= quiet_period`` (zero requests to
    A's addresses for the whole quiet period) and, within the last quiet period, at least one request
    reached an upstream that is not A: silence (Kong down, a broken log, a quiet night) proves
    nothing. ``now`` is how far the source has been read (a source that indexes late reads up to
    some time ago), so the quiet period never covers time the source can't vouch for yet.
    """
    a_set = set(a_addresses)
    share = traffic_share(summary, list(a_addresses), list(b_addresses))
    period = format_duration(quiet_period)
    last_a = max((seen for ip, seen in summary.last_seen_per_ip.items() if ip in a_set), default=None)
    common: dict[str, Any] = {
        "quiet_period_seconds": quiet_period.total_seconds(),
        "window_start": summary.window_start,
        "window_end": summary.window_end,
        "a_requests": share.a_requests,
        "b_requests": share.b_requests,
        "total_requests": summary.requests,
        "last_a_request_at": last_a,
    }
    if not summary.has_addresses:
        return DrainProof(
            drained=False,
            reason=(
                f"{summary.source} does not record which upstream address served each request, so A's drain "
                "can't be proven from it (use kong-file-log, or Cloud Logging with upstream_addr: "
                "docs/telemetry.md), or set decommission.require_drained: false"
            ),
            **common,
        )
    addresses = ", ".join(a_addresses)
    if share.a_requests and last_a is None:
        return DrainProof(
            drained=False,
            reason=f"A ({addresses}) received {share.a_requests} request(s) at times the summary doesn't record",
            **common,
        )
    quiet_since = max((moment for moment in (last_a, summary.window_start) if moment is not None), default=None)
    if quiet_since is None:
        return DrainProof(drained=False, reason="the window read has no start: A's quiet time is unknown", **common)
    quiet_for = now - quiet_since
    if quiet_for < quiet_period:
        if last_a is not None and last_a == quiet_since:
            reason = (
                f"A ({addresses}) still received {share.a_requests} request(s), the last at {last_a.isoformat()}, "
                f"only {format_duration(max(quiet_for, timedelta(0)))} before {now.isoformat()}, short of {period}"
                " (a Kong data plane with a stale DNS cache? `kong reload` clears it)"
            )
        else:
            reason = f"A has been watched for only {format_duration(max(quiet_for, timedelta(0)))} of {period}"
        return DrainProof(drained=False, reason=reason, **common)
    recent = now - quiet_period
    reached = sorted(ip for ip, seen in summary.last_seen_per_ip.items() if ip not in a_set and seen >= recent)
    if not reached:
        return DrainProof(
            drained=False,
            reason=(
                f"no request reached any upstream in the last {period} ({summary.requests} seen in all since "
                f"{quiet_since.isoformat()}): silence proves nothing, A's drain needs traffic that went elsewhere"
            ),
            **common,
        )
    elsewhere = f", {share.other_requests} to other addresses {list(share.other_addresses)}"
    return DrainProof(
        drained=True,
        reason=(
            f"A received no request in the last {period} (none since {quiet_since.isoformat()}) while requests "
            f"reached {', '.join(reached)} ({share.b_requests} to B in the window read"
            f"{elsewhere if share.other_requests else ''})"
        ),
        **common,
    )


# --- activity inputs -----------------------------------------------------------------------------


class MonitorInput(_Model):
    """Watch one window of traffic after the flip."""

    monitor: MonitorSection
    service: str
    a_addresses: tuple[str, ...]
    b_addresses: tuple[str, ...]
    baseline: WindowSummary | None = None
    window_index: int = Field(default=1, ge=1)


class MonitorResult(_Model):
    """The verdict of one monitoring window, and how it was reached."""

    verdict: Verdict
    polls: int
    stopped_early: bool
    """True when the window was cut short by an unhealthy verdict (at least min_requests, errors over the threshold)."""


class BaselineInput(_Model):
    """Measure A's traffic before the flip (past window where the source keeps history)."""

    monitor: MonitorSection
    service: str
    a_addresses: tuple[str, ...]
    b_addresses: tuple[str, ...]


class DrainInput(_Model):
    """Prove A received nothing for the quiet period, polling until ``timeout``."""

    monitor: MonitorSection
    service: str
    a_addresses: tuple[str, ...]
    b_addresses: tuple[str, ...]
    quiet_period_seconds: float
    timeout_seconds: float
