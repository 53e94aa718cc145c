"""Verdict table: healthy, unhealthy (with evidence) and inconclusive, with and without A's baseline and share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.plan import MonitorSection
from models.telemetry import WindowSummary, drain_proof, evaluate, merge_summaries, traffic_share

A = ["10.10.0.1"]
B = ["10.20.0.2", "10.20.0.3"]
OTHER = "10.99.0.9"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def monitor(**overrides: Any) -> MonitorSection:
    data: dict[str, Any] = {
        "source": {"kind": "kong-file-log", "path": "/var/log/kong/file-log.json"},
        "max_error_ratio": 0.01,
        "min_requests": 50,
    }
    return MonitorSection.model_validate({**data, **overrides})


def window(
    requests: int, errors: int = 0, *, to_a: int = 0, elsewhere: int = 0, addresses: bool = True, **fields: Any
) -> WindowSummary:
    """``requests`` through Kong, ``errors`` of them upstream 502s; ``to_a`` served by A, ``elsewhere`` by
    an address neither A's nor B's, the rest by B; ``addresses=False`` for a source without addresses."""
    statuses = {"200": requests - errors} if requests - errors else {}
    if errors:
        statuses["502"] = errors
    per_ip = {A[0]: to_a} if to_a else {}
    if elsewhere:
        per_ip[OTHER] = elsewhere
    if requests - to_a - elsewhere:
        per_ip[B[0]] = requests - to_a - elsewhere
    data: dict[str, Any] = {
        "source": "kong-file-log /var/log/kong/file-log.json",
        "service": "orders-api",
        "requests": requests,
        "upstream_errors": errors,
        "upstream_statuses": statuses,
        "requests_per_ip": per_ip if addresses else {},
        "has_addresses": addresses,
        **fields,
    }
    return WindowSummary(**data)


VERDICTS = [
    # (case, summary, monitor overrides, baseline, expected status, words in the reason)
    ("silence", window(0), {}, None, "inconclusive", "no requests"),
    ("silence even with min_requests 0", window(0), {"min_requests": 0}, None, "inconclusive", "no requests"),
    ("too little traffic", window(49), {}, None, "inconclusive", "fewer than min_requests=50"),
    ("too little, no error", window(10, 0), {}, None, "inconclusive", "only 10 requests"),
    # One 502 among the first requests of a healthy cutover must not roll it back.
    ("one early 502 is not decisive", window(10, 1), {}, None, "inconclusive", "only 10 requests"),
    ("failing B waits for min_requests", window(49, 49), {}, None, "inconclusive", "fewer than min_requests=50"),
    ("failing B trips at min_requests", window(50, 50), {}, None, "unhealthy", "100.00% (50 of 50) exceeds"),
    ("healthy at the threshold", window(100, 1), {}, None, "healthy", "1.00% (1 of 100) within 1.00%"),
    ("healthy with no error", window(500), {}, None, "healthy", "0.00% (0 of 500)"),
    ("unhealthy over the threshold", window(100, 2), {}, None, "unhealthy", "2.00% (2 of 100) exceeds 1.00%"),
    ("zero tolerance", window(60, 1), {"max_error_ratio": 0}, None, "unhealthy", "exceeds 0.00%"),
    ("baseline raises the bar", window(200, 7), {}, window(400, 12), "healthy", "within 4.00%"),
    ("worse than the baseline", window(200, 10), {}, window(400, 12), "unhealthy", "(A's baseline 3.00%)"),
    ("baseline turned off", window(200, 7), {"baseline": False}, window(400, 12), "unhealthy", "exceeds 1.00%"),
    ("baseline without traffic is ignored", window(200, 7), {}, window(0), "unhealthy", "exceeds 1.00%"),
    ("baseline never lowers the bar", window(100, 1), {}, window(100, 0), "healthy", "within 1.00%"),
    # The traffic share: errors (or their absence) only speak for B when Kong sends everything to B.
    (
        "all to A is not B being healthy",
        window(500, to_a=500),
        {},
        None,
        "inconclusive",
        "Kong still sends 100% of requests to A (addresses 10.10.0.1; 500 of 500): its DNS cache hasn't drained",
    ),
    ("some still to A", window(200, to_a=20), {}, None, "inconclusive", "Kong still sends 10% of requests to A"),
    ("one request to A is enough", window(1000, to_a=1), {}, None, "inconclusive", "<1% of requests to A"),
    ("errors beat the share", window(200, 20, to_a=100), {}, None, "unhealthy", "10.00% (20 of 200) exceeds"),
    ("too little beats the share", window(10, to_a=10), {}, None, "inconclusive", "only 10 requests"),
    (
        "no request reached B",
        window(100, elsewhere=100),
        {},
        None,
        "inconclusive",
        "no request reached B (addresses 10.20.0.2, 10.20.0.3) among 100",
    ),
    (
        "Kong reached no upstream at all",
        window(100).model_copy(update={"requests_per_ip": {}, "upstream_statuses": {"": 100}}),
        {},
        None,
        "inconclusive",
        "no request reached B",
    ),
    (
        "other addresses are named",
        window(100, elsewhere=5),
        {},
        None,
        "healthy",
        "5 request(s) went to addresses neither A's nor B's ['10.99.0.9']",
    ),
    (
        "share unknown (Prometheus): the reason says so",
        window(500, addresses=False),
        {},
        None,
        "healthy",
        "0.00% (0 of 500) within 1.00%; the traffic share couldn't be checked (the source records no upstream",
    ),
    ("share unknown, errors still count", window(500, 50, addresses=False), {}, None, "unhealthy", "exceeds"),
]


@pytest.mark.parametrize(
    ("summary", "overrides", "baseline", "status", "reason"),
    [case[1:] for case in VERDICTS],
    ids=[case[0] for case in VERDICTS],
)
def test_verdict_table(
    summary: WindowSummary, overrides: dict[str, Any], baseline: WindowSummary | None, status: str, reason: str
) -> None:
    verdict = evaluate(summary, monitor(**overrides), a_addresses=A, b_addresses=B, baseline=baseline)
    assert verdict.status == status
    assert reason in verdict.reason
    assert verdict.requests == summary.requests
    assert verdict.summary == summary


def test_unhealthy_verdict_carries_the_evidence() -> None:
    summary = window(100, 0).model_copy(
        update={"upstream_statuses": {"200": 80, "502": 9, "503": 6, "": 3, "504": 1, "500": 1}, "upstream_errors": 20}
    )
    verdict = evaluate(summary, monitor(), a_addresses=A, b_addresses=B, baseline=window(1000, 5))
    assert verdict.status == "unhealthy"
    assert verdict.error_ratio == pytest.approx(0.2)
    assert verdict.threshold == pytest.approx(0.015)
    assert verdict.baseline_ratio == pytest.approx(0.005)
    assert verdict.worst_statuses == (("502", 9), ("503", 6), ("", 3), ("504", 1), ("500", 1))


def test_traffic_share_tells_where_kong_sends_requests() -> None:
    all_b = traffic_share(window(240), A, B)
    assert (all_b.known, all_b.b_requests, all_b.a_requests, all_b.b_ratio) == (True, 240, 0, 1.0)
    assert all_b.describe() == "Kong sends 100% to B, 0% to A (240 requests)"

    mixed = window(100, to_a=25).model_copy(update={"requests_per_ip": {A[0]: 25, B[0]: 50, B[1]: 20, "10.99.0.9": 5}})
    share = traffic_share(mixed, A, B)
    assert (share.a_requests, share.b_requests, share.other_requests) == (25, 70, 5)
    assert share.other_addresses == ("10.99.0.9",)
    assert "25% to A" in share.describe() and "5% elsewhere ['10.99.0.9']" in share.describe()

    prometheus = window(100).model_copy(update={"has_addresses": False, "requests_per_ip": {}})
    unknown = traffic_share(prometheus, A, B)
    assert not unknown.known and "does not record upstream addresses" in unknown.describe()
    assert traffic_share(window(0), A, B).describe() == "no requests seen"

    verdict = evaluate(window(240), monitor(), a_addresses=A, b_addresses=B)
    assert verdict.share == all_b


def test_merged_windows_add_up() -> None:
    first = window(30, 1, to_a=10, window_start=T0, window_end=T0 + timedelta(seconds=15), notes=("rotated",))
    second = window(40, 2, window_start=T0 + timedelta(seconds=15), window_end=T0 + timedelta(seconds=30))
    merged = merge_summaries(first, second)
    assert (merged.requests, merged.upstream_errors) == (70, 3)
    assert merged.requests_per_ip == {A[0]: 10, B[0]: 60}
    assert merged.upstream_statuses == {"200": 67, "502": 3}
    assert (merged.window_start, merged.window_end) == (T0, T0 + timedelta(seconds=30))
    assert merged.notes == ("rotated",)
    assert evaluate(merged, monitor(), a_addresses=A, b_addresses=B).status == "unhealthy"


def test_share_is_not_checked_without_b_addresses() -> None:
    # starter.py traffic when A/B could not be resolved: A's and B's requests can't be told apart.
    verdict = evaluate(window(500), monitor(), a_addresses=[], b_addresses=[])
    assert verdict.status == "healthy"
    assert "traffic share couldn't be checked (B's addresses are unknown)" in verdict.reason
    # ... but requests seen at A's known addresses still make it inconclusive.
    assert evaluate(window(500, to_a=5), monitor(), a_addresses=A, b_addresses=[]).status == "inconclusive"


# --- the drain proof ---------------------------------------------------------------------------------

QUIET = timedelta(seconds=60)


def seen(start: datetime, *requests: tuple[str, float], addresses: bool = True) -> WindowSummary:
    """A window read from ``start``: ``(address, seconds after start)`` per request ("" reached no upstream)."""
    per_ip: dict[str, int] = {}
    last: dict[str, datetime] = {}
    for ip, offset in requests:
        if ip:
            per_ip[ip] = per_ip.get(ip, 0) + 1
            last[ip] = max(last.get(ip, start), start + timedelta(seconds=offset))
    return WindowSummary(
        source="kong-file-log /var/log/kong/file-log.json",
        service="orders-api",
        window_start=start,
        requests=len(requests),
        requests_per_ip=per_ip if addresses else {},
        last_seen_per_ip=last if addresses else {},
        has_addresses=addresses,
    )


DRAINS = [
    # (case, summary, now, drained, words in the reason)
    ("B only for the quiet period", seen(T0, (B[0], 10), (B[0], 50)), T0 + QUIET, True, "no request in the last 1m"),
    ("other addresses are traffic too", seen(T0, ("10.99.0.9", 30)), T0 + QUIET, True, "reached 10.99.0.9"),
    (
        "A a moment ago",
        seen(T0, (B[0], 10), (A[0], 55)),
        T0 + QUIET,
        False,
        "still received 1 request(s), the last at 2024-05-01T12:00:55+00:00, only 5s",
    ),
    (
        "A ages out",
        seen(T0, (A[0], 5), (B[0], 50), (B[0], 64)),
        T0 + timedelta(seconds=65),
        True,
        "none since 2024-05-01T12:00:05",
    ),
    ("A not yet aged out", seen(T0, (A[0], 5), (B[0], 64)), T0 + timedelta(seconds=64), False, "only 59s"),
    ("watched too briefly", seen(T0, (B[0], 1)), T0 + timedelta(seconds=30), False, "watched for only 30s of 1m"),
    ("silence", seen(T0), T0 + QUIET, False, "silence proves nothing"),
    # B answered long ago, nothing in the last quiet period: as silent as silence.
    ("old traffic only", seen(T0, (B[0], 1)), T0 + timedelta(minutes=5), False, "silence proves nothing"),
    ("Kong reached no upstream", seen(T0, ("", 30), ("", 40)), T0 + QUIET, False, "silence proves nothing"),
    ("no addresses (Prometheus)", seen(T0, (B[0], 30), addresses=False), T0 + QUIET, False, "does not record"),
]


@pytest.mark.parametrize(
    ("summary", "now", "drained", "reason"), [case[1:] for case in DRAINS], ids=[case[0] for case in DRAINS]
)
def test_drain_table(summary: WindowSummary, now: datetime, drained: bool, reason: str) -> None:
    proof = drain_proof(summary, A, QUIET, now, b_addresses=B)
    assert proof.drained is drained
    assert reason in proof.reason
    assert proof.quiet_period_seconds == 60
    assert proof.window_start == summary.window_start


def test_drain_proof_carries_the_evidence() -> None:
    summary = seen(T0, (A[0], 5), (A[0], 7), (B[0], 50), (B[1], 66), ("10.99.0.9", 60))
    proof = drain_proof(summary, A, QUIET, T0 + timedelta(seconds=67), b_addresses=B)
    assert proof.drained
    # The counts are over everything read; A's requests were before its quiet period.
    assert (proof.a_requests, proof.b_requests, proof.total_requests) == (2, 2, 5)
    assert proof.last_a_request_at == T0 + timedelta(seconds=7)
    assert "1 to other addresses ['10.99.0.9']" in proof.reason
