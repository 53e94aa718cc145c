"""A fake world of many APIs for campaign tests: one record and one Kong Service per API, verdicts per API.

It extends :class:`FakeWorld` (compare-and-swap DNS, scripted telemetry): Kong answers for the Service
each plan names (its host is the API's record), and the monitor judges each API by its own script.
Helpers build campaign data and run a campaign with its cutovers on the time-skipping server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.campaign import CampaignActivities
from activities.locks import LockActivities
from models.campaign_status import CAMPAIGN_WAVE_ATTRIBUTE, CampaignStatus
from models.kong import KongInspectInput, KongInspection, ServiceSnapshot
from models.telemetry import MonitorInput, MonitorResult, WindowSummary
from models.workflow import PHASE_ATTRIBUTE, CutoverStatus
from tests.conftest import base_plan_data
from tests.workflows.fake_world import FakeWorld, _a, fake_inspection, judged
from tests.workflows.stalls import open_workflows
from workflows.registry import WORKFLOWS

PHASE = SearchAttributeKey.for_keyword(PHASE_ATTRIBUTE)
WAVE = SearchAttributeKey.for_keyword(CAMPAIGN_WAVE_ATTRIBUTE)
TTL = 30
"""The records' TTL is already the cutover TTL: no old-TTL wait, so runs are short in skipped time too."""


class FleetWorld(FakeWorld):
    """Records ``<api>.example.test.`` (A -> 127.0.0.2) and Kong Services ``svc-<api>`` in front of them."""

    def __init__(self, apis: list[str], *, ttl: int = TTL, stale_ttl: int = 4) -> None:
        super().__init__()
        self.hosts: dict[str, str] = {}
        self.stale_ttl = stale_ttl
        for api in apis:
            record = f"{api}.example.test."
            self.records[record] = (_a(record, "127.0.0.2", ttl),)
            self.hosts[f"svc-{api}"] = record.rstrip(".")
        self.unhealthy: set[str] = set()
        """Kong Services whose B fails behind Kong (their monitor says unhealthy)."""
        self.inconclusive: set[str] = set()
        self.monitor_seconds_by_service: dict[str, float] = {}
        self.record_as_host = False
        """Kong answers with the asking plan's record as the Service's host (several plans on one Service)."""

    def service_host(self, service: str) -> str:
        """The host of a Kong Service: its API's record, or the base world's Service host."""
        return self.hosts.get(service, str(self.service["host"]))

    def activities(self) -> list[Callable[..., Any]]:
        """The base world's activities, with Kong and the monitor answering per Service."""
        world = self
        base = {getattr(fn, "__temporal_activity_definition").name: fn for fn in super().activities()}

        @activity.defn(name="kong_inspect")
        async def kong_inspect(input: KongInspectInput) -> KongInspection:
            world._enter("kong_inspect")
            host = input.record.rstrip(".") if world.record_as_host else world.service_host(input.kong.service)
            service = ServiceSnapshot(
                id=f"id-{input.kong.service}",
                name=input.kong.service,
                host=host,
                port=8443,
                protocol="https",
                updated_at=1,
                entity={"name": input.kong.service, "host": host},
            )
            record = input.record.rstrip(".")
            return fake_inspection(service, record, world.stale_ttl)

        @activity.defn(name="traffic_monitor")
        async def traffic_monitor(input: MonitorInput) -> MonitorResult:
            world._enter("traffic_monitor")
            await asyncio.sleep(world.monitor_seconds_by_service.get(input.service, 0.0))
            unhealthy = input.service in world.unhealthy
            requests = 3 if input.service in world.inconclusive else 200
            summary = WindowSummary(
                source="fake",
                requests=requests,
                upstream_errors=100 if unhealthy else 0,
                requests_per_ip={"127.0.0.3": requests},
            )
            return MonitorResult(verdict=judged(summary, input), polls=1, stopped_early=unhealthy)

        base.update(kong_inspect=kong_inspect, traffic_monitor=traffic_monitor)
        return list(base.values())


