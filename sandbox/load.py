"""A steady client load through the Kong proxy, recording who served every request.

The demo and the benchmarks run it during a cutover to show what clients see: with a correct
cutover the share served by B grows from 0 % to 100 % and not one request fails, even though A is
deleted at the end. The load is open-loop (request *n* starts at ``n / rate`` seconds whatever the
earlier ones are doing), so a slow backend shows as latency and failures instead of a lower rate.

It only targets 127.0.0.0/8: the sandbox is loopback-only and a load generator must not be pointed
at someone else's server by mistake.

    async with LoadGenerator("http://127.0.0.1:8000/orders/v1/orders", rate=20) as load:
        ...
    print(load.summary().render())
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

LOOPBACK_NETWORK = ipaddress.ip_network("127.0.0.0/8")
RUNTIMES = ("A", "B")


class NotLoopbackError(ValueError):
    """The load target is not a 127.0.0.0/8 address."""


def require_loopback(url: str) -> str:
    """Return ``url`` if its host is an IPv4 address in 127.0.0.0/8, else raise :class:`NotLoopbackError`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise NotLoopbackError(f"{url!r}: the load needs an http(s) URL")
    host = parts.hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise NotLoopbackError(
            f"{url!r}: the load only targets 127.0.0.0/8 addresses, given as an IP (not a name: {host!r})"
        ) from None
    if address not in LOOPBACK_NETWORK:
        raise NotLoopbackError(f"{url!r}: {address} is outside 127.0.0.0/8; the sandbox load is loopback-only")
    return url


@dataclass(frozen=True)
class RequestRecord:
    """One request: when it started, what came back, who served it, how long it took."""

    started: float
    """Wall-clock start (epoch seconds)."""
    offset: float
    """Seconds since the load started."""
    status: int | None
    """HTTP status, or None when no response arrived (connection error, timeout)."""
    served_by: str | None
    latency: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def failure(self) -> str | None:
        """None for a success; else the status (``"502"``) or ``"connection error: <kind>"``."""
        if self.ok:
            return None
        if self.status is not None:
            return str(self.status)
        return f"connection error: {self.error or 'unknown'}"


@dataclass(frozen=True)
class Bucket:
    """Requests that started in ``[start, end)`` seconds after the load began."""

    start: float
    end: float
    requests: int
    served: dict[str, int]
    failures: int

    def share(self, runtime: str) -> float | None:
        """Share of this bucket's requests served by ``runtime`` (0..1), or None without requests."""
        return self.served.get(runtime, 0) / self.requests if self.requests else None


