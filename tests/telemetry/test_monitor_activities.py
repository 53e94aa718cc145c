"""The traffic activities in Temporal's ActivityEnvironment, over real files and a real /metrics server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.monitor
from activities.monitor import MonitorActivities
from models.plan import CutoverPlan, KongFileLogSource, MonitorSection
from models.telemetry import BaselineInput, DrainInput, MonitorInput, WindowSummary
from providers.telemetry.base import from_rfc3339, utc_now
from providers.telemetry.file_log import KongFileLog
from providers.telemetry.report import traffic_report
from tests.fakes.cloud_logging import CloudLoggingFake
from tests.telemetry.kong_lines import A_IP, B_IP, SERVICE, ago, kong_line, kong_record
from tests.telemetry.metrics_server import MetricsServer, exposition

LOGGING_PROJECT = "kong-gke-project"


def file_monitor(path: Path, **overrides: Any) -> MonitorSection:
    data: dict[str, Any] = {
        "source": {"kind": "kong-file-log", "path": str(path)},
        "window": "1500ms",
        "poll_interval": "300ms",
        "min_requests": 5,
        "max_error_ratio": 0.05,
    }
    return MonitorSection.model_validate({**data, **overrides})


def monitor_input(monitor: MonitorSection, **overrides: Any) -> MonitorInput:
    return MonitorInput(monitor=monitor, service=SERVICE, a_addresses=(A_IP,), b_addresses=(B_IP,), **overrides)


def append(path: Path, *lines: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(lines))


def file_size(path: Path) -> int:
    return path.stat().st_size


class Recorder:
    """An ActivityEnvironment whose heartbeats are kept (as JSON, the way Temporal would carry them)."""

    def __init__(self) -> None:
        self.env = ActivityEnvironment()
        self.heartbeats: list[Any] = []
        self.beating = asyncio.Event()
        """Set at the first heartbeat: the activity has opened its cursor."""
        self.env.on_heartbeat = self._record

    def _record(self, *details: Any) -> None:
        self.heartbeats.append(json.loads(json.dumps(details)))
        self.beating.set()

    def resume_from(self, details: Any) -> None:
        self.env.info = dataclasses.replace(self.env.info, heartbeat_details=[details])

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.env.run(fn, *args)


async def write_lines(
    path: Path, every: float, make: Callable[[], str], count: int, *, after: asyncio.Event | None = None
) -> None:
    """Append ``count`` lines, one every ``every`` seconds, once ``after`` is set (the cursor is open)."""
    if after is not None:
        await after.wait()
    for _ in range(count):
        append(path, make())
        await asyncio.sleep(every)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "file-log.json"
    path.write_text(kong_line(at=ago(3600)))
    return path


@pytest.fixture
async def metrics() -> AsyncIterator[MetricsServer]:
    server = MetricsServer()
    await server.start()
    yield server
    await server.stop()


# --- traffic_monitor ---------------------------------------------------------------------------------


async def test_monitor_healthy_window_heartbeats_its_position(log: Path) -> None:
    recorder = Recorder()
    writer = asyncio.create_task(write_lines(log, 0.05, kong_line, 20, after=recorder.beating))
    result = await recorder.run(MonitorActivities().monitor, monitor_input(file_monitor(log)))
    await writer

    assert result.verdict.status == "healthy"
    assert not result.stopped_early
    assert result.polls >= 4
    assert result.verdict.requests == 20
    assert result.verdict.share.b_ratio == 1.0
    assert result.verdict.share.describe() == "Kong sends 100% to B, 0% to A (20 requests)"
    checkpoints = [details[0] for details in recorder.heartbeats if isinstance(details[0], dict)]
    assert set(checkpoints[-1]) == {"source", "cursor", "summary", "polls", "started_at"}
    assert checkpoints[-1]["polls"] == result.polls
    assert checkpoints[-1]["summary"]["requests"] == 20
    assert checkpoints[-1]["cursor"]["files"][0]["offset"] == file_size(log)


async def test_one_early_502_does_not_stop_a_healthy_cutover(log: Path) -> None:
    monitor = file_monitor(log, window="1200ms", poll_interval="200ms", min_requests=20, max_error_ratio=0.02)
    recorder = Recorder()

    async def first_a_502_then_traffic() -> None:
        await recorder.beating.wait()
        append(log, kong_line(status=502, tries=[(B_IP, 502)]))
        await asyncio.sleep(0.45)  # at least one poll sees the 502 alone: 1 of 1 request failed
        append(log, *(kong_line() for _ in range(60)))

    writer = asyncio.create_task(first_a_502_then_traffic())
    result = await recorder.run(MonitorActivities().monitor, monitor_input(monitor))
    await writer
    # Judged on 61 requests, 1 error is 1.6%, within 2%: the early 502 alone did not stop the window.
    assert not result.stopped_early
    assert (result.verdict.requests, result.verdict.summary.upstream_errors) == (61, 1)
    assert result.verdict.status == "healthy"
    counted = [details[0]["summary"] for details in recorder.heartbeats if isinstance(details[0], dict)]
    first = next(summary for summary in counted if summary["requests"])
    assert (first["requests"], first["upstream_errors"]) == (1, 1)


async def test_monitor_is_inconclusive_while_kong_still_sends_to_a(log: Path) -> None:
    monitor = file_monitor(log, window="800ms", poll_interval="200ms")
    recorder = Recorder()
    writer = asyncio.create_task(
        write_lines(log, 0.02, lambda: kong_line(tries=[(A_IP, None)]), 20, after=recorder.beating)
    )
    result = await recorder.run(MonitorActivities().monitor, monitor_input(monitor))
    await writer
    assert result.verdict.status == "inconclusive"
    assert result.verdict.reason.startswith("Kong still sends 100% of requests to A (addresses 10.10.0.1; 20 of 20)")
    assert result.verdict.share.a_requests == 20 and result.verdict.share.b_requests == 0


async def test_monitor_stops_early_on_a_decisive_unhealthy_verdict(log: Path) -> None:
    monitor = file_monitor(log, window="30s", poll_interval="200ms")
    recorder = Recorder()
    writer = asyncio.create_task(
        write_lines(log, 0.01, lambda: kong_line(status=502, tries=[(B_IP, 502)]), 6, after=recorder.beating)
    )
    started = time.monotonic()
    result = await recorder.run(MonitorActivities().monitor, monitor_input(monitor))
    await writer
    assert result.verdict.status == "unhealthy"
    assert result.stopped_early
    assert time.monotonic() - started < 5
    assert ("502", result.verdict.summary.upstream_statuses["502"]) in result.verdict.worst_statuses


async def test_monitor_without_traffic_is_inconclusive(log: Path) -> None:
    result = await Recorder().run(
        MonitorActivities().monitor, monitor_input(file_monitor(log, window="600ms", poll_interval="200ms"))
    )
    assert result.verdict.status == "inconclusive"
    assert result.verdict.reason == "no requests seen"
    assert not result.stopped_early


async def test_monitor_compares_with_the_baseline(log: Path) -> None:
    baseline = WindowSummary(source="kong-file-log", service=SERVICE, requests=100, upstream_errors=10)
    lines = [kong_line(status=503, tries=[(B_IP, None)])] + [kong_line() for _ in range(11)]
    recorder = Recorder()
    writer = asyncio.create_task(write_lines(log, 0.02, iter(lines).__next__, len(lines), after=recorder.beating))
    monitor = file_monitor(log, window="800ms", poll_interval="200ms")
    result = await recorder.run(MonitorActivities().monitor, monitor_input(monitor, baseline=baseline))
    await writer
    # 1 error in 12 requests is 8.3%: over max_error_ratio 5%, but within A's 10% + 5%.
    assert (result.verdict.requests, result.verdict.summary.upstream_errors) == (12, 1)
    assert result.verdict.status == "healthy"
    assert result.verdict.baseline_ratio == pytest.approx(0.1)
    assert result.verdict.threshold == pytest.approx(0.15)


async def test_monitor_resumes_from_the_last_heartbeat(log: Path) -> None:
    monitor = file_monitor(log, window="3s", poll_interval="200ms")
    # A previous attempt polled three times, counted 7 requests, then the worker crashed.
    reader = KongFileLog(KongFileLogSource(kind="kong-file-log", path=str(log)), SERVICE)
    cursor = await reader.open_cursor()
    started = ago(2.5)
    counted = WindowSummary(
        source=reader.description,
        service=SERVICE,
        window_start=started,
        window_end=ago(0.5),
        requests=7,
        status_classes={"2xx": 7},
        upstream_statuses={"200": 7},
        requests_per_ip={A_IP: 2, B_IP: 5},
    )
    checkpoint = {
        "source": reader.description,
        "cursor": cursor,
        "summary": counted.model_dump(mode="json"),
        "polls": 3,
        "started_at": started.isoformat(),
    }
    append(log, kong_line(), kong_line(), kong_line())  # written while no worker was watching
    recorder = Recorder()
    recorder.resume_from(json.loads(json.dumps(checkpoint)))

    began = time.monotonic()
    result = await recorder.run(MonitorActivities().monitor, monitor_input(monitor))
    elapsed = time.monotonic() - began

    assert elapsed < 1.5  # only what was left of the 3 s window
    assert result.polls >= 4
    assert result.verdict.requests == 10
    assert result.verdict.summary.requests_per_ip == {A_IP: 2, B_IP: 8}
    assert result.verdict.summary.window_start == started


async def test_monitor_ignores_a_checkpoint_of_another_source(log: Path, tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.resume_from({"source": "kong-file-log /elsewhere", "cursor": {}, "summary": {}, "polls": 9})
    result = await recorder.run(
        MonitorActivities().monitor, monitor_input(file_monitor(log, window="400ms", poll_interval="200ms"))
    )
    assert result.polls == 2 and result.verdict.requests == 0
    (note,) = result.verdict.summary.notes
    assert note.startswith("window restarted at ") and "its last heartbeat is not a checkpoint" in note


async def test_monitor_restarts_with_a_note_when_the_checkpoint_watched_another_file(log: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text("")
    reader = KongFileLog(KongFileLogSource(kind="kong-file-log", path=str(other)), SERVICE)
    counted = WindowSummary(source=reader.description, service=SERVICE, requests=40, status_classes={"2xx": 40})
    recorder = Recorder()
    recorder.resume_from(
        json.loads(
            json.dumps(
                {
                    "source": reader.description,
                    "cursor": await reader.open_cursor(),
                    "summary": counted.model_dump(mode="json"),
                    "polls": 4,
                    "started_at": ago(1).isoformat(),
                }
            )
        )
    )
    result = await recorder.run(
        MonitorActivities().monitor, monitor_input(file_monitor(log, window="400ms", poll_interval="200ms"))
    )
    assert result.verdict.requests == 0
    assert any(f"it watched kong-file-log {other}" in note for note in result.verdict.summary.notes)


async def test_monitor_starts_over_when_a_resumed_cursor_is_unusable(log: Path) -> None:
    reader = KongFileLog(KongFileLogSource(kind="kong-file-log", path=str(log)), SERVICE)
    counted = WindowSummary(source=reader.description, service=SERVICE, requests=5, status_classes={"2xx": 5})
    recorder = Recorder()
    recorder.resume_from(
        {
            "source": reader.description,
            "cursor": {"path": str(log), "polled_at": ago(1).isoformat(), "files": [{"generation": 2}]},
            "summary": counted.model_dump(mode="json"),
            "polls": 2,
            "started_at": ago(1).isoformat(),
        }
    )
    result = await recorder.run(
        MonitorActivities().monitor, monitor_input(file_monitor(log, window="400ms", poll_interval="200ms"))
    )
    assert result.verdict.requests == 0  # the old window's count went with its cursor
    assert result.polls == 2
    (note,) = result.verdict.summary.notes
    assert "its cursor is unusable" in note and "what it had counted is not in this window" in note


async def test_monitor_is_cancellable(log: Path) -> None:
    recorder = Recorder()
    task = asyncio.create_task(
        recorder.run(MonitorActivities(heartbeat_every=0.1).monitor, monitor_input(file_monitor(log, window="60s")))
    )
    await asyncio.sleep(0.5)
    cancelled_at = time.monotonic()
    recorder.env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - cancelled_at < 1
    assert recorder.heartbeats


async def test_provider_errors_leave_as_typed_application_errors(tmp_path: Path) -> None:
    with pytest.raises(ApplicationError) as raised:
        await Recorder().run(MonitorActivities().monitor, monitor_input(file_monitor(tmp_path / "missing.json")))
    assert raised.value.type == "TelemetryUnavailable"
    assert not raised.value.non_retryable
    assert "does not exist" in raised.value.message


# --- traffic_baseline --------------------------------------------------------------------------------


async def test_baseline_reads_the_past_window(log: Path) -> None:
    append(
        log,
        *(kong_line(at=ago(60 + i), tries=[(A_IP, None)]) for i in range(8)),
        kong_line(at=ago(30), status=502, tries=[(A_IP, 502)]),
        kong_line(at=ago(1200), status=502),  # before the window
    )
    monitor = file_monitor(log, window="10m")
    summary = await Recorder().run(
        MonitorActivities().baseline,
        BaselineInput(monitor=monitor, service=SERVICE, a_addresses=(A_IP,), b_addresses=(B_IP,)),
    )
    assert (summary.requests, summary.upstream_errors) == (9, 1)
    assert summary.requests_per_ip == {A_IP: 9}


async def test_baseline_heartbeats_while_it_scans_a_big_file(log: Path) -> None:
    # 40 000 lines (~40 MB): a scan that takes a while. The read runs in a thread; the keepalive
    # heartbeats the scan's progress meanwhile, so a multi-GB file can't trip the heartbeat timeout.
    line = kong_line(at=ago(60), tries=[(A_IP, None)])
    with open(log, "a", encoding="utf-8") as handle:
        for _ in range(40):
            handle.write(line * 1000)
    recorder = Recorder()
    summary = await recorder.run(
        MonitorActivities(heartbeat_every=0.02).baseline,
        BaselineInput(monitor=file_monitor(log, window="10m"), service=SERVICE, a_addresses=(A_IP,), b_addresses=()),
    )
    assert summary.requests == 40_000
    progress = [details[0] for details in recorder.heartbeats]
    assert progress[0].startswith("reading the last 10m of kong-file-log")
    assert any(f"lines of {log} (" in message and " MB)" in message for message in progress), progress[:3]


async def test_baseline_without_history_scrapes_twice(metrics: MetricsServer) -> None:
    metrics.body = exposition({("200", "service"): 100, ("503", "service"): 1})
    monitor = MonitorSection.model_validate(
        {"source": {"kind": "prometheus", "url": metrics.url}, "window": "10m", "poll_interval": "500ms"}
    )
    recorder = Recorder()
    task = asyncio.create_task(
        recorder.run(
            MonitorActivities(heartbeat_every=0.1).baseline,
            BaselineInput(monitor=monitor, service=SERVICE, a_addresses=(A_IP,), b_addresses=(B_IP,)),
        )
    )
    await asyncio.wait_for(metrics.first_scrape.wait(), 5)
    metrics.body = exposition({("200", "service"): 130, ("503", "service"): 3})
    summary = await task
    assert (summary.requests, summary.upstream_errors) == (32, 2)
    assert not summary.has_addresses
    assert any("keeps no history" in str(details[0]) for details in recorder.heartbeats)


# --- traffic_prove_drained ---------------------------------------------------------------------------


def listing_bounds(request: dict[str, Any]) -> tuple[datetime, datetime]:
    """The ``timestamp>=`` and ``timestamp<`` bounds of a Cloud Logging listing's filter."""
    lower = request["filter"].split('timestamp>="')[1].split('"')[0]
    upper = request["filter"].split('timestamp<"')[1].split('"')[0]
    return from_rfc3339(lower), from_rfc3339(upper)


