"""Traffic activities: "is B healthy behind Kong now?" and "has A stopped receiving traffic?".

The workflow calls them by name (``traffic_baseline``, ``traffic_monitor``,
``traffic_prove_drained``). They read the plan's telemetry source (providers/telemetry), sum its
windows and judge them with the pure ``models.telemetry.evaluate`` and ``drain_proof``. Long ones
heartbeat every 2 s (the worker's flush interval, ``HEARTBEAT_FLUSH_SECONDS``) with JSON details:
``traffic_monitor`` and ``traffic_prove_drained`` heartbeat their whole position (source cursor,
accumulated summary, start), so a retry after a worker crash resumes where the last heartbeat left
off instead of reading again from zero; only a checkpoint that can't be decoded starts over, and
says so. Reads run in a thread under a keepalive task that heartbeats their progress, so a multi-GB
file can't trip the heartbeat timeout. Every wait is a short sleep between heartbeats, so a
cancellation (told in the answer to a flushed heartbeat) arrives within about 2 to 4 s and leaves
through ``asyncio.CancelledError`` after the source's connections are closed.

The pure rules (``evaluate``, ``drain_proof``) live in models/telemetry.py; ``traffic_report``, the
same reading for ``starter.py traffic``, lives in providers/telemetry/report.py (re-exported here
until starter.py imports it from there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from temporalio import activity

from activities.errors import maps_provider_errors
from activities.heartbeats import HEARTBEAT_FLUSH_SECONDS, KeepAlive
from models.durations import format_duration
from models.plan import MonitorSection
from models.telemetry import (
    BaselineInput,
    DrainInput,
    DrainProof,
    MonitorInput,
    MonitorResult,
    Verdict,
    WindowSummary,
    drain_proof,
    evaluate,
    merge_summaries,
)
from providers.secrets import EnvSecrets
from providers.telemetry.base import Cursor, HistoricalTelemetrySource, InvalidCursor, TelemetrySource, utc_now
from providers.telemetry.cloud_logging import INGESTION_ALLOWANCE, LoggingClientFactory
from providers.telemetry.factory import build_telemetry_source
from providers.telemetry.records import normalise_addresses
from providers.telemetry.report import traffic_report
from providers.telemetry.summary import bounded_notes

__all__ = ["HEARTBEAT_EVERY", "MonitorActivities", "traffic_report"]
"""``traffic_report`` lives in providers/telemetry/report.py; it is re-exported for starter.py until it
imports it from there."""

HEARTBEAT_EVERY = HEARTBEAT_FLUSH_SECONDS
"""Seconds between heartbeats while waiting: as often as the worker sends them on (more would be dropped)."""


class MonitorCheckpoint(BaseModel):
    """What ``traffic_monitor`` heartbeats, and resumes from after a worker crash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    """The source's description; a checkpoint of another source is not resumed."""
    cursor: Cursor
    summary: WindowSummary
    polls: int
    started_at: datetime


class DrainCheckpoint(BaseModel):
    """What ``traffic_prove_drained`` heartbeats, and resumes from after a worker crash.

    Its start (the timeout counts from it), and once the quiet window was read, the source's cursor
    and everything seen since, so a retry goes on polling instead of reading the window again.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    started_at: datetime
    checks: int
    last_reason: str = ""
    source: str | None = None
    """The source's description; the cursor of another source is not resumed."""
    cursor: Cursor | None = None
    summary: WindowSummary | None = None
    """Everything seen since the start of the first quiet window read (the drain rule needs A's last request)."""
    progress: str = ""
    """How the current read is going (heartbeated while it runs)."""


class _LatestProgress:
    """The latest progress message of a read running in a thread; the keepalive heartbeats it."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, message: str) -> None:
        self.message = message


def _last_heartbeat() -> Any:
    details = activity.info().heartbeat_details
    return details[-1] if details else None


async def _wait(seconds: float, details: Any, step: float) -> None:
    """Sleep ``seconds`` in steps of ``step``, heartbeating ``details`` before each step.

    Temporal keeps only the latest heartbeat details, so every heartbeat repeats the full details.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        activity.heartbeat(details)
        await asyncio.sleep(min(step, left))