@dataclass(frozen=True)
class LoadSummary:
    """What the load saw, as totals and per time bucket."""

    url: str
    rate: float
    started_at: float
    """Epoch seconds of the first scheduled request (bucket offsets count from it)."""
    duration: float
    requests: int
    ok: int
    failures: dict[str, int]
    """Failure kind (``"502"``, ``"connection error: ..."``) -> count."""
    served_by: dict[str, int]
    bucket_seconds: float
    buckets: tuple[Bucket, ...]
    latency_p50: float | None
    latency_p95: float | None
    latency_max: float | None
    skipped: int = 0
    """Requests not sent because ``max_in_flight`` were still waiting (the client was the bottleneck)."""

    @property
    def failed(self) -> int:
        """Requests without a 2xx answer."""
        return sum(self.failures.values())

    def share(self, runtime: str) -> float | None:
        """Overall share served by ``runtime`` (0..1)."""
        return self.served_by.get(runtime, 0) / self.requests if self.requests else None

    def render(self) -> str:
        """Plain text for a terminal or a CI log."""
        rate = self.requests / self.duration if self.duration > 0 else 0.0
        lines = [
            f"load: {self.requests} requests in {self.duration:.1f} s ({rate:.1f}/s, target {self.rate:g}/s) "
            f"through {self.url}",
            f"  succeeded {self.ok}, failed {self.failed}"
            + (f", not sent (client saturated) {self.skipped}" if self.skipped else ""),
        ]
        if self.failures:
            lines.append("  failures by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items())))
        else:
            lines.append("  failures by status: none")
        served = [
            f"{name} {count} ({_percent(count, self.requests)})" for name, count in sorted(self.served_by.items())
        ]
        lines.append("  served by: " + (", ".join(served) or "nobody"))
        if self.latency_p50 is not None:
            lines.append(
                f"  latency: p50 {_ms(self.latency_p50)}, p95 {_ms(self.latency_p95)}, max {_ms(self.latency_max)}"
            )
        if self.buckets:
            lines.append(f"  share served over time ({self.bucket_seconds:g} s buckets):")
            for bucket in self.buckets:
                shares = "  ".join(f"{r} {_percent(bucket.served.get(r, 0), bucket.requests):>4}" for r in RUNTIMES)
                lines.append(
                    f"    {bucket.start:5.0f}-{bucket.end:<5.0f}s  {shares}   "
                    f"({bucket.requests} req, {bucket.failures} failed)"
                )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """JSON-able data (saved next to the chart)."""
        return {
            "url": self.url,
            "rate": self.rate,
            "started_at": self.started_at,
            "duration": self.duration,
            "requests": self.requests,
            "ok": self.ok,
            "failed": self.failed,
            "failures": self.failures,
            "served_by": self.served_by,
            "skipped": self.skipped,
            "latency": {"p50": self.latency_p50, "p95": self.latency_p95, "max": self.latency_max},
            "bucket_seconds": self.bucket_seconds,
            "buckets": [
                {"start": b.start, "end": b.end, "requests": b.requests, "served": b.served, "failures": b.failures}
                for b in self.buckets
            ],
        }


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(
    records: Iterable[RequestRecord],
    *,
    bucket_seconds: float = 5.0,
    url: str = "",
    rate: float = 0.0,
    started_at: float | None = None,
    duration: float | None = None,
    skipped: int = 0,
) -> LoadSummary:
    """Totals, failures by kind and per-bucket shares of ``records`` (pure: no I/O).

    Buckets are ``[k * bucket_seconds, (k + 1) * bucket_seconds)`` by each request's ``offset``, from
    0 to the last request, with empty buckets kept so a gap in the load shows as a gap.
    """
    if bucket_seconds <= 0:
        raise ValueError("bucket_seconds must be positive")
    items = sorted(records, key=lambda r: r.offset)
    failures: Counter[str] = Counter()
    served: Counter[str] = Counter()
    for record in items:
        if record.failure is not None:
            failures[record.failure] += 1
        if record.served_by is not None:
            served[record.served_by] += 1
    count = math.floor(items[-1].offset / bucket_seconds) + 1 if items else 0
    per_bucket: list[list[RequestRecord]] = [[] for _ in range(count)]
    for record in items:
        per_bucket[math.floor(max(record.offset, 0.0) / bucket_seconds)].append(record)
    buckets = tuple(
        Bucket(
            start=index * bucket_seconds,
            end=(index + 1) * bucket_seconds,
            requests=len(group),
            served=dict(Counter(r.served_by for r in group if r.served_by is not None)),
            failures=sum(1 for r in group if not r.ok),
        )
        for index, group in enumerate(per_bucket)
    )
    latencies = sorted(r.latency for r in items if r.status is not None)
    if duration is None:
        duration = max((r.offset + r.latency for r in items), default=0.0)
    if started_at is None:
        started_at = min((r.started - r.offset for r in items), default=0.0)
    return LoadSummary(
        url=url,
        rate=rate,
        started_at=started_at,
        duration=duration,
        requests=len(items),
        ok=sum(1 for r in items if r.ok),
        failures=dict(failures),
        served_by=dict(served),
        bucket_seconds=bucket_seconds,
        buckets=buckets,
        latency_p50=_quantile(latencies, 0.50),
        latency_p95=_quantile(latencies, 0.95),
        latency_max=latencies[-1] if latencies else None,
        skipped=skipped,
    )


@dataclass(frozen=True)
class LiveCounters:
    """What the demo prints every second."""

    requests: int
    failed: int
    recent_requests: int
    recent_served: dict[str, int]
    window: float

    def render(self) -> str:
        """``load 812 req, 0 failed, last 5 s: A 40% / B 60%``."""
        shares = " / ".join(f"{r} {_percent(self.recent_served.get(r, 0), self.recent_requests)}" for r in RUNTIMES)
        return f"load {self.requests} req, {self.failed} failed, last {self.window:g} s: {shares}"


@dataclass
class LoadGenerator:
    """Send ``rate`` GET requests per second to ``url`` until stopped or ``duration`` has passed.

    Args:
        url: the target, e.g. the Kong proxy's ``http://127.0.0.1:8000/orders/v1/orders``; 127.0.0.0/8 only.
        rate: requests per second (open loop).
        duration: stop by itself after this many seconds (None: until :meth:`stop`).
        timeout: per-request total timeout.
        max_in_flight: requests waiting at once before new ones are skipped (and counted as skipped).
    """

    url: str
    rate: float = 20.0
    duration: float | None = None
    timeout: float = 10.0
    max_in_flight: int = 500
    records: list[RequestRecord] = field(default_factory=list)
    skipped: int = 0
    started_at: float | None = None
    _task: asyncio.Task[None] | None = None
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        require_loopback(self.url)
        if not self.rate > 0:
            raise ValueError(f"rate must be positive, got {self.rate}")

    async def __aenter__(self) -> LoadGenerator:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def start(self) -> None:
        """Start sending in the background."""
        if self._task is not None:
            raise RuntimeError("the load is already running")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait(self) -> None:
        """Wait until the load ends by itself (``duration``) and its last requests are answered."""
        if self._task is not None:
            await self._task

    async def stop(self) -> None:
        """Stop scheduling, and wait for the requests already sent (up to their timeout)."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    @property
    def running(self) -> bool:
        """True while requests are being scheduled."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(limit=self.max_in_flight)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            begin = loop.time()
            self.started_at = time.time()
            sequence = 0
            try:
                while not self._stopping.is_set():
                    due = begin + sequence / self.rate
                    if self.duration is not None and due - begin >= self.duration:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), max(0.0, due - loop.time()))
                    if self._stopping.is_set():
                        break
                    if len(self._in_flight) >= self.max_in_flight:
                        self.skipped += 1
                    else:
                        task = loop.create_task(self._one(session, sequence, begin))
                        self._in_flight.add(task)
                        task.add_done_callback(self._in_flight.discard)
                    sequence += 1
            finally:
                if self._in_flight:
                    await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _one(self, session: aiohttp.ClientSession, sequence: int, begin: float) -> None:
        loop = asyncio.get_running_loop()
        wall, start = time.time(), loop.time()
        status: int | None = None
        served_by: str | None = None
        error: str | None = None
        try:
            async with session.get(self.url, params={"seq": str(sequence)}) as response:
                status = response.status
                body = await response.read()
                served_by = _served_by(body) or response.headers.get("X-Served-By")
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = type(exc).__name__
        self.records.append(
            RequestRecord(
                started=wall,
                offset=start - begin,
                status=status,
                served_by=served_by,
                latency=loop.time() - start,
                error=error,
            )
        )

    def live(self, window: float = 5.0) -> LiveCounters:
        """Counters so far and the share served in the last ``window`` seconds (for a progress line)."""
        now = time.time()
        recent = [r for r in self.records if r.started >= now - window]
        return LiveCounters(
            requests=len(self.records),
            failed=sum(1 for r in self.records if not r.ok),
            recent_requests=len(recent),
            recent_served=dict(Counter(r.served_by for r in recent if r.served_by is not None)),
            window=window,
        )

    def summary(self, bucket_seconds: float = 5.0) -> LoadSummary:
        """The summary of every request recorded so far."""
        return summarize(
            list(self.records),
            bucket_seconds=bucket_seconds,
            url=self.url,
            rate=self.rate,
            started_at=self.started_at,
            skipped=self.skipped,
        )

    def write_records(self, path: str | Path) -> Path:
        """Every request as one JSON line (for later analysis and benchmarks)."""
        target = Path(path)
        with open(target, "w") as out:
            for record in self.records:
                out.write(json.dumps(record.__dict__) + "\n")
        return target


def _served_by(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    value = data.get("served_by") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
