"""The emulator's router answers from a cache, and every Service or Route write through the Admin API invalidates it."""

from __future__ import annotations

import httpx

from sandbox.kong import running_emulator
from sandbox.runtime import running_runtime


async def test_route_and_service_changes_reach_the_cached_router() -> None:
    async with running_runtime("A", hosts=["127.0.0.1"], prefix="") as runtime:
        config = {
            "_format_version": "3.0",
            "services": [
                {
                    "name": "svc",
                    "protocol": "http",
                    "host": "127.0.0.1",
                    "port": runtime.port,
                    "routes": [{"name": "first", "paths": ["/first"]}],
                }
            ],
        }
        async with running_emulator(config=config, dns=None) as kong:
            assert kong.proxy_url
            async with (
                httpx.AsyncClient(base_url=kong.proxy_url) as proxy,
                httpx.AsyncClient(base_url=kong.admin_url) as admin,
            ):

                async def statuses() -> tuple[int, int]:
                    return (await proxy.get("/first")).status_code, (await proxy.get("/second")).status_code

                assert await statuses() == (200, 404)
                assert await statuses() == (200, 404)  # answered from the cache

                assert (await admin.patch("/routes/first", json={"paths": ["/second"]})).status_code == 200
                assert await statuses() == (404, 200)

                assert (await admin.patch("/services/svc", json={"enabled": False})).status_code == 200
                assert await statuses() == (404, 404)
                assert (await admin.patch("/services/svc", json={"enabled": True})).status_code == 200
                assert await statuses() == (404, 200)

                created = await admin.post("/services/svc/routes", json={"name": "again", "paths": ["/first"]})
                assert created.status_code == 201
                assert await statuses() == (200, 200)

                assert (await admin.delete("/routes/first")).status_code == 204
                assert await statuses() == (200, 404)

                kong.store.routes.clear()  # a test's direct write: the router still notices
                assert await statuses() == (404, 404)