class MonitorActivities:
    """Traffic activities over the plan's telemetry source.

    Args:
        secrets: where credential variables are read (default: the worker's environment).
        transport: httpx transport for the Prometheus scrape (tests).
        logging_client_factory: builds the Cloud Logging client (tests point it at a local fake).
        heartbeat_every: seconds between heartbeats while waiting.
        logging_ingestion_allowance: how far behind now Cloud Logging is followed (tests shorten it).
    """

    def __init__(
        self,
        secrets: EnvSecrets | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        logging_client_factory: LoggingClientFactory | None = None,
        *,
        heartbeat_every: float = HEARTBEAT_EVERY,
        logging_ingestion_allowance: timedelta = INGESTION_ALLOWANCE,
    ) -> None:
        self._secrets = secrets
        self._transport = transport
        self._logging_client_factory = logging_client_factory
        self._heartbeat_every = heartbeat_every
        self._logging_ingestion_allowance = logging_ingestion_allowance

    def activities(self) -> list[Callable[..., Any]]:
        """The activities to register on the worker."""
        return [self.baseline, self.monitor, self.prove_drained]

    def _source(self, monitor: MonitorSection, service: str) -> TelemetrySource:
        return build_telemetry_source(
            monitor,
            service,
            secrets=self._secrets,
            transport=self._transport,
            logging_client_factory=self._logging_client_factory,
            ingestion_allowance=self._logging_ingestion_allowance,
        )

    @activity.defn(name="traffic_baseline")
    @maps_provider_errors
    async def baseline(self, input: BaselineInput) -> WindowSummary:
        """A's traffic before the flip: the past window, or two scrapes ``poll_interval`` apart."""
        async with self._source(input.monitor, input.service) as source:
            now = utc_now()
            if isinstance(source, HistoricalTelemetrySource):
                progress = _LatestProgress(
                    f"reading the last {format_duration(input.monitor.window)} of {source.description}"
                )
                async with KeepAlive(lambda: progress.message, self._heartbeat_every):
                    return await source.read_window(now - input.monitor.window, now, progress=progress)
            cursor = await source.open_cursor()
            wait = input.monitor.poll_interval.total_seconds()
            waiting = f"{source.description} keeps no history: {wait:g}s between two reads"
            await _wait(wait, waiting, self._heartbeat_every)
            summary, _ = await source.poll(cursor)
            return summary

    @activity.defn(name="traffic_monitor")
    @maps_provider_errors
    async def monitor(self, input: MonitorInput) -> MonitorResult:
        """Watch one window after the flip; stop early once the accumulated window is unhealthy."""
        monitor = input.monitor
        a_addresses, b_addresses = normalise_addresses(input.a_addresses), normalise_addresses(input.b_addresses)
        async with self._source(monitor, input.service) as source:
            checkpoint, why_not = self._resumed_checkpoint(source)
            if checkpoint is None:
                checkpoint = await self._fresh_checkpoint(source, restarted_because=why_not)
            activity.heartbeat(checkpoint.model_dump(mode="json"))
            deadline = checkpoint.started_at + monitor.window
            while True:
                remaining = (deadline - utc_now()).total_seconds()
                wait = max(0.0, min(monitor.poll_interval.total_seconds(), remaining))
                await _wait(wait, checkpoint.model_dump(mode="json"), self._heartbeat_every)
                async with KeepAlive(checkpoint.model_dump(mode="json"), self._heartbeat_every):
                    delta, cursor = await source.poll(checkpoint.cursor)
                checkpoint = checkpoint.model_copy(
                    update={
                        "cursor": cursor,
                        "summary": bounded_notes(merge_summaries(checkpoint.summary, delta)),
                        "polls": checkpoint.polls + 1,
                    }
                )
                activity.heartbeat(checkpoint.model_dump(mode="json"))
                verdict = self._verdict(checkpoint.summary, input, a_addresses, b_addresses)
                finished = utc_now() >= deadline
                if finished or verdict.status == "unhealthy":
                    return MonitorResult(verdict=verdict, polls=checkpoint.polls, stopped_early=not finished)

    @staticmethod
    def _verdict(summary: WindowSummary, input: MonitorInput, a: list[str], b: list[str]) -> Verdict:
        return evaluate(summary, input.monitor, a_addresses=a, b_addresses=b, baseline=input.baseline)

    async def _fresh_checkpoint(
        self, source: TelemetrySource, *, restarted_because: str | None = None
    ) -> MonitorCheckpoint:
        """A window starting now; when a previous attempt's window couldn't be resumed, its summary says so."""
        now = utc_now()
        summary = source.empty_summary(now, now)
        if restarted_because:
            summary = summary.model_copy(
                update={
                    "notes": (
                        f"window restarted at {now:%H:%M:%S} UTC: the previous attempt's checkpoint could not be "
                        f"resumed ({restarted_because}); what it had counted is not in this window",
                    )
                }
            )
        return MonitorCheckpoint(
            source=source.description, cursor=await source.open_cursor(), summary=summary, polls=0, started_at=now
        )

    @staticmethod
    def _resumed_checkpoint(source: TelemetrySource) -> tuple[MonitorCheckpoint | None, str | None]:
        """The checkpoint of a previous attempt of this activity, or why its last heartbeat can't be resumed.

        Only the decoding of the checkpoint (and of its cursor) is checked here: whatever fails later,
        while reading the source, is an error of the source, never a reason to drop the window.
        """
        details = _last_heartbeat()
        if details is None:
            return None, None
        try:
            checkpoint = MonitorCheckpoint.model_validate(details)
        except ValidationError as exc:
            why = f"its last heartbeat is not a checkpoint: {exc.error_count()} problem(s)"
            activity.logger.warning("traffic_monitor: %s; starting the window over", why)
            return None, why
        if checkpoint.source != source.description or checkpoint.summary.service != source.service:
            why = f"it watched {checkpoint.source}, service {checkpoint.summary.service}"
            activity.logger.warning("traffic_monitor: %s; starting the window over", why)
            return None, why
        try:
            source.check_cursor(checkpoint.cursor)
        except InvalidCursor as exc:
            # A cursor from another version of cutover: polling it would fail the same way at every retry.
            why = f"its cursor is unusable: {exc}"
            activity.logger.warning("traffic_monitor: %s; starting the window over", why)
            return None, why
        activity.logger.info(
            "traffic_monitor: resuming after %d poll(s), %d request(s) counted so far",
            checkpoint.polls,
            checkpoint.summary.requests,
        )
        return checkpoint, None

    @activity.defn(name="traffic_prove_drained")
    @maps_provider_errors
    async def prove_drained(self, input: DrainInput) -> DrainProof:
        """Watch until A got no request for ``quiet_period_seconds`` (with traffic elsewhere), or time out.

        The quiet window is read once (``read_latest``); from then on the source's cursor is polled
        every ``poll_interval`` and the new requests are added to what was seen, so each check costs
        only what arrived since the previous one, whatever the size of the log.
        """
        quiet = timedelta(seconds=input.quiet_period_seconds)
        a_addresses, b_addresses = normalise_addresses(input.a_addresses), normalise_addresses(input.b_addresses)
        async with self._source(input.monitor, input.service) as source:
            if not source.has_addresses or not isinstance(source, HistoricalTelemetrySource):
                return drain_proof(source.empty_summary(), a_addresses, quiet, utc_now(), b_addresses=b_addresses)
            checkpoint = self._resumed_drain(source) or DrainCheckpoint(started_at=utc_now(), checks=0)
            deadline = checkpoint.started_at + timedelta(seconds=input.timeout_seconds)
            while True:
                checkpoint = await self._drain_read(source, checkpoint, quiet)
                summary = checkpoint.summary or source.empty_summary()
                proof = drain_proof(
                    summary, a_addresses, quiet, summary.window_end or utc_now(), b_addresses=b_addresses
                )
                checkpoint = checkpoint.model_copy(
                    update={"checks": checkpoint.checks + 1, "last_reason": proof.reason, "progress": ""}
                )
                activity.heartbeat(checkpoint.model_dump(mode="json"))
                remaining = (deadline - utc_now()).total_seconds()
                if proof.drained:
                    return proof
                if remaining <= 0:
                    waited = format_duration(timedelta(seconds=round(input.timeout_seconds)))
                    return proof.model_copy(update={"reason": f"not proven within {waited}: {proof.reason}"})
                wait = min(input.monitor.poll_interval.total_seconds(), remaining)
                await _wait(wait, checkpoint.model_dump(mode="json"), self._heartbeat_every)

    async def _drain_read(
        self, source: HistoricalTelemetrySource, checkpoint: DrainCheckpoint, quiet: timedelta
    ) -> DrainCheckpoint:
        """Read the quiet window once, or poll what came since the last read; heartbeat meanwhile."""
        if checkpoint.cursor is None or checkpoint.summary is None:
            progress = _LatestProgress(f"reading the last {format_duration(quiet)} of {source.description}")
        else:
            progress = _LatestProgress(f"reading what {source.description} got since the last check")

        def details() -> Any:
            return checkpoint.model_copy(update={"progress": progress.message}).model_dump(mode="json")

        async with KeepAlive(details, self._heartbeat_every):
            if checkpoint.cursor is None or checkpoint.summary is None:
                summary, cursor = await source.read_latest(quiet, progress=progress)
            else:
                delta, cursor = await source.poll(checkpoint.cursor)
                summary = bounded_notes(merge_summaries(checkpoint.summary, delta))
        return checkpoint.model_copy(update={"source": source.description, "cursor": cursor, "summary": summary})

    @staticmethod
    def _resumed_drain(source: TelemetrySource) -> DrainCheckpoint | None:
        """The checkpoint of a previous attempt; its cursor only if it is this source's."""
        details = _last_heartbeat()
        if details is None:
            return None
        try:
            checkpoint = DrainCheckpoint.model_validate(details)
        except ValidationError:
            activity.logger.warning("traffic_prove_drained: last heartbeat is not a checkpoint; starting over")
            return None
        if checkpoint.source == source.description and checkpoint.cursor is not None:
            try:
                source.check_cursor(checkpoint.cursor)
            except InvalidCursor as exc:
                activity.logger.warning("traffic_prove_drained: the checkpoint's cursor is unusable (%s)", exc)
            else:
                return checkpoint
        # Keep the start (the timeout goes on counting) but read the quiet window again.
        return checkpoint.model_copy(update={"source": None, "cursor": None, "summary": None})
        try:
            return DrainCheckpoint.model_validate(details)
        except ValidationError:
            return None
