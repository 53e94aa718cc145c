"""kong_await_data_planes against two emulated hybrid data planes over loopback: hashes, heartbeats, timeouts.

A Control Plane pushes its configuration to data planes; here the test plays that push by changing a
data plane's entity store, which changes the ``configuration_hash`` its ``/status`` reports, exactly
as a real DP's hash changes when it applies a new configuration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.kong import KongActivities
from models.kong import DataPlaneSync, DataPlaneSyncInput
from providers.secrets import EnvSecrets
from sandbox.free_ports import port_free_on
from sandbox.kong import KongEmulator, running_emulator
from tests.kong.fixtures import sandbox_config, section

ALIAS = "origin-api.example.test"


@pytest.fixture
async def hybrid() -> AsyncIterator[tuple[KongEmulator, KongEmulator, KongEmulator]]:
    """A Control Plane and two data planes with status listeners, all holding the sandbox Service."""
    async with (
        running_emulator(config=sandbox_config(8443), mode="control-plane", proxy=None) as cp,
        running_emulator(config=sandbox_config(8443), mode="data-plane", status=("127.0.0.1", 0)) as dp1,
        running_emulator(config=sandbox_config(8443), mode="data-plane", status=("127.0.0.1", 0)) as dp2,
    ):
        yield cp, dp1, dp2


def status_url(dp: KongEmulator) -> str:
    assert dp.status_url
    return f"{dp.status_url}/status"


def push(dp: KongEmulator) -> None:
    """What the Control Plane's push of the repointed Service does to a data plane."""
    dp.store.update_service("orders-api", {"host": ALIAS})


async def run(
    cp: KongEmulator, urls: list[str], previous: dict[str, str], timeout: float
) -> tuple[DataPlaneSync, list[Any], float]:
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.extend(details)
    activities = KongActivities(secrets=EnvSecrets({}), data_plane_poll=0.05, data_plane_max_poll=0.2)
    started = time.monotonic()
    sync = await env.run(
        activities.await_data_planes,
        DataPlaneSyncInput(kong=section(cp, status_urls=urls), previous_hashes=previous, timeout_seconds=timeout),
    )
    return sync, beats, time.monotonic() - started


async def test_waits_until_every_data_plane_runs_the_new_configuration(hybrid) -> None:
    cp, dp1, dp2 = hybrid
    urls = [status_url(dp1), status_url(dp2)]
    previous = {url: dp.store.configuration_hash() for url, dp in zip(urls, (dp1, dp2), strict=True)}
    push(dp1)

    async def later() -> None:
        await asyncio.sleep(0.4)
        push(dp2)

    pusher = asyncio.create_task(later())
    sync, beats, elapsed = await run(cp, urls, previous, timeout=5)
    await pusher

    assert sync.in_sync and sync.lagging == ()
    assert sync.hashes == {urls[0]: dp1.store.configuration_hash(), urls[1]: dp2.store.configuration_hash()}
    assert all(sync.hashes[url] != previous[url] for url in urls)
    assert (
        beats[0]
        == f"1/2 data planes on the new configuration; waiting for {urls[1]}: still on configuration "
        + (previous[urls[1]])
    )
    assert beats[-1] == "2/2 data planes on the new configuration"
    assert 0.4 <= elapsed < 1.5
    assert 3 <= len(beats) <= 8  # a growing interval, not a busy loop


async def test_a_lagging_data_plane_is_reported_at_the_timeout_not_raised(hybrid) -> None:
    cp, dp1, dp2 = hybrid
    urls = [status_url(dp1), status_url(dp2)]
    previous = {urls[0]: dp1.store.configuration_hash(), urls[1]: dp2.store.configuration_hash()}
    push(dp1)
    sync, beats, elapsed = await run(cp, urls, previous, timeout=0.5)
    assert not sync.in_sync
    assert sync.lagging == (f"{urls[1]}: still on configuration {previous[urls[1]]}",)
    assert sync.hashes[urls[1]] == previous[urls[1]] and sync.hashes[urls[0]] != previous[urls[0]]
    assert 0.5 <= elapsed < 1.5 and beats[-1].startswith("1/2 data planes on the new configuration")


async def test_a_data_plane_unknown_before_counts_once_it_answers_and_an_unreachable_one_lags(hybrid) -> None:
    cp, dp1, _ = hybrid
    gone = f"http://127.0.0.1:{port_free_on(['127.0.0.1'])}/status"
    sync, _, _ = await run(cp, [status_url(dp1), gone], {}, timeout=0.3)
    assert not sync.in_sync and sync.hashes == {status_url(dp1): dp1.store.configuration_hash()}
    assert len(sync.lagging) == 1 and sync.lagging[0].startswith(f"{gone}: cannot read data plane")
    assert "ConnectError" in sync.lagging[0]


async def test_without_status_urls_there_is_nothing_to_wait_for(hybrid) -> None:
    cp, _, _ = hybrid
    sync, beats, elapsed = await run(cp, [], {}, timeout=30)
    assert sync == DataPlaneSync(in_sync=True, hashes={}) and beats == [] and elapsed < 0.5
