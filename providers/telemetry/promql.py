"""Kong's request counters from a Prometheus HTTP API: every data plane summed, with history.

Where teams on GKE keep metrics (Prometheus, Thanos, Mimir, Google Managed Prometheus), one query
answers what scraping one ``/metrics`` endpoint can't: the service's requests summed across every data
plane, and any past window, so the baseline is read from history instead of two scrapes::

    sum by (code, source) (increase(kong_http_requests_total{service="orders-api", <selector>}[<window>]))

``increase`` copes with counter resets per series (a restarted data plane) before the sum, and
extrapolates to the window's edges, so counts are estimates within about one scrape interval of
traffic at each edge (Prometheus's documented behaviour); a series born inside the window loses the
requests before its first scrape less half an interval. The verdict compares ratios, which this
barely moves.

The API is read ``lag`` behind now (at least the scrape interval plus ingestion delay), as Cloud
Logging is: a cursor is a fixed origin plus what was reported so far, and each poll asks for the
whole increase since the origin and reports what it adds, so short polls never depend on two samples
falling inside one poll. ``/api/v1/query_range`` tells how many data planes reported the service in
a window read from history (a data plane that stopped being scraped is visible there).

Like the ``prometheus`` source, the metric has no upstream address or upstream status
(providers/telemetry/kong_counters.py): the traffic share is unknown and A's drain can't be proven.
Credentials: ``auth: google`` uses Google credentials (Managed Prometheus's endpoint), ``auth:
bearer`` a token from ``token_env``; plan validation allows them only over https (or to loopback).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import google.auth.credentials
import google.auth.exceptions
import httpx

from models.durations import format_duration
from models.plan import PromqlSource
from models.policy_rules import api_origin
from models.telemetry import WindowSummary
from providers.errors import (
    TelemetryAuthError,
    TelemetryError,
    TelemetryQuotaExceeded,
    TelemetryUnavailable,
    describe_transport_error,
)
from providers.google_auth import GoogleAuth, describe_auth_error, is_transport_problem, load_credentials
from providers.netguard import NetworkGuard, check_google_endpoint, guarded_transport
from providers.secrets import Destination, EnvSecrets
from providers.telemetry.base import (
    Cursor,
    HistoricalTelemetrySource,
    Progress,
    decoding_cursor,
    from_rfc3339,
    to_rfc3339,
    utc_now,
)
from providers.telemetry.kong_counters import COUNT_KEY, count_key, counted_window
from providers.telemetry.summary import bounded_notes
from providers.tls import verify_context

RANGE_POINTS = 30
"""Points of the data-plane count read over a window with ``query_range``."""


def promql_string(value: str) -> str:
    """``value`` as a PromQL double-quoted string literal (the service name comes from the plan)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def promql_duration(span: timedelta) -> str:
    """A range for ``[...]``: whole milliseconds (PromQL durations take no decimals), at least 1 ms."""
    return f"{max(1, round(span.total_seconds() * 1000))}ms"


def _unix(moment: datetime) -> str:
    return f"{moment.timestamp():.3f}"


def _decode_cursor(cursor: Cursor) -> tuple[datetime, datetime, dict[str, int]]:
    """Origin, how far it was read, and the counts reported so far per key.

    Raises:
        InvalidCursor: a field is missing or of the wrong type.
    """

    def decode() -> tuple[datetime, datetime, dict[str, int]]:
        reported = cursor["reported"]
        if not isinstance(reported, dict) or not all(
            isinstance(key, str) and COUNT_KEY.fullmatch(key) and isinstance(value, int) and value >= 0
            for key, value in reported.items()
        ):
            raise TypeError("reported must map '<code>|<origin>' to counts")
        origin, read_to = from_rfc3339(cursor["origin"]), from_rfc3339(cursor["read_to"])
        if read_to < origin:
            raise ValueError("read_to is before origin")
        return origin, read_to, dict(reported)

    return decoding_cursor(decode)


