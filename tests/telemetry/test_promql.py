"""The promql source against a real Prometheus server scraping two "data planes" every 500 ms.

Two loopback ``/metrics`` endpoints stand for two Kong data planes; Prometheus (Debian's package,
started by the test with a temporary config and data directory) scrapes both. Each test uses its own
service name, so the series of one test never count in another.

Counts from ``increase`` are estimates: Prometheus extrapolates each series from its first and last
sample to the window's edges, up to about one scrape interval (x1.1) at each end. The windows here
are only 8-12 scrape intervals long, so absolute counts may read up to ~40% high (production windows
of 10 min at 30 s scrapes: a few percent). Ratios between statuses of the same scrapes are not moved
by it, so they, the keys and the verdicts are compared tightly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from pydantic import ValidationError

from models.plan import CutoverPlan, MonitorSection, PromqlSource
from models.telemetry import evaluate
from providers.errors import TelemetryAuthError, TelemetryError, TelemetryUnavailable
from providers.secrets import EnvSecrets
from providers.telemetry.base import InvalidCursor, utc_now
from providers.telemetry.factory import build_telemetry_source
from providers.telemetry.promql import PromqlTelemetry, promql_string
from sandbox.prometheus import PrometheusServer, prometheus_server
from tests.conftest import base_plan_data
from tests.dns.google_keys import TokenEndpoint, service_account_info, write_key
from tests.fakes.managed_prometheus import ManagedPrometheusFake
from tests.telemetry.metrics_server import MetricsServer, exposition

SCRAPE = 0.5
_services = (f"svc-{n}" for n in itertools.count(1))


class DataPlanes:
    """Two metrics endpoints scraped by one Prometheus."""

    def __init__(self, servers: list[MetricsServer], prometheus: PrometheusServer) -> None:
        self.servers = servers
        self.prometheus = prometheus

    def set(self, service: str, *counts: dict[tuple[str, str], float]) -> None:
        for server, values in zip(self.servers, counts, strict=True):
            server.body = exposition(values, service=service)

    async def settle(self, service: str, scrapes: int = 4) -> None:
        """Wait until Prometheus holds ``scrapes`` more samples of the service's series (every data plane)."""
        query = f"count_over_time(kong_http_requests_total{{service={promql_string(service)}}}[1h])"

        def counted() -> float:
            with contextlib.suppress(OSError, KeyError, ValueError):
                return sum(float(s["value"][1]) for s in self.prometheus.query(query))
            return 0.0

        start = await asyncio.to_thread(counted)
        series = max(1, len(await asyncio.to_thread(self.prometheus.query, query)))
        for _ in range(100):
            await asyncio.sleep(SCRAPE / 2)
            if await asyncio.to_thread(counted) >= start + scrapes * series:
                return
        raise AssertionError(f"Prometheus did not scrape {service}: {self.prometheus.log()[-1500:]}")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def planes(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DataPlanes]:
    servers = [MetricsServer(), MetricsServer()]
    for server in servers:
        await server.start()
    targets = [server.url.removeprefix("http://").removesuffix("/metrics") for server in servers]
    try:
        with prometheus_server(targets, scrape_interval="500ms", directory=tmp_path_factory.mktemp("prom")) as prom:
            await asyncio.to_thread(prom.wait_scraped)
            yield DataPlanes(servers, prom)
    finally:
        for server in servers:
            await server.stop()


def source(url: str, service: str, **fields: Any) -> PromqlTelemetry:
    config = PromqlSource.model_validate({"kind": "promql", "url": url, "lag": "1s", **fields})
    return PromqlTelemetry(config, service)


def close_to(value: int, expected: int, *, low: float = 0.1, high: float = 0.4) -> bool:
    """``value`` within ``expected`` -10% .. +40%: extrapolation only ever adds (see the module docstring)."""
    return expected * (1 - low) <= value <= expected * (1 + high) + 1


