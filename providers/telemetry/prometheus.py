"""Kong's Prometheus plugin: ``kong_http_requests_total{service, route, code, source, ...}`` counters.

Counters have no history and no time of their own, so this source only follows "now": a cursor is
one scrape's counter values, and a poll is the difference to the next scrape. The cursor travels in
every heartbeat, so it keeps only what the difference needs: the service's counters summed per
status code and origin (``"503|service": 1234``), never one entry per route or consumer series. A
sum that went down was reset (Kong restarted or reloaded): its whole current value is the delta,
with a note.

What the metric can't say (providers/telemetry/kong_counters.py, kong.md §4.3): no upstream status
and no upstream address, so the traffic share is unknown and A's drain cannot be proven from it.

The exposition text is read with ``prometheus_client``'s parser, one line at a time, so a malformed
line is counted and skipped instead of ending the scrape. For Prometheus servers (history, every
data plane at once) see the ``promql`` source in providers/telemetry/promql.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from models.plan import PrometheusSource
from models.telemetry import WindowSummary
from providers.errors import TelemetryAuthError, TelemetryUnavailable
from providers.netguard import NetworkGuard, guarded_transport
from providers.telemetry.base import Cursor, TelemetrySource, decoding_cursor, from_rfc3339, to_rfc3339, utc_now
from providers.telemetry.kong_counters import COUNT_KEY, count_key, counted_window
from providers.telemetry.summary import bounded_notes
from providers.tls import verify_context


@dataclass(frozen=True)
class Sample:
    """One sample line of the text exposition format."""

    name: str
    labels: dict[str, str]
    value: float


class ExpositionError(ValueError):
    """A sample line that does not follow the text exposition format; the message says why."""


_PARSER_ERRORS = (ValueError, IndexError, KeyError, TypeError)
"""What prometheus_client's parser raises on a malformed line (IndexError on some truncated label sets)."""


def parse_sample(line: str) -> Sample:
    """One sample line: ``name{labels} value [timestamp]``, read by prometheus_client's own parser.

    The line is parsed on its own, so one malformed line costs one sample, not the rest of the scrape.

    Raises:
        ExpositionError: the line is malformed.
    """
    try:
        samples = [s for family in text_string_to_metric_families(line + "\n") for s in family.samples]
    except _PARSER_ERRORS as exc:
        # The parser's first words say what is wrong; what follows quotes the line, which stays out of notes.
        raise ExpositionError(str(exc).split(":")[0][:80] or type(exc).__name__) from exc
    if len(samples) != 1:
        raise ExpositionError(f"expected one sample, found {len(samples)}")
    sample = samples[0]
    return Sample(sample.name, dict(sample.labels), float(sample.value))


