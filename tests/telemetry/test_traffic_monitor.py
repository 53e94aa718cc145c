"""The traffic_monitor activity in Temporal's ActivityEnvironment, over a real file-log."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.monitor import MonitorActivities
from models.plan import KongFileLogSource
from models.telemetry import WindowSummary
from providers.telemetry.file_log import KongFileLog
from tests.telemetry.activity_env import (
    Recorder,
    append,
    file_monitor,
    file_size,
    monitor_input,
    write_lines,
)
from tests.telemetry.kong_lines import A_IP, B_IP, SERVICE, ago, kong_line


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
