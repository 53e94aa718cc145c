"""The traffic_baseline activity in Temporal's ActivityEnvironment, over a real file-log and a real /metrics server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from activities.monitor import MonitorActivities
from models.plan import MonitorSection
from models.telemetry import BaselineInput
from tests.telemetry.activity_env import (
    Recorder,
    append,
    file_monitor,
)
from tests.telemetry.kong_lines import A_IP, B_IP, SERVICE, ago, kong_line
from tests.telemetry.metrics_server import MetricsServer, exposition


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
