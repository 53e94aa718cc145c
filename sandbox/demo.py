"""The whole thing, for real, on loopback: ``make demo`` (``python -m sandbox.demo``).

It starts the sandbox topology (sandbox/topology.py: Temporal dev server with its web UI, BIND
primary + secondary, runtimes A and B over HTTPS, the Kong emulator, the decommission receiver and
the worker), puts a steady client load through Kong, starts a cutover from the sandbox plan exactly
as ``python starter.py start`` does, and follows it in the terminal: phase changes, finished steps,
the current wait and what it waits for, the load's counters. Gates are approved by you (the exact
commands are printed) or, with ``--auto-approve``, by the demo itself through the ``approve`` update.
At the end it prints the final status, what the clients saw (requests, failures by status, share
served by A and B over time) and a PNG chart of it.

    python -m sandbox.demo [--strategy cname|alias] [--auto-approve] [--rate 20] [--exit-when-done]
                           [--workdir .demo] [--ports default|auto]

Exit code 0 only when the cutover completed and not one client request failed. Without
``--exit-when-done`` everything keeps running afterwards (browse the web UI) until Ctrl-C; Ctrl-C or
SIGTERM stop every process the demo started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

import starter
from models.durations import parse_duration
from models.workflow import TERMINAL_PHASES, ApproveRequest, CutoverStatus
from sandbox.chart import render_chart
from sandbox.load import LoadGenerator
from sandbox.topology import Timings, Topology, TopologyError, venv_binary
from settings import TemporalSettings

WARMUP_SECONDS = 3.0
"""Load before the cutover starts, so the baseline and the chart show A serving alone."""
TAIL_SECONDS = 3.0
"""Load after the cutover ends, so the chart shows B serving alone with A gone."""
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


class Console:
    """Timestamped plain lines: readable in a terminal and in a CI log alike."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def line(self, text: str = "") -> None:
        """Print one line (or several) prefixed with the time since the demo started."""
        elapsed = int(time.monotonic() - self.started)
        stamp = f"[{elapsed // 60:02d}:{elapsed % 60:02d}]"
        for part in text.splitlines() or [""]:
            print(f"{stamp} {part}", flush=True)

    def block(self, text: str) -> None:
        """Print text as it is (tables, the final status)."""
        print(text, flush=True)


def _shell_path(path: str | Path) -> str:
    """A path as short as it can be for a command the user copies (relative to the cwd when inside it)."""
    absolute = Path(os.path.abspath(path))  # not resolve(): keep the venv's python symlink
    with contextlib.suppress(ValueError):
        return str(absolute.relative_to(Path.cwd()))
    return str(absolute)