def drain_input(monitor: MonitorSection, quiet: float, timeout: float) -> DrainInput:
    return DrainInput(
        monitor=monitor,
        service=SERVICE,
        a_addresses=(A_IP,),
        b_addresses=(B_IP,),
        quiet_period_seconds=quiet,
        timeout_seconds=timeout,
    )


async def test_drained_when_a_got_nothing_for_the_quiet_period(log: Path) -> None:
    append(log, kong_line(at=ago(20), tries=[(A_IP, None)]), kong_line(at=ago(5)), kong_line(at=ago(1)))
    proof = await Recorder().run(MonitorActivities().prove_drained, drain_input(file_monitor(log), 10, 5))
    assert proof.drained
    assert (proof.a_requests, proof.b_requests, proof.total_requests) == (0, 2, 2)
    assert proof.quiet_period_seconds == 10
    assert "A received no request in the last 10s" in proof.reason


async def test_drain_is_proven_once_a_ages_out(log: Path) -> None:
    append(log, kong_line(at=ago(0.2), tries=[(A_IP, None)]))
    writer = asyncio.create_task(write_lines(log, 0.1, kong_line, 25))
    recorder = Recorder()
    started = time.monotonic()
    proof = await recorder.run(
        MonitorActivities(heartbeat_every=0.1).prove_drained,
        drain_input(file_monitor(log, poll_interval="200ms"), 1, 10),
    )
    await stop(writer)
    assert proof.drained
    assert 0.7 < time.monotonic() - started < 5
    checks = [details[0]["checks"] for details in recorder.heartbeats]
    assert max(checks) >= 3