def unique(prefix: str) -> str:
    """A name no other test of the session uses (the server and its workflow ids are shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def plan_data(api: str, ttl: int = TTL) -> dict[str, Any]:
    """A cname plan for one API of a FleetWorld, named like the API (``ttl``: its cutover TTL)."""
    data = base_plan_data(name=api)
    data["dns"]["record"] = f"{api}.example.test."
    data["dns"]["cutover_ttl"] = ttl
    data["kong"]["service"] = f"svc-{api}"
    data["approvals"] = {"flip": True, "decommission": True, "timeout": "2h"}
    return data


def campaign_data(name: str, apis: list[str], waves: list[Any], **settings: Any) -> dict[str, Any]:
    """A campaign of one plan per API, without gates and stopping at the first rollback unless told."""
    return {
        "name": name,
        "plans": [plan_data(api) for api in apis],
        "waves": waves,
        "max_in_flight": 2,
        "approvals": {"per_wave": "none"},
        "stop_on": {"rollbacks": 1},
        "poll_interval": "10s",
        **settings,
    }


@asynccontextmanager
async def campaign_running(
    env: WorkflowEnvironment, world: FakeWorld, data: dict[str, Any], carried: dict[str, Any] | None = None
) -> AsyncIterator[WorkflowHandle[Any, CampaignStatus]]:
    """A worker with both workflows, the world's activities and the campaign's; the campaign started."""
    queue = str(uuid.uuid4())
    activities = [
        *world.activities(),
        *LockActivities(env.client).activities(),
        *CampaignActivities(env.client).activities(),
    ]
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=activities,
        max_heartbeat_throttle_interval=timedelta(seconds=1),
    ):
        handle = await env.client.start_workflow(
            "CampaignWorkflow",
            args=[data, carried],
            id=f"campaign-{data['name']}",
            task_queue=queue,
            result_type=CampaignStatus,
        )
        yield handle


async def campaign_status(handle: WorkflowHandle[Any, Any]) -> CampaignStatus:
    """The campaign's status query, asked again when it times out.

    A query that reaches the test server just as the run continues as new can go unanswered. The
    client reports its own timeout as DEADLINE_EXCEEDED or as CANCELLED "Timeout expired".
    """
    for _ in range(10):
        try:
            return await handle.query("status", result_type=CampaignStatus, rpc_timeout=timedelta(seconds=3))
        except RPCError as exc:
            timed_out = exc.status == RPCStatusCode.DEADLINE_EXCEEDED or (
                exc.status == RPCStatusCode.CANCELLED and "timeout expired" in str(exc).lower()
            )
            if not timed_out and "deadline" not in str(exc):
                raise
    raise AssertionError("the campaign's status query went unanswered ten times")


@asynccontextmanager
async def time_skipping(handle: WorkflowHandle[Any, Any]) -> AsyncIterator[None]:
    """Time skips while a ``result()`` waits (the test server unlocks it around the call).

    Not through ``env.sleep``: the Java test server can leave ``UnlockTimeSkippingWithSleep`` hanging
    once child workflows and signals are involved (temporalio/sdk-java#1618).
    """
    waiting = asyncio.ensure_future(handle.result())
    try:
        yield
    finally:
        waiting.cancel()
        with contextlib.suppress(BaseException):
            await waiting


async def until_campaign(
    env: WorkflowEnvironment,
    handle: WorkflowHandle[Any, Any],
    predicate: Callable[[CampaignStatus], bool],
    what: str,
    timeout: float = 60.0,
) -> CampaignStatus:
    """Query until ``predicate`` holds, time skipping meanwhile."""
    status = await campaign_status(handle)
    if predicate(status):
        return status
    async with time_skipping(handle):
        deadline = time.monotonic() + timeout
        while True:
            status = await campaign_status(handle)
            if predicate(status):
                return status
            ended = status.phase in ("completed", "aborted", "failed")
            if ended or time.monotonic() > deadline:
                stalled = "" if ended else f"\nstalled? open workflows:\n{await open_workflows(env)}"
                raise AssertionError(
                    f"never {what}: {status.phase}\n{status.model_dump_json(indent=1)[:4000]}{stalled}"
                )
            await asyncio.sleep(0.05)


async def until_attributes(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], phase: str, wave: int, timeout: float = 60.0
) -> None:
    """Until the campaign's search attributes show ``phase`` in ``wave``, time skipping meanwhile.

    Read with ``describe``, not the status query, for runs that continue as new: the Java test server
    fails a workflow task that continues as new while a query waits for it after it has started the
    new run, so the old run stays open for good and the query goes unanswered.
    """
    async with time_skipping(handle):
        deadline = time.monotonic() + timeout
        while True:
            attributes = (await handle.describe()).typed_search_attributes
            seen = (attributes.get(PHASE), attributes.get(WAVE))
            if seen == (phase, str(wave)):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"never {phase} in wave {wave}: {seen}\n{await open_workflows(env)}")
            await asyncio.sleep(0.05)


async def cutover_status(env: WorkflowEnvironment, workflow_id: str) -> CutoverStatus:
    """A child cutover's status query."""
    return await env.client.get_workflow_handle(workflow_id).query("status", result_type=CutoverStatus)


async def child_times(env: WorkflowEnvironment, workflow_ids: list[str]) -> dict[str, tuple[datetime, datetime]]:
    """When each (closed) cutover started and closed, from Temporal."""
    out = {}
    for workflow_id in workflow_ids:
        described = await env.client.get_workflow_handle(workflow_id).describe()
        assert described.close_time is not None, f"{workflow_id} is still running"
        out[workflow_id] = (described.start_time, described.close_time)
    return out


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = best = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


async def never_started(env: WorkflowEnvironment, workflow_id: str) -> bool:
    """True when Temporal has no workflow of that id."""
    try:
        await env.client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        return exc.status == RPCStatusCode.NOT_FOUND
    return False
