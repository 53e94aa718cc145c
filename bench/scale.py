"""Scale: many concurrent cutovers (one record each, one zone) on ONE worker.

    .venv/bin/python -m bench.scale [--counts 1,25,50,100,200] [--rate-per-route 0.5]
                                    [--approvals auto|off] [--readiness-timeout 5m]
                                    [--json out.json] [--keep]

Targets (issue 6), for 200 cutovers started at once: all complete; overhead per cutover within 10%
of the single-cutover figure; worker peak RSS under 400 MB (reported); history events per cutover
(reported).

For each count N, a fresh sandbox holds N extra records in the sandbox zone (``bench-001 20 A
127.0.0.2`` ..., Topology ``extra_records``; runtimes A and B answer their names, ``extra_hosts``),
and the benchmark creates N Kong Services (``bench-001`` with host ``bench-001.example.test``, route
``/bench-001``) through Kong's Admin API. Every cutover uses the sandbox cname plan for its own
record and Service, with two changes, both stated in the output:

* ``monitor.min_requests`` fits the light load: ``--rate-per-route`` requests/s on every route
  (0.5 by default: 100 req/s through Kong at N=200), so each window expects rate x window requests
  and needs half of them, as the demo fits it (sandbox/demo.py ``demo_timings``);
* the decommission webhook goes to a sink in the benchmark that records the call: the sandbox's
  receiver really stops runtime A, which serves every record, so the first cutover to finish
  would break the others. Each cutover still proves A drained for its own Service first.

``--readiness-timeout`` is a third, optional change: the sandbox plan gives B's readiness probe 30 s,
which a saturated machine may not meet (the run is then refused before any change, and counted as
not completed).

The N runs start at once (``start_workflow`` calls issued together, after one dry run warmed the
worker up); gates are approved through the ``approve`` update as soon as visibility shows them.
Overhead per cutover is derived from each run's own status as in bench/overhead.py; N=1 in the
same script is the single-cutover reference (same plan shape, same per-route load).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from bench.common import (
    BenchError,
    DecommissionSink,
    GateApprover,
    RssSampler,
    TimedRun,
    await_timed,
    bench_topology,
    common_arguments,
    component_cpu,
    dry_run,
    event_rows,
    load_average,
    machine_busy_share,
    machine_cpu,
    print_facts,
    proc_status_kib,
    quiet_start,
    run_main,
    say,
    seed_kong_services,
    settings_for,
    start_timed,
    write_report,
)
from bench.figures import (
    OverheadBreakdown,
    PlanWaits,
    Spread,
    TaskTimes,
    derive_overhead,
    item_medians,
    median,
    phase_medians,
    target_mark,
    task_times,
    within_ratio,
)
from models.durations import parse_duration
from models.plan import CutoverPlan
from sandbox.load import LoadGenerator
from sandbox.topology import Timings, Topology

RSS_TARGET_MIB = 400.0
RATIO_TARGET = 0.10
WARMUP_SECONDS = 5.0
NAME_PATTERN = re.compile(r"bench-\d{3}")


def record_names(count: int) -> list[str]:
    """``bench-001`` ... one per cutover (record, Kong Service, route and plan name alike)."""
    return [f"bench-{index:03d}" for index in range(1, count + 1)]


def fitted_timings(rate_per_route: float) -> Timings:
    """The sandbox timings, ``min_requests`` = half of what one route gets in a monitoring window."""
    timings = Timings()
    expected = rate_per_route * parse_duration(timings.monitor_window).total_seconds()
    return replace(timings, min_requests=max(1, min(timings.min_requests, int(expected / 2))))


def plan_for(
    topo: Topology,
    name: str,
    sink_url: str,
    approvals: str,
    readiness_timeout: str | None = None,
    decommission: str = "webhook",
) -> CutoverPlan:
    """The sandbox cname plan for one benchmark record, Service and decommission sink (or ``decommission: none``).

    The webhook's drain proof counts every Kong service A serves (the worker proves A drained itself),
    so it only passes once every run has moved its traffic off A: 25 runs started together flip
    together, 200 on a saturated machine don't, and the first to reach the decommission would be
    refused while A still serves the others (correctly: it must not be deleted). ``none`` leaves A.
    """
    timings = topo.timings
    data = topo.render_plan("cname", name=name, dns={"record": f"{name}.example.test."}, kong={"service": name})
    if readiness_timeout is not None:
        data["readiness"] = {**data["readiness"], "timeout": readiness_timeout}
    if decommission == "none":
        data["decommission"] = {"kind": "none"}
        return finish(data, approvals)
    data["decommission"] = {
        "kind": "webhook",
        "url": f"{sink_url}/projects/{name}",
        "method": "DELETE",
        "expect_status": [200],
        "quiet_period": timings.quiet_period,
        "drain_timeout": timings.drain_timeout,
    }
    return finish(data, approvals)


def finish(data: dict[str, Any], approvals: str) -> CutoverPlan:
    """The plan, with both gates off when ``approvals`` is ``off``."""
    if approvals == "off":
        data["approvals"] = {**data["approvals"], "flip": False, "decommission": False}
    return CutoverPlan.model_validate(data)


async def start_loads(topo: Topology, names: list[str], rate: float) -> list[LoadGenerator]:
    """One open-loop load per route, staggered over one period so the requests don't come in bursts."""
    loads = []
    period = 1.0 / rate
    for index, name in enumerate(names):
        load = LoadGenerator(f"{topo.kong_proxy_url}/{name}/orders", rate=rate)
        load.start()
        loads.append(load)
        await asyncio.sleep(period / len(names) if index + 1 < len(names) else 0)
    return loads