@dataclass
class Follower:
    """Follows one run: prints what changed since the last look, approves gates, notes phase times."""

    console: Console
    topo: Topology
    handle: WorkflowHandle[Any, Any]
    load: LoadGenerator
    auto_approve: bool
    phases: list[tuple[float, str]] = field(default_factory=list)
    seen_steps: int = 0
    handled_gates: set[tuple[str, int]] = field(default_factory=set)
    notices_seen: int = 0
    phase: str = ""

    async def follow(self) -> CutoverStatus | None:
        """Print progress every second until the run reaches a terminal phase; the last status seen."""
        status: CutoverStatus | None = None
        last_error = ""
        while True:
            worker = self.topo.components["worker"]
            if not worker.running:
                self.console.line(f"ERROR: the worker process exited (code {worker.process and worker.process.poll()})")
                self.console.block(_worker_problems(self.topo))
                return status
            try:
                status = await self.handle.query("status", result_type=CutoverStatus)
            except RPCError as exc:
                if str(exc) != last_error:
                    self.console.line(f"status query failed (retrying): {exc}")
                    last_error = str(exc)
                await asyncio.sleep(1)
                continue
            self._print_changes(status)
            await self._handle_gates(status)
            await self._print_notices()
            if status.phase in TERMINAL_PHASES:
                return status
            self.console.line(f"  {status.phase:<30} | {_current_activity(status)} | {self.load.live().render()}")
            await asyncio.sleep(1)

    def _print_changes(self, status: CutoverStatus) -> None:
        """Print finished steps and phase changes; a phase shorter than a poll shows through its steps."""
        for step in status.timeline[self.seen_steps :]:
            if step.ok is None:
                break
            self._enter_phase(step.phase, step.started_at.timestamp())
            mark = "ok " if step.ok else "ERR"
            took = (step.finished_at - step.started_at).total_seconds() if step.finished_at else 0.0
            self.console.line(f"    {mark} {step.step} ({took:.1f} s): {step.result}")
            self.seen_steps += 1
        # A phase seen by polling began when the last step before it finished, not when we looked.
        finished = [step.finished_at.timestamp() for step in status.timeline if step.finished_at is not None]
        began = max(finished) if finished else time.time()
        self._enter_phase(status.phase, max([began, *(at for at, _ in self.phases[-1:])]))

    def _enter_phase(self, phase: str, at: float) -> None:
        if phase != self.phase:
            self.phase = phase
            self.phases.append((at, phase))
            self.console.line(f"== phase: {phase}")

    async def _handle_gates(self, status: CutoverStatus) -> None:
        for gate in status.gates_awaited:
            key = (gate, len(status.approvals))
            if key in self.handled_gates:
                continue
            self.handled_gates.add(key)
            if self.auto_approve:
                await self._approve(status, gate)
            else:
                self.console.block(_approval_instructions(self.topo, status, gate))

    async def _approve(self, status: CutoverStatus, gate: str) -> None:
        request = ApproveRequest(gate=gate, by="sandbox-demo", digest=status.plan_digest, comment="--auto-approve")
        self.console.line(
            f">>> --auto-approve: approving the {gate} gate with the approve update, as "
            f"`{_approve_cli(self.topo, status.workflow_id, gate, status.plan_digest, 'sandbox-demo')}`"
        )
        try:
            answer = await self.handle.execute_update("approve", request, result_type=str)
        except WorkflowUpdateFailedError as exc:
            self.console.line(f"    approval rejected: {exc.cause}")
            return
        self.console.line(f"    {answer}")

    async def _print_notices(self) -> None:
        try:
            notices = (await self.topo.receiver_state()).get("notifications", [])
        except Exception as exc:  # the receiver is a side show: never stop following for it
            self.console.line(f"    (could not read notifications: {exc})")
            return
        for notice in notices[self.notices_seen :]:
            text = str(notice.get("text", "")).splitlines()
            self.console.line(f"    notice [{notice.get('event')}]: {text[0] if text else ''}")
        self.notices_seen = len(notices)


def _current_activity(status: CutoverStatus) -> str:
    """What the run is doing right now: the running wait with its reason and time left, or the step."""
    now = datetime.now(UTC)
    for wait in reversed(status.waits):
        if wait.until is not None and wait.until > now:
            left = (wait.until - now).total_seconds()
            return f"wait {wait.seconds:.0f} s ({left:.0f} s left): {wait.reason}"
    running = [s for s in status.timeline if s.ok is None]
    if running:
        step = running[-1]
        return f"{step.step} ({(now - step.started_at).total_seconds():.0f} s)"
    if status.gates_awaited:
        return f"waiting for approval: {', '.join(status.gates_awaited)}"
    return "-"


def _approve_cli(topo: Topology, workflow_id: str, gate: str, digest: str, by: str = "<you>") -> str:
    """starter.approve_command, made runnable here: the venv's temporal binary and this server's address."""
    command = starter.approve_command(workflow_id, gate, digest).replace('"<you>"', json.dumps(by))
    return command.replace(
        "temporal workflow update execute",
        f"{_shell_path(venv_binary('temporal'))} workflow update execute --address {topo.temporal_address}",
        1,
    )


def _starter_cli(topo: Topology, arguments: str) -> str:
    python = _shell_path(sys.executable)
    return f"TEMPORAL_ADDRESS={topo.temporal_address} {python} {_shell_path(Path(starter.__file__))} {arguments}"


def _approval_instructions(topo: Topology, status: CutoverStatus, gate: str) -> str:
    wid = status.workflow_id
    abort = _starter_cli(topo, f"abort {wid} --reason '<why>' --by <you>")
    return "\n".join(
        [
            "",
            f">>> The run waits for your approval of the {gate} gate. In another terminal, run ONE of:",
            f"      {_approve_cli(topo, wid, gate, status.plan_digest)}",
            f"      {_starter_cli(topo, f'approve {wid} --gate {gate} --by <you> --digest {status.plan_digest}')}",
            "    or roll back:",
            f"      {abort}",
            f"    or click through the web UI: {topo.workflow_url(wid)}",
            "",
        ]
    )


