"""Rollback time: from the unhealthy window to the record restored on every nameserver.

    .venv/bin/python -m bench.rollback [--runs 3] [--strategy cname|alias] [--rate 20]
                                       [--fail-delay 0] [--json out.json] [--keep]

Target (issue 6): at most one poll interval + 2 s.

Each run gets a fresh sandbox with the sandbox plan, a steady client load through Kong and the
flip gate approved by the benchmark. As soon as the run is seen in ``monitoring`` (status query
every 50 ms; plus ``--fail-delay`` seconds), the benchmark makes B answer 503
(``runtime_control("B", "fail", {"status": 503})``). Meanwhile it asks both nameservers for the
record every 20 ms with dnspython, so "restored" is what the nameservers really answered, not what
the workflow reports.

Instants reported (epoch clock; the workflow's timestamps share it):

* **failed**: just before the benchmark told B to fail;
* **detected**: the monitor's poll that judged the window unhealthy (its verdict's window end,
  from the run's final status); the monitor may call a window unhealthy only once it holds
  ``min_requests`` requests, so at low rates detection takes more than one poll;
* **A's address back**: the first moment both nameservers resolved the record to A's addresses
  again. Under Kong's legacy DNS client the workflow undoes an A->CNAME flip in two steps: first
  the record becomes a CNAME to a temporary name holding A's addresses (traffic goes back to A),
  and only once Kong's cached "no A record" has expired is the original A record put back;
* **record restored**: both nameservers answer the original record itself (its data; its TTL is
  the cutover TTL until the last undo, reported separately);
* **last client 5xx**: what the clients through Kong saw.

The figure compared with the target is *A's address back*, from detection (the issue's definition)
and from failure (includes detection); the original record's return is reported next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import (
    BenchError,
    DnsWatcher,
    GateApprover,
    await_timed,
    bench_topology,
    common_arguments,
    load_average,
    print_facts,
    quiet_start,
    run_main,
    say,
    settings_for,
    start_timed,
    write_report,
)
from bench.figures import RollbackTimes, Spread, first_on_all, last_failure, rollback_target, target_mark
from models.durations import parse_duration
from models.plan import CutoverPlan
from models.workflow import TERMINAL_PHASES, CutoverStatus
from sandbox.demo import demo_timings
from sandbox.load import LoadGenerator

WARMUP_SECONDS = 3.0
SETTLE_SECONDS = 3.0
"""How long the watcher keeps asking after the run ended (the last undo, the TTL, is proven by then)."""


async def wait_for_phase(handle: Any, phase: str, every: float = 0.05) -> CutoverStatus:
    """Poll the status query until the run is in ``phase``; a run that ends first is an error."""
    while True:
        status: CutoverStatus = await handle.query("status", result_type=CutoverStatus)
        if status.phase == phase:
            return status
        if status.phase in TERMINAL_PHASES:
            raise BenchError(f"{status.workflow_id} ended {status.phase} before {phase}: {status.error}")
        await asyncio.sleep(every)


async def measure_once(args: argparse.Namespace, index: int) -> tuple[RollbackTimes, dict[str, Any]]:
    """One fresh sandbox, one cutover rolled back because B fails while monitoring."""
    async with bench_topology(args.keep, timings=demo_timings(args.rate)) as topo:
        plan = CutoverPlan.model_validate(topo.render_plan(args.strategy))
        record = plan.dns.record
        client = await topo.temporal_client()
        url = f"{topo.kong_proxy_url}/orders/v1/orders"
        async with LoadGenerator(url, rate=args.rate) as load, DnsWatcher(topo.nameservers, record) as watcher:
            await asyncio.sleep(WARMUP_SECONDS)
            original = watcher.observations[0]
            async with GateApprover(client):
                workflow_id, called_at = await start_timed(client, settings_for(topo), plan)
                handle = client.get_workflow_handle(workflow_id)
                await wait_for_phase(handle, "monitoring")
                await asyncio.sleep(args.fail_delay)
                failed_at = time.time()
                await topo.runtime_control("B", "fail", {"status": 503})
                run = await await_timed(client, workflow_id, called_at)
            await asyncio.sleep(SETTLE_SECONDS)
        status = run.status
        if status.phase != "rolled-back":
            raise BenchError(f"{workflow_id} ended {status.phase}, not rolled-back: {run.error or status.error}")
        verdict = status.last_verdict
        if verdict is None or verdict.status != "unhealthy" or verdict.summary.window_end is None:
            raise BenchError(f"{workflow_id} rolled back without an unhealthy verdict: {status.error}")
        monitor_steps = [s for s in status.timeline if s.phase == "monitoring" and s.finished_at is not None]
        if not monitor_steps or monitor_steps[-1].finished_at is None:
            raise BenchError(f"{workflow_id}: no finished monitoring step in the timeline")
        servers = list(topo.nameservers)
        seen = watcher.observations
        flipped = [o for o in seen if o.addresses != original.addresses]
        if not flipped:
            raise BenchError(f"the nameservers never resolved {record} to anything but {original.addresses}")
        addresses_back_at = first_on_all(seen, servers, after=flipped[0].at, addresses=original.addresses)
        restored_at = first_on_all(seen, servers, after=flipped[0].at, answer=original.answer)
        if addresses_back_at is None or restored_at is None:
            raise BenchError(f"{record} was not seen restored ({original.answer}) on every nameserver")
        errors = [r.started for r in load.records if r.started >= failed_at and r.failure is not None]
        times = RollbackTimes(
            failed_at=failed_at,
            first_error_at=min(errors, default=None),
            detected_at=verdict.summary.window_end.timestamp(),
            monitor_done_at=monitor_steps[-1].finished_at.timestamp(),
            addresses_back_at=addresses_back_at,
            restored_at=restored_at,
            ttl_restored_at=first_on_all(seen, servers, after=flipped[0].at, answer=original.answer, ttl=original.ttl),
            ended_at=run.result_at.timestamp(),
            last_error_at=last_failure(load.records, failed_at),
        )
        proofs = [s for s in status.timeline if s.phase == "rolling-back"]
        details = {
            "run": index,
            "workflow_id": workflow_id,
            "times": times.__dict__,
            "from_detection": times.from_detection,
            "from_failure": times.from_failure,
            "record_from_detection": times.record_from_detection,
            "error": status.error,
            "rolling_back_steps": [
                {"step": s.step, "started_at": s.started_at.isoformat(), "finished_at": str(s.finished_at)}
                for s in proofs
            ],
            "compensations": [f"{c.id}: {c.state} {c.detail}" for c in status.compensations],
            "client_failures": load.summary().failures,
            "dns_observations": len(watcher.observations),
            "dns_errors": watcher.errors,
        }
        return times, details


def render_times(times: RollbackTimes) -> str:
    """The instants of one run relative to B failing."""

    def at(value: float | None) -> str:
        return "-" if value is None else f"+{value - times.failed_at:.3f} s"

    return (
        f"B fails +0.000 s; first client 5xx {at(times.first_error_at)}; unhealthy poll {at(times.detected_at)}; "
        f"workflow has the verdict {at(times.monitor_done_at)}; both nameservers resolve to A's address "
        f"{at(times.addresses_back_at)}; last client 5xx {at(times.last_error_at)}; original record on both "
        f"{at(times.restored_at)}; its TTL too {at(times.ttl_restored_at)}; result {at(times.ended_at)}"
    )


async def main(args: argparse.Namespace) -> None:
    facts = print_facts(f"bench.rollback: {args.runs} x {args.strategy} cutover, B fails while monitoring")
    load_before = load_average()
    poll_interval = demo_timings(args.rate).poll_interval
    results: list[RollbackTimes] = []
    records = []
    for index in range(1, args.runs + 1):
        load_at_start = await quiet_start(args)
        times, details = await measure_once(args, index)
        details["load_average"] = {"start": load_at_start, "end": load_average()}
        results.append(times)
        records.append(details)
        say(
            f"run {index}/{args.runs}: from detection {times.from_detection:.3f} s, "
            f"from failure {times.from_failure:.3f} s (load average {load_at_start:.2f} at start)"
        )
        say(f"  {render_times(times)}")
    load_after = load_average()
    poll = parse_duration(poll_interval).total_seconds()
    target = rollback_target(poll)
    detection = Spread.of([t.from_detection for t in results])
    failure = Spread.of([t.from_failure for t in results])
    say("")
    say(f"== rollback time ({args.strategy}; monitor poll interval {poll:g} s; target <= {target:g} s)")
    record = Spread.of([t.record_from_detection for t in results])
    clients = [t.last_error_at - t.failed_at for t in results if t.last_error_at is not None]
    say("  until every nameserver resolves the record to A's address again:")
    say(f"    from the unhealthy poll:  {detection.render(digits=3)}  -> {target_mark(detection.max, target)} (max)")
    say(f"    from B failing:           {failure.render(digits=3)}  -> {target_mark(failure.max, target)} (max)")
    say("  until every nameserver answers the original record itself (the last of a two-step undo):")
    say(f"    from the unhealthy poll:  {record.render(digits=3)}  -> {target_mark(record.max, target)} (max)")
    if clients:
        say(f"  clients through Kong: last failed request {Spread.of(clients).render(digits=3)} after B failed")
    steps = records[len(records) // 2]["rolling_back_steps"]
    say(f"  the rollback's steps (run {len(records) // 2 + 1}):")
    for item in steps:
        say(f"    {item['started_at'][11:23]} -> {item['finished_at'][11:23]}  {item['step'][:110]}")
    say(f"  load average: {load_before:.2f} before, {load_after:.2f} after")
    write_report(
        args,
        "rollback",
        facts,
        {
            "poll_interval": poll,
            "target_seconds": target,
            "from_detection": detection.__dict__,
            "from_failure": failure.__dict__,
            "record_from_detection": record.__dict__,
            "runs": records,
        },
        (load_before, load_after),
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.rollback", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="rollbacks, each on a fresh sandbox (3)")
    parser.add_argument("--strategy", choices=["cname", "alias"], default="cname")
    parser.add_argument("--rate", type=float, default=20.0, help="client requests per second through Kong (20)")
    parser.add_argument("--fail-delay", type=float, default=0.0, help="seconds into monitoring before B fails (0)")
    common_arguments(parser)
    return parser


if __name__ == "__main__":
    raise SystemExit(run_main(main, build_parser()))