async def test_a_past_window_sums_every_data_plane_per_status_and_survives_a_restart(planes: DataPlanes) -> None:
    service = next(_services)
    planes.set(
        service,
        {("200", "service"): 1000, ("503", "service"): 2, ("502", "kong"): 0},
        {("200", "service"): 500, ("503", "service"): 10, ("502", "kong"): 0},
    )
    await planes.settle(service)
    start = utc_now()
    planes.set(
        service,
        {("200", "service"): 40, ("503", "service"): 0, ("502", "kong"): 0},  # restarted: counters from zero
        {("200", "service"): 560, ("503", "service"): 30, ("502", "kong"): 4},
    )
    await planes.settle(service, scrapes=8)
    async with source(planes.prometheus.url, service) as promql:
        summary = await promql.read_window(start - timedelta(seconds=1), utc_now())

    # 200s: 40 after the restart + 60 on the second data plane; 503s: 20 from B; Kong's own 502s: 4.
    assert set(summary.upstream_statuses) == {"", "200", "503"}
    assert close_to(summary.upstream_statuses["200"], 100)
    assert close_to(summary.upstream_statuses["503"], 20) and close_to(summary.upstream_statuses[""], 4)
    assert 0.18 <= summary.upstream_statuses["503"] / summary.upstream_statuses["200"] <= 0.22
    assert summary.upstream_errors == summary.upstream_statuses["503"] + summary.upstream_statuses[""]
    assert summary.status_classes["2xx"] == summary.upstream_statuses["200"]
    assert not summary.has_addresses and summary.requests_per_ip == {}
    assert "2 data plane(s) reported the service's counters, summed" in summary.notes
    assert summary.source == f'promql {planes.prometheus.url} kong_http_requests_total{{service="{service}"}}'
    # The window ends a lag before now: nothing newer than Prometheus can vouch for is claimed.
    assert summary.window_end is not None and summary.window_end <= utc_now() - timedelta(seconds=1)


async def test_polls_report_what_the_increase_since_the_origin_adds(planes: DataPlanes) -> None:
    service = next(_services)
    planes.set(service, {("200", "service"): 100}, {("200", "service"): 100, ("503", "service"): 1})
    await planes.settle(service)
    async with source(planes.prometheus.url, service) as promql:
        cursor = await promql.open_cursor()
        await asyncio.sleep(1.2)  # the cursor's origin is a lag (1 s) before its opening
        planes.set(service, {("200", "service"): 180}, {("200", "service"): 140, ("503", "service"): 41})
        await planes.settle(service, scrapes=6)
        await asyncio.sleep(1.0)
        first, cursor = await promql.poll(cursor)
        await planes.settle(service, scrapes=4)
        second, cursor = await promql.poll(cursor)
        promql.check_cursor(cursor)

    assert close_to(first.upstream_statuses.get("200", 0), 120) and close_to(first.upstream_statuses["503"], 40)
    seen = first.requests + second.requests
    assert close_to(seen, 160), (first, second)
    assert second.requests <= 0.15 * seen  # counters stood still: only what extrapolation held back
    assert first.window_end == second.window_start
    with pytest.raises(InvalidCursor):
        promql.check_cursor({"origin": "2024-05-01T12:00:00Z", "read_to": "2024-05-01T11:00:00Z", "reported": {}})
    with pytest.raises(InvalidCursor):
        promql.check_cursor({"origin": "x", "read_to": "x", "reported": {"200|consumer": 1}})


async def test_the_verdict_from_promql_matches_the_counts(planes: DataPlanes) -> None:
    service = next(_services)
    planes.set(service, {("200", "service"): 0}, {("200", "service"): 0, ("503", "service"): 0})
    await planes.settle(service)
    start = utc_now()
    planes.set(service, {("200", "service"): 300}, {("200", "service"): 300, ("503", "service"): 60})
    await planes.settle(service, scrapes=8)
    monitor = MonitorSection.model_validate(
        {"source": {"kind": "promql", "url": planes.prometheus.url, "lag": "1s"}, "min_requests": 50}
    )
    async with build_telemetry_source(monitor, service) as promql:
        assert isinstance(promql, PromqlTelemetry)
        summary = await promql.read_window(start - timedelta(seconds=1), utc_now())
    verdict = evaluate(summary, monitor, a_addresses=["10.0.0.1"], b_addresses=["10.0.0.2"])
    assert verdict.status == "unhealthy" and verdict.error_ratio is not None
    assert 0.08 < verdict.error_ratio < 0.105  # 60 of 660: 9.1%
    assert "traffic share couldn't be checked" not in verdict.reason


async def test_a_query_prometheus_rejects_is_not_retried_and_other_failures_are(
    planes: DataPlanes, tmp_path: Path
) -> None:
    async with source(planes.prometheus.url, "svc", selector='instance=~"("') as bad:
        with pytest.raises(TelemetryError, match=r"rejected the query .*400 bad_data") as refused:
            await bad.read_window(utc_now() - timedelta(seconds=30), utc_now())
    assert not refused.value.retryable

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>login</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", html)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with source(f"http://127.0.0.1:{runner.addresses[0][1]}/prom", "svc") as portal:
            with pytest.raises(TelemetryUnavailable, match="not the JSON of a Prometheus HTTP API"):
                await portal.open_cursor()
    finally:
        await runner.cleanup()
    dead = planes.servers[0].url.rsplit(":", 1)[0] + ":1"
    async with source(dead, "svc") as unreachable:
        with pytest.raises(TelemetryUnavailable, match=r"unreachable .*ConnectError") as down:
            await unreachable.open_cursor()
    assert down.value.retryable