def _worker_problems(topo: Topology, lines: int = 30) -> str:
    """The worker log's warnings, errors and tracebacks: where a product failure shows."""
    log = topo.components["worker"].log
    if not log.exists():
        return f"  (no worker log at {_shell_path(log)})"
    markers = ("ERROR", "WARNING", "CRITICAL", "Traceback", "Error:", "Exception:", '  File "')
    picked = [line for line in log.read_text(errors="replace").splitlines() if any(m in line for m in markers)]
    if not picked:
        return f"  worker log {_shell_path(log)}: no warnings or errors"
    body = "\n".join("    " + line for line in picked[-lines:])
    return f"  worker log {_shell_path(log)}, warnings and errors:\n{body}"


def _component_table(topo: Topology) -> str:
    rows = [("component", "address", "pid", "log")]
    rows += [(c.name, c.address, str(c.pid or "-"), _shell_path(c.log)) for c in topo.component_table()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows)


def demo_timings(rate: float) -> Timings:
    """The sandbox timings, with ``min_requests`` low enough for the load the demo will send."""
    timings = Timings()
    expected = rate * parse_duration(timings.monitor_window).total_seconds()
    return replace(timings, min_requests=max(1, min(timings.min_requests, int(expected / 2))))


async def run_demo(args: argparse.Namespace, console: Console) -> int:
    """Bring everything up, run one cutover under load, report; keep running unless told to exit."""
    workdir = Path(args.workdir)
    console.line(f"starting the sandbox in {_shell_path(workdir)} (wiped first; logs in {_shell_path(workdir)}/logs)")
    async with Topology(
        workdir, ports=args.ports, timings=demo_timings(args.rate), echo=lambda s: console.line("  " + s)
    ) as topo:
        console.line(f"sandbox up in {time.monotonic() - console.started:.1f} s")
        console.block(_component_table(topo))
        t = topo.timings
        console.line(
            f"short timings so the whole cutover takes about a minute: zone TTL {t.record_ttl} s -> cutover TTL "
            f"{t.cutover_ttl} s, Kong dns_stale_ttl {t.kong_dns_stale_ttl} s (Kong's default is 3600 s), "
            f"monitor window {t.monitor_window}, A quiet for {t.quiet_period} before it is deleted"
        )
        plan_path = topo.write_plan(args.strategy)
        plan = starter.load_plan(str(plan_path))
        settings = TemporalSettings(address=topo.temporal_address, ui_url=topo.ui_url)
        console.line(f"plan: {_shell_path(plan_path)} ({plan.strategy} strategy, digest {plan.digest()[:12]}...)")
        console.line(f"  check it:  {_starter_cli(topo, f'validate {_shell_path(plan_path)}')}")
        console.line(f"web UI: {topo.workflow_url(plan.workflow_id)}")
        load_url = f"{topo.kong_proxy_url}/orders/v1/orders"
        async with LoadGenerator(load_url, rate=args.rate) as load:
            console.line(f"client load: {args.rate:g} requests/s to {load_url} (through the Kong emulator)")
            await asyncio.sleep(WARMUP_SECONDS)
            console.line(f"  {load.live().render()}")
            client = await topo.temporal_client()
            workflow_id = await starter.start(client, settings, plan)
            handle = client.get_workflow_handle(workflow_id, result_type=CutoverStatus)
            console.line(f"started {workflow_id} (as `python starter.py start {_shell_path(plan_path)}` does)")
            console.line(f"  watch it: {topo.workflow_url(workflow_id)}")
            console.line(f"  status:   {_starter_cli(topo, f'status {workflow_id}')}")
            if not args.auto_approve:
                console.line(
                    "  gates: you approve them (the commands are printed when asked); --auto-approve skips this"
                )
            follower = Follower(console, topo, handle, load, args.auto_approve)
            cutover_started = time.monotonic()
            last_seen = await follower.follow()
            status, failure = await _final_status(handle, last_seen)
            cutover_seconds = time.monotonic() - cutover_started
            await asyncio.sleep(TAIL_SECONDS)
        report = _report(console, topo, load, follower, status, failure, cutover_seconds)
        if not args.exit_when_done:
            console.line("everything keeps running so you can look around; Ctrl-C stops it all")
            console.line(f"  web UI: {topo.workflow_url(workflow_id)}")
            await asyncio.Event().wait()
        return report


async def _final_status(
    handle: WorkflowHandle[Any, Any], last_seen: CutoverStatus | None
) -> tuple[CutoverStatus | None, str | None]:
    """The run's result, or (for a failed run) its last status and the failure message."""
    try:
        return await asyncio.wait_for(handle.result(), 30), None
    except WorkflowFailureError as exc:
        with contextlib.suppress(RPCError):
            last_seen = await handle.query("status", result_type=CutoverStatus)
        return last_seen, str(exc.cause)
    except (RPCError, TimeoutError) as exc:
        return last_seen, f"no result from the run: {exc or type(exc).__name__}"


