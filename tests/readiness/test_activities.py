"""The readiness activity in Temporal's ActivityEnvironment: heartbeats every attempt, cancellable, a report."""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from activities.readiness import ReadinessActivities
from models.readiness import ReadinessInput, ReadinessReport
from sandbox.pki import Pki
from tests.kong.fixtures import runtimes_ab
from tests.readiness.test_readiness import readiness, shape


def test_activity_name_is_the_workflow_contract() -> None:
    names = [activity._Definition.must_from_callable(fn).name for fn in ReadinessActivities().activities()]
    assert names == ["readiness_probe"]


async def test_heartbeats_every_attempt_and_reports_an_unready_b(pki: Pki) -> None:
    env = ActivityEnvironment()
    heartbeats: list[str] = []
    env.on_heartbeat = lambda *details: heartbeats.append(details[0])
    async with runtimes_ab(pki) as (_, b):
        b.state.set_flap([503, 200, 200])
        ready = await env.run(
            ReadinessActivities().probe,
            ReadinessInput(readiness=readiness(pki, b.port, successes=2), shape=shape(b.port)),
        )
        b.state.fail(404)
        unready = await env.run(
            ReadinessActivities().probe,
            ReadinessInput(readiness=readiness(pki, b.port, timeout="200ms", interval="100ms"), shape=shape(b.port)),
        )
    assert ready.ready and not unready.ready
    assert heartbeats[:4] == [
        f"probing https://127.0.0.3:{b.port}/orders/v1/health with Host a-project.example.test:{b.port}",
        "probe 1/61: 503 from 127.0.0.3 (0/2 in a row)",
        "probe 2/61: 200 from 127.0.0.3 (1/2 in a row)",
        "probe 3/61: 200 from 127.0.0.3 (2/2 in a row)",
    ]
    assert "does not serve that name" in unready.failures()[0]


async def test_a_stuck_probe_keeps_heartbeating_and_is_cancellable(pki: Pki) -> None:
    env = ActivityEnvironment()
    heartbeats: list[str] = []
    env.on_heartbeat = lambda *details: heartbeats.append(details[0])
    async with runtimes_ab(pki) as (_, b):
        b.state.fail(503)
        section = readiness(pki, b.port, timeout="5m", interval="30s")  # waits 30 s between attempts

        async def run() -> ReadinessReport:
            probe = ReadinessActivities(keepalive_seconds=0.1).probe
            return await env.run(probe, ReadinessInput(readiness=section, shape=shape(b.port)))

        task = asyncio.create_task(run())
        await asyncio.sleep(0.5)
        assert len(heartbeats) >= 4  # the keepalive repeats the last attempt while waiting
        assert heartbeats[-1] == "probe 1/11: 503 from 127.0.0.3 (0/3 in a row)"
        cancelled_at = time.monotonic()
        env.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert time.monotonic() - cancelled_at < 1