async def test_not_drained_within_the_timeout_returns_the_evidence(log: Path) -> None:
    writer = asyncio.create_task(write_lines(log, 0.05, lambda: kong_line(tries=[(A_IP, None)]), 30))
    await asyncio.sleep(0.1)
    proof = await Recorder().run(
        MonitorActivities().prove_drained, drain_input(file_monitor(log, poll_interval="200ms"), 5, 0.6)
    )
    await stop(writer)
    assert not proof.drained
    assert proof.reason.startswith("not proven within")
    assert "still received" in proof.reason
    assert proof.a_requests > 0
    assert proof.last_a_request_at is not None


async def test_silence_proves_nothing(log: Path) -> None:
    proof = await Recorder().run(
        MonitorActivities().prove_drained, drain_input(file_monitor(log, poll_interval="200ms"), 5, 0.3)
    )
    assert not proof.drained
    assert "silence proves nothing" in proof.reason


async def test_drain_resumes_the_timeout_from_its_heartbeat(log: Path) -> None:
    recorder = Recorder()
    recorder.resume_from({"started_at": ago(100).isoformat(), "checks": 40, "last_reason": "A still received"})
    started = time.monotonic()
    proof = await recorder.run(MonitorActivities().prove_drained, drain_input(file_monitor(log), 5, 60))
    assert not proof.drained and proof.reason.startswith("not proven within 1m")
    assert time.monotonic() - started < 1
    assert recorder.heartbeats[-1][0]["checks"] == 41


