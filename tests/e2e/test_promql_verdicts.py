"""Cutovers monitored through a real Prometheus reach the verdicts the file-log source reaches on the same traffic.

Prometheus (Debian's package, started here on loopback) scrapes the Kong emulator's ``/metrics``
every 250 ms; the plan's monitor reads it through the ``promql`` source, 600 ms behind now. After
each run the file-log source is read over exactly the window the promql verdict judged and judged
with the same rule and A's/B's addresses: the two verdicts must agree, on a healthy run (completed)
and on a run whose B fails after the flip (rolled back). ``starter.py traffic`` works with the plan.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import yaml

from models.plan import CutoverPlan, KongFileLogSource
from models.telemetry import Verdict, evaluate
from providers.telemetry.file_log import KongFileLog
from sandbox.prometheus import PrometheusServer, prometheus_server
from sandbox.topology import REPO_ROOT, RUNTIME_ADDRESSES, TSIG_ENV, Topology
from tests.e2e.lanes import Lane, plan_keeping_a
from tests.e2e.runs import start_run
from tests.e2e.traffic import load_generator


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def prometheus(
    shared_topology: Topology, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PrometheusServer]:
    """Prometheus scraping the shared topology's Kong (Admin API ``/metrics``), ready with two scrapes."""
    target = shared_topology.kong_admin_url.removeprefix("http://")
    with prometheus_server([target], scrape_interval="250ms", directory=tmp_path_factory.mktemp("prom")) as prom:
        await asyncio.to_thread(prom.wait_scraped)
        yield prom


def promql_plan(topo: Topology, lane: Lane, prometheus: PrometheusServer) -> CutoverPlan:
    """The lane's plan (A kept), monitored through Prometheus instead of Kong's file-log."""
    data = plan_keeping_a(topo, lane).model_dump(mode="json")
    data["monitor"]["source"] = {"kind": "promql", "url": prometheus.url, "lag": "600ms"}
    return CutoverPlan.model_validate(data)


async def file_log_verdict(topo: Topology, plan: CutoverPlan, promql: Verdict) -> Verdict:
    """What the file-log source concludes over the window the promql verdict judged."""
    start, end = promql.summary.window_start, promql.summary.window_end
    assert start is not None and end is not None
    source = KongFileLogSource(kind="kong-file-log", path=str(topo.file_log))
    async with KongFileLog(source, plan.monitor_service) as file_log:
        summary = await file_log.read_window(start, end)
    return evaluate(
        summary,
        plan.monitor,
        a_addresses=[RUNTIME_ADDRESSES["A"]],
        b_addresses=[RUNTIME_ADDRESSES["B"]],
        baseline=None,
    )


def same_counts(promql: Verdict, file_log: Verdict) -> str:
    return (
        f"promql: {promql.status} {promql.reason} {promql.summary.upstream_statuses}; "
        f"file-log: {file_log.status} {file_log.reason} {file_log.summary.upstream_statuses}"
    )


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_a_healthy_run_judged_through_prometheus_agrees_with_the_file_log(
    topo: Topology, lane: Lane, prometheus: PrometheusServer, tmp_path: Any
) -> None:
    plan = promql_plan(topo, lane, prometheus)
    async with load_generator(topo, lane) as load:
        await asyncio.sleep(1.5)  # history for the baseline
        run = await start_run(topo, plan)
        await run.approve("flip")
        outcome = await run.outcome()
        assert load.summary().failed == 0
    status = outcome.status
    assert outcome.failure_type is None and status.phase == "completed", run.describe(status)
    promql = status.last_verdict
    assert promql is not None and promql.summary.source.startswith(f"promql {prometheus.url}"), run.describe(status)
    file_log = await file_log_verdict(topo, plan, promql)
    assert promql.status == file_log.status == "healthy", same_counts(promql, file_log)
    assert promql.summary.upstream_errors == file_log.summary.upstream_errors == 0
    # Prometheus's increase() extrapolates to the window's edges: never fewer, at most ~one scrape more.
    assert file_log.requests * 0.8 <= promql.requests <= file_log.requests * 1.5 + 5, same_counts(promql, file_log)

    # `starter.py traffic` with the same plan: the summary and verdict from Prometheus, as JSON.
    path = tmp_path / "promql-plan.yaml"
    path.write_text(yaml.safe_dump(plan.model_dump(mode="json"), sort_keys=False))
    env_tsig = {TSIG_ENV: topo.tsig_secret}
    result = await run_cli_with(topo, env_tsig, "starter.py", "traffic", str(path), "--since", "5s")
    assert result[0] == 0, result[1]
    report = json.loads(result[1][result[1].index("{") :])
    assert report["source"].startswith(f'promql {prometheus.url} kong_http_requests_total{{service="{lane.service}"')
    assert report["summary"]["requests"] > 0 and report["verdict"]["status"] in ("healthy", "inconclusive")


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_b_failing_judged_through_prometheus_agrees_with_the_file_log(
    topo: Topology, lane: Lane, prometheus: PrometheusServer
) -> None:
    plan = promql_plan(topo, lane, prometheus)
    async with load_generator(topo, lane):
        await asyncio.sleep(1.5)
        run = await start_run(topo, plan)
        await run.approve("flip")
        await run.until_phase("draining")
        await topo.runtime_control("B", "fail", {"status": 503})
        outcome = await run.outcome()
    status = outcome.status
    assert outcome.failure_type == "CutoverRolledBack" and status.phase == "rolled-back", run.describe(status)
    promql = status.last_verdict
    assert promql is not None and promql.summary.source.startswith("promql "), run.describe(status)
    file_log = await file_log_verdict(topo, plan, promql)
    assert promql.status == file_log.status == "unhealthy", same_counts(promql, file_log)
    assert dict(promql.worst_statuses).get("503", 0) > 0 and dict(file_log.worst_statuses).get("503", 0) > 0
    assert {c.id: c.state for c in status.compensations} == {"restore-record": "done", "restore-ttl": "done"}


async def run_cli_with(topo: Topology, extra_env: dict[str, str], *argv: str) -> tuple[int, str]:
    """``python <argv>`` with the CLI environment plus ``extra_env`` (the TSIG secret ``traffic`` reads DNS with)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        cwd=REPO_ROOT,
        env={**topo.cli_env(), **extra_env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode(errors="replace")
