"""Cost per cutover against the Temporal floor: worker CPU for real cutovers vs a null workflow of the same shape.

    .venv/bin/python -m bench.cost [--count 25] [--rounds 2] [--rate-per-route 0.5] [--profile DIR] [--json out.json]

Target (issue 13): a cutover costs the worker at most 2x what Temporal itself costs it for a
workflow of the same shape.

One sandbox, one worker (bench/cost_worker.py: ``worker.py`` itself plus the null workflow of
bench/null_workflow.py), one dev server. A round: ``--count`` real cutovers (bench.scale's: the
sandbox cname plan on its own record and Kong Service, gates approved through the ``approve`` update,
the decommission webhook to a sink) started at once; then as many null workflows, started at once,
each shaped like the first round's median real history (activities, timers of the same durations,
lock-like child workflows, updates and signals, which the benchmark sends, and the same summaries,
search-attribute and memo upserts and markers); and as many null workflows of the issue's literal
shape (the same without summaries, upserts, memo and markers). The client load on the round's
routes runs through all its phases, so they share the machine with the same traffic. ``--rounds``
rounds run one after the other, each on fresh records and Services, the two null phases in turns
first (real, null, issue's shape; real, issue's shape, null; ...), so that a machine getting busier
or quieter during the run weighs on every kind alike. The worker's CPU seconds (/proc, user +
system) are read around each phase; a ratio is the rounds' real CPU over their null CPU, and each
round's own ratios are printed beside it.

``--profile DIR`` profiles every Python thread of the worker with cProfile on thread CPU time and
prints where each phase's CPU went by component (TLS, HTTP client, DNS, pydantic, Temporal SDK,
cutover's own code...) and the largest functions. The profiler slows the worker down: the CPU
figures of a profiled run are not the cost; take those from a run without ``--profile``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import signal
import statistics
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory

from bench.common import (
    BenchError,
    DecommissionSink,
    GateApprover,
    await_timed,
    bench_topology,
    common_arguments,
    cpu_seconds,
    dry_run,
    load_average,
    print_facts,
    quiet_start,
    run_main,
    say,
    seed_kong_services,
    settings_for,
    start_timed,
    write_report,
)
from bench.null_workflow import NullShape, NullWorkflow
from bench.profile_view import by_component, top_functions
from bench.scale import fitted_timings, plan_for, record_names, start_loads
from sandbox.topology import Topology

RATIO_TARGET = 2.0
PATCH_VERSION_ATTRIBUTE = "TemporalChangeVersion"
PHASES = ("real", "null", "bare")
BARE_ITEMS = {"summaries": 0, "upserts": 0, "memos": 0, "markers": 0}
"""What the issue's literal shape leaves out (NullShape.bare)."""
"""A round's phases: real cutovers, null workflows making the same commands, null ones of the issue's shape."""
COUNTED = {
    "activities": EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    "children": EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
    "updates": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    "signals": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    "upserts": EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    "memos": EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
    "markers": EventType.EVENT_TYPE_MARKER_RECORDED,
    "summaries": EventType.EVENT_TYPE_UNSPECIFIED,
    "workflow_tasks": EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    "events": EventType.EVENT_TYPE_UNSPECIFIED,
}


def history_counts(history: WorkflowHistory) -> dict[str, Any]:
    """What one history holds: the counted items and its timers' durations (seconds, in order)."""
    counts: dict[str, Any] = dict.fromkeys(COUNTED, 0)
    counts["events"] = len(history.events)
    timers: list[float] = []
    started: dict[str, float] = {}
    for event in history.events:
        for name, kind in COUNTED.items():
            if kind and event.event_type == kind and not _patch_version(event):
                counts[name] += 1
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED and event.user_metadata.HasField(
            "summary"
        ):
            counts["summaries"] += 1  # a command's summary for the UI (the start's is the client's)
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            started[event.timer_started_event_attributes.timer_id] = (
                event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
            )
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            timers.append(started.pop(event.timer_fired_event_attributes.timer_id, 0.0))
    # Timers never fired were cancelled (a gate's approval timeout when the approval came) or are pending.
    counts["timers_cancelled"] = len(started)
    counts["timer_seconds"] = timers
    return counts


