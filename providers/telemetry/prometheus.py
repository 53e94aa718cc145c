"""Kong's Prometheus plugin: ``kong_http_requests_total{service, route, code, source, ...}`` counters.

Counters have no history and no time of their own, so this source only follows "now": a cursor is
one scrape's counter values, and a poll is the difference to the next scrape. The cursor travels in
every heartbeat, so it keeps only what the difference needs: the service's counters summed per
status code and origin (``"503|service": 1234``), never one entry per route or consumer series. A
sum that went down was reset (Kong restarted or reloaded): its whole current value is the delta,
with a note.

What the metric can't say (kong.md §4.3): there is no upstream status label (``code`` is the status
sent to the client) and no upstream address. So the upstream status is approximated by ``code`` when
``source="service"`` (the response came from the upstream), Kong's own 502/503/504 count as upstream
errors, the traffic share is unknown, and A's drain cannot be proven from Prometheus.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import httpx

from models.plan import PrometheusSource
from models.telemetry import WindowSummary
from providers.errors import TelemetryAuthError, TelemetryUnavailable
from providers.netguard import NetworkGuard, guarded_transport
from providers.telemetry.base import Cursor, TelemetrySource, decoding_cursor, from_rfc3339, to_rfc3339, utc_now
from providers.telemetry.records import KONG_UNREACHABLE_STATUSES
from providers.telemetry.summary import bounded_notes, status_class
from providers.tls import verify_context

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


@dataclass(frozen=True)
class Sample:
    """One sample line of the text exposition format."""

    name: str
    labels: dict[str, str]
    value: float


class ExpositionError(ValueError):
    """A sample line that does not follow the text exposition format; the message says why."""


def _parse_value(text: str) -> float:
    lowered = text.lower()
    if lowered in ("+inf", "inf"):
        return math.inf
    if lowered == "-inf":
        return -math.inf
    if lowered == "nan":
        return math.nan
    try:
        return float(text)
    except ValueError as exc:
        raise ExpositionError(f"value {text[:20]!r} is not a number") from exc


def _parse_labels(line: str, position: int) -> tuple[dict[str, str], int]:
    r"""Parse ``{a="x",b="y\"z"}`` starting at the ``{``; return the labels and the index after ``}``."""
    labels: dict[str, str] = {}
    position += 1
    while True:
        while position < len(line) and line[position] in " \t":
            position += 1
        if position < len(line) and line[position] == "}":
            return labels, position + 1
        name = _LABEL_NAME.match(line, position)
        if not name:
            raise ExpositionError("bad label name")
        position = name.end()
        while position < len(line) and line[position] in " \t":
            position += 1
        if line[position : position + 1] != "=":
            raise ExpositionError(f"label {name.group()} has no value")
        position += 1
        while position < len(line) and line[position] in " \t":
            position += 1
        if line[position : position + 1] != '"':
            raise ExpositionError(f"label {name.group()} has no quoted value")
        position += 1
        value = []
        while True:
            if position >= len(line):
                raise ExpositionError(f"label {name.group()} value is not closed")
            char = line[position]
            if char == "\\":
                escaped = line[position + 1 : position + 2]
                if escaped not in _ESCAPES:
                    raise ExpositionError(f"label {name.group()} has a bad escape")
                value.append(_ESCAPES[escaped])
                position += 2
            elif char == '"':
                position += 1
                break
            else:
                value.append(char)
                position += 1
        labels[name.group()] = "".join(value)
        while position < len(line) and line[position] in " \t":
            position += 1
        if position < len(line) and line[position] == ",":
            position += 1
        elif position < len(line) and line[position] == "}":
            return labels, position + 1
        else:
            raise ExpositionError("labels are not separated by ','")


def parse_sample(line: str) -> Sample:
    """One sample line: ``name{labels} value [timestamp]``.

    Raises:
        ExpositionError: the line is malformed.
    """
    name = _NAME.match(line)
    if not name:
        raise ExpositionError("bad metric name")
    position = name.end()
    labels: dict[str, str] = {}
    if position < len(line) and line[position] == "{":
        labels, position = _parse_labels(line, position)
    rest = line[position:].split()
    if not rest or len(rest) > 2 or (position < len(line) and line[position] not in " \t"):
        raise ExpositionError("expected a value (and an optional timestamp) after the metric")
    if len(rest) == 2 and not re.fullmatch(r"-?\d+(\.\d+)?", rest[1]):
        raise ExpositionError("bad timestamp")
    return Sample(name.group(), labels, _parse_value(rest[0]))


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


def _count_key(labels: dict[str, str]) -> str:
    """What a counter is summed under: its status code and where the response came from.

    ``"503|service"``, ``"502|kong"``, ``"200|"`` (no ``source`` label), ``"other|service"`` (a code
    that is not an HTTP status). Every other label (route, consumer, workspace ...) is summed away, so
    a cursor holds at most ~1500 keys whatever the number of consumers, and in practice a dozen.
    """
    code = labels.get("code", "")
    status = code if re.fullmatch(r"[1-5]\d\d", code) else "other"
    origin = labels.get("source")
    return f"{status}|{'' if origin is None else 'kong' if origin == 'kong' else 'service'}"


_COUNT_KEY = re.compile(r"(?:[1-5]\d\d|other)\|(?:service|kong|)")


def _decode_cursor(cursor: Cursor) -> tuple[datetime, dict[str, float]]:
    """The scrape time and counter values of a cursor.

    Raises:
        InvalidCursor: a field is missing or of the wrong type.
    """

    def decode() -> tuple[datetime, dict[str, float]]:
        values = cursor["counts"]
        if not isinstance(values, dict) or not all(
            isinstance(key, str) and _COUNT_KEY.fullmatch(key) and isinstance(value, int | float)
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
        notes: list[str] = []
        statuses: dict[str, int] = {}
        classes: dict[str, int] = {}
        requests = errors = 0
        resets = 0
        sourceless = False
        for key, value in counts.items():
            delta = value - previous.get(key, 0.0)
            if delta < 0:
                resets += 1
                delta = value
            count = round(delta)
            if count <= 0:
                continue
            code, origin = key.split("|")
            status = 0 if code == "other" else int(code)
            requests += count
            family = status_class(status) if status else "unknown"
            classes[family] = classes.get(family, 0) + count
            if origin == "kong":
                upstream = ""
                is_error = status in KONG_UNREACHABLE_STATUSES
            else:
                upstream = "" if code == "other" else code
                is_error = status >= 500
                sourceless = sourceless or not origin
            statuses[upstream] = statuses.get(upstream, 0) + count
            errors += count if is_error else 0
        if resets:
            notes.append(
                f"{resets} counter(s) went down (Kong restarted or reloaded): their current value was "
                "counted as the increase"
            )
        if sourceless:
            notes.append("no 'source' label (Kong < 3.x?): every 5xx is counted as an upstream error")
        notes.append("Prometheus has no upstream address or upstream status: traffic share unknown")
        summary = WindowSummary(
            source=self.description,
            service=self.service,
            window_start=scraped_at,
            window_end=now,
            requests=requests,
            status_classes=dict(sorted(classes.items())),
            upstream_statuses=dict(sorted(statuses.items())),
            upstream_errors=errors,
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
            key = _count_key(sample.labels)
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