async def histories(topo: Topology, workflow_ids: list[str]) -> list[tuple[int, TaskTimes, int]]:
    """Events in each run's history, its task times and its size in bytes (fetched 20 at a time)."""
    client = await topo.temporal_client()
    semaphore = asyncio.Semaphore(20)

    async def one(workflow_id: str) -> tuple[int, TaskTimes, int]:
        async with semaphore:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
            size = sum(event.ByteSize() for event in history.events)
            return len(history.events), task_times(event_rows(history)), size

    return list(await asyncio.gather(*(one(w) for w in workflow_ids)))


def task_time_medians(times: list[TaskTimes]) -> dict[str, float]:
    """Median per cutover of each task-time sum."""
    names = ("workflow_task_wait", "workflow_task_run", "activity_wait", "activity_run", "workflow_tasks", "activities")
    return {name: median([float(getattr(t, name)) for t in times]) for name in names}


async def measure(args: argparse.Namespace, count: int) -> dict[str, Any]:
    """One fresh sandbox with ``count`` records and Services; ``count`` cutovers at once; the figures."""
    names = record_names(count)
    timings = fitted_timings(args.rate_per_route)
    extra_records = "\n".join(f"{name} {timings.record_ttl} A 127.0.0.2" for name in names)
    hosts = [f"{name}.example.test" for name in names]
    async with (
        bench_topology(args.keep, timings=timings, extra_records=extra_records, extra_hosts=hosts) as topo,
        DecommissionSink() as sink,
    ):
        await seed_kong_services(topo, names)
        plans = [
            plan_for(topo, name, sink.url, args.approvals, args.readiness_timeout, args.decommission) for name in names
        ]
        client = await topo.temporal_client()
        settings = settings_for(topo)
        worker_pid = topo.components["worker"].pid
        if worker_pid is None:
            raise BenchError("the worker has no process")
        loads = await start_loads(topo, names, args.rate_per_route)
        try:
            await asyncio.sleep(WARMUP_SECONDS)
            warm = await dry_run(client, settings, plans[0])
            if warm.status.phase != "planned":
                raise BenchError(f"the warm-up dry run ended {warm.status.phase}: {warm.error}")
            rss_before = proc_status_kib(worker_pid, "VmRSS") or 0
            cpu_before, machine_before = component_cpu(topo), machine_cpu()
            async with RssSampler(worker_pid) as sampler, GateApprover(client) as approver:
                began = time.time()
                started = await asyncio.gather(*(start_timed(client, settings, plan) for plan in plans))
                start_calls = time.time() - began
                runs: list[TimedRun] = list(
                    await asyncio.gather(*(await_timed(client, wid, called) for wid, called in started))
                )
                peak_kib = proc_status_kib(worker_pid, "VmHWM")
                load_avg_during = load_average()
            cpu_after, machine_after = component_cpu(topo), machine_cpu()
        finally:
            await asyncio.gather(*(load.stop() for load in loads))
        fetched = await histories(topo, [run.workflow_id for run in runs])
    events = [length for length, _, _ in fetched]
    completed_events = [
        float(n) for (n, _, _), run in zip(fetched, runs, strict=True) if run.status.phase == "completed"
    ]
    completed = [run for run in runs if run.status.phase == "completed"]
    not_completed = {run.workflow_id: f"{run.status.phase}: {run.error or run.status.error}" for run in runs}
    not_completed = {k: v for k, v in not_completed.items() if not v.startswith("completed")}
    reasons = Counter(NAME_PATTERN.sub("<record>", why)[:160] for why in not_completed.values())
    breakdowns: list[OverheadBreakdown] = [
        derive_overhead(run.status, PlanWaits.of(plan), run.called_at, run.result_at)
        for run, plan in zip(runs, plans, strict=True)
        if run.status.phase == "completed"
    ]
    total_wall = max(r.result_at for r in runs).timestamp() - min(r.called_at for r in runs).timestamp()
    requests = sum(len(load.records) for load in loads)
    failed = sum(load.summary().failed for load in loads)
    return {
        "count": count,
        "completed": len(completed),
        "not_completed": not_completed,
        "not_completed_reasons": reasons.most_common(),
        "overhead": Spread.of([b.overhead for b in breakdowns]).__dict__ if breakdowns else None,
        "strict_overhead": Spread.of([b.strict_overhead for b in breakdowns]).__dict__ if breakdowns else None,
        "wall": Spread.of([b.wall for b in breakdowns]).__dict__ if breakdowns else None,
        "phase_medians": phase_medians(breakdowns),
        "item_medians": item_medians(breakdowns, normalize=lambda text: NAME_PATTERN.sub("<record>", text))[:12],
        "total_wall": total_wall,
        "start_calls_seconds": start_calls,
        "worker_rss_before_mib": rss_before / 1024,
        "worker_peak_rss_mib": (peak_kib or 0) / 1024,
        "worker_peak_rss_sampled_mib": (sampler.peak_sampled_kib or 0) / 1024,
        "cpu_seconds": {name: cpu_after[name] - cpu_before[name] for name in cpu_after if name in cpu_before},
        "machine_busy": machine_busy_share(machine_before, machine_after),
        "history_events": Spread.of([float(e) for e in events]).__dict__,
        "history_events_completed": Spread.of(completed_events).__dict__ if completed_events else None,
        "task_times": task_time_medians([times for _, times, _ in fetched]),
        "history_kib": Spread.of([size / 1024 for _, _, size in fetched]).__dict__,
        "load": {"rate_per_route": args.rate_per_route, "requests": requests, "failed": failed},
        "min_requests": timings.min_requests,
        "decommission_calls": {"projects": len(sink.calls), "max_per_project": max(sink.calls.values(), default=0)},
        "approvals": len(approver.approved),
        "approval_attempts_failed": approver.failed_attempts,
        "approval_problems": approver.problems.most_common(5),
        "load_average_during": load_avg_during,
    }