def _patch_version(event: HistoryEvent) -> bool:
    """An upsert of ``TemporalChangeVersion`` only: the SDK's own, made with each ``workflow.patched`` marker."""
    if event.event_type != EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
        return False
    fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    return set(fields) == {PATCH_VERSION_ATTRIBUTE}


def median_shape(counts: list[dict[str, Any]]) -> NullShape:
    """The null workflow's shape: the median real run's counts, the timers of the run with the median number."""
    if not counts:
        raise BenchError("no real run completed: no shape to copy")

    def med(name: str) -> int:
        return round(statistics.median(c[name] for c in counts))  # type: ignore[no-any-return]

    by_timers = sorted(counts, key=lambda c: len(c["timer_seconds"]))
    return NullShape(
        activities=med("activities"),
        timer_seconds=list(by_timers[len(by_timers) // 2]["timer_seconds"]),
        timers_cancelled=med("timers_cancelled"),
        children=med("children"),
        updates=med("updates"),
        signals=med("signals"),
        summaries=med("summaries"),
        upserts=med("upserts"),
        memos=med("memos"),
        markers=med("markers"),
    )


def use_cost_worker(topo: Topology, profile_dir: Path | None, queries: Path) -> None:
    """Run bench/cost_worker.py instead of worker.py (same arguments, environment and log)."""
    component = topo.components["worker"]
    script, *rest = component.argv[1:]
    if not script.endswith("worker.py"):
        raise BenchError(f"unexpected worker command: {component.argv}")
    profile = ["--profile", str(profile_dir)] if profile_dir else []
    count = ["--dns-queries", str(queries)]
    component.argv = [component.argv[0], "-m", "bench.cost_worker", *profile, *count, "--", *rest]


async def dns_queries(topo: Topology, path: Path) -> dict[str, dict[str, int]]:
    """The DNS messages the worker sent since the last call, by activity and type."""
    pid = topo.components["worker"].pid
    assert pid is not None
    await asyncio.to_thread(path.unlink, missing_ok=True)
    os.kill(pid, signal.SIGUSR2)
    for _ in range(100):
        if await asyncio.to_thread(path.exists):
            await asyncio.sleep(0.2)  # let the write finish
            counts: dict[str, dict[str, int]] = json.loads(await asyncio.to_thread(path.read_text))
            return counts
        await asyncio.sleep(0.1)
    raise BenchError(f"the worker wrote no DNS query counts to {path} within 10 s")


async def real_phase(topo: Topology, client: Client, names: list[str]) -> dict[str, Any]:
    """A real cutover per name, all at once; their results and histories' counts."""
    async with DecommissionSink() as sink:
        plans = [plan_for(topo, name, sink.url, "auto") for name in names]
        settings = settings_for(topo)
        warm = await dry_run(client, settings, plans[0])
        if warm.status.phase != "planned":
            raise BenchError(f"the warm-up dry run ended {warm.status.phase}: {warm.error}")
        async with GateApprover(client) as approver:
            marks = begin(topo)
            started = await asyncio.gather(*(start_timed(client, settings, plan) for plan in plans))
            runs = await asyncio.gather(*(await_timed(client, wid, at) for wid, at in started))
            spent = end(topo, marks)
    completed = [run for run in runs if run.status.phase == "completed"]
    counts = [history_counts(await client.get_workflow_handle(r.workflow_id).fetch_history()) for r in completed]
    return {
        **spent,
        "completed": len(completed),
        "not_completed": sorted(
            {f"{r.status.phase}: {r.error or r.status.error}"[:200] for r in runs if r.status.phase != "completed"}
        ),
        "counts": counts,
        "approvals": len(approver.approved),
        "approval_attempts_failed": approver.failed_attempts,
    }


async def null_phase(topo: Topology, client: Client, shape: NullShape, count: int, prefix: str) -> dict[str, Any]:
    """``count`` null workflows at once (ids ``<prefix>-NNN``), each sent the shape's updates and signals."""

    async def one(name: str, shape: NullShape) -> dict[str, Any]:
        handle = await client.start_workflow(NullWorkflow.run, shape, id=name, task_queue="cutover")
        for update in range(shape.updates):
            await handle.execute_update(NullWorkflow.approve, f"gate-{update}")
        for _ in range(shape.signals):
            await handle.signal(NullWorkflow.poke)
        await handle.result()
        return history_counts(await handle.fetch_history())

    # Warm-up (its first run imports the null workflow into the sandbox): the same items, no waiting.
    await one(f"{prefix}-warm-up", replace(shape, timer_seconds=[0.01 for _ in shape.timer_seconds]))
    marks = begin(topo)
    counts = await asyncio.gather(*(one(f"{prefix}-{i:03d}", shape) for i in range(count)))
    return {**end(topo, marks), "completed": len(counts), "counts": list(counts)}


def begin(topo: Topology) -> dict[str, float]:
    """CPU seconds of the worker and the dev server so far, and the time."""
    return {"worker": _cpu(topo, "worker"), "temporal": _cpu(topo, "temporal"), "time": time.monotonic()}


def end(topo: Topology, marks: dict[str, float]) -> dict[str, float]:
    """CPU seconds each used since ``marks``, and the wall time."""
    return {
        "worker_cpu": _cpu(topo, "worker") - marks["worker"],
        "temporal_cpu": _cpu(topo, "temporal") - marks["temporal"],
        "wall": time.monotonic() - marks["time"],
    }


def _cpu(topo: Topology, name: str) -> float:
    pid = topo.components[name].pid
    used = cpu_seconds(pid) if pid is not None else None
    if used is None:
        raise BenchError(f"the {name} process is gone")
    return used


async def dump_profile(topo: Topology, profile_dir: Path | None, expected: int) -> Path | None:
    """Ask the profiled worker to write what it profiled since the last dump; the file, once written."""
    if profile_dir is None:
        return None
    pid = topo.components["worker"].pid
    assert pid is not None
    os.kill(pid, signal.SIGUSR1)
    path = profile_dir / f"profile-{expected}.pstats"
    for _ in range(600):
        if path.exists():
            await asyncio.sleep(1.0)  # let the write finish
            return path
        await asyncio.sleep(0.1)
    say(f"  WARNING: the worker wrote no profile {path} within 60 s")
    return None


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The sandbox, the phases (real then null, ``--rounds`` times), the figures."""
    names = record_names(args.count * args.rounds)
    batches = [names[k * args.count : (k + 1) * args.count] for k in range(args.rounds)]
    timings = fitted_timings(args.rate_per_route)
    extra_records = "\n".join(f"{name} {timings.record_ttl} A 127.0.0.2" for name in names)
    hosts = [f"{name}.example.test" for name in names]
    profile_dir = args.profile.resolve() if args.profile else None
    rounds: list[dict[str, Any]] = []
    queries: dict[str, dict[str, int]] = {}
    real_profile = null_profile = None
    async with bench_topology(
        args.keep, timings=timings, extra_records=extra_records, extra_hosts=hosts, worker=False
    ) as topo:
        queries_file = topo.workdir / "dns-queries.json"
        use_cost_worker(topo, profile_dir, queries_file)
        await topo.start_worker()
        await seed_kong_services(topo, names)
        client = await topo.temporal_client()
        idle = begin(topo)
        await asyncio.sleep(10)
        idle_rate = end(topo, idle)
        shape: NullShape | None = None
        for number, batch in enumerate(batches, 1):
            # The client load of this round's routes runs through both of its phases, so they share the
            # machine with the same traffic through Kong, BIND and the runtimes and differ only by the workflow.
            loads = await start_loads(topo, batch, args.rate_per_route)
            try:
                await dump_profile(topo, profile_dir, 3 * number - 2)  # drops what came before
                await dns_queries(topo, queries_file)
                real = await real_phase(topo, client, batch)
                profiled = await dump_profile(topo, profile_dir, 3 * number - 1)
                real_profile = real_profile or profiled
                add_queries(queries, await dns_queries(topo, queries_file))
                shape = shape or median_shape(real["counts"])
                if number % 2 == 0:  # the two floors take turns going first
                    bare = await null_phase(topo, client, shape.bare(), args.count, f"bare-{number}")
                null = await null_phase(topo, client, shape, args.count, f"null-{number}")
                profiled = await dump_profile(topo, profile_dir, 3 * number) if profile_dir else None
                null_profile = null_profile or profiled
                if number % 2 == 1:
                    bare = await null_phase(topo, client, shape.bare(), args.count, f"bare-{number}")
            finally:
                await asyncio.gather(*(load.stop() for load in loads))
            rounds.append({"real": real, "null": null, "bare": bare, "load_average": load_average()})
    assert shape is not None
    return {
        "count": args.count,
        "idle_worker_cpu_per_s": idle_rate["worker_cpu"] / idle_rate["wall"],
        "rounds": [
            {phase: {k: v for k, v in one[phase].items() if k != "counts"} for phase in PHASES}
            | {"load_average": one["load_average"]}
            for one in rounds
        ],
        **{phase: combined([one[phase] for one in rounds]) for phase in PHASES},
        "shape": shape.__dict__,
        "real_history": summary([c for one in rounds for c in one["real"]["counts"]]),
        "null_history": summary([c for one in rounds for c in one["null"]["counts"]]),
        "bare_history": summary([c for one in rounds for c in one["bare"]["counts"]]),
        "profiles": {"real": str(real_profile), "null": str(null_profile)} if profile_dir else None,
        "dns_queries": queries,
        "load_average_during": load_average(),
    }


def combined(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds' figures of one kind of phase, added up (CPU, wall, completed runs, reasons)."""
    return {
        "worker_cpu": sum(p["worker_cpu"] for p in phases),
        "temporal_cpu": sum(p["temporal_cpu"] for p in phases),
        "wall": sum(p["wall"] for p in phases),
        "completed": sum(p["completed"] for p in phases),
        "not_completed": sorted({why for p in phases for why in p.get("not_completed", [])}),
    }


def add_queries(total: dict[str, dict[str, int]], more: dict[str, dict[str, int]]) -> None:
    """Add one phase's DNS message counts (by sender and type) to ``total``."""
    for sender, kinds in more.items():
        into = total.setdefault(sender, {})
        for kind, count in kinds.items():
            into[kind] = into.get(kind, 0) + count


def summary(counts: list[dict[str, Any]]) -> dict[str, float]:
    """Median of each counted item across runs."""
    return {name: statistics.median(c[name] for c in counts) for name in COUNTED} if counts else {}


def render(result: dict[str, Any]) -> list[str]:
    """The figures, as printed."""
    n = result["count"]
    rounds = result["rounds"]
    runs = n * len(rounds)
    real, null, bare = result["real"], result["null"], result["bare"]
    per = {phase: result[phase]["worker_cpu"] / runs for phase in PHASES}
    ratio, bare_ratio = ratio_of(per["real"], per["null"]), ratio_of(per["real"], per["bare"])
    shape = result["shape"]
    lines = [
        f"== {len(rounds)} round(s), each: {n} real cutovers at once, then {n} null workflows of the same shape "
        f"at once, then {n} of the issue's shape (activities, timers, children and messages only)",
        f"  completed: real {real['completed']}/{runs}, null {null['completed']}/{runs}, "
        f"issue's shape {bare['completed']}/{runs}",
        f"  shape copied: {shape['activities']} activities, {len(shape['timer_seconds'])} timers "
        f"({sum(shape['timer_seconds']):.0f} s) and {shape['timers_cancelled']} cancelled, "
        f"{shape['children']} child workflows, {shape['updates']} updates, {shape['signals']} signals; "
        f"{shape['summaries']} summaries, {shape['upserts']} search-attribute upserts, {shape['memos']} memo "
        f"upserts, {shape['markers']} markers",
        "  history (median): real " + ", ".join(f"{k} {v:g}" for k, v in result["real_history"].items()),
        "                    null " + ", ".join(f"{k} {v:g}" for k, v in result["null_history"].items()),
        "           issue's shape " + ", ".join(f"{k} {v:g}" for k, v in result["bare_history"].items()),
        *shape_warnings(shape, result["null_history"], result["bare_history"]),
        *round_lines(rounds, n),
        f"  worker CPU per cutover: real {per['real']:.3f} s, null {per['null']:.3f} s -> x{ratio:.2f} "
        f"({'PASS' if ratio <= RATIO_TARGET else 'MISS'}, target <= x{RATIO_TARGET:g}); "
        f"against the issue's shape {per['bare']:.3f} s -> x{bare_ratio:.2f} "
        f"({'PASS' if bare_ratio <= RATIO_TARGET else 'MISS'}); "
        f"idle worker {result['idle_worker_cpu_per_s'] * 1000:.1f} ms/s",
        f"  dev server CPU per cutover: real {real['temporal_cpu'] / runs:.3f} s, "
        f"null {null['temporal_cpu'] / runs:.3f} s, issue's shape {bare['temporal_cpu'] / runs:.3f} s",
        *dns_query_lines(result["dns_queries"], runs),
    ]
    if real["not_completed"]:
        lines += [f"  NOT completed: {why}" for why in real["not_completed"]]
    if result["profiles"]:
        for phase in ("real", "null"):
            if result["profiles"][phase] == "None":
                continue
            stats = pstats.Stats(result["profiles"][phase])
            total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
            lines.append(f"  profile of the {phase} phase: {total:.1f} CPU-s of Python in the worker, by component:")
            lines += [
                f"    {seconds:7.2f} s {seconds / total:5.1%}  {name}" for name, seconds in by_component(stats)[:14]
            ]
            lines.append("    largest functions (own CPU):")
            lines += [f"    {seconds:7.2f} s  {where}" for where, seconds in top_functions(stats, 12)]
    return lines


def shape_warnings(shape: Mapping[str, Any], null: Mapping[str, float], bare: Mapping[str, float]) -> list[str]:
    """A warning for every item the null workflows' histories hold a different number of than they were asked."""
    warnings = []
    for name in ("activities", "children", "updates", "signals", "summaries", "upserts", "memos", "markers"):
        for label, history, wanted in (("null", null, shape[name]), ("issue's shape", bare, BARE_ITEMS.get(name))):
            if wanted is None:
                wanted = shape[name]
            if name in history and history[name] != wanted:
                warnings.append(f"  WARNING: {label} workflows made {history[name]:g} {name}, the shape asked {wanted}")
    return warnings


def ratio_of(real: float, floor: float) -> float:
    """Real / floor (NaN without a floor)."""
    return real / floor if floor else float("nan")


def round_lines(rounds: list[dict[str, Any]], n: int) -> list[str]:
    """Each round's worker CPU per run by phase, and the ratios."""
    lines = []
    for number, one in enumerate(rounds, 1):
        real, null, bare = (one[phase]["worker_cpu"] / n for phase in PHASES)
        lines.append(
            f"  round {number}: real {real:.3f} s ({one['real']['wall']:.0f} s), "
            f"null {null:.3f} s ({one['null']['wall']:.0f} s) -> x{ratio_of(real, null):.2f}, "
            f"issue's shape {bare:.3f} s -> x{ratio_of(real, bare):.2f}; load average after {one['load_average']:.2f}"
        )
    return lines


def dns_query_lines(queries: dict[str, dict[str, int]], n: int) -> list[str]:
    """DNS messages the worker sent per cutover, by activity and by type."""
    total = sum(sum(kinds.values()) for kinds in queries.values())
    lines = [f"  DNS messages the worker sent per cutover: {total / n:.1f}"]
    for sender, kinds in sorted(queries.items(), key=lambda item: -sum(item[1].values())):
        detail = ", ".join(f"{kind} {count / n:.1f}" for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]))
        lines.append(f"    {sum(kinds.values()) / n:5.1f}  {sender}: {detail}")
    return lines


async def main(args: argparse.Namespace) -> None:
    facts = print_facts(f"bench.cost: worker CPU per cutover vs a null workflow, {args.count} at once")
    load_at_start = await quiet_start(args)
    result = await measure(args)
    result["load_average_at_start"] = load_at_start
    say(f"  load average at start {load_at_start:.2f}, at the end {result['load_average_during']:.2f}")
    for line in render(result):
        say(line)
    write_report(args, "cost", facts, {"targets": {"ratio": RATIO_TARGET}, "result": result})


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=25, help="cutovers (then null workflows) at once (25)")
    parser.add_argument("--rate-per-route", type=float, default=0.5, help="client requests/s on each route (0.5)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="real then null phases, this many times, on fresh records (2)"
    )
    parser.add_argument("--profile", type=Path, help="profile the worker; write and print its profiles (DIR)")
    common_arguments(parser)
    return parser


if __name__ == "__main__":
    raise SystemExit(run_main(main, build_parser()))
