"""Kong's access logs in Google Cloud Logging (GKE collects the proxy's stdout), read with the real client.

Entries come as ``jsonPayload`` (file-log to ``/dev/stdout``: the PDK serializer object, kong.md
§4.4) or ``textPayload`` (nginx access lines; cutover reads ``$upstream_status``/``$upstream_addr``
when the operator adds them, docs/telemetry.md). Every query is time-bounded by cutover itself: the
client would otherwise add a 24 h bound of its own (recipes.md). JSON entries are scoped to the
service in the query (``payload: json``) and always in code; text lines carry no service name, so
the plan's ``filter`` is what scopes them.

The client is synchronous (google-cloud-core over ``requests``), so calls run in a thread. Quota
errors (429 / RESOURCE_EXHAUSTED) are retried with bounded exponential backoff; a listing restarts
from its first page after a backoff, so nothing is counted twice. Credentials that can't be
refreshed because the token or metadata service is unreachable or failing are
``TelemetryUnavailable`` (retried); credentials the token service rejects are
``TelemetryAuthError`` (not retried).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import google.api_core.exceptions as google_errors
import google.auth.exceptions
import requests
from google.cloud import logging as cloud_logging

from models.plan import CloudLoggingSource
from models.policy import OFFICIAL_GOOGLE_ENDPOINTS
from models.telemetry import WindowSummary
from providers.errors import TelemetryAuthError, TelemetryQuotaExceeded, TelemetryUnavailable
from providers.google_auth import describe_auth_error, is_transport_problem, load_credentials
from providers.netguard import NetworkGuard, check_google_endpoint
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
from providers.telemetry.records import RecordError, parse_access_line, parse_serialized_request
from providers.telemetry.summary import SummaryBuilder

LoggingClientFactory = Callable[[CloudLoggingSource], Any]
"""Builds a ``google.cloud.logging.Client`` for a source (tests point it at a local fake)."""

PAGE_SIZE = 1000
"""entries.list's largest page: fewer calls against the read quota."""
QUOTA_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0)
"""Seconds to wait after each 429 before giving up with TelemetryQuotaExceeded."""
INGESTION_ALLOWANCE = timedelta(seconds=30)
"""How long an entry may take to become listable after its timestamp (GKE's agent batches and ships
logs, then Logging indexes them). Following reads (``read_latest``, ``poll``) stop this long before
now: a request made seconds ago but not yet indexed must not let a window that covers its time pass
as quiet, and the cursor must not move past entries that may still arrive with older timestamps."""


def default_logging_client(source: CloudLoggingSource, secrets: EnvSecrets | None = None) -> Any:
    """The real client over HTTP, with the plan's credentials and endpoint.

    Raises:
        ConfigError: no credentials (no ADC and no key file named by ``credentials_env``).
    """
    endpoint = source.api_endpoint or OFFICIAL_GOOGLE_ENDPOINTS["logging"]
    guard = secrets.guard if secrets else NetworkGuard()
    # google-cloud-logging opens its own connections (requests, not httpx): the endpoint is checked here as
    # written (official or the policy's, no forbidden address); its connections are not pinned by the guard.
    check_google_endpoint(guard, "logging", endpoint, "monitor.source.api_endpoint")
    credentials = load_credentials(
        source.credentials_env,
        "monitor.source.credentials_env",
        secrets,
        Destination("google", url=endpoint, api="logging"),
    )
    options = {"api_endpoint": source.api_endpoint} if source.api_endpoint else None
    return cloud_logging.Client(  # type: ignore[no-untyped-call]
        project=source.project, credentials=credentials, _use_grpc=False, client_options=options
    )


