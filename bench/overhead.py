"""Overhead: a whole cutover's wall time minus the waits it must do. Target: at most 2 s on the sandbox.

    .venv/bin/python -m bench.overhead [--runs 5] [--strategy cname|alias] [--approvals auto|off]
                                       [--rate 20] [--no-dry-run] [--json out.json] [--keep]

Each run gets a fresh sandbox (sandbox/topology/, free ports, a temporary directory) with the
sandbox plan (sandbox/plans/<strategy>.yaml, its short timings, ``min_requests`` fitted to the load as
the demo does), a steady client load through Kong (the monitor and the drain proof need traffic),
first a dry run (``starter.py plan``, as an operator does before a real run; it also means the
worker has run the workflow once), then the measured cutover, started as ``starter.py start`` does.
Gates are approved by the benchmark through the ``approve`` update as soon as visibility shows them
(``--approvals auto``), or switched off in the plan (``--approvals off``).

Wall time runs from the ``start_workflow`` call to the result. Mandatory waits are read from the
run's status (bench/figures.py): TTL and cache timers, the monitoring window, gate time, and the
readiness spacing; the *strict* figure counts the readiness spacing as overhead, as the issue's
list of mandatory waits does not name it.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bench.common import (
    BenchError,
    GateApprover,
    bench_topology,
    common_arguments,
    dry_run,
    event_rows,
    load_average,
    print_facts,
    quiet_start,
    require_completed,
    run_main,
    run_timed,
    say,
    settings_for,
    write_report,
)
from bench.figures import (
    OverheadBreakdown,
    PlanWaits,
    Spread,
    derive_overhead,
    median,
    phase_medians,
    render_items,
    render_run_line,
    target_mark,
    task_times,
)
from models.plan import CutoverPlan
from sandbox.demo import demo_timings
from sandbox.load import LoadGenerator
from sandbox.topology import Topology

TARGET_SECONDS = 2.0
WARMUP_SECONDS = 3.0
"""Load before the run, so the baseline (A's error ratio) has requests."""


def plan_for(topo: Topology, strategy: str, approvals: str) -> CutoverPlan:
    """The sandbox plan for this topology; gates switched off with ``--approvals off``."""
    overrides: dict[str, Any] = {}
    if approvals == "off":
        overrides["approvals"] = {"flip": False, "decommission": False}
    return CutoverPlan.model_validate(topo.render_plan("alias" if strategy == "alias" else "cname", **overrides))


async def measure_once(args: argparse.Namespace, index: int) -> tuple[OverheadBreakdown, dict[str, Any]]:
    """One fresh sandbox, one measured cutover."""
    async with bench_topology(args.keep, timings=demo_timings(args.rate)) as topo:
        plan = plan_for(topo, args.strategy, args.approvals)
        client = await topo.temporal_client()
        settings = settings_for(topo)
        async with LoadGenerator(f"{topo.kong_proxy_url}/orders/v1/orders", rate=args.rate) as load:
            await asyncio.sleep(WARMUP_SECONDS)
            if args.dry_run:
                planned = await dry_run(client, settings, plan)
                if planned.status.phase != "planned":
                    raise BenchError(f"the dry run ended {planned.status.phase}: {planned.error}")
            async with GateApprover(client) as approver:
                run = await run_timed(client, settings, plan)
        require_completed(run)
        breakdown = derive_overhead(run.status, PlanWaits.of(plan), run.called_at, run.result_at)
        history = await client.get_workflow_handle(run.workflow_id).fetch_history()
        record = {
            "run": index,
            "workflow_id": run.workflow_id,
            "wall": breakdown.wall,
            "overhead": breakdown.overhead,
            "strict_overhead": breakdown.strict_overhead,
            "mandatory": [w.__dict__ for w in breakdown.mandatory],
            "items": [i.__dict__ for i in breakdown.items],
            "history_events": len(history.events),
            "task_times": task_times(event_rows(history)).__dict__,
            "load": {"requests": len(load.records), "failed": load.summary().failed},
            "approvals": len(approver.approved),
            "warnings": list(run.status.warnings),
        }
        return breakdown, record


async def main(args: argparse.Namespace) -> None:
    facts = print_facts(f"bench.overhead: {args.runs} x {args.strategy} cutover, approvals {args.approvals}")
    load_before = load_average()
    say(
        f"each run: fresh sandbox, load {args.rate:g} req/s through Kong, "
        + ("a dry run first, " if args.dry_run else "no dry run (cold worker), ")
        + ("gates approved by the benchmark as soon as visibility shows them" if args.approvals == "auto" else "")
        + ("gates off in the plan" if args.approvals == "off" else "")
    )
    breakdowns: list[OverheadBreakdown] = []
    records = []
    for index in range(1, args.runs + 1):
        load_at_start = await quiet_start(args)
        breakdown, record = await measure_once(args, index)
        record["load_average"] = {"start": load_at_start, "end": load_average()}
        breakdowns.append(breakdown)
        records.append(record)
        say(
            render_run_line(f"run {index}/{args.runs}", breakdown)
            + f", {record['history_events']} history events, load average {load_at_start:.2f} at start"
        )
        if record["load"]["failed"]:
            say(f"  note: {record['load']['failed']} client request(s) failed during this run")
    load_after = load_average()
    overhead = Spread.of([b.overhead for b in breakdowns])
    strict = Spread.of([b.strict_overhead for b in breakdowns])
    say("")
    say(f"== overhead per cutover ({args.strategy}, approvals {args.approvals})")
    say(f"  overhead:        {overhead.render()}")
    say(f"  strict overhead: {strict.render()}   (readiness spacing counted as overhead)")
    say(f"  wall:            {Spread.of([b.wall for b in breakdowns]).render()}")
    say(
        f"  target <= {TARGET_SECONDS:g} s: overhead median {target_mark(overhead.median, TARGET_SECONDS)}, "
        f"max {target_mark(overhead.max, TARGET_SECONDS)}; strict median "
        f"{target_mark(strict.median, TARGET_SECONDS)}, max {target_mark(strict.max, TARGET_SECONDS)}"
    )
    say("  where the overhead goes (median per phase across runs):")
    phases = phase_medians(breakdowns)
    for phase, seconds in phases.items():
        say(f"    {phase:<32} {seconds:6.3f} s")
    ordered = sorted(breakdowns, key=lambda b: b.overhead)
    middle = ordered[len(ordered) // 2]
    say(f"  largest items of the median run (overhead {middle.overhead:.3f} s):")
    for line in render_items(middle):
        say("  " + line)
    waits = {key: median([r["task_times"][key] for r in records]) for key in records[0]["task_times"]}
    say(
        "  from the histories (median per run): workflow tasks waited {workflow_task_wait:.3f} s and ran "
        "{workflow_task_run:.3f} s ({workflow_tasks:.0f} tasks); activities waited {activity_wait:.3f} s for the "
        "worker ({activities:.0f} activities)".format(**waits)
    )
    say(f"  load average: {load_before:.2f} before, {load_after:.2f} after")
    write_report(
        args,
        "overhead",
        facts,
        {
            "target_seconds": TARGET_SECONDS,
            "overhead": overhead.__dict__,
            "strict_overhead": strict.__dict__,
            "phase_medians": phases,
            "runs": records,
        },
        (load_before, load_after),
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured cutovers, each on a fresh sandbox (5)")
    parser.add_argument("--strategy", choices=["cname", "alias"], default="cname")
    parser.add_argument("--approvals", choices=["auto", "off"], default="auto")
    parser.add_argument("--rate", type=float, default=20.0, help="client requests per second through Kong (20)")
    parser.add_argument("--no-dry-run", dest="dry_run", action="store_false", help="measure a cold worker")
    common_arguments(parser)
    return parser


if __name__ == "__main__":
    raise SystemExit(run_main(main, build_parser()))