def _report(
    console: Console,
    topo: Topology,
    load: LoadGenerator,
    follower: Follower,
    status: CutoverStatus | None,
    failure: str | None,
    cutover_seconds: float,
) -> int:
    summary = load.summary(bucket_seconds=5.0)
    offsets = [(at - (load.started_at or at), phase) for at, phase in follower.phases]
    chart = render_chart(load.summary(bucket_seconds=2.0), topo.workdir / "load.png", phases=offsets)
    (topo.workdir / "load.json").write_text(json.dumps({**summary.to_json(), "phases": offsets}, indent=1))
    load.write_records(topo.workdir / "requests.jsonl")
    if status is not None:
        (topo.workdir / "status.json").write_text(status.model_dump_json(indent=1))
    console.line("")
    console.line("== final status")
    console.block(starter.render_status(status) if status is not None else "(no status: the run could not be read)")
    console.line("== what the clients saw")
    console.block(summary.render())
    console.line(f"chart: {_shell_path(chart)}   (data: {_shell_path(topo.workdir / 'load.json')})")
    completed = status is not None and status.phase == "completed"
    a_gone = not topo.runtime_running("A")
    console.line(
        f"cutover {'completed' if completed else 'did NOT complete'} in {cutover_seconds:.0f} s; "
        f"runtime A is {'gone (decommissioned)' if a_gone else 'still running'}; "
        f"demo wall time {time.monotonic() - console.started:.0f} s"
    )
    if not completed:
        console.line(
            f"FAILED: the run ended {status.phase if status else 'unknown'}: {failure or (status and status.error)}"
        )
        console.block(_worker_problems(topo))
    if summary.failed:
        console.line(f"FAILED: {summary.failed} client request(s) failed during the cutover")
    ok = completed and summary.failed == 0 and summary.requests > 0
    console.line("RESULT: " + ("OK: completed with zero failed requests" if ok else "FAILED"))
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The demo's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.demo",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--strategy", choices=["cname", "alias"], default="cname", help="plan template (cname)")
    parser.add_argument("--auto-approve", action="store_true", help="approve both gates without asking")
    parser.add_argument("--rate", type=float, default=20.0, help="client requests per second (20)")
    parser.add_argument("--exit-when-done", action="store_true", help="stop everything after the report")
    parser.add_argument(
        "--campaign", action="store_true", help="six APIs in three waves, one failing B (sandbox/demo_campaign.py)"
    )
    parser.add_argument("--workdir", default=".demo", help="work directory, wiped at start (.demo)")
    parser.add_argument(
        "--ports", choices=["default", "auto"], default="default", help="default: 7233/8233/5353/...; auto: free ports"
    )
    return parser


async def _main(args: argparse.Namespace, console: Console) -> int:
    """Run the demo; Ctrl-C (SIGINT) and SIGTERM cancel it, so every process is stopped either way.

    The handlers are installed here rather than left to asyncio, because a shell starts background
    jobs with SIGINT ignored and asyncio then never turns it into a cancellation. A second signal
    interrupts the graceful stop and kills every process at once.
    """
    task = asyncio.current_task()
    received: list[int] = []

    def on_signal(sig: int) -> None:
        received.append(sig)
        if len(received) == 1:
            console.line("stopping everything the demo started (again to kill at once)")
        if task is not None:
            task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        if args.campaign:
            from sandbox.demo_campaign import run_campaign_demo

            return await run_campaign_demo(args)
        return await run_demo(args, console)
    except asyncio.CancelledError:
        if not received:
            raise
        if received[0] == signal.SIGTERM:
            console.line("terminated (SIGTERM): every process the demo started is stopped")
            return EXIT_TERMINATED
        console.line("interrupted (Ctrl-C): every process the demo started is stopped")
        return EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 only for a completed cutover with zero failed client requests."""
    args = build_parser().parse_args(argv)
    if args.rate <= 0:
        build_parser().error("--rate must be positive")
    console = Console()
    try:
        return asyncio.run(_main(args, console))
    except KeyboardInterrupt:  # Ctrl-C before the event loop took over the signal
        console.line("interrupted (Ctrl-C)")
        return EXIT_INTERRUPTED
    except TopologyError as exc:
        console.line(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
