"""The traffic_prove_drained activity in ActivityEnvironment, over a file-log, Cloud Logging fake and /metrics."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

from activities.monitor import MonitorActivities
from models.plan import KongFileLogSource, MonitorSection
from models.telemetry import WindowSummary
from providers.telemetry.base import utc_now
from providers.telemetry.file_log import KongFileLog
from tests.fakes.cloud_logging import CloudLoggingFake
from tests.telemetry.activity_env import (
    LOGGING_PROJECT,
    Recorder,
    append,
    drain_input,
    file_monitor,
    file_size,
    listing_bounds,
    stop,
    write_lines,
)
from tests.telemetry.kong_lines import A_IP, SERVICE, ago, kong_line, kong_record
from tests.telemetry.metrics_server import MetricsServer


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
