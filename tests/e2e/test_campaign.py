"""A campaign of four APIs on the sandbox, one of whose B fails in wave 2: the line stops, then resumes.

Driven as an operator would: ``starter.py campaign validate|plan|approve|status|resume`` and the plain
``temporal`` CLI (start from the inlined campaign, approve with an update, list the cutovers by
``CampaignName``). Asserted independently: both nameservers (plain queries), Kong's Admin API, the
clients' answers per API, and the campaign's and the cutovers' status queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from models.campaign import Campaign
from models.campaign_status import CampaignStatus
from models.workflow import CutoverStatus
from sandbox.load import LoadGenerator
from sandbox.topology import Topology
from tests.e2e.cli import json_arg, starter_cli, temporal_cli
from tests.e2e.conftest import take_lanes
from tests.e2e.dns_reads import a_record, assert_on_both, cname_record, dns_view
from tests.e2e.lanes import A_ADDRESS, B_TARGET, E2E_BY, E2E_TIMINGS, Lane, kong_service_host, plan_keeping_a

RATE = 10.0
"""Requests per second on each API's route (four routes at once)."""


async def campaign_status(client: Client, workflow_id: str) -> CampaignStatus:
    for _ in range(20):
        try:
            return await client.get_workflow_handle(workflow_id).query("status", result_type=CampaignStatus)
        except RPCError:
            await asyncio.sleep(0.3)
    raise AssertionError(f"{workflow_id} does not answer its status query")


async def until(client: Client, workflow_id: str, predicate: Any, what: str, timeout: float = 90) -> CampaignStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = await campaign_status(client, workflow_id)
        if predicate(status):
            return status
        if status.phase in ("completed", "aborted", "failed") or time.monotonic() > deadline:
            raise AssertionError(f"waiting for {what}: {status.phase}\n{status.model_dump_json(indent=1)[:5000]}")
        await asyncio.sleep(0.2)


async def fail_b_when_draining(client: Client, lane: Lane, topo: Topology) -> float:
    """Make B fail for this API's Host once its flip is done (as in the single-cutover rollback test)."""
    handle = client.get_workflow_handle(lane.workflow_id)
    while True:
        with contextlib.suppress(RPCError):
            status = await handle.query("status", result_type=CutoverStatus)
            if status.phase == "draining":
                break
        await asyncio.sleep(0.1)
    await topo.runtime_control("B", "fail", {"status": 503, "hosts": [lane.service_host]})
    return time.time()


def write_campaign(tmp_path: Path, topo: Topology, lanes: list[Lane], name: str) -> Path:
    (tmp_path / "plans").mkdir()
    files = []
    for index, lane in enumerate(lanes):
        # The third API watches its traffic longer: it is still in flight when the second's rollback starts.
        monitor = {"min_requests": 10, "window": "10s" if index == 2 else E2E_TIMINGS.monitor_window}
        plan = plan_keeping_a(topo, lane, monitor=monitor)
        path = tmp_path / "plans" / f"{lane.name}.yaml"
        path.write_text(yaml.safe_dump(plan.model_dump(mode="json", exclude={"dry_run"}), sort_keys=False))
        files.append(f"plans/{path.name}")
    campaign = {
        "name": name,
        "plans": files,
        "waves": [1, "rest"],
        "max_in_flight": 2,
        "stop_on": {"rollbacks": 1},
        "approvals": {"per_wave": "flip"},
        "poll_interval": "1s",
    }
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(campaign, sort_keys=False))
    return path