async def test_drain_reads_the_quiet_window_once_then_follows_the_file(log: Path) -> None:
    # A got a request just before; B's traffic goes on. One unreadable line sits in the quiet window.
    append(log, "not a request\n", kong_line(at=ago(0.2), tries=[(A_IP, None)]))
    writer = asyncio.create_task(write_lines(log, 0.05, kong_line, 60))
    recorder = Recorder()
    proof = await recorder.run(
        MonitorActivities(heartbeat_every=0.1).prove_drained,
        drain_input(file_monitor(log, poll_interval="150ms"), 1, 10),
    )
    await stop(writer)
    assert proof.drained
    # A's request was seen once, by the first read, and then aged out while the cursor followed.
    assert proof.a_requests == 1 and proof.last_a_request_at is not None
    assert proof.window_start is not None and proof.window_end is not None
    assert proof.window_end - proof.last_a_request_at >= timedelta(seconds=1)
    last = recorder.heartbeats[-1][0]
    assert last["checks"] >= 4
    # Had each check scanned the file again, the unreadable line would be counted at every check.
    assert last["summary"]["parse_failures"] == 1
    assert last["cursor"]["files"][-1]["offset"] <= file_size(log)
    progress = [details[0]["progress"] for details in recorder.heartbeats if details[0]["progress"]]
    assert progress[0].startswith("reading the last 1s of kong-file-log")