def render(result: dict[str, Any]) -> list[str]:
    """The figures of one count."""
    count = result["count"]
    lines = [
        f"== {count} concurrent cutover(s) (load average {result['load_average_at_start']:.2f} at start): "
        f"{result['completed']}/{count} completed, "
        f"all started within {result['start_calls_seconds']:.2f} s, last result {result['total_wall']:.1f} s "
        "after the first start"
    ]
    if result["overhead"]:
        overhead, strict, wall = (Spread(**result[k]) for k in ("overhead", "strict_overhead", "wall"))
        lines += [
            f"  overhead per cutover:        {overhead.render()}",
            f"  strict overhead per cutover: {strict.render()}",
            f"  wall per cutover:            {wall.render()}",
        ]
        phases = ", ".join(f"{phase} {seconds:.2f}" for phase, seconds in result["phase_medians"].items())
        lines.append(f"  median overhead per phase (s): {phases}")
        lines.append("  largest overhead items (median across the cutovers):")
        lines += [f"    {seconds:6.3f} s  [{phase}] {what[:90]}" for phase, what, seconds in result["item_medians"][:8]]
    events = Spread(**result["history_events"])
    lines += [
        f"  worker RSS: {result['worker_rss_before_mib']:.0f} MiB before, peak {result['worker_peak_rss_mib']:.0f} MiB"
        f" (VmHWM; sampled {result['worker_peak_rss_sampled_mib']:.0f} MiB) -> "
        f"{target_mark(result['worker_peak_rss_mib'], RSS_TARGET_MIB)} (< {RSS_TARGET_MIB:.0f} MB)",
        "  CPU seconds during the runs: "
        + ", ".join(
            f"{name} {seconds:.1f}" for name, seconds in sorted(result["cpu_seconds"].items(), key=lambda kv: -kv[1])
        )
        + f"; machine busy {result['machine_busy']:.0%} of {os.cpu_count()} CPUs; 1-min load average at the end "
        f"{result['load_average_during']:.2f}",
        f"  history events per cutover: {events.render(unit='', digits=0)}"
        + (
            f"; completed runs only: {Spread(**result['history_events_completed']).render(unit='', digits=0)}"
            if result["history_events_completed"] and result["not_completed"]
            else ""
        )
        + (
            f"; {Spread(**result['history_kib']).render(unit='KiB', digits=0)} of history"
            if "history_kib" in result
            else ""
        ),
        "  per cutover (median), from its history: workflow tasks waited {workflow_task_wait:.2f} s and ran "
        "{workflow_task_run:.2f} s ({workflow_tasks:.0f} tasks); activities waited {activity_wait:.2f} s for the "
        "worker ({activities:.0f} activities)".format(**result["task_times"]),
        f"  client load: {result['load']['requests']} requests, {result['load']['failed']} failed; "
        f"decommission webhook called for {result['decommission_calls']['projects']} record(s), "
        f"at most {result['decommission_calls']['max_per_project']}x each",
    ]
    if result["approval_attempts_failed"]:
        lines.append(
            f"  approve updates that did not approve: {result['approval_attempts_failed']} "
            "(each one is a validation on the worker too): "
            + "; ".join(f"{times}x {why}" for why, times in result["approval_problems"])
        )
    for why, times in result["not_completed_reasons"]:
        lines.append(f"  NOT completed ({times}x): {why}")
    return lines