class PromqlTelemetry(HistoricalTelemetrySource):
    """``kong_http_requests_total`` of one service, summed over every data plane, from a Prometheus HTTP API."""

    kind: ClassVar[str] = "promql"
    has_addresses: ClassVar[bool] = False

    def __init__(
        self,
        source: PromqlSource,
        service: str | None,
        *,
        secrets: EnvSecrets | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        credentials: google.auth.credentials.Credentials | None = None,
    ) -> None:
        """Prepare the HTTP client; a bearer token is read now, Google credentials at the first request.

        Raises:
            ConfigError: the CA bundle or the token variable is missing.
        """
        super().__init__(service)
        self.source = source
        self._secrets = secrets
        self._credentials = credentials
        guard = secrets.guard if secrets is not None else NetworkGuard()
        headers = {"Accept": "application/json"}
        if source.auth == "google":
            # Google credentials go only to Google's Monitoring endpoint (or the one the worker policy names).
            check_google_endpoint(guard, "monitoring", api_origin(source.url), "monitor.source.url")
        else:
            guard.check_url("prometheus", source.url, "monitor.source.url")
        if source.auth == "bearer" and source.token_env:
            token = (secrets or EnvSecrets()).require_header_value(
                source.token_env, "monitor.source.token_env", Destination("prometheus", url=source.url)
            )
            headers["Authorization"] = f"Bearer {token}"
        verify = verify_context(source.ca_bundle, "monitor.source.ca_bundle")
        self._http = httpx.AsyncClient(
            base_url=source.url + "/",
            verify=verify,
            transport=transport or guarded_transport(guard, verify),
            timeout=source.timeout.total_seconds(),
            headers=headers,
            follow_redirects=False,
        )
        self._auth_ready = source.auth != "google"

    @property
    def selector(self) -> str:
        """The series of the service: ``kong_http_requests_total{service="orders-api", namespace="kong"}``."""
        matchers = [f"{self.source.service_label}={promql_string(self.service)}"] if self.service else []
        if self.source.selector:
            matchers.append(self.source.selector)
        return f"{self.source.metric}{{{', '.join(matchers)}}}"

    @property
    def description(self) -> str:
        """E.g. ``promql http://prometheus:9090 kong_http_requests_total{service="orders-api"}``."""
        return f"{self.kind} {self.source.url} {self.selector}"

    def _readable_until(self) -> datetime:
        """The latest moment the API can vouch for: now less the plan's ``lag``."""
        return utc_now() - self.source.lag

    # -- the HTTP API --

    async def _ensure_auth(self) -> None:
        """Load Google credentials once, off the event loop (ADC may ask the metadata server)."""
        if self._auth_ready:
            return
        if self._credentials is None:
            self._credentials = await asyncio.to_thread(
                load_credentials,
                self.source.credentials_env,
                "monitor.source.credentials_env",
                self._secrets,
                Destination("google", url=api_origin(self.source.url), api="monitoring"),
            )
        self._http.auth = GoogleAuth(self._credentials)
        self._auth_ready = True

    async def _api(self, endpoint: str, params: Mapping[str, str], what: str) -> Any:
        """GET ``<url>/api/v1/<endpoint>`` and return ``data``; every failure becomes a typed TelemetryError."""
        await self._ensure_auth()
        try:
            response = await self._http.get(f"api/v1/{endpoint}", params=dict(params))
        except google.auth.exceptions.GoogleAuthError as exc:
            if is_transport_problem(exc):
                raise TelemetryUnavailable(
                    f"could not get a Google access token for {self.source.url} ({describe_auth_error(exc)}); "
                    "retrying is safe"
                ) from exc
            raise TelemetryAuthError(
                f"could not get a Google access token for {self.source.url} ({describe_auth_error(exc)}): "
                "the credentials were refused"
            ) from exc
        except httpx.HTTPError as exc:
            # Never str(exc): protocol errors may repeat request headers, and this client may send a token.
            raise TelemetryUnavailable(
                f"{self.source.url} is unreachable for {what} ({describe_transport_error(exc)})"
            ) from exc
        body = self._json(response)
        error = f"{body.get('errorType', '')}: {str(body.get('error', ''))[:300]}" if body else ""
        status = response.status_code
        if status in (401, 403):
            raise TelemetryAuthError(f"{self.source.url} answered {status} to {what}: the query was refused")
        if status == 429:
            raise TelemetryQuotaExceeded(f"{self.source.url} answered 429 to {what}: too many queries")
        if status in (400, 422):
            raise TelemetryError(
                f"{self.source.url} rejected the query for {what} ({status} {error}): check monitor.source.metric "
                "and selector; retrying the same query can't help"
            )
        if status != 200 or body.get("status") != "success":
            detail = f" ({error})" if error else ""
            raise TelemetryUnavailable(f"{self.source.url} answered {status} to {what}{detail}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise TelemetryUnavailable(f"{self.source.url} answered {what} without data")
        return data

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if response.status_code in (200, 400, 422):
                kind = response.headers.get("content-type", "?").split(";")[0]
                raise TelemetryUnavailable(
                    f"{self.source.url} answered {response.status_code} with {kind}, not the JSON of a Prometheus "
                    "HTTP API: is monitor.source.url the API's base URL?"
                )
            return {}
        return body

    async def _vector(self, query: str, at: datetime, what: str) -> tuple[list[tuple[dict[str, str], float]], int]:
        """An instant query's samples (labels, value) and how many were unusable (NaN, Inf, malformed)."""
        data = await self._api("query", {"query": query, "time": _unix(at)}, what)
        if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
            raise TelemetryUnavailable(f"{self.source.url} answered {what} with a {data.get('resultType')!r} result")
        samples, bad = [], 0
        for item in data["result"]:
            parsed = _sample(item, "value")
            if parsed is None:
                bad += 1
            else:
                samples.append((parsed[0], parsed[1][0][1]))
        return samples, bad

    async def _matrix(
        self, query: str, start: datetime, end: datetime, step: timedelta, what: str
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """A range query's series: labels and their (time, value) points."""
        params = {"query": query, "start": _unix(start), "end": _unix(end), "step": promql_duration(step)}
        data = await self._api("query_range", params, what)
        if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
            raise TelemetryUnavailable(f"{self.source.url} answered {what} with a {data.get('resultType')!r} result")
        return [parsed for item in data["result"] if (parsed := _sample(item, "values")) is not None]

    # -- counting --

    async def _increases(self, start: datetime, end: datetime) -> tuple[dict[str, float], int]:
        """The service's request increase in ``(start, end]`` per ``"<code>|<origin>"``, and unusable samples."""
        query = f"sum by (code, source) (increase({self.selector}[{promql_duration(end - start)}]))"
        samples, bad = await self._vector(query, end, "the request counters")
        increases: dict[str, float] = {}
        for labels, value in samples:
            key = count_key(labels)
            increases[key] = increases.get(key, 0.0) + value
        return increases, bad

    def _summary(
        self, increases: Mapping[str, int], start: datetime, end: datetime, notes: list[str], bad: int = 0
    ) -> WindowSummary:
        counted = counted_window(increases)
        if bad:
            notes = [*notes, f"{bad} series with a non-finite or malformed value skipped"]
        return bounded_notes(
            WindowSummary(
                source=self.description,
                service=self.service,
                window_start=start,
                window_end=end,
                requests=counted.requests,
                status_classes=counted.status_classes,
                upstream_statuses=counted.upstream_statuses,
                upstream_errors=counted.upstream_errors,
                has_addresses=False,
                parse_failures=bad,
                notes=tuple([*notes, *counted.notes()]),
            )
        )

    # -- following "now" --

    async def open_cursor(self) -> Cursor:
        """The position ``lag`` behind now: the first poll counts what Prometheus records after it."""
        until = self._readable_until()
        await self._api("query", {"query": "vector(1)", "time": _unix(until)}, "a reachability check")
        return {"origin": to_rfc3339(until), "read_to": to_rfc3339(until), "reported": {}}

    def check_cursor(self, cursor: Cursor) -> None:
        """Raise InvalidCursor unless ``cursor`` is one of this source's."""
        _decode_cursor(cursor)

    async def poll(self, cursor: Cursor) -> tuple[WindowSummary, Cursor]:
        """What the increase since the cursor's origin adds to what was already reported.

        Raises:
            TelemetryAuthError: 401/403, or credentials refused.
            TelemetryUnavailable: unreachable, 5xx, an answer that is not the API's.
            TelemetryError: the query was rejected (400/422).
            InvalidCursor: the cursor can't be decoded.
        """
        origin, read_to, reported = _decode_cursor(cursor)
        until = self._readable_until()
        if until <= read_to:
            return self._summary({}, read_to, read_to, []), cursor
        increases, bad = await self._increases(origin, until)
        delta: dict[str, int] = {}
        for key, value in increases.items():
            if math.isfinite(value):
                total = max(0, round(value))
                delta[key] = max(0, total - reported.get(key, 0))
                reported[key] = reported.get(key, 0) + delta[key]
        summary = self._summary(delta, read_to, until, [], bad)
        return summary, {"origin": to_rfc3339(origin), "read_to": to_rfc3339(until), "reported": reported}

    # -- history --

    async def read_window(self, start: datetime, end: datetime, *, progress: Progress | None = None) -> WindowSummary:
        """The service's requests in ``[start, end)``, moved back by as much as ``end`` is closer to now than ``lag``.

        Raises:
            TelemetryAuthError, TelemetryUnavailable, TelemetryError: as :meth:`poll`.
        """
        shift = max(timedelta(0), end - self._readable_until())
        start, end = start - shift, end - shift
        if progress is not None:
            progress(f"querying {self.source.url} for {promql_duration(end - start)} of {self.selector}")
        increases, bad = await self._increases(start, end)
        counts = {key: max(0, round(value)) for key, value in increases.items() if math.isfinite(value)}
        lag = format_duration(self.source.lag)
        notes = [f"read {start:%H:%M:%S}..{end:%H:%M:%S} UTC, {lag} behind now (monitor.source.lag)"]
        notes += await self._data_planes(start, end)
        notes += await self._latency_and_health(start, end)
        return self._summary(counts, start, end, notes, bad)

    async def read_latest(self, span: timedelta, *, progress: Progress | None = None) -> tuple[WindowSummary, Cursor]:
        """The last ``span`` the API vouches for, and a cursor whose polls count what comes after it."""
        until = self._readable_until()
        summary = await self.read_window(until - span, until, progress=progress)
        end = summary.window_end or until
        return summary, {"origin": to_rfc3339(end), "read_to": to_rfc3339(end), "reported": {}}

    async def _data_planes(self, start: datetime, end: datetime) -> list[str]:
        """How many data planes (``instance`` label) reported the service's counters over the window."""
        step = max(timedelta(seconds=1), (end - start) / RANGE_POINTS)
        series = await self._matrix(
            f"count(count by (instance) ({self.selector}))", start, end, step, "the data planes reporting"
        )
        counts = [value for _, points in series for _, value in points if math.isfinite(value)]
        if not counts:
            return [f"no data plane reported {self.selector} in the window"]
        low, high = int(min(counts)), int(max(counts))
        seen = f"{high}" if low == high else f"{low} to {high} (data planes came and went)"
        return [f"{seen} data plane(s) reported the service's counters, summed"]

    async def _latency_and_health(self, start: datetime, end: datetime) -> list[str]:
        """Upstream latency p95 (with ``latency_metrics``) and the Upstream's target health, where present."""
        notes: list[str] = []
        window = promql_duration(end - start)
        matchers = self.selector[len(self.source.metric) :]
        latency = f"histogram_quantile(0.95, sum by (le) (rate(kong_upstream_latency_ms_bucket{matchers}[{window}])))"
        samples, _ = await self._vector(latency, end, "the upstream latency")
        for _, value in samples:
            if math.isfinite(value):
                notes.append(f"upstream latency p95 about {value:.0f} ms (kong_upstream_latency_ms)")
        if self.source.upstream:
            health = f"kong_upstream_target_health{{upstream={promql_string(self.source.upstream)}}} == 1"
            targets, _ = await self._vector(f"count by (state) ({health})", end, "the Upstream's target health")
            states = {labels.get("state", "?"): int(value) for labels, value in targets if math.isfinite(value)}
            if states:
                listed = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
                notes.append(f"Upstream {self.source.upstream} targets (per data plane): {listed}")
        return notes

    async def aclose(self) -> None:
        """Close the HTTP client and, with Google credentials, their token-refresh session."""
        await self._http.aclose()
        if isinstance(self._http.auth, GoogleAuth):
            self._http.auth.close()


def _sample(item: Any, field: str) -> tuple[dict[str, str], list[tuple[float, float]]] | None:
    """One result entry: labels and its points, or None when it is not what the API documents."""
    if not isinstance(item, dict) or not isinstance(item.get("metric"), dict):
        return None
    labels = {str(k): str(v) for k, v in item["metric"].items()}
    raw = [item.get(field)] if field == "value" else item.get(field)
    if not isinstance(raw, list):
        return None
    points = []
    for point in raw:
        if not isinstance(point, list) or len(point) != 2:
            return None
        try:
            points.append((float(point[0]), float(point[1])))
        except (TypeError, ValueError):
            return None
    if field == "value" and not all(math.isfinite(v) for _, v in points):
        return None
    return labels, points
