"""The Cloud Logging source: the real google-cloud-logging client (HTTP) against a local discovery-checked fake."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import google.auth.exceptions
import httpx
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.credentials import AnonymousCredentials
from google.cloud import logging as cloud_logging
from google.oauth2 import service_account

from models.plan import CloudLoggingSource
from providers.errors import TelemetryAuthError, TelemetryQuotaExceeded, TelemetryUnavailable
from providers.telemetry.base import InvalidCursor, from_rfc3339, utc_now
from providers.telemetry.cloud_logging import INGESTION_ALLOWANCE, CloudLogging
from tests.fakes.cloud_logging import CloudLoggingFake
from tests.telemetry.kong_lines import A_IP, B_IP, SERVICE, ago, kong_record

PROJECT = "kong-gke-project"
USER_FILTER = 'resource.type="k8s_container" AND resource.labels.container_name="proxy"'


@pytest.fixture
async def fake() -> AsyncIterator[CloudLoggingFake]:
    async with CloudLoggingFake(PROJECT) as server:
        yield server


def source_for(
    fake: CloudLoggingFake, *, payload: Literal["auto", "json", "text"] = "auto", page_size: int = 1000, **kwargs: Any
) -> CloudLogging:
    plan_source = CloudLoggingSource(
        kind="cloud-logging", project=PROJECT, filter=USER_FILTER, payload=payload, api_endpoint=fake.endpoint
    )
    return CloudLogging(
        plan_source,
        SERVICE,
        client_factory=lambda _: fake.client(),
        page_size=page_size,
        quota_backoff=kwargs.pop("quota_backoff", (0.01, 0.02)),
        ingestion_allowance=kwargs.pop("ingestion_allowance", timedelta(0)),
        **kwargs,
    )


def access_line(status: int, upstream: str | None = None, addr: str | None = None, *, request_id: bool = True) -> str:
    """Kong's kong_log_format line (3.5+), optionally with cutover's upstream suffix (docs/telemetry.md)."""
    line = f'10.0.0.7 - - [01/May/2024:12:00:00 +0000] "GET /orders/v1/items HTTP/1.1" {status} 431 "-" "curl/8.5.0"'
    if request_id:
        line += ' kong_request_id: "0f8a2c6e5d3b4a1f9e7d6c5b4a392817"'
    if upstream is not None:
        line += f' upstream_status: "{upstream}" upstream_addr: "{addr}"'
    return line


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def test_json_window_is_time_bounded_service_scoped_and_filtered(fake: CloudLoggingFake) -> None:
    fake.add_json(kong_record(at=ago(40)), timestamp=ago(40))
    fake.add_json(kong_record(at=ago(30), tries=[(A_IP, 502), (B_IP, None)]), timestamp=ago(30))
    fake.add_json(kong_record(at=ago(20), status=503), timestamp=ago(20))
    fake.add_json(kong_record(at=ago(15), service="billing-api"), timestamp=ago(15))
    fake.add_json(kong_record(at=ago(7200)), timestamp=ago(7200))  # outside the window
    fake.add_json(
        kong_record(at=ago(10)),
        timestamp=ago(10),
        resource={"type": "k8s_container", "labels": {"container_name": "sidecar"}},  # outside the user filter
    )
    start, end = utc_now() - timedelta(minutes=5), utc_now()
    source = source_for(fake)
    try:
        summary = await source.read_window(start, end)
    finally:
        await source.aclose()

    assert summary.requests == 3
    assert summary.upstream_errors == 1 and summary.retried == 1
    assert summary.requests_per_ip == {B_IP: 3}
    assert summary.upstream_statuses == {"200": 2, "503": 1}
    assert any("billing-api" in note for note in summary.notes)
    assert summary.source == f"cloud-logging projects/{PROJECT}"
    (request,) = fake.requests
    assert request["resourceNames"] == [f"projects/{PROJECT}"]
    assert request["pageSize"] == 1000
    assert request["filter"] == f'({USER_FILTER}) AND timestamp>="{stamp(start)}" AND timestamp<"{stamp(end)}"'


async def test_json_payload_scopes_the_query_to_the_service(fake: CloudLoggingFake) -> None:
    fake.add_json(kong_record(at=ago(5)), timestamp=ago(5))
    fake.add_json(kong_record(at=ago(4), service="billing-api"), timestamp=ago(4))
    fake.add_text(access_line(200, "200", "10.20.0.2:8443"), timestamp=ago(3))
    source = source_for(fake, payload="json")
    try:
        summary = await source.read_window(ago(60), utc_now())
    finally:
        await source.aclose()
    assert summary.requests == 1
    assert f'jsonPayload.service.name="{SERVICE}"' in fake.requests[0]["filter"]
    assert not any("billing-api" in note for note in summary.notes)  # filtered by the server, not in code


async def test_text_lines_with_upstream_fields(fake: CloudLoggingFake) -> None:
    fake.add_text(access_line(200, "200", "10.20.0.2:8443"), timestamp=ago(30))
    fake.add_text(access_line(200, "502, 200", "10.10.0.1:8443, 10.20.0.2:8443"), timestamp=ago(20))
    fake.add_text(access_line(502, "502", "10.20.0.2:8443"), timestamp=ago(15))
    fake.add_text(access_line(503, "", "-"), timestamp=ago(12))  # no upstream could be selected
    fake.add_text("2024/05/01 12:00:00 [notice] 1#0: signal process started", timestamp=ago(10))
    source = source_for(fake, payload="text")
    try:
        summary = await source.read_window(ago(60), utc_now())
    finally:
        await source.aclose()
    assert summary.requests == 4
    assert summary.has_addresses
    assert summary.requests_per_ip == {B_IP: 3}
    assert summary.retried == 1
    assert summary.upstream_errors == 2
    assert summary.upstream_statuses == {"": 1, "200": 2, "502": 1}
    assert summary.parse_failures == 1
    assert any("not a Kong access-log line" in note for note in summary.notes)
    assert summary.first_seen is not None and summary.first_seen.tzinfo is not None


async def test_text_lines_without_upstream_fields_make_the_share_unknown(fake: CloudLoggingFake) -> None:
    fake.add_text(access_line(200), timestamp=ago(30))  # kong_log_format, Kong >= 3.5
    fake.add_text(access_line(500, request_id=False), timestamp=ago(20))  # nginx combined, Kong 3.0-3.4
    fake.add_text(access_line(200, "200", "10.20.0.2:8443"), timestamp=ago(10))
    source = source_for(fake)
    try:
        summary = await source.read_window(ago(60), utc_now())
    finally:
        await source.aclose()
    assert summary.requests == 3
    assert summary.upstream_errors == 1  # the relayed 500 counts: its upstream status is unknown
    assert not summary.has_addresses and summary.requests_per_ip == {}
    assert any("without upstream_addr" in note for note in summary.notes)


async def test_pagination_follows_next_page_token(fake: CloudLoggingFake) -> None:
    for index in range(25):
        fake.add_json(kong_record(at=ago(50 - index)), timestamp=ago(50 - index))
    source = source_for(fake, page_size=10)
    try:
        summary = await source.read_window(ago(120), utc_now())
    finally:
        await source.aclose()
    assert summary.requests == 25
    assert len(fake.requests) == 3
    assert [request.get("pageToken") is not None for request in fake.requests] == [False, True, True]
    assert len({request["filter"] for request in fake.requests}) == 1
    assert all(request["pageSize"] == 10 for request in fake.requests)


async def test_quota_errors_back_off_then_succeed(fake: CloudLoggingFake) -> None:
    fake.add_json(kong_record(at=ago(5)), timestamp=ago(5))
    fake.throttle(2)
    source = source_for(fake, quota_backoff=(0.01, 0.02, 0.04))
    try:
        summary = await source.read_window(ago(60), utc_now())
    finally:
        await source.aclose()
    assert fake.statuses == [429, 429, 200]
    assert summary.requests == 1
    assert any("429 2 time(s)" in note for note in summary.notes)


async def test_quota_errors_past_the_backoff_raise_quota_exceeded(fake: CloudLoggingFake) -> None:
    fake.throttle(10)
    source = source_for(fake, quota_backoff=(0.01, 0.01))
    try:
        with pytest.raises(TelemetryQuotaExceeded, match="429 after 3 attempts"):
            await source.read_window(ago(60), utc_now())
    finally:
        await source.aclose()
    assert fake.statuses == [429, 429, 429]


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors(fake: CloudLoggingFake, status: int) -> None:
    fake.deny(status)
    source = source_for(fake)
    try:
        with pytest.raises(TelemetryAuthError, match=r"logging\.logEntries\.list|credentials .* unusable"):
            await source.read_window(ago(60), utc_now())
    finally:
        await source.aclose()


async def test_unreachable_endpoint_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    plan_source = CloudLoggingSource(kind="cloud-logging", project=PROJECT, api_endpoint=endpoint)
    source = CloudLogging(
        plan_source,
        SERVICE,
        client_factory=lambda s: cloud_logging.Client(
            project=s.project,
            credentials=AnonymousCredentials(),
            _use_grpc=False,
            client_options={"api_endpoint": s.api_endpoint},
        ),
    )
    try:
        with pytest.raises(TelemetryUnavailable, match="unreachable"):
            await source.read_window(ago(60), utc_now())
    finally:
        await source.aclose()


async def test_cursor_counts_each_entry_once_even_at_the_same_timestamp(fake: CloudLoggingFake) -> None:
    source = source_for(fake)
    try:
        cursor = await source.open_cursor()
        same = utc_now()
        fake.add_json(kong_record(at=same), timestamp=same)
        fake.add_json(kong_record(at=same, tries=[(A_IP, None)]), timestamp=same)
        first, cursor = await source.poll(json.loads(json.dumps(cursor)))
        assert first.requests_per_ip == {A_IP: 1, B_IP: 1}
        assert len(cursor["seen"]) == 2

        fake.add_json(kong_record(at=same, status=503), timestamp=same)  # late, same timestamp
        second, cursor = await source.poll(json.loads(json.dumps(cursor)))
        assert (second.requests, second.upstream_errors) == (1, 1)
        assert len(cursor["seen"]) == 3

        later = utc_now()
        fake.add_json(kong_record(at=later), timestamp=later)
        third, cursor = await source.poll(cursor)
        assert third.requests == 1
        assert len(cursor["seen"]) == 1

        fourth, _ = await source.poll(cursor)
        assert fourth.requests == 0
        assert all('timestamp>="' in request["filter"] for request in fake.requests)
    finally:
        await source.aclose()


def bounds(request: dict[str, Any]) -> tuple[datetime, datetime]:
    """The ``timestamp>=`` and ``timestamp<`` bounds of a listing's filter."""
    lower = request["filter"].split('timestamp>="')[1].split('"')[0]
    upper = request["filter"].split('timestamp<"')[1].split('"')[0]
    return from_rfc3339(lower), from_rfc3339(upper)