async def test_drain_resumes_its_cursor_and_what_it_saw(log: Path) -> None:
    reader = KongFileLog(KongFileLogSource(kind="kong-file-log", path=str(log)), SERVICE)
    summary, cursor = await reader.read_latest(timedelta(seconds=1))
    # The previous attempt had seen A serve a request 0.4 s ago (its line is not in the file: only a
    # resumed attempt can know about it).
    a_seen = ago(0.4)
    seen = summary.model_copy(update={"requests": 1, "requests_per_ip": {A_IP: 1}, "last_seen_per_ip": {A_IP: a_seen}})
    recorder = Recorder()
    recorder.resume_from(
        json.loads(
            json.dumps(
                {
                    "started_at": ago(1).isoformat(),
                    "checks": 3,
                    "source": reader.description,
                    "cursor": cursor,
                    "summary": seen.model_dump(mode="json"),
                }
            )
        )
    )
    writer = asyncio.create_task(write_lines(log, 0.05, kong_line, 60))
    proof = await recorder.run(
        MonitorActivities(heartbeat_every=0.1).prove_drained,
        drain_input(file_monitor(log, poll_interval="150ms"), 1, 10),
    )
    await stop(writer)
    assert proof.drained
    assert proof.last_a_request_at == a_seen and proof.a_requests == 1
    assert recorder.heartbeats[-1][0]["checks"] > 4