async def main(args: argparse.Namespace) -> None:
    facts = print_facts(f"bench.scale: concurrent cutovers on one worker, counts {args.counts}")
    timings = fitted_timings(args.rate_per_route)
    say(
        f"plan: sandbox cname plan per record; monitor window {timings.monitor_window}, min_requests "
        f"{timings.min_requests} (load {args.rate_per_route:g} req/s per route); decommission {args.decommission}"
        f"{' (to the benchmark sink after the drain proof)' if args.decommission == 'webhook' else ' (A stays)'}; "
        f"approvals {args.approvals}; readiness timeout "
        f"{args.readiness_timeout or 'as in the sandbox plan (30s)'}"
    )
    results = []
    for count in args.counts:
        load_at_start = await quiet_start(args)
        result = await measure(args, count)
        result["load_average_at_start"] = load_at_start
        results.append(result)
        for line in render(result):
            say(line)
    say("")
    say("== scale summary")
    reference = next((r for r in results if r["count"] == 1 and r["overhead"]), None)
    reference_median = reference["overhead"]["median"] if reference else args.reference
    for result in results:
        count = result["count"]
        all_done = "PASS" if result["completed"] == count else "MISS"
        parts = [f"  N={count:<4} completed {result['completed']}/{count} ({all_done})"]
        if result["overhead"] and reference_median:
            median_overhead = result["overhead"]["median"]
            ratio = median_overhead / reference_median - 1
            mark = "PASS" if within_ratio(median_overhead, reference_median, RATIO_TARGET) else "MISS"
            parts.append(
                f"overhead median {median_overhead:.2f} s ({ratio:+.0%} vs N=1 {reference_median:.2f} s: {mark})"
            )
        parts.append(f"peak RSS {result['worker_peak_rss_mib']:.0f} MiB")
        parts.append(f"history {result['history_events']['median']:.0f} events/cutover")
        parts.append(f"total {result['total_wall']:.0f} s")
        say(", ".join(parts))
    for count in sorted({r["count"] for r in results}):
        runs = [r for r in results if r["count"] == count]
        if len(runs) > 1:
            whole = sum(r["completed"] == count for r in runs)
            say(f"  N={count}: every cutover completed in {whole} of {len(runs)} runs")
    write_report(
        args,
        "scale",
        facts,
        {
            "targets": {"rss_mib": RSS_TARGET_MIB, "overhead_ratio": RATIO_TARGET},
            "results": results,
        },
    )


def count_list(text: str) -> list[int]:
    """``1,50,200`` -> the counts, each at least 1 and at most 999 (three-digit record names)."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"counts are comma-separated integers, got {text!r}") from exc
    if not counts or any(not 1 <= count <= 999 for count in counts):
        raise argparse.ArgumentTypeError(f"counts must be between 1 and 999, got {text!r}")
    return counts


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--counts",
        type=count_list,
        default=[1, 25, 50, 100, 200],
        help="cutovers at once (1,25,50,100,200); a count given again is run again on a fresh sandbox",
    )
    parser.add_argument("--rate-per-route", type=float, default=0.5, help="client requests/s on each route (0.5)")
    parser.add_argument("--approvals", choices=["auto", "off"], default="auto")
    parser.add_argument(
        "--decommission",
        choices=["none", "webhook"],
        default="none",
        help="none (A serves every record: it stays); webhook: to a sink, after the drain proof across every "
        "Kong service, which passes only once all runs have flipped",
    )
    parser.add_argument(
        "--readiness-timeout", help="override the plan's readiness.timeout (the sandbox plan's is 30s), e.g. 5m"
    )
    parser.add_argument(
        "--reference", type=float, default=None, help="single-cutover overhead (s) when the counts lack 1"
    )
    common_arguments(parser)
    return parser


if __name__ == "__main__":
    raise SystemExit(run_main(main, build_parser()))
