"""A Kong Admin API (or a proxy in front of it) answering something unexpected: typed errors, never a crash."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from models.plan import KongSection
from providers.errors import GatewayUnavailable
from providers.gateway.kong_admin import KongAdminClient
from providers.secrets import EnvSecrets


@pytest.fixture
async def broken_gzip() -> AsyncIterator[str]:
    """A server whose answers claim gzip but are not: httpx raises DecodingError, which is no TransportError."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(
            body=b"this is not gzip data", headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def client(url: str) -> KongAdminClient:
    section = KongSection.model_validate({"admin_url": url, "service": "orders-api", "status_urls": [url]})
    return KongAdminClient(section, secrets=EnvSecrets({}), get_attempts=2, retry_backoff=0.01)


async def test_a_body_that_does_not_decode_is_unavailable_and_retried(broken_gzip: str) -> None:
    async with client(broken_gzip) as kong:
        with pytest.raises(GatewayUnavailable) as failed:
            await kong.get_service()
    assert failed.value.retryable
    assert str(failed.value).endswith(f"({broken_gzip}/services/orders-api): DecodingError")


async def test_a_data_plane_whose_status_does_not_decode_is_a_problem_not_a_crash(broken_gzip: str) -> None:
    async with client(broken_gzip) as kong:
        reading = await kong.read_data_plane(broken_gzip)
    assert reading.config_hash is None
    assert reading.problems == [f"cannot read data plane {broken_gzip}: DecodingError"]