async def test_cloud_logging_drain_never_vouches_for_what_may_not_be_indexed_yet() -> None:
    allowance = timedelta(seconds=1)
    async with CloudLoggingFake(LOGGING_PROJECT) as fake:
        fake.add_json(kong_record(at=ago(1.5), tries=[(A_IP, None)]), timestamp=ago(1.5))
        fake.add_json(kong_record(at=ago(1.3)), timestamp=ago(1.3))
        a_late = ago(0.3)  # A served this one 0.3 s ago; Cloud Logging lists it only later

        async def traffic() -> None:
            await asyncio.sleep(0.2)
            fake.add_json(kong_record(at=a_late, tries=[(A_IP, None)]), timestamp=a_late)
            while True:
                now = utc_now()
                fake.add_json(kong_record(at=now), timestamp=now)
                await asyncio.sleep(0.1)

        monitor = MonitorSection.model_validate(
            {
                "source": {"kind": "cloud-logging", "project": LOGGING_PROJECT, "api_endpoint": fake.endpoint},
                "poll_interval": "150ms",
            }
        )
        activities = MonitorActivities(
            logging_client_factory=lambda _: fake.client(), heartbeat_every=0.1, logging_ingestion_allowance=allowance
        )
        recorder = Recorder()
        writer = asyncio.create_task(traffic())
        proof = await recorder.run(activities.prove_drained, drain_input(monitor, 1, 5))
        returned = utc_now()
        await stop(writer)

    assert proof.drained
    # Without the allowance the first check (A's last request 1.5 s ago, quiet period 1 s) would pass.
    assert recorder.heartbeats[-1][0]["checks"] >= 2
    assert proof.window_end is not None and proof.window_end <= returned - allowance
    # The proof never covers the time of A's late-listed request: either it ends before it, or it saw it.
    assert proof.window_end <= a_late or proof.last_a_request_at == a_late
    # The quiet window was listed once; every later listing starts where the previous read stopped.
    first_lower, first_upper = listing_bounds(fake.requests[0])
    assert first_upper - first_lower == timedelta(seconds=1)
    assert all(listing_bounds(request)[0] > first_lower for request in fake.requests[1:])