async def test_following_reads_stop_the_ingestion_allowance_before_now(fake: CloudLoggingFake) -> None:
    assert INGESTION_ALLOWANCE == timedelta(seconds=30)
    fake.add_json(kong_record(at=ago(5), tries=[(A_IP, None)]), timestamp=ago(5))  # maybe not indexed yet
    fake.add_json(kong_record(at=ago(50)), timestamp=ago(50))
    source = source_for(fake, ingestion_allowance=INGESTION_ALLOWANCE)
    try:
        before = utc_now()
        summary, _ = await source.read_latest(timedelta(minutes=1))
        assert summary.requests_per_ip == {B_IP: 1}  # the request of 5 s ago is not vouched for yet
        assert summary.window_end is not None
        assert before - INGESTION_ALLOWANCE <= summary.window_end <= utc_now() - INGESTION_ALLOWANCE
        _, upper = bounds(fake.requests[0])
        assert upper == summary.window_end
        assert upper - bounds(fake.requests[0])[0] == timedelta(minutes=1)

        # A cursor opened now lists nothing until now is older than the allowance: no listing at all.
        opened = await source.open_cursor()
        early, _ = await source.poll(opened)
        assert early.requests == 0 and len(fake.requests) == 1
    finally:
        await source.aclose()


async def test_polls_after_read_latest_list_only_what_is_new(fake: CloudLoggingFake) -> None:
    source = source_for(fake, ingestion_allowance=timedelta(milliseconds=300))
    try:
        earlier = ago(2)
        fake.add_json(kong_record(at=earlier), timestamp=earlier)
        summary, cursor = await source.read_latest(timedelta(minutes=1))
        assert summary.requests == 1
        first_lower, first_upper = bounds(fake.requests[0])
        fresh = utc_now()
        fake.add_json(kong_record(at=fresh, tries=[(A_IP, None)]), timestamp=fresh)
        counted = 0
        for _ in range(6):
            await asyncio.sleep(0.1)
            delta, cursor = await source.poll(cursor)
            counted += delta.requests
        assert counted == 1  # the new entry, once it was older than the allowance
        for request in fake.requests[1:]:
            lower, upper = bounds(request)
            assert lower >= earlier > first_lower  # from the last entry read on, never the whole window again
            assert upper > first_upper
    finally:
        await source.aclose()


