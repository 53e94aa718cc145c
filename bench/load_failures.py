"""Failed client requests during a clean cutover at 50 req/s through Kong. Target: 0.

    .venv/bin/python -m bench.load_failures [--strategies cname,alias] [--rate 50] [--runs 1]
                                            [--json out.json] [--keep]

For each strategy, a fresh sandbox with the sandbox plan (``min_requests`` fitted to the load as the
demo does), an open-loop client load through the Kong emulator (sandbox/load.py: every request is
scheduled on time whether or not earlier ones were answered, so a stall shows as failures or
latency, not as fewer requests), the gates approved by the benchmark, and the load kept going
a few seconds before the start and after the end. A failure is any answer that is not 2xx, or no
answer (connection error, 10 s timeout).

The share served by A and B is reported per segment of the run, bounded by the run's own timeline:
before the flip, from the flip until monitoring starts (Kong's caches draining), during monitoring
and the decommission, and after the run (A deleted by the decommission).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import (
    GateApprover,
    bench_topology,
    common_arguments,
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
from bench.figures import Segment, render_shares, segments
from models.plan import CutoverPlan
from models.workflow import CutoverStatus
from sandbox.demo import demo_timings
from sandbox.load import LoadGenerator, LoadSummary

WARMUP_SECONDS = 5.0
TAIL_SECONDS = 5.0


def segment_bounds(status: CutoverStatus, load_started: float, result_at: float) -> list[tuple[str, float]]:
    """Segment starts from the run's timeline: the first step of the flip, of monitoring, then the result."""

    def first_step(phase: str) -> float | None:
        return next((s.started_at.timestamp() for s in status.timeline if s.phase == phase), None)

    bounds = [("before the flip", load_started)]
    for label, phase in (
        ("flip -> monitoring (Kong draining A)", "flipping"),
        ("monitoring + decommission", "monitoring"),
    ):
        start = first_step(phase)
        if start is not None:
            bounds.append((label, start))
    bounds.append(("after the run (A deleted)", result_at))
    return bounds


def render_segment(item: Segment) -> str:
    """One segment: duration, requests, failures, shares."""
    failures = ", ".join(f"{k}: {v}" for k, v in sorted(item.failures.items())) or "none"
    return (
        f"    {item.label:<38} {item.end - item.start:6.1f} s  {item.requests:5d} req  "
        f"{render_shares(item.served, item.requests)}  failed {item.failed} ({failures})"
    )


async def measure_once(args: argparse.Namespace, strategy: str) -> tuple[LoadSummary, list[Segment], dict[str, Any]]:
    """One fresh sandbox, one clean cutover under load."""
    async with bench_topology(args.keep, timings=demo_timings(args.rate)) as topo:
        plan = CutoverPlan.model_validate(topo.render_plan("alias" if strategy == "alias" else "cname"))
        client = await topo.temporal_client()
        async with LoadGenerator(f"{topo.kong_proxy_url}/orders/v1/orders", rate=args.rate) as load:
            await asyncio.sleep(WARMUP_SECONDS)
            async with GateApprover(client):
                run = await run_timed(client, settings_for(topo), plan)
            await asyncio.sleep(TAIL_SECONDS)
        load_ended = time.time()
        require_completed(run)
        summary = load.summary()
        started = load.started_at or summary.started_at
        parts = segments(load.records, segment_bounds(run.status, started, run.result_at.timestamp()), load_ended)
        details = {
            "strategy": strategy,
            "workflow_id": run.workflow_id,
            "wall": run.wall,
            "summary": summary.to_json(),
            "segments": [
                {**p.__dict__, "share_A": p.share("A"), "share_B": p.share("B"), "failed": p.failed} for p in parts
            ],
            "runtime_a_running_after": topo.runtime_running("A"),
        }
        return summary, parts, details


async def main(args: argparse.Namespace) -> None:
    strategies: list[str] = args.strategies
    facts = print_facts(f"bench.load_failures: clean cutover at {args.rate:g} req/s, {', '.join(strategies)}")
    load_before = load_average()
    records = []
    totals: dict[str, int] = {}
    for strategy in strategies:
        for index in range(1, args.runs + 1):
            load_at_start = await quiet_start(args)
            summary, parts, details = await measure_once(args, strategy)
            details["load_average"] = {"start": load_at_start, "end": load_average()}
            records.append(details)
            totals[strategy] = totals.get(strategy, 0) + summary.failed
            say(
                f"== {strategy} strategy, run {index}/{args.runs}: cutover {details['wall']:.1f} s "
                f"(load average {load_at_start:.2f} at start)"
            )
            say(f"  requests {summary.requests} ({summary.requests / summary.duration:.1f}/s), failed {summary.failed}")
            failures = ", ".join(f"{k}: {v}" for k, v in sorted(summary.failures.items())) or "none"
            say(f"  failures by status: {failures}; not sent (client saturated): {summary.skipped}")
            p50, p95, worst = (
                1000 * (v or 0.0) for v in (summary.latency_p50, summary.latency_p95, summary.latency_max)
            )
            say(f"  latency p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {worst:.0f} ms")
            say("  share served by A / B per segment of the run:")
            for part in parts:
                say(render_segment(part))
    load_after = load_average()
    say("")
    say(f"== failed requests during a clean cutover at {args.rate:g} req/s (target 0)")
    for strategy, failed in totals.items():
        say(f"  {strategy:<6} {failed} failed over {args.runs} run(s) -> {'PASS' if failed == 0 else 'MISS'}")
    say(f"  load average: {load_before:.2f} before, {load_after:.2f} after")
    write_report(
        args,
        "load_failures",
        facts,
        {
            "failed_by_strategy": totals,
            "runs": records,
        },
        (load_before, load_after),
    )


def strategy_list(text: str) -> list[str]:
    """``cname,alias`` -> the strategies, each checked."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ("cname", "alias")]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"strategies are cname and/or alias, got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.load_failures", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--strategies", type=strategy_list, default=["cname", "alias"], help="comma-separated (cname,alias)"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="client requests per second through Kong (50)")
    parser.add_argument("--runs", type=int, default=1, help="cutovers per strategy, each on a fresh sandbox (1)")
    common_arguments(parser)
    return parser


if __name__ == "__main__":
    raise SystemExit(run_main(main, build_parser()))