def quote_filter_value(value: str) -> str:
    """A string literal of the Logging query language."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _decode_cursor(cursor: Cursor) -> tuple[datetime, datetime, set[str]]:
    """The last entry timestamp, the poll time and the insertIds already counted at that timestamp.

    Raises:
        InvalidCursor: a field is missing or of the wrong type.
    """

    def decode() -> tuple[datetime, datetime, set[str]]:
        seen = cursor["seen"]
        if not isinstance(seen, list) or not all(isinstance(item, str) for item in seen):
            raise TypeError("seen must be a list of insertIds")
        return from_rfc3339(cursor["after"]), from_rfc3339(cursor["polled_at"]), set(seen)

    return decoding_cursor(decode)


class CloudLogging(HistoricalTelemetrySource):
    """Kong request records from Cloud Logging ``entries.list``."""

    kind: ClassVar[str] = "cloud-logging"

    def __init__(
        self,
        source: CloudLoggingSource,
        service: str | None,
        *,
        client_factory: LoggingClientFactory | None = None,
        secrets: EnvSecrets | None = None,
        page_size: int = PAGE_SIZE,
        quota_backoff: Sequence[float] = QUOTA_BACKOFF,
        ingestion_allowance: timedelta = INGESTION_ALLOWANCE,
    ) -> None:
        super().__init__(service)
        self.ingestion_allowance = ingestion_allowance
        self.source = source
        self._client_factory = client_factory or (lambda plan_source: default_logging_client(plan_source, secrets))
        self._client: Any = None
        self._page_size = page_size
        self._quota_backoff = tuple(quota_backoff)

    @property
    def description(self) -> str:
        """E.g. ``cloud-logging projects/my-gke-project``."""
        return f"{self.kind} projects/{self.source.project}"

    def build_filter(self, start: datetime, end: datetime) -> str:
        """``(<plan filter>) AND <service scope> AND timestamp>="start" AND timestamp<"end"``."""
        terms = []
        if self.source.filter.strip():
            terms.append(f"({self.source.filter.strip()})")
        if self.source.payload == "json" and self.service is not None:
            terms.append(f"jsonPayload.service.name={quote_filter_value(self.service)}")
        terms.append(f'timestamp>="{to_rfc3339(start)}"')
        terms.append(f'timestamp<"{to_rfc3339(end)}"')
        return " AND ".join(terms)

    async def read_window(self, start: datetime, end: datetime, *, progress: Progress | None = None) -> WindowSummary:
        """Entries logged in ``[start, end)``, counted when their request started in that window too.

        ``progress`` hears how many entries were listed, every page.

        Raises:
            TelemetryAuthError: 401/403 or unusable credentials.
            TelemetryQuotaExceeded: still 429 after the backoff.
            TelemetryUnavailable: any other failure of the API, or of the token service (transport).
        """
        summary, _, _ = await self._query(start, end, start, end, only_within_window=True, progress=progress)
        return summary

    async def read_latest(self, span: timedelta, *, progress: Progress | None = None) -> tuple[WindowSummary, Cursor]:
        """Entries of the last ``span`` in one listing, and a cursor that polls from the last one read.

        The window ends :data:`INGESTION_ALLOWANCE` before now (``window_end`` says so): only what
        Cloud Logging has surely indexed is vouched for.

        Raises:
            TelemetryAuthError: 401/403 or unusable credentials.
            TelemetryQuotaExceeded: still 429 after the backoff.
            TelemetryUnavailable: any other failure of the API, or of the token service (transport).
        """
        end = utc_now() - self.ingestion_allowance
        start = end - span
        summary, last, ids = await self._query(start, end, start, end, only_within_window=True, progress=progress)
        if last is None:
            last, ids = end, []
        return summary, {"after": to_rfc3339(last), "seen": ids, "polled_at": to_rfc3339(end)}

    async def open_cursor(self) -> Cursor:
        """Start at "now": polls read entries logged from now on (once the ingestion allowance passed)."""
        now = to_rfc3339(utc_now())
        return {"after": now, "seen": [], "polled_at": now}

    def check_cursor(self, cursor: Cursor) -> None:
        """Raise InvalidCursor unless ``cursor`` holds a last timestamp, its insertIds and a poll time."""
        _decode_cursor(cursor)

    async def poll(self, cursor: Cursor) -> tuple[WindowSummary, Cursor]:
        """Entries logged since the cursor's last timestamp, minus the insertIds already counted there.

        Only up to :data:`INGESTION_ALLOWANCE` before now; until that is later than where the cursor
        stands (just after ``open_cursor``), nothing is listed and the summary is empty.

        Raises:
            TelemetryAuthError: 401/403 or unusable credentials.
            TelemetryQuotaExceeded: still 429 after the backoff.
            TelemetryUnavailable: any other failure of the API, or of the token service (transport).
            InvalidCursor: the cursor can't be decoded.
        """
        after, polled_until, seen = _decode_cursor(cursor)
        end = utc_now() - self.ingestion_allowance
        if end <= max(after, polled_until):
            return self.empty_summary(polled_until, polled_until), cursor
        summary, last, ids = await self._query(
            after, end, polled_until, end, only_within_window=False, skip=(after, seen)
        )
        if last is None or last == after:
            last, ids = after, sorted(seen | set(ids))
        return summary, {"after": to_rfc3339(last), "seen": ids, "polled_at": to_rfc3339(end)}

    async def _query(
        self,
        start: datetime,
        end: datetime,
        window_start: datetime,
        window_end: datetime,
        *,
        only_within_window: bool,
        skip: tuple[datetime, set[str]] | None = None,
        progress: Progress | None = None,
    ) -> tuple[WindowSummary, datetime | None, list[str]]:
        filter_ = self.build_filter(start, end)
        for attempt in range(len(self._quota_backoff) + 1):
            builder = SummaryBuilder(
                source=self.description,
                service=self.service,
                window_start=window_start,
                window_end=window_end,
                only_within_window=only_within_window,
            )
            try:
                last, ids = await asyncio.to_thread(self._list, filter_, builder, skip, progress)
                if attempt:
                    builder.note(f"Cloud Logging answered 429 {attempt} time(s); read after backing off")
                return builder.build(), last, ids
            except google_errors.TooManyRequests as exc:
                if attempt == len(self._quota_backoff):
                    raise TelemetryQuotaExceeded(
                        f"Cloud Logging read quota exhausted for projects/{self.source.project} "
                        f"(429 after {attempt + 1} attempts): {exc.message}"
                    ) from exc
                delay = self._quota_backoff[attempt]
                await asyncio.sleep(delay + random.uniform(0, delay / 4))
            except (google_errors.Unauthorized, google_errors.Forbidden) as exc:
                raise TelemetryAuthError(
                    f"Cloud Logging refused to list entries of projects/{self.source.project} ({exc.code}): "
                    f"{exc.message}; the worker needs roles/logging.viewer (logging.logEntries.list)"
                ) from exc
            except google.auth.exceptions.GoogleAuthError as exc:
                if is_transport_problem(exc):
                    raise TelemetryUnavailable(
                        f"Google credentials for Cloud Logging could not be refreshed right now "
                        f"(the token or metadata service is unreachable or failing): {describe_auth_error(exc)}"
                    ) from exc
                raise TelemetryAuthError(
                    f"Google credentials for Cloud Logging are unusable: {describe_auth_error(exc)}"
                ) from exc
            except google_errors.GoogleAPICallError as exc:
                raise TelemetryUnavailable(f"Cloud Logging entries.list failed ({exc.code}): {exc.message}") from exc
            except requests.exceptions.RequestException as exc:
                raise TelemetryUnavailable(f"Cloud Logging is unreachable: {type(exc).__name__}") from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _list(
        self,
        filter_: str,
        builder: SummaryBuilder,
        skip: tuple[datetime, set[str]] | None,
        progress: Progress | None,
    ) -> tuple[datetime | None, list[str]]:
        """List every page (the client follows nextPageToken); return the last timestamp and its insertIds."""
        if self._client is None:
            self._client = self._client_factory(self.source)
        last: datetime | None = None
        ids_at_last: list[str] = []
        entries = self._client.list_entries(
            resource_names=[f"projects/{self.source.project}"], filter_=filter_, page_size=self._page_size
        )
        for listed, entry in enumerate(entries, start=1):
            if progress is not None and listed % self._page_size == 0:
                progress(f"listed {listed} entries of projects/{self.source.project}")
            moment: datetime | None = entry.timestamp
            insert_id: str = entry.insert_id or ""
            if skip is not None and moment == skip[0] and insert_id in skip[1]:
                continue
            if moment is not None:
                if last is None or moment > last:
                    last, ids_at_last = moment, []
                if moment == last and insert_id:
                    ids_at_last.append(insert_id)
            self._count(entry.payload, moment, insert_id, builder)
        return last, ids_at_last

    def _count(self, payload: Any, moment: datetime | None, insert_id: str, builder: SummaryBuilder) -> None:
        where = f"insertId {insert_id or '?'}"
        try:
            if isinstance(payload, str):
                if self.source.payload == "json":
                    builder.note("text entries ignored: the plan reads jsonPayload only (payload: json)")
                    return
                if moment is None:
                    raise RecordError("entry without timestamp")
                builder.add(parse_access_line(payload, moment))
            elif isinstance(payload, dict):
                if self.source.payload == "text":
                    builder.note("JSON entries ignored: the plan reads textPayload only (payload: text)")
                    return
                builder.add(parse_serialized_request(payload))
            else:
                raise RecordError("neither textPayload nor jsonPayload")
        except RecordError as exc:
            builder.failure(str(exc), where)

    async def aclose(self) -> None:
        """Close the client's HTTP session."""
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)
