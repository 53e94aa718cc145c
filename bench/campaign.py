"""Campaign: many cutovers in waves through ONE CampaignWorkflow on ONE worker.

    .venv/bin/python -m bench.campaign [--count 200] [--waves 1,9,40,150] [--max-in-flight 50]
                                       [--rate-per-route 0.5] [--poll-interval 5s]
                                       [--json out.json] [--keep]

Targets (issue 13): every cutover completes; wall time compared with the floor; worker peak RSS;
the campaign's history events (all its runs, continue-as-new included).

A fresh sandbox holds ``count`` APIs (sandbox/fleet.py: a record, a Kong Service and a route each),
each with an open-loop load of ``--rate-per-route`` requests/s (``monitor.min_requests`` fitted to it
as in bench.scale). The campaign file and one plan per API are written as an operator would and
started as ``python starter.py campaign start`` does, with no human gate (``approvals.per_wave:
none``) and a line that never stops (``stop_on.error_budget: 100%``), so the figure is the
orchestration's, not a human's. Plans leave A in place (it serves every API).

The floor is measured in the same run: for each wave, its cutovers' mandatory waits (the waits
each run's status lists: old TTL, drain, monitoring window) -- the longest one, or the median times
the number of rounds ``max_in_flight`` forces (ceil(size / max_in_flight)), whichever is larger --
summed over the waves. Wall time is from the start call to the campaign's close.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from collections import Counter
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from bench.common import (
    BenchError,
    RssSampler,
    bench_topology,
    common_arguments,
    component_cpu,
    load_average,
    print_facts,
    proc_status_kib,
    quiet_start,
    run_main,
    say,
    settings_for,
    write_report,
)
from bench.scale import fitted_timings, start_loads
from cli.campaign import load_campaign, start_campaign
from models.campaign_status import CampaignStatus
from models.durations import parse_duration
from models.workflow import CutoverStatus
from sandbox import fleet

RSS_TARGET_MIB = 400.0


async def statuses(client: Client, workflow_ids: list[str]) -> dict[str, CutoverStatus | None]:
    """Each cutover's final status (20 queries at a time); None when it can't be read."""
    semaphore = asyncio.Semaphore(20)

    async def one(workflow_id: str) -> CutoverStatus | None:
        async with semaphore:
            try:
                status: CutoverStatus = await client.get_workflow_handle(workflow_id).query(
                    "status", result_type=CutoverStatus
                )
                return status
            except RPCError:
                return None

    return dict(zip(workflow_ids, await asyncio.gather(*(one(w) for w in workflow_ids)), strict=True))


def floor_seconds(waves: list[list[str]], waits: dict[str, float], max_in_flight: int) -> tuple[float, list[float]]:
    """The floor (see the module docstring) and each wave's part of it."""
    parts = []
    for names in waves:
        known = [waits[n] for n in names if n in waits]
        if not known:
            parts.append(0.0)
            continue
        rounds = math.ceil(len(names) / max_in_flight)
        parts.append(max(max(known), rounds * statistics.median(known)))
    return sum(parts), parts