async def test_drain_reads_the_window_again_when_the_resumed_cursor_is_unusable(log: Path) -> None:
    append(log, kong_line(at=ago(2)), kong_line(at=ago(1)))
    reader = KongFileLog(KongFileLogSource(kind="kong-file-log", path=str(log)), SERVICE)
    recorder = Recorder()
    recorder.resume_from(
        {
            "started_at": ago(2).isoformat(),
            "checks": 5,
            "source": reader.description,
            "cursor": {"path": str(log), "polled_at": ago(1).isoformat(), "files": [{"generation": 2}]},
            "summary": WindowSummary(source=reader.description, service=SERVICE).model_dump(mode="json"),
        }
    )
    proof = await recorder.run(MonitorActivities().prove_drained, drain_input(file_monitor(log), 5, 60))
    assert proof.drained and proof.b_requests == 2  # read again from the file
    assert recorder.heartbeats[-1][0]["checks"] == 6


async def test_prometheus_cannot_prove_a_drain(metrics: MetricsServer) -> None:
    monitor = MonitorSection.model_validate({"source": {"kind": "prometheus", "url": metrics.url}})
    proof = await Recorder().run(MonitorActivities().prove_drained, drain_input(monitor, 600, 3600))
    assert not proof.drained
    assert "does not record which upstream address" in proof.reason


# --- traffic_report (starter.py traffic PLAN --since 10m): providers/telemetry/report.py ---------------


async def test_traffic_report_is_json(log: Path, make_plan: Callable[..., CutoverPlan]) -> None:
    append(log, *(kong_line(at=ago(30)) for _ in range(60)), kong_line(at=ago(20), tries=[(A_IP, None)]))
    plan = make_plan(monitor={"source": {"kind": "kong-file-log", "path": str(log)}})
    report = await traffic_report(plan, timedelta(minutes=10), a_addresses=[A_IP], b_addresses=[B_IP])
    assert json.loads(json.dumps(report)) == report
    assert set(report) == {"source", "service", "summary", "verdict", "share"}
    assert report["service"] == "orders-api"
    assert report["summary"]["requests"] == 61
    # One request in 61 still reached A: Kong's DNS cache hasn't drained, B's health can't be told yet.
    assert report["verdict"]["status"] == "inconclusive"
    assert "Kong still sends 2% of requests to A (addresses 10.10.0.1; 1 of 61)" in report["verdict"]["reason"]
    assert report["share"]["description"] == "Kong sends 98% to B, 2% to A (61 requests)"


async def test_traffic_report_from_prometheus(metrics: MetricsServer, make_plan: Callable[..., CutoverPlan]) -> None:
    metrics.body = exposition({("200", "service"): 10})
    plan = make_plan(monitor={"source": {"kind": "prometheus", "url": metrics.url}, "poll_interval": "300ms"})
    task = asyncio.create_task(traffic_report(plan, timedelta(minutes=10)))
    await asyncio.wait_for(metrics.first_scrape.wait(), 5)
    metrics.body = exposition({("200", "service"): 15})
    report = await task
    assert report["summary"]["requests"] == 5
    assert report["verdict"]["status"] == "inconclusive"
    assert report["share"]["known"] is False


def test_traffic_report_needs_no_temporal_activity_module() -> None:
    # starter.py must not import an activity module: the report lives in providers/ (no Temporal at all).
    probe = "import sys, providers.telemetry.report; print(sorted(m for m in sys.modules if 'temporalio' in m))"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"
    # Re-exported until starter.py imports it from providers.telemetry.report.
    assert activities.monitor.traffic_report is traffic_report


def test_worker_registration_lists_the_activity_names() -> None:
    names = [method.__temporal_activity_definition.name for method in MonitorActivities().activities()]  # type: ignore[attr-defined]
    assert names == ["traffic_baseline", "traffic_monitor", "traffic_prove_drained"]
