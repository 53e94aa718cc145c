"""The load generator: loopback-only targets, open-loop rate, who served what, failures by kind, buckets."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from aiohttp import web

from sandbox.load import LoadGenerator, NotLoopbackError, RequestRecord, require_loopback, summarize


def record(offset: float, status: int | None, served_by: str | None, latency: float = 0.01, error: str | None = None):
    return RequestRecord(
        started=1_000.0 + offset, offset=offset, status=status, served_by=served_by, latency=latency, error=error
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8000/orders",
        "http://192.168.1.5/orders",
        "http://example.com/orders",
        "http://localhost:8000/orders",
        "http://[::1]:8000/orders",
        "ftp://127.0.0.1/orders",
    ],
)
def test_refuses_anything_but_127_slash_8(url):
    with pytest.raises(NotLoopbackError):
        require_loopback(url)
    with pytest.raises(NotLoopbackError):
        LoadGenerator(url)


def test_accepts_the_whole_loopback_network():
    assert require_loopback("http://127.0.0.1:8000/x") == "http://127.0.0.1:8000/x"
    assert require_loopback("https://127.255.0.9/x") == "https://127.255.0.9/x"


def test_rate_must_be_positive():
    with pytest.raises(ValueError, match="rate"):
        LoadGenerator("http://127.0.0.1:1/x", rate=0)


def test_summary_counts_failures_by_kind_and_shares_per_bucket():
    records = [
        record(0.1, 200, "A"),
        record(0.6, 200, "A"),
        record(1.2, 200, "A"),
        record(1.7, 502, None),
        record(2.1, None, None, error="ClientConnectorError"),
        record(2.4, 200, "B"),
        record(3.9, 200, "B"),
        record(4.5, 503, "B"),
    ]
    summary = summarize(records, bucket_seconds=2.0, url="http://127.0.0.1:1/x", rate=2)
    assert summary.requests == 8
    assert summary.ok == 5
    assert summary.failed == 3
    assert summary.failures == {"502": 1, "503": 1, "connection error: ClientConnectorError": 1}
    assert summary.served_by == {"A": 3, "B": 3}
    assert [(b.start, b.end) for b in summary.buckets] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    first, second, third = summary.buckets
    assert (first.requests, first.served, first.failures) == (4, {"A": 3}, 1)
    assert first.share("A") == 0.75 and first.share("B") == 0.0
    assert (second.requests, second.served, second.failures) == (3, {"B": 2}, 1)
    assert (third.requests, third.served, third.failures) == (1, {"B": 1}, 1)
    assert summary.started_at == 1_000.0


def test_summary_keeps_empty_buckets_so_a_gap_shows():
    summary = summarize([record(0.5, 200, "A"), record(7.5, 200, "B")], bucket_seconds=2.0)
    assert [b.requests for b in summary.buckets] == [1, 0, 0, 1]
    assert summary.buckets[1].share("A") is None


def test_summary_latency_quantiles_ignore_requests_without_an_answer():
    records = [record(i * 0.1, 200, "A", latency=(i + 1) / 100) for i in range(20)]
    records.append(record(2.5, None, None, latency=10.0, error="TimeoutError"))
    summary = summarize(records)
    assert summary.latency_p50 == pytest.approx(0.10)
    assert summary.latency_p95 == pytest.approx(0.19)
    assert summary.latency_max == pytest.approx(0.20)


def test_empty_summary_and_bad_bucket():
    summary = summarize([])
    assert (summary.requests, summary.buckets, summary.latency_p50) == (0, (), None)
    assert "nobody" in summary.render()
    with pytest.raises(ValueError):
        summarize([], bucket_seconds=0)


def test_render_and_json_say_the_same_thing():
    summary = summarize([record(0.1, 200, "A"), record(5.1, 502, None)], bucket_seconds=5, url="http://127.0.0.1:1/x")
    text = summary.render()
    assert "2 requests" in text
    assert "succeeded 1, failed 1" in text
    assert "failures by status: 502: 1" in text
    assert "A 1 (50%)" in text
    data = json.loads(json.dumps(summary.to_json()))
    assert data["failed"] == 1 and data["failures"] == {"502": 1}
    assert [b["requests"] for b in data["buckets"]] == [1, 1]


@dataclass
class Seen:
    """What the backend received."""

    count: int = 0
    seq: list[int] = field(default_factory=list)


@pytest_asyncio.fixture
async def backend() -> AsyncIterator[tuple[str, Seen]]:
    """A real loopback server: alternate A and B, every fifth request 503, like runtimes behind Kong."""
    seen = Seen()

    async def handle(request: web.Request) -> web.Response:
        seen.count += 1
        seen.seq.append(int(request.query["seq"]))
        if seen.count % 5 == 0:
            return web.json_response({"message": "injected"}, status=503)
        return web.json_response({"served_by": "A" if seen.count % 2 else "B"})

    app = web.Application()
    app.router.add_get("/orders", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/orders", seen
    await runner.cleanup()


async def test_steady_rate_for_a_duration_records_every_request(backend):
    url, seen = backend
    load = LoadGenerator(url, rate=40, duration=1.0)
    load.start()
    await load.wait()
    assert not load.running
    assert len(load.records) == 40 == seen.count
    assert sorted(seen.seq) == list(range(40))
    summary = load.summary(bucket_seconds=0.5)
    assert summary.failures == {"503": 8}
    assert summary.served_by == {"A": 16, "B": 16}
    assert [b.requests for b in summary.buckets] == [20, 20]
    offsets = sorted(r.offset for r in load.records)
    assert offsets[-1] == pytest.approx(39 / 40, abs=0.1)


async def test_stops_when_told_and_reports_live_counters(backend):
    url, seen = backend
    async with LoadGenerator(url, rate=50) as load:
        await asyncio.sleep(0.5)
        live = load.live(window=5)
    count = seen.count
    await asyncio.sleep(0.2)
    assert seen.count == count
    assert 15 <= count <= 35
    assert live.requests <= count
    assert "load" in live.render() and "failed" in live.render()


async def test_connection_errors_are_failures_not_crashes(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    load = LoadGenerator(f"http://127.0.0.1:{port}/orders", rate=20, duration=0.25)
    load.start()
    await load.wait()
    summary = load.summary()
    assert summary.requests == 5
    assert summary.ok == 0
    assert summary.failures == {"connection error: ClientConnectorError": 5}
    path = load.write_records(tmp_path / "requests.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 5 and lines[0]["status"] is None and lines[0]["error"] == "ClientConnectorError"
