"""``make demo DEMO_ARGS="--campaign"``: six APIs moved in three waves, one whose B fails in wave 2.

It starts the sandbox with six APIs (``api-01`` ... ``api-06``: a record, a Kong Service and a route
each, sandbox/fleet.py), puts a steady load on every route, and starts a campaign from the files it
writes (``<workdir>/campaign/campaign.yaml`` and one plan per API) exactly as ``python starter.py
campaign start`` does: waves ``[1, 2, rest]``, at most 3 in flight, one approval per wave for the
flips, the line stops at the first rollback. When ``api-02`` (wave 2) has flipped, its B starts
answering 503 (injected): its cutover rolls back and the line stops. You approve the waves and decide
(resume or abort) with the printed commands; ``--auto-approve`` approves and resumes by itself. At the
end: what each API's clients saw and a chart of every API's share of traffic over time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from cli.campaign import LoadedCampaign, load_campaign, start_campaign
from models.campaign_status import CAMPAIGN_TERMINAL, CampaignStatus
from models.durations import parse_duration
from models.workflow import ApproveRequest
from sandbox import fleet
from sandbox.chart_fleet import render_fleet_chart
from sandbox.load import LoadGenerator
from sandbox.topology import Timings, Topology
from settings import TemporalSettings
from workflows.campaign_logic import awaiting_wave_gates

APIS = 6
FAILING = "api-02"
"""The API whose B fails once it has flipped (the first of wave 2)."""
BY = "sandbox-demo"


def campaign_timings(rate_per_api: float) -> Timings:
    """Shorter than a single cutover's demo (six of them run): ~40 s per cutover, every phase still real."""
    timings = Timings(
        record_ttl=10,
        cutover_ttl=2,
        kong_dns_not_found_ttl=5,
        wait_margin="1s",
        readiness_successes=2,
        monitor_window="10s",
        poll_interval="1s",
    )
    expected = rate_per_api * parse_duration(timings.monitor_window).total_seconds()
    return replace(timings, min_requests=max(1, int(expected / 2)))