async def test_google_managed_prometheus_through_google_credentials(planes: DataPlanes, tmp_path: Path) -> None:
    service = next(_services)
    planes.set(service, {("200", "service"): 10}, {("200", "service"): 10})
    await planes.settle(service)
    start = utc_now()
    planes.set(service, {("200", "service"): 60}, {("200", "service"): 60})
    await planes.settle(service, scrapes=8)
    async with TokenEndpoint() as tokens, ManagedPrometheusFake(planes.prometheus.url) as gmp:
        key = write_key(tmp_path, service_account_info(tokens.url))
        secrets = EnvSecrets({"GMP_KEY": str(key)})
        config = PromqlSource.model_validate(
            {"kind": "promql", "url": gmp.base_url, "auth": "google", "credentials_env": "GMP_KEY", "lag": "1s"}
        )
        async with PromqlTelemetry(config, service, secrets=secrets) as managed:
            summary = await managed.read_window(start - timedelta(seconds=1), utc_now())
        assert close_to(summary.upstream_statuses["200"], 100)
        assert tokens.grants == 1 and set(gmp.authorizations) == {"Bearer token-1"}
        assert set(gmp.calls) == {
            "monitoring.projects.location.prometheus.api.v1.query",
            "monitoring.projects.location.prometheus.api.v1.query_range",
        }
        anonymous = PromqlSource.model_validate({"kind": "promql", "url": gmp.base_url, "lag": "1s"})
        async with PromqlTelemetry(anonymous, service) as refused:
            with pytest.raises(TelemetryAuthError, match="401"):
                await refused.open_cursor()

    async with TokenEndpoint(lambda n: (400, {"error": "invalid_grant"})) as tokens:
        key = write_key(tmp_path, service_account_info(tokens.url))
        async with PromqlTelemetry(config, service, secrets=EnvSecrets({"GMP_KEY": str(key)})) as rejected:
            with pytest.raises(TelemetryAuthError, match=r"RefreshError \(invalid_grant\)"):
                await rejected.open_cursor()


def promql_plan(**source: Any) -> dict[str, Any]:
    data = base_plan_data()
    data["monitor"] = {"source": {"kind": "promql", **source}}
    return data


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [
        ({"url": "http://prom.example:9090", "auth": "google"}, "url", "only over https"),
        ({"url": "http://prom.example:9090", "auth": "bearer", "token_env": "T"}, "url", "only over https"),
        ({"url": "https://prom.example", "auth": "bearer"}, "token_env", "needs token_env"),
        ({"url": "https://prom.example", "token_env": "T"}, "token_env", "only used with auth: bearer"),
        ({"url": "https://prom.example", "credentials_env": "K"}, "credentials_env", "only used with auth: google"),
        ({"url": "https://user@prom.example"}, "url", "user information"),
        ({"url": "https://prom.example/api/v1/query"}, "url", "names an API path"),
        ({"url": "https://prom.example/?q=1"}, "url", "no query or fragment"),
        ({"url": "https://prom.example", "selector": 'job="kong"} or up{'}, "selector", "not a list of PromQL"),
        ({"url": "https://prom.example", "selector": "job=kong"}, "selector", "not a list of PromQL"),
    ],
)
def test_plan_rules_for_the_promql_source(fields: dict[str, Any], where: str, message: str) -> None:
    with pytest.raises(ValidationError) as problems:
        CutoverPlan.model_validate(promql_plan(**fields))
    found = [(e["loc"], e["msg"]) for e in problems.value.errors()]
    assert any(loc[-1] == where and message in msg for loc, msg in found), found


def test_loopback_http_may_carry_a_credential_and_matchers_are_kept() -> None:
    plan = CutoverPlan.model_validate(
        promql_plan(url="http://127.0.0.1:9090/", auth="google", selector='namespace="kong", job=~"kong-.*"')
    )
    assert isinstance(plan.monitor.source, PromqlSource)
    assert plan.monitor.source.url == "http://127.0.0.1:9090"
    promql = PromqlTelemetry(plan.monitor.source, 'we"ird\\svc')
    assert promql.selector == ('kong_http_requests_total{service="we\\"ird\\\\svc", namespace="kong", job=~"kong-.*"}')
