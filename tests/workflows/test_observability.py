"""What an operator sees of a run outside Temporal: business metrics on the worker's Prometheus endpoint, traces.

The metrics test runs a worker whose client lives on a Runtime serving Prometheus on a free loopback
port (as ``worker.py --metrics`` does) and scrapes it after a run that waited at a gate, was rolled
back and could not undo everything; the tracing test collects the spans of a run in memory.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from connection.tracing import tracing_interceptors, tracing_requested
from models.workflow import ApproveRequest
from sandbox.free_ports import free_port
from tests.workflows.fake_world import ALIAS, FakeWorld
from tests.workflows.helpers import activities_for, failure_of, make, start, until_phase
from worker import build_worker, metrics_runtime
from workflows import metrics


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def samples(body: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of ``name`` (exactly that name) as (labels, value)."""
    found = []
    for line in body.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            found.append((labels, float(match.group(2))))
    return found


async def test_a_runs_business_metrics_are_served_on_the_prometheus_endpoint(ts_env):
    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")  # as worker.py --metrics 127.0.0.1:PORT
    client = await Client.connect(
        ts_env.client.service_client.config.target_host,
        namespace="default",
        runtime=runtime,
        data_converter=pydantic_data_converter,
    )
    world = FakeWorld()
    del world.records[ALIAS]  # cutover creates the alias, so deleting it is one of its undos
    world.verdicts = ["unhealthy"]
    world.fail("kong_restore_service", "Kong Admin API down")
    plan = make("alias", flip_gate=True)
    queue = f"cutover-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, queue, activities_for(ts_env, world)):
        handle = await start(ts_env, plan, queue)
        await until_phase(ts_env, handle, "awaiting-flip-approval")
        await ts_env.sleep(600)  # ten minutes at the gate
        await handle.execute_update("approve", ApproveRequest(gate="flip", by="alice", digest=plan.digest()))
        await asyncio.wait_for(failure_of(handle), 60)
        body = scrape(port)

    run_labels = {
        "namespace": "default",
        "task_queue": queue,
        "workflow_type": "CutoverWorkflow",
        "service_name": "temporal-core-sdk",
    }
    [(labels, value)] = samples(body, metrics.RUNS)
    assert labels == {**run_labels, "outcome": "failed"} and value == 1
    [(labels, value)] = samples(body, metrics.ROLLBACKS)
    assert labels == {**run_labels, "reason": "unhealthy"} and value == 1
    undo_failures = {labels["undo"]: value for labels, value in samples(body, metrics.UNDO_FAILURES)}
    assert undo_failures == {"restore-kong-service": 1, "delete-alias": 1}
    phases = {labels["phase"] for labels, _ in samples(body, f"{metrics.PHASE_SECONDS}_count")}
    assert {"verifying", "repointing", "lowering-ttl", "awaiting-flip-approval", "monitoring", "rolling-back"} <= phases
    [(labels, waited)] = samples(body, f"{metrics.GATE_WAIT_SECONDS}_sum")
    assert labels == {**run_labels, "gate": "flip"} and 600 <= waited < 900
    buckets = {labels["le"]: value for labels, value in samples(body, f"{metrics.GATE_WAIT_SECONDS}_bucket")}
    assert buckets["600"] == 0 and buckets["1200"] == 1 and buckets["86400"] == 1, "buckets up to a day and more"


def test_tracing_is_asked_for_by_flag_or_environment():
    assert tracing_requested(True, {}) and tracing_requested(False, {"CUTOVER_OTEL": "1"})
    assert not tracing_requested(False, {}) and not tracing_requested(False, {"CUTOVER_OTEL": "0"})


def test_without_a_tracer_provider_or_exporter_tracing_stays_off_and_says_why():
    interceptors, message = tracing_interceptors()
    assert interceptors == []
    assert "no tracer provider is configured and no OTLP exporter is installed" in message


async def test_a_run_produces_spans(ts_env):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    interceptors, message = tracing_interceptors(provider)
    assert message == "OpenTelemetry tracing on (the given tracer provider)"
    queue = f"cutover-{uuid.uuid4().hex[:8]}"
    async with build_worker(ts_env.client, queue, activities_for(ts_env, FakeWorld()), interceptors=interceptors):
        handle = await start(ts_env, make(), queue)
        assert (await asyncio.wait_for(handle.result(), 60)).phase == "completed"
    names = {span.name for span in exporter.get_finished_spans()}
    for expected in (
        "RunWorkflow:CutoverWorkflow",
        "StartActivity:dns_snapshot",
        "RunActivity:dns_snapshot",
        "RunActivity:dns_apply",
        "StartChildWorkflow:CutoverLock",
        "RunWorkflow:CutoverLock",
    ):
        assert expected in names, sorted(names)