def say(text: str) -> None:
    """One timestamped line (the demo's output works in a terminal and in a CI log alike)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def chart_label(event: str) -> str | None:
    """The campaign events drawn across the chart: waves starting, the line stopping, resume, abort."""
    if event.startswith("wave ") and " started" in event:
        return event.split(" started")[0]
    for start, label in (("line stopped", "line stopped"), ("resumed", "resumed"), ("abort", "abort")):
        if event.startswith(start):
            return label
    return None


@dataclass
class Follower:
    """Follows the campaign: prints changes, approves (with --auto-approve), injects the failure, resumes."""

    topo: Topology
    client: Client
    loaded: LoadedCampaign
    auto: bool
    started: float
    phases: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)
    told: set[str] = field(default_factory=set)
    injected: bool = False

    def at(self) -> float:
        """Seconds since the load began."""
        return time.time() - self.started

    async def follow(self) -> CampaignStatus:
        """Until the campaign ends: its last status."""
        handle = self.client.get_workflow_handle(self.loaded.campaign.workflow_id)
        while True:
            try:
                status: CampaignStatus = await handle.query("status", result_type=CampaignStatus)
            except RPCError as exc:
                say(f"status query failed (retrying): {exc}")
                await asyncio.sleep(1)
                continue
            self._print_changes(status)
            await self._inject(status)
            await self._decide(status, handle)
            if status.phase in CAMPAIGN_TERMINAL:
                return status
            await asyncio.sleep(1)

    def _print_changes(self, status: CampaignStatus) -> None:
        new_events = [e for e in status.events if f"event:{e.at}:{e.text}" not in self.told]
        for event in new_events:
            self.told.add(f"event:{event.at}:{event.text}")
            say(f"== campaign: {event.text}")
            label = chart_label(event.text)
            if label:
                self.events.append((event.at.timestamp() - self.started, label))
        for entry in status.cutovers:
            shown = f"{entry.state}/{entry.phase}"
            if self.seen.get(entry.name) != shown and entry.state != "pending":
                self.seen[entry.name] = shown
                self.phases.setdefault(entry.name, []).append((self.at(), entry.phase or entry.state))
                detail = f": {entry.error}" if entry.state in ("rolled-back", "failed") and entry.error else ""
                say(f"   {entry.name}: {entry.state} ({entry.phase or '-'}){detail}")

    async def _inject(self, status: CampaignStatus) -> None:
        entry = status.entry(FAILING)
        if not self.injected and entry.phase in ("draining", "monitoring"):
            self.injected = True
            await self.topo.runtime_control("B", "fail", {"status": 503, "hosts": [f"{FAILING}.example.test"]})
            say(f">>> {FAILING}'s B now answers 503 to every request (injected): its monitor should roll it back")
            self.events.append((self.at(), f"{FAILING}: B fails"))

    async def _decide(self, status: CampaignStatus, handle: Any) -> None:
        for gate in awaiting_wave_gates(status):
            if gate.gate in self.told:
                continue
            self.told.add(gate.gate)
            number = int(gate.gate.split("-")[1])
            digest = self.loaded.campaign.wave_digest(number)
            if self.auto:
                request = ApproveRequest(gate=gate.gate, by=BY, digest=digest, comment="--auto-approve")
                say(f">>> --auto-approve: {gate.gate} with the approve update (digest {digest[:12]}...)")
                await self._update(handle, "approve", request)
            else:
                approve = f"campaign approve {status.workflow_id} --gate {gate.gate} --campaign {self.loaded.path}"
                say(f">>> wave {number} waits for your approval of its flips. Run ONE of:")
                print(f"      {self._starter(approve)}")
                print(f"      {status.commands.get(f'approve {gate.gate}', '')}")
        if status.phase == "paused" and status.stopped is not None and f"stop:{status.stopped.at}" not in self.told:
            self.told.add(f"stop:{status.stopped.at}")
            say(f">>> the line stopped: {status.stopped.reason}")
            for entry in status.cutovers:
                if entry.state in ("rolled-back", "failed") or entry.phase == "rolling-back":
                    say(f"    {entry.name}: {entry.state} ({entry.phase}); verdict: {entry.verdict or 'not read yet'}")
            if self.auto:
                await asyncio.sleep(3)
                say(">>> --auto-approve: resuming (the failing API rolls back by itself; the others may go on)")
                await self._update(handle, "resume", {"by": BY, "reason": f"{FAILING} rolled back; the rest may go"})
            else:
                say(">>> decide: resume (the next cutovers start) or abort (none starts; those in flight are aborted)")
                print(f"      {self._starter(f'campaign resume {status.workflow_id} --reason ...')}")
                print(f"      {self._starter(f'campaign abort {status.workflow_id} --reason ...')}")
                print(f"      or: {status.commands.get('resume', '')}")

    async def _update(self, handle: Any, name: str, request: Any) -> None:
        try:
            say(f"    {await handle.execute_update(name, request, result_type=str)}")
        except WorkflowUpdateFailedError as exc:
            say(f"    refused: {exc.cause}")

    def _starter(self, arguments: str) -> str:
        return f"TEMPORAL_ADDRESS={self.topo.temporal_address} {Path(sys.executable)} starter.py {arguments}"


async def run_campaign_demo(args: argparse.Namespace) -> int:
    """Bring the sandbox up with six APIs, run the campaign under load, report; keep running unless told."""
    names = fleet.api_names(APIS)
    rate = max(2.0, args.rate / APIS)
    workdir = Path(args.workdir)
    say(f"starting the sandbox with {APIS} APIs in {workdir} (wiped first; logs in {workdir}/logs)")
    async with Topology(
        workdir,
        ports=args.ports,
        timings=campaign_timings(rate),
        extra_records=fleet.zone_lines(names, campaign_timings(rate).record_ttl),
        extra_hosts=fleet.hosts(names),
        echo=lambda s: say("  " + s),
    ) as topo:
        await fleet.create_services(topo, names)
        settings = {
            "name": "sandbox-fleet",
            "waves": [1, 2, "rest"],
            "max_in_flight": 3,
            "stop_on": {"rollbacks": 1},
            "on_stop": "finish",
            "approvals": {"per_wave": "flip"},
            "poll_interval": "1s",
        }
        path = fleet.write_campaign(topo, workdir / "campaign", names, settings)
        loaded = load_campaign(str(path))
        say(f"campaign: {path} ({len(names)} APIs in waves {[len(w) for w in loaded.campaign.waves]})")
        say(f"web UI: {topo.workflow_url(loaded.campaign.workflow_id)}")
        loads = {name: LoadGenerator(fleet.route_url(topo, name), rate=rate, timeout=5.0) for name in names}
        for load in loads.values():
            load.start()
        began = time.time()
        say(f"client load: {rate:g} requests/s on each API's route through Kong")
        await asyncio.sleep(3)
        client = await topo.temporal_client()
        await start_campaign(client, TemporalSettings(address=topo.temporal_address, ui_url=topo.ui_url), loaded)
        say(f"started {loaded.campaign.workflow_id} (as `python starter.py campaign start {path}` does)")
        follower = Follower(topo, client, loaded, args.auto_approve, began)
        final = await follower.follow()
        await asyncio.sleep(3)
        for load in loads.values():
            await load.stop()
        code = report(topo, final, loads, follower, began)
        if not args.exit_when_done:
            say("everything keeps running so you can look around; Ctrl-C stops it all")
            await asyncio.Event().wait()
        return code


def report(
    topo: Topology, final: CampaignStatus, loads: dict[str, LoadGenerator], follower: Follower, began: float
) -> int:
    """What every API's clients saw, the chart, and whether the campaign did what it should."""
    summaries = {name: load.summary(bucket_seconds=2.0) for name, load in loads.items()}
    chart = render_fleet_chart(
        {name: ((s.started_at or began) - began, s) for name, s in summaries.items()},
        topo.workdir / "campaign.png",
        events=follower.events,
        phases=follower.phases,
    )
    (topo.workdir / "campaign-status.json").write_text(final.model_dump_json(indent=1))
    say(f"== campaign {final.phase}: {final.error or 'every cutover completed'}")
    for name, summary in summaries.items():
        entry = final.entry(name)
        say(
            f"   {name}: {entry.state:<11} {summary.requests} requests, {summary.failed} failed, "
            f"A {100 * (summary.share('A') or 0):.0f}% / B {100 * (summary.share('B') or 0):.0f}%"
        )
    say(f"chart: {chart}   (status: {topo.workdir / 'campaign-status.json'})")
    expected = {name: ("rolled-back" if name == FAILING else "completed") for name in summaries}
    states = {name: final.entry(name).state for name in summaries}
    clean = all(summaries[name].failed == 0 for name in summaries if name != FAILING)
    ok = states == expected and clean
    if ok:
        say("RESULT: OK: the line stopped on the failing B, every other API moved with zero failed requests")
    else:
        say(f"RESULT: FAILED: states {json.dumps(states)}; failed requests outside {FAILING}: {not clean}")
    return 0 if ok else 1
