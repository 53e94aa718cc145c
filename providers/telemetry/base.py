"""What every telemetry source offers the monitor: windows from history, and a cursor to follow "now".

Two capabilities, made explicit by the class a source derives from:

* every :class:`TelemetrySource` can ``open_cursor()`` (a JSON-serialisable position "now") and
  ``poll(cursor)`` (what happened since, plus the next cursor). Cursors are plain dicts so the
  monitoring activity can put them in its heartbeat and resume after a worker crash;
* a :class:`HistoricalTelemetrySource` also keeps history and answers ``read_window(start, end)``
  (file-log scans its files, Cloud Logging runs a time-bounded query), and ``read_latest(span)``:
  the last ``span`` at once plus a cursor that follows on exactly where that read stopped, so a
  long watch (A's drain) reads history once and then only what is new. Prometheus keeps none: its
  baseline needs two scrapes.

``has_addresses`` says whether the source knows which upstream IP served a request; without it the
traffic share is unknown and A's drain cannot be proven.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

from models.telemetry import WindowSummary
from providers.resources import AsyncResource

T = TypeVar("T")

Cursor = dict[str, Any]
"""A source's position, JSON-serialisable (it travels in activity heartbeats)."""

Progress = Callable[[str], None]
"""Told how a long read is going ("read 20000 lines of /var/log/kong/file-log.json.1").

Sources call it from the thread doing the read, so it must only record the message (the activity's
keepalive heartbeats the latest one); it never raises.
"""


class InvalidCursor(ValueError):
    """A cursor the source can't decode: another version of cutover (or another source) wrote it.

    Only a cursor resumed from a heartbeat can be invalid; the activity then starts its window over.
    """


def decoding_cursor(decode: Callable[[], T]) -> T:
    """Run ``decode`` (reads of a cursor's fields), turning what a malformed cursor raises into InvalidCursor."""
    try:
        return decode()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidCursor(f"{type(exc).__name__}: {exc}") from exc


def utc_now() -> datetime:
    """The current time as an aware UTC datetime (every timestamp in a summary is aware UTC)."""
    return datetime.now(UTC)


def to_rfc3339(moment: datetime) -> str:
    """``2024-05-01T12:00:00.123456Z``: the form Cloud Logging filters and cursors use."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_rfc3339(text: str) -> datetime:
    """Parse what :func:`to_rfc3339` (or ``datetime.isoformat``) wrote back into an aware datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class TelemetrySource(AsyncResource, ABC):
    """A place Kong's traffic can be read from, scoped to one Kong service; ``async with`` closes it."""

    kind: ClassVar[str]
    """The plan's ``monitor.source.kind``."""
    has_addresses: ClassVar[bool] = True
    """False when the source can't tell which upstream address served a request."""

    def __init__(self, service: str | None) -> None:
        """``service``: the Kong service whose requests count; None for every service."""
        self.service = service

    @property
    @abstractmethod
    def description(self) -> str:
        """What is read, for summaries and messages, e.g. ``kong-file-log /var/log/kong/file.json``."""

    @abstractmethod
    async def open_cursor(self) -> Cursor:
        """Remember the position "now": the next :meth:`poll` reports only what comes after it.

        Raises:
            TelemetryError: the source can't be read (missing file, unreachable endpoint, credentials).
        """

    @abstractmethod
    def check_cursor(self, cursor: Cursor) -> None:
        """Make sure ``cursor`` (resumed from a heartbeat) is one this source can poll from.

        Raises:
            InvalidCursor: it is not (the message says what is wrong with it).
        """

    @abstractmethod
    async def poll(self, cursor: Cursor) -> tuple[WindowSummary, Cursor]:
        """What happened since ``cursor``, and the cursor to pass next time.

        Bad records never raise: they are counted in ``parse_failures`` with a note.

        Raises:
            TelemetryError: the source can't be read right now.
        """

    def empty_summary(self, start: datetime | None = None, end: datetime | None = None) -> WindowSummary:
        """A summary with no request yet, the starting point of accumulation."""
        return WindowSummary(
            source=self.description,
            service=self.service,
            window_start=start,
            window_end=end,
            has_addresses=self.has_addresses,
        )


class HistoricalTelemetrySource(TelemetrySource):
    """A source that keeps history, so a past window can be read at once.

    Whether a source keeps history is its class: callers test ``isinstance(source,
    HistoricalTelemetrySource)``, which also tells the type checker ``read_window`` exists.
    """

    @abstractmethod
    async def read_window(self, start: datetime, end: datetime, *, progress: Progress | None = None) -> WindowSummary:
        """Summarise the requests that started in ``[start, end)``.

        A long read (a big file, many pages) reports how far it got through ``progress``.

        Raises:
            TelemetryError: the source can't be read right now.
        """

    @abstractmethod
    async def read_latest(self, span: timedelta, *, progress: Progress | None = None) -> tuple[WindowSummary, Cursor]:
        """The requests of the last ``span`` the source can vouch for, and a cursor that follows on.

        The summary's ``window_end`` is how far the source could be read (now, or earlier for a
        source that indexes late) and its ``window_start`` is ``span`` before that. The cursor's
        first :meth:`poll` reports exactly what came after this read: nothing twice, nothing lost.

        Raises:
            TelemetryError: the source can't be read right now.
        """
