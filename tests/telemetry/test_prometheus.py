"""The Prometheus source against a real HTTP server serving Kong's exposition text."""

from __future__ import annotations

import json
import math
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from models.plan import PrometheusSource
from providers.errors import ConfigError, TelemetryAuthError, TelemetryUnavailable
from providers.telemetry.base import InvalidCursor
from providers.telemetry.prometheus import ExpositionError, KongPrometheus, parse_exposition, parse_sample
from tests.telemetry.kong_lines import SERVICE
from tests.telemetry.metrics_server import HEADER, MetricsServer, exposition


@pytest.fixture
async def source(metrics: MetricsServer) -> AsyncIterator[KongPrometheus]:
    prometheus = KongPrometheus(PrometheusSource(kind="prometheus", url=metrics.url), SERVICE)
    yield prometheus
    await prometheus.aclose()


def test_parser_reads_labels_escapes_special_values_and_timestamps() -> None:
    sample = parse_sample('m{a="x\\"y",b="back\\\\slash",c="line\\nbreak",} +Inf 1700000000000')
    assert sample.labels == {"a": 'x"y', "b": "back\\slash", "c": "line\nbreak"}
    assert sample.value == math.inf
    assert math.isnan(parse_sample("m NaN").value)
    assert parse_sample("m -Inf").value == -math.inf
    assert parse_sample('m{ a = "1" } 2.5e3').value == 2500.0
    assert parse_sample("m_total 7").labels == {}
    assert parse_sample('m{path="{curly},comma"} 1').labels == {"path": "{curly},comma"}

    for bad in ('m{a="1"', "m{a=1} 2", 'm{a="1"} two', "9m 1", "m", 'm{a="1",b} 3'):
        with pytest.raises(ExpositionError):
            parse_sample(bad)
    # prometheus_client's reading of two edge cases the hand-written parser refused: an unknown escape is
    # kept as it is (Prometheus's own lexer, promlex.l, accepts any "\\." too), and a value glued to "}"
    # is read (promlex.l wants a blank there; Kong's exporter always writes one).
    assert parse_sample('m{a="1"}2').value == 2
    assert parse_sample('m{a="\\q"} 1').labels == {"a": "\\q"}

    parsed = list(parse_exposition("# HELP m help\n# TYPE m counter\n\nm 1\nbroken{ 2\n# EOF\n"))
    assert [type(item).__name__ for item in parsed] == ["Sample", "ExpositionError"]


async def test_two_scrapes_are_diffed_per_status_and_service(metrics: MetricsServer, source: KongPrometheus) -> None:
    metrics.body = exposition({("200", "service"): 1000, ("503", "service"): 4, ("502", "kong"): 1})
    cursor = await source.open_cursor()
    metrics.body = exposition(
        {
            ("200", "service"): 1090,
            ("503", "service"): 9,  # B answered 5 more 503s
            ("502", "kong"): 3,  # Kong reached no upstream twice
            ("500", "kong"): 4,  # a plugin failed: Kong's own error, not the upstream's
            ("404", "service"): 2,  # new series since the first scrape
        }
    )
    delta, cursor = await source.poll(cursor)

    assert delta.requests == 90 + 5 + 2 + 4 + 2
    assert delta.status_classes == {"2xx": 90, "4xx": 2, "5xx": 11}
    assert delta.upstream_statuses == {"": 6, "200": 90, "404": 2, "503": 5}
    assert delta.upstream_errors == 5 + 2
    assert not delta.has_addresses and delta.requests_per_ip == {}
    assert delta.window_start is not None and delta.window_end is not None
    assert any("no upstream address" in note for note in delta.notes)

    unchanged, _ = await source.poll(cursor)
    assert unchanged.requests == 0


async def test_counter_reset_counts_the_current_value(metrics: MetricsServer, source: KongPrometheus) -> None:
    metrics.body = exposition({("200", "service"): 5000, ("502", "service"): 10})
    cursor = await source.open_cursor()
    metrics.body = exposition({("200", "service"): 40, ("502", "service"): 12})  # Kong restarted
    delta, _ = await source.poll(cursor)
    assert delta.requests == 40 + 2
    assert delta.upstream_errors == 2
    assert any("went down" in note for note in delta.notes)


async def test_malformed_and_non_finite_lines_are_counted(metrics: MetricsServer, source: KongPrometheus) -> None:
    metrics.body = exposition({("200", "service"): 1})
    cursor = await source.open_cursor()
    metrics.body = exposition(
        {("200", "service"): 3, ("503", "service"): math.nan},
        extra='kong_http_requests_total{service="orders-api" 7\n',
    )
    delta, _ = await source.poll(cursor)
    assert delta.requests == 2
    assert delta.parse_failures == 2
    assert any("malformed" in note for note in delta.notes)
    assert any("non-finite" in note for note in delta.notes)


