"""The runtime's failure knob can fail one API of many: only the Hosts it names (a campaign's one failing B)."""

from __future__ import annotations

import aiohttp

from sandbox.runtime import running_runtime


async def test_a_failure_limited_to_some_hosts_leaves_the_others_served():
    async with running_runtime("B", hosts=["api-01.example.test", "api-02.example.test"]) as runtime:
        async with aiohttp.ClientSession() as session:

            async def status(host: str) -> int:
                async with session.get(f"{runtime.url}/orders/v1/orders", headers={"Host": host}) as response:
                    return response.status

            async with session.post(
                f"{runtime.url}/_runtime/fail", json={"status": 503, "hosts": ["API-02.example.test"]}
            ) as response:
                assert response.status == 200
            assert await status("api-01.example.test:8443") == 200
            assert await status("api-02.example.test:8443") == 503
            async with session.post(f"{runtime.url}/_runtime/fail", json={"status": 502}) as response:
                assert response.status == 200
            assert await status("api-01.example.test") == 502, "without hosts, every Host fails"
            async with session.post(f"{runtime.url}/_runtime/recover") as response:
                assert response.status == 200
            assert await status("api-02.example.test") == 200