def parse_exposition(text: str) -> Iterator[Sample | ExpositionError]:
    """Every sample of a text exposition, or the error of each malformed sample line (comments skipped)."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            yield parse_sample(line)
        except ExpositionError as exc:
            yield exc


def _decode_cursor(cursor: Cursor) -> tuple[datetime, dict[str, float]]:
    """The scrape time and counter values of a cursor.

    Raises:
        InvalidCursor: a field is missing or of the wrong type.
    """

    def decode() -> tuple[datetime, dict[str, float]]:
        values = cursor["counts"]
        if not isinstance(values, dict) or not all(
            isinstance(key, str) and COUNT_KEY.fullmatch(key) and isinstance(value, int | float)
            for key, value in values.items()
        ):
            raise TypeError("counts must map '<code>|<origin>' to numbers")
        return from_rfc3339(cursor["scraped_at"]), {key: float(value) for key, value in values.items()}

    return decoding_cursor(decode)


class KongPrometheus(TelemetrySource):
    """Diff ``kong_http_requests_total`` of one service between scrapes."""

    kind: ClassVar[str] = "prometheus"
    has_addresses: ClassVar[bool] = False

    def __init__(
        self,
        source: PrometheusSource,
        service: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: timedelta = timedelta(seconds=10),
        guard: NetworkGuard | None = None,
    ) -> None:
        super().__init__(service)
        self.source = source
        guard = guard or NetworkGuard()
        guard.check_url("prometheus", source.url, "monitor.source.url")
        verify = verify_context(source.ca_bundle, "monitor.source.ca_bundle")
        self._http = httpx.AsyncClient(
            verify=verify, transport=transport or guarded_transport(guard, verify), timeout=timeout.total_seconds()
        )

    @property
    def description(self) -> str:
        """E.g. ``prometheus http://kong:8100/metrics kong_http_requests_total``."""
        return f"{self.kind} {self.source.url} {self.source.metric}"

    async def open_cursor(self) -> Cursor:
        """Scrape once and remember the service's counters, summed per status code and origin.

        Raises:
            TelemetryAuthError: 401/403.
            TelemetryUnavailable: unreachable, or any other non-200 answer.
        """
        counts, _, _ = await self._scrape()
        return {"scraped_at": to_rfc3339(utc_now()), "counts": counts}

    def check_cursor(self, cursor: Cursor) -> None:
        """Raise InvalidCursor unless ``cursor`` holds a scrape time and counter values."""
        _decode_cursor(cursor)

    async def poll(self, cursor: Cursor) -> tuple[WindowSummary, Cursor]:
        """Scrape again and turn the counter increases since ``cursor`` into a summary.

        Raises:
            TelemetryAuthError: 401/403.
            TelemetryUnavailable: unreachable, or any other non-200 answer.
            InvalidCursor: the cursor can't be decoded.
        """
        scraped_at, previous = _decode_cursor(cursor)
        counts, failures, failure_notes = await self._scrape()
        now = utc_now()
        increases: dict[str, int] = {}
        resets = 0
        for key, value in counts.items():
            delta = value - previous.get(key, 0.0)
            if delta < 0:
                resets += 1
                delta = value
            increases[key] = round(delta)
        counted = counted_window(increases)
        notes: list[str] = []
        if resets:
            notes.append(
                f"{resets} counter(s) went down (Kong restarted or reloaded): their current value was "
                "counted as the increase"
            )
        notes += counted.notes()
        summary = WindowSummary(
            source=self.description,
            service=self.service,
            window_start=scraped_at,
            window_end=now,
            requests=counted.requests,
            status_classes=counted.status_classes,
            upstream_statuses=counted.upstream_statuses,
            upstream_errors=counted.upstream_errors,
            has_addresses=False,
            parse_failures=failures,
            notes=tuple(notes + failure_notes),
        )
        return bounded_notes(summary), {"scraped_at": to_rfc3339(now), "counts": counts}

    async def _scrape(self) -> tuple[dict[str, float], int, list[str]]:
        """The service's counters summed per :func:`_count_key`, the count of unusable lines, and notes."""
        try:
            response = await self._http.get(self.source.url, headers={"Accept": "text/plain"})
        except httpx.HTTPError as exc:
            raise TelemetryUnavailable(f"cannot scrape {self.source.url}: {type(exc).__name__} {exc}") from exc
        if response.status_code in (401, 403):
            raise TelemetryAuthError(f"{self.source.url} answered {response.status_code}: the scrape was refused")
        if response.status_code != 200:
            raise TelemetryUnavailable(f"{self.source.url} answered {response.status_code}")
        counts: dict[str, float] = {}
        malformed: list[str] = []
        non_finite = 0
        for sample in parse_exposition(response.text):
            if isinstance(sample, ExpositionError):
                malformed.append(str(sample))
                continue
            if sample.name != self.source.metric or (
                self.service is not None and sample.labels.get("service") != self.service
            ):
                continue
            if not math.isfinite(sample.value):
                non_finite += 1
                continue
            key = count_key(sample.labels)
            counts[key] = counts.get(key, 0.0) + sample.value
        notes = []
        if malformed:
            notes.append(f"{len(malformed)} malformed exposition line(s) skipped (first: {malformed[0]})")
        if non_finite:
            notes.append(f"{non_finite} {self.source.metric} series with a non-finite value (NaN, Inf) skipped")
        return counts, len(malformed) + non_finite, notes

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()