@pytest.mark.parametrize(
    ("status", "error"), [(401, TelemetryAuthError), (403, TelemetryAuthError), (500, TelemetryUnavailable)]
)
async def test_http_errors(metrics: MetricsServer, source: KongPrometheus, status: int, error: type[Exception]) -> None:
    metrics.status = status
    with pytest.raises(error, match=str(status)):
        await source.open_cursor()


async def test_unreachable_endpoint() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prometheus = KongPrometheus(PrometheusSource(kind="prometheus", url=f"http://127.0.0.1:{port}/metrics"), SERVICE)
    try:
        with pytest.raises(TelemetryUnavailable, match="cannot scrape"):
            await prometheus.open_cursor()
    finally:
        await prometheus.aclose()


def per_consumer(consumers: int, ok: int, failed: int, *, extra_consumer: int = 0) -> str:
    """The service's counters split per consumer and route, as Kong exposes them with many consumers."""
    lines = [HEADER.rstrip("\n")]
    for index in range(consumers + extra_consumer):
        for route in ("orders", "orders-admin"):
            labels = f'service="{SERVICE}",route="{route}",workspace="default",consumer="consumer-{index:04d}"'
            lines.append(f'kong_http_requests_total{{{labels},code="200",source="service"}} {ok}')
            lines.append(f'kong_http_requests_total{{{labels},code="503",source="service"}} {failed}')
            lines.append(f'kong_http_requests_total{{{labels},code="502",source="kong"}} {failed}')
    return "\n".join(lines) + "\n"


async def test_the_cursor_keeps_sums_per_status_not_every_consumer_series(
    metrics: MetricsServer, source: KongPrometheus
) -> None:
    metrics.body = per_consumer(1000, ok=10, failed=1)  # 6000 series of the service
    cursor = json.loads(json.dumps(await source.open_cursor()))
    assert cursor["counts"] == {"200|service": 20_000, "503|service": 2000, "502|kong": 2000}
    assert len(json.dumps(cursor)) < 200

    # Every series grew by one request, and a new consumer appeared with its first requests.
    metrics.body = per_consumer(1000, ok=11, failed=1, extra_consumer=1)
    delta, cursor = await source.poll(cursor)
    assert delta.upstream_statuses == {"": 2, "200": 2000 + 22, "503": 2}
    assert delta.requests == 2000 + 22 + 2 + 2
    assert delta.upstream_errors == 2 + 2
    assert len(cursor["counts"]) == 3


async def test_a_cursor_of_the_per_series_format_is_invalid(metrics: MetricsServer, source: KongPrometheus) -> None:
    old = {"scraped_at": "2024-05-01T12:00:00.000000Z", "series": {'[["code","200"]]': 5.0}}
    with pytest.raises(InvalidCursor):
        source.check_cursor(old)
    bad_cursors: list[dict[str, Any]] = [
        {"scraped_at": old["scraped_at"], "counts": {"200|consumer-1": 5}},
        {"counts": {}},
    ]
    for bad in bad_cursors:
        with pytest.raises(InvalidCursor):
            await source.poll(bad)
    assert metrics.scrapes == 0


async def test_https_scrape_trusts_the_plans_ca_bundle(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    bundle = tmp_path / "kong-status-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    metrics = MetricsServer()
    await metrics.start(server_context)
    try:
        metrics.body = exposition({("200", "service"): 7})
        trusted = KongPrometheus(PrometheusSource(kind="prometheus", url=metrics.url, ca_bundle=str(bundle)), SERVICE)
        async with trusted:
            cursor = await trusted.open_cursor()
        assert cursor["counts"] == {"200|service": 7}
        async with KongPrometheus(PrometheusSource(kind="prometheus", url=metrics.url), SERVICE) as untrusted:
            with pytest.raises(TelemetryUnavailable, match="cannot scrape"):
                await untrusted.open_cursor()
    finally:
        await metrics.stop()


def test_an_unusable_ca_bundle_names_the_plan_field(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    for bundle in (not_pem, tmp_path / "missing.pem"):
        with pytest.raises(ConfigError, match=r"^monitor\.source\.ca_bundle .*: cannot load it"):
            KongPrometheus(
                PrometheusSource(kind="prometheus", url="https://kong:8100/metrics", ca_bundle=str(bundle)), SERVICE
            )