async def campaign_history(client: Client, workflow_id: str) -> list[tuple[str, int, int]]:
    """Every run of the campaign (continue-as-new chain): run id, history events, history bytes."""
    runs = []
    async for execution in client.list_workflows(f"WorkflowId='{workflow_id}'"):
        history = await client.get_workflow_handle(workflow_id, run_id=execution.run_id).fetch_history()
        runs.append((execution.run_id, len(history.events), sum(e.ByteSize() for e in history.events)))
    return runs


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One sandbox, one campaign of ``count`` cutovers; the figures."""
    names = fleet.api_names(args.count)
    timings = fitted_timings(args.rate_per_route)
    async with bench_topology(
        args.keep,
        timings=timings,
        extra_records=fleet.zone_lines(names, timings.record_ttl),
        extra_hosts=fleet.hosts(names),
    ) as topo:
        await fleet.create_services(topo, names)
        settings = {
            "name": "bench",
            "waves": args.waves,
            "max_in_flight": args.max_in_flight,
            "stop_on": {"error_budget": "100%"},
            "approvals": {"per_wave": "none"},
            "poll_interval": args.poll_interval,
        }
        path = fleet.write_campaign(topo, topo.workdir / "campaign", names, settings)
        loaded = load_campaign(str(path))
        campaign = loaded.campaign
        client = await topo.temporal_client()
        worker_pid = topo.components["worker"].pid
        if worker_pid is None:
            raise BenchError("the worker has no process")
        loads = await start_loads(topo, names, args.rate_per_route)
        try:
            await asyncio.sleep(5.0)
            cpu_before = component_cpu(topo)
            async with RssSampler(worker_pid) as sampler:
                began = time.time()
                await start_campaign(client, settings_for(topo), loaded)
                handle = client.get_workflow_handle(campaign.workflow_id, result_type=CampaignStatus)
                try:
                    final: CampaignStatus = await handle.result()
                except WorkflowFailureError:
                    final = await handle.query("status", result_type=CampaignStatus)
                wall = time.time() - began
                peak_kib = proc_status_kib(worker_pid, "VmHWM")
            cpu_after = component_cpu(topo)
            load_during = load_average()
        finally:
            await asyncio.gather(*(load.stop() for load in loads))
        children = await statuses(client, [p.workflow_id for p in campaign.plans])
        runs = await campaign_history(client, campaign.workflow_id)
    waits = {
        name: sum(w.seconds for w in status.waits)
        for name, status in zip([p.name for p in campaign.plans], children.values(), strict=True)
        if status is not None and status.phase == "completed"
    }
    floor, parts = floor_seconds([list(w) for w in campaign.waves], waits, args.max_in_flight)
    not_completed = Counter(f"{e.state}: {(e.error or '')[:120]}" for e in final.cutovers if e.state != "completed")
    return {
        "count": args.count,
        "waves": [len(w) for w in campaign.waves],
        "max_in_flight": args.max_in_flight,
        "phase": final.phase,
        "completed": sum(1 for e in final.cutovers if e.state == "completed"),
        "not_completed": not_completed.most_common(),
        "wall_seconds": wall,
        "floor_seconds": floor,
        "floor_per_wave": parts,
        "worker_peak_rss_mib": (peak_kib or 0) / 1024,
        "worker_peak_rss_sampled_mib": (sampler.peak_sampled_kib or 0) / 1024,
        "cpu_seconds": {name: cpu_after[name] - cpu_before[name] for name in cpu_after if name in cpu_before},
        "campaign_runs": [{"run_id": r, "events": n, "bytes": b} for r, n, b in runs],
        "campaign_history_events": sum(n for _, n, _ in runs),
        "load_average_during": load_during,
        "min_requests": timings.min_requests,
    }


def render(result: dict[str, Any]) -> list[str]:
    """The figures, as printed."""
    runs = result["campaign_runs"]
    largest = max((r["events"] for r in runs), default=0)
    ratio = result["wall_seconds"] / result["floor_seconds"] if result["floor_seconds"] else float("nan")
    lines = [
        f"== campaign of {result['count']} cutovers in waves {result['waves']}, at most {result['max_in_flight']} "
        f"in flight, one worker: {result['phase']}, {result['completed']}/{result['count']} completed "
        f"({'PASS' if result['completed'] == result['count'] else 'MISS'})",
        f"  wall time {result['wall_seconds']:.1f} s vs floor {result['floor_seconds']:.1f} s "
        f"(x{ratio:.2f}; floor per wave: {', '.join(f'{p:.0f}' for p in result['floor_per_wave'])} s)",
        f"  worker peak RSS {result['worker_peak_rss_mib']:.0f} MiB (VmHWM; sampled "
        f"{result['worker_peak_rss_sampled_mib']:.0f} MiB) -> "
        f"{'PASS' if result['worker_peak_rss_mib'] < RSS_TARGET_MIB else 'MISS'} (< {RSS_TARGET_MIB:.0f} MB)",
        f"  campaign history: {result['campaign_history_events']} events in {len(runs)} run(s) "
        f"(largest run {largest} events, {max((r['bytes'] for r in runs), default=0) / 1024:.0f} KiB; "
        "Temporal warns at 10,240 and stops at 51,200)",
        "  CPU seconds during the campaign: "
        + ", ".join(f"{n} {s:.1f}" for n, s in sorted(result["cpu_seconds"].items(), key=lambda kv: -kv[1])),
    ]
    lines += [f"  NOT completed ({times}x): {why}" for why, times in result["not_completed"]]
    return lines


async def main(args: argparse.Namespace) -> None:
    facts = print_facts(
        f"bench.campaign: {args.count} cutovers in waves {args.waves}, max_in_flight {args.max_in_flight}"
    )
    load_at_start = await quiet_start(args)
    result = await measure(args)
    result["load_average_at_start"] = load_at_start
    for line in render(result):
        say(line)
    write_report(args, "campaign", facts, {"targets": {"rss_mib": RSS_TARGET_MIB}, "result": result})


def wave_list(text: str) -> list[int | str]:
    """``1,9,40,150`` or ``1,25%,rest``: the campaign's waves."""
    out: list[int | str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        out.append(int(part) if part.isdigit() else part)
    if not out:
        raise argparse.ArgumentTypeError("give at least one wave")
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.campaign", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="cutovers in the campaign (200; at most 999)")
    parser.add_argument("--waves", type=wave_list, default=[1, 9, 40, 150], help="wave sizes (1,9,40,150)")
    parser.add_argument("--max-in-flight", type=int, default=50, help="cutovers at once (50)")
    parser.add_argument("--rate-per-route", type=float, default=0.5, help="client requests/s on each route (0.5)")
    parser.add_argument(
        "--poll-interval", default="5s", type=lambda t: str(parse_duration(t).total_seconds()) + "s",
        help="how often the campaign reads its cutovers' phases (5s)",
    )  # fmt: skip
    common_arguments(parser)
    return parser


if __name__ == "__main__":
    raise SystemExit(run_main(main, build_parser()))