@pytest.mark.e2e
@pytest.mark.timeout(240)
async def test_a_campaign_stops_the_line_on_a_failing_b_and_finishes_after_resume(
    topo: Topology, tmp_path: Path
) -> None:
    lanes = await take_lanes(topo, 4)
    first, failing, alongside, last = lanes
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    workflow_id = f"campaign-{name}"
    path = write_campaign(tmp_path, topo, lanes, name)
    client = await topo.temporal_client()
    loads = {lane.name: LoadGenerator(lane.load_url(topo), rate=RATE, timeout=5.0) for lane in lanes}
    try:
        validated = await starter_cli(topo, "campaign", "validate", str(path), "--json")
        assert validated.code == 0, validated.output
        (tmp_path / "fleet.json").write_text(validated.output)
        campaign = Campaign.from_data(json.loads(validated.output))
        assert campaign.waves == ((first.name,), (failing.name, alongside.name, last.name))

        for load in loads.values():
            load.start()
        await asyncio.sleep(1.0)  # the dry runs measure A's baseline error ratio from this traffic
        planned = await starter_cli(topo, "campaign", "plan", str(path))
        assert planned.code == 0, planned.output
        assert all(f" {lane.name} " in planned.output for lane in lanes), planned.output
        assert campaign.wave_digest(2) in planned.output
        started = await temporal_cli(
            topo, "workflow", "start", "--type", "CampaignWorkflow", "--task-queue", "cutover",
            "--workflow-id", workflow_id, "--input-file", str(tmp_path / "fleet.json"),
        )  # fmt: skip
        assert started.code == 0, started.output

        await until(client, workflow_id, lambda s: s.phase == "awaiting-wave-approval", "wave 1's flip gate")
        approved = await starter_cli(
            topo, "campaign", "approve", workflow_id, "--gate", "wave-1-flip", "--by", E2E_BY, "--campaign", str(path)
        )
        assert approved.code == 0 and "wave-1-flip approved by e2e" in approved.output, approved.output

        await until(
            client, workflow_id, lambda s: s.current_wave == 2 and s.phase == "awaiting-wave-approval", "wave 2's gate"
        )
        payload = {"gate": "wave-2-flip", "by": "operator", "digest": campaign.wave_digest(2)}
        update = await temporal_cli(
            topo, "workflow", "update", "execute", "-w", workflow_id, "--name", "approve", "--input", json_arg(payload)
        )
        assert update.code == 0, update.output
        failed_at = await fail_b_when_draining(client, failing, topo)

        stopped = await until(client, workflow_id, lambda s: s.phase == "paused", "the line to stop")
        assert stopped.stopped is not None and failing.name in stopped.stopped.reason
        assert stopped.entry(alongside.name).state == "in-flight", "the line stopped as the rollback started"
        assert stopped.entry(last.name).state == "pending", "no new cutover starts once the line stopped"
        stopped = await until(client, workflow_id, lambda s: s.entry(failing.name).final, "the rollback's end")
        entry = stopped.entry(failing.name)
        assert entry.state == "rolled-back" and (entry.verdict or "").startswith("unhealthy"), entry
        shown = await starter_cli(topo, "campaign", "status", workflow_id)
        assert "Line stopped" in shown.output and "resume" in shown.output and failing.name in shown.output

        stopped = await until(client, workflow_id, lambda s: s.entry(alongside.name).state != "in-flight", "wave 2")
        assert stopped.entry(alongside.name).state == "completed", "the cutover in flight finished"
        assert stopped.entry(last.name).state == "pending" and stopped.phase == "paused"
        expected = [workflow_id, first.workflow_id, failing.workflow_id, alongside.workflow_id]
        for _ in range(50):  # visibility is eventually consistent
            listed = await temporal_cli(topo, "workflow", "list", "--query", f"CampaignName='{name}'")
            if all(w in listed.output for w in expected):
                break
            await asyncio.sleep(0.2)
        assert all(w in listed.output for w in expected) and last.workflow_id not in listed.output, listed.output

        await topo.runtime_control("B", "recover")
        resumed = await starter_cli(topo, "campaign", "resume", workflow_id, "--by", E2E_BY, "--reason", "B fixed")
        assert resumed.code == 0 and "acknowledged 1" in resumed.output, resumed.output
        final = await until(client, workflow_id, lambda s: s.phase == "failed", "the campaign's end", timeout=120)
    finally:
        for load in loads.values():
            await load.stop()
        handle = client.get_workflow_handle(workflow_id)
        with contextlib.suppress(RPCError):
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason="the end-to-end test ended before the campaign")

    assert [final.entry(lane.name).state for lane in lanes] == ["completed", "rolled-back", "completed", "completed"]
    assert final.error == f"1 of 4 cutovers did not complete: {failing.name} (rolled-back)"
    ttl = E2E_TIMINGS.final_ttl
    for lane in (first, alongside, last):
        assert_on_both(dns_view(topo, lane.record), cname_record(B_TARGET, ttl))
        assert await kong_service_host(topo, lane.service) == lane.service_host, "cname strategy: Kong untouched"
        assert not [r for r in loads[lane.name].records if not r.ok], f"{lane.name}'s clients saw failures"
    assert_on_both(dns_view(topo, failing.record), a_record(A_ADDRESS, E2E_TIMINGS.record_ttl))
    broken = [r for r in loads[failing.name].records if not r.ok]
    assert broken and {r.served_by for r in broken} == {"B"} and min(r.started for r in broken) >= failed_at - 1