async def test_the_fake_fails_the_test_on_a_request_off_googles_schema() -> None:
    fake = CloudLoggingFake(PROJECT)
    await fake.__aenter__()
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{fake.endpoint}/v2/entries:list", json={"resourceNames": [f"projects/{PROJECT}"], "pageLimit": 5}
        )
    assert response.status_code == 400
    with pytest.raises(AssertionError, match="pageLimit"):
        await fake.__aexit__(None, None, None)


# --- credentials that can't be refreshed: transport problem (retry) or rejected (don't) -----------------


class TokenService:
    """A loopback OAuth token endpoint (a service account key's ``token_uri``) or GCE metadata server."""

    def __init__(self, status: int, body: dict[str, Any] | str) -> None:
        self.status = status
        self.body = body
        self.calls = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _answer(self, request: web.Request) -> web.Response:
        self.calls += 1
        if isinstance(self.body, str):
            return web.Response(status=self.status, text=self.body)
        return web.json_response(self.body, status=self.status)

    async def __aenter__(self) -> TokenService:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def service_account_source(fake: CloudLoggingFake, token_uri: str) -> CloudLogging:
    """The real client with a real service-account key whose token endpoint is ``token_uri``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    credentials = service_account.Credentials.from_service_account_info(
        {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "0123456789abcdef",
            "private_key": pem,
            "client_email": f"cutover@{PROJECT}.iam.gserviceaccount.com",
            "client_id": "100000000000000000001",
            "token_uri": token_uri,
        }
    )
    plan_source = CloudLoggingSource(kind="cloud-logging", project=PROJECT, api_endpoint=fake.endpoint)
    return CloudLogging(
        plan_source,
        SERVICE,
        client_factory=lambda s: cloud_logging.Client(
            project=s.project, credentials=credentials, _use_grpc=False, client_options={"api_endpoint": s.api_endpoint}
        ),
    )


async def read_a_minute(source: CloudLogging) -> None:
    try:
        await source.read_window(ago(60), utc_now())
    finally:
        await source.aclose()


async def test_rejected_service_account_key_is_an_auth_error(fake: CloudLoggingFake) -> None:
    async with TokenService(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}) as token:
        with pytest.raises(TelemetryAuthError, match="invalid_grant") as raised:
            await read_a_minute(service_account_source(fake, f"{token.url}/token"))
    assert isinstance(raised.value.__cause__, google.auth.exceptions.RefreshError)
    assert not raised.value.__cause__.retryable
    assert not raised.value.retryable
    assert token.calls == 1 and fake.requests == []  # nothing was listed


async def test_failing_token_service_is_unavailable_not_an_auth_error(fake: CloudLoggingFake) -> None:
    # google-auth retries a 503 itself (about 3 s), then raises a RefreshError it marks retryable.
    async with TokenService(503, {"error": "backend_error"}) as token:
        with pytest.raises(TelemetryUnavailable, match="could not be refreshed right now") as raised:
            await read_a_minute(service_account_source(fake, f"{token.url}/token"))
    assert isinstance(raised.value.__cause__, google.auth.exceptions.RefreshError)
    assert raised.value.__cause__.retryable
    assert raised.value.retryable
    assert token.calls == 3 and fake.requests == []


async def test_unreachable_token_service_is_unavailable(fake: CloudLoggingFake) -> None:
    with pytest.raises(TelemetryUnavailable, match="could not be refreshed right now") as raised:
        await read_a_minute(service_account_source(fake, f"{closed_port_url()}/token"))
    assert isinstance(raised.value.__cause__, google.auth.exceptions.TransportError)
    assert fake.requests == []


GCE_PROBE = """
import asyncio
from datetime import timedelta
from google.auth import compute_engine
from google.cloud import logging as cloud_logging
from models.plan import CloudLoggingSource
from providers.telemetry.base import InvalidCursor, from_rfc3339, utc_now
from providers.telemetry.cloud_logging import INGESTION_ALLOWANCE, CloudLogging
import sys

