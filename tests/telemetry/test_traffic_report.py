"""The traffic report (``starter.py traffic``) and the activities' registration."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import activities.monitor
from activities.monitor import MonitorActivities
from models.plan import CutoverPlan
from providers.telemetry.report import traffic_report
from tests.telemetry.activity_env import (
    append,
)
from tests.telemetry.kong_lines import A_IP, B_IP, ago, kong_line
from tests.telemetry.metrics_server import MetricsServer, exposition


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