plan_source = CloudLoggingSource(kind="cloud-logging", project=sys.argv[1], api_endpoint=sys.argv[2])
source = CloudLogging(plan_source, "orders-api", client_factory=lambda s: cloud_logging.Client(
    project=s.project, credentials=compute_engine.Credentials(), _use_grpc=False,
    client_options={"api_endpoint": s.api_endpoint}))

async def main():
    try:
        await source.read_window(utc_now() - timedelta(minutes=1), utc_now())
    except Exception as exc:
        print(type(exc).__name__, type(exc.__cause__).__name__, type(exc.__cause__.__cause__).__name__)
    finally:
        await source.aclose()

asyncio.run(main())
"""


async def test_failing_gke_metadata_server_is_unavailable(fake: CloudLoggingFake) -> None:
    # On GKE (ADC from the metadata server), google-auth wraps the metadata server's failure in a
    # RefreshError raised from a TransportError. Its host is read once at import, hence a subprocess.
    async with TokenService(502, "upstream connect error") as metadata:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            GCE_PROBE,
            PROJECT,
            fake.endpoint,
            env={**os.environ, "GCE_METADATA_HOST": metadata.url.removeprefix("http://")},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
    assert out.decode().split() == ["TelemetryUnavailable", "RefreshError", "TransportError"], err.decode()
    assert metadata.calls == 1 and fake.requests == []


async def test_only_an_undecodable_cursor_is_invalid(fake: CloudLoggingFake) -> None:
    source = source_for(fake)
    try:
        cursor = json.loads(json.dumps(await source.open_cursor()))
        source.check_cursor(cursor)
        for bad in ({}, {**cursor, "after": 12}, {**cursor, "seen": "id1"}, {**cursor, "seen": [1, 2]}):
            with pytest.raises(InvalidCursor):
                source.check_cursor(bad)
            with pytest.raises(InvalidCursor):
                await source.poll(bad)
        assert fake.requests == []
    finally:
        await source.aclose()
