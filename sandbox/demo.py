"""The whole thing, for real, on loopback: ``make demo`` (``python -m sandbox.demo``).

It starts the sandbox topology (sandbox/topology/: Temporal dev server with its web UI, BIND
primary + secondary, runtimes A and B over HTTPS, the Kong emulator, the decommission receiver and
the worker), puts a steady client load through Kong, starts a cutover from the sandbox plan exactly
as ``python starter.py start`` does, and follows it with the same live view as ``python starter.py
watch`` (cli/live.py): on a terminal a panel updated in place (phase, current step or wait with its
time left, verdict so far, the load's counters) with the open gate's approve/abort commands pinned in
it, each finished step printed once above; in a log or pipe one line per event and a heartbeat at
most every 10 s. Gates are approved by you or, with ``--auto-approve``, by the demo itself through
the ``approve`` update.
At the end it prints the final status, what the clients saw (requests, failures by status, share
served by A and B over time) and a PNG chart of it.

    python -m sandbox.demo [--strategy cname|alias] [--auto-approve] [--rate 20] [--exit-when-done]
                           [--workdir .demo] [--ports default|auto]

Exit code 0 only when the cutover completed and not one client request failed. Without
``--exit-when-done`` everything keeps running afterwards (browse the web UI) until Ctrl-C. Every
process the demo started is stopped on Ctrl-C, SIGTERM, SIGHUP (terminal closed, SSH dropped) and
when its standard output goes away (``make demo | head``); a demo killed with SIGKILL leaves a pids
file, from which the next demo in the same work directory stops the leftovers before binding ports
(only processes whose start time and command line still match: a reused pid is never touched).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

import starter
from cli.live import RunView
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
EXIT_INTERRUPTED, EXIT_HANGUP, EXIT_TERMINATED, EXIT_STDOUT_GONE = 130, 129, 143, 141


class SafeStream:
    """Standard output that never raises.

    Once the reader is gone (a closed pipe, a hung-up terminal) it tells the demo once, through
    ``on_gone``, and drops what follows, so no print can cut the cleanup short.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False
        self.on_gone: Callable[[], None] | None = None

    def write(self, text: str) -> int:
        """Write through, or drop once the stream is gone."""
        if not self.gone:
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                self.mark_gone()
        return len(text)

    def flush(self) -> None:
        """Writes are flushed as they go."""

    def isatty(self) -> bool:
        """Whether the real stream is a terminal."""
        try:
            return not self.gone and self.stream.isatty()
        except ValueError:
            return False

    def fileno(self) -> int:
        """The real stream's descriptor."""
        return self.stream.fileno()

    def mark_gone(self) -> None:
        """The reader is gone: point fd 1 at /dev/null (so exit's flush can't fail) and tell the demo."""
        if self.gone:
            return
        self.gone = True
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        if self.on_gone is not None:
            self.on_gone()

    async def watch(self, interval: float = 0.5) -> None:
        """Notice a closed pipe or a hung-up terminal even while nothing is printed (POLLERR/POLLHUP)."""
        try:
            poller = select.poll()
            poller.register(self.stream.fileno(), select.POLLERR | select.POLLHUP)
        except (OSError, ValueError):
            return
        while not self.gone:
            if poller.poll(0):
                self.mark_gone()
                return
            await asyncio.sleep(interval)


class Console:
    """Timestamped plain lines: readable in a terminal and in a CI log alike."""

    def __init__(self, stream: SafeStream | None = None) -> None:
        self.started = time.monotonic()
        self.stream = stream or SafeStream(sys.stdout)

    def line(self, text: str = "") -> None:
        """Print one line (or several) prefixed with the time since the demo started."""
        elapsed = int(time.monotonic() - self.started)
        stamp = f"[{elapsed // 60:02d}:{elapsed % 60:02d}]"
        for part in text.splitlines() or [""]:
            self.stream.write(f"{stamp} {part}\n")

    def block(self, text: str) -> None:
        """Print text as it is (tables, the final status)."""
        self.stream.write(text + "\n")


def _shell_path(path: str | Path) -> str:
    """A path as short as it can be for a command the user copies (relative to the cwd when inside it)."""
    absolute = Path(os.path.abspath(path))  # not resolve(): keep the venv's python symlink
    with contextlib.suppress(ValueError):
        return str(absolute.relative_to(Path.cwd()))
    return str(absolute)


@dataclass
class Follower:
    """Follows one run through the live view (cli/live.py), approves gates, relays the receiver's notices."""

    view: RunView
    topo: Topology
    handle: WorkflowHandle[Any, Any]
    auto_approve: bool
    handled_gates: set[tuple[str, int]] = field(default_factory=set)
    notices_seen: int = 0

    @property
    def phases(self) -> list[tuple[float, str]]:
        """(unix time, phase) of every phase the run entered."""
        return self.view.tracker.phases

    async def follow(self) -> CutoverStatus | None:
        """Show progress until the run reaches a terminal phase; the last status seen."""
        status: CutoverStatus | None = None
        last_error = ""
        while True:
            worker = self.topo.components["worker"]
            if not worker.running:
                code = worker.process and worker.process.poll()
                self.view.event(f"ERROR: the worker process exited (code {code})")
                self.view.event(_worker_problems(self.topo))
                return status
            try:
                status = await self.handle.query("status", result_type=CutoverStatus)
            except RPCError as exc:
                if str(exc) != last_error:
                    self.view.event(f"status query failed (retrying): {exc}")
                    last_error = str(exc)
                await asyncio.sleep(1)
                continue
            self.view.update(status)
            await self._handle_gates(status)
            await self._print_notices()
            if status.phase in TERMINAL_PHASES:
                return status
            await asyncio.sleep(1)

    async def _handle_gates(self, status: CutoverStatus) -> None:
        if not self.auto_approve:
            return  # the view pins the commands until the gate closes
        for gate in status.gates_awaited:
            key = (gate, len(status.approvals))
            if key in self.handled_gates:
                continue
            self.handled_gates.add(key)
            await self._approve(status, gate)

    async def _approve(self, status: CutoverStatus, gate: str) -> None:
        request = ApproveRequest(gate=gate, by="sandbox-demo", digest=status.plan_digest, comment="--auto-approve")
        self.view.event(
            f">>> --auto-approve: approving the {gate} gate with the approve update, as "
            f"`{_approve_cli(self.topo, status.workflow_id, gate, status.plan_digest, 'sandbox-demo')}`"
        )
        try:
            answer = await self.handle.execute_update("approve", request, result_type=str)
        except WorkflowUpdateFailedError as exc:
            self.view.event(f"    approval rejected: {exc.cause}")
            return
        self.view.event(f"    {answer}")

    async def _print_notices(self) -> None:
        try:
            notices = (await self.topo.receiver_state()).get("notifications", [])
        except Exception as exc:  # the receiver is a side show: never stop following for it
            self.view.event(f"    (could not read notifications: {exc})")
            return
        for notice in notices[self.notices_seen :]:
            text = str(notice.get("text", "")).splitlines()
            self.view.event(f"    notice [{notice.get('event')}]: {text[0] if text else ''}")
        self.notices_seen = len(notices)


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


def gate_commands(topo: Topology) -> Callable[[CutoverStatus, str], list[tuple[str, str]]]:
    """The commands the view pins for an open gate, runnable here (this server's address, the venv's binaries)."""

    def commands(status: CutoverStatus, gate: str) -> list[tuple[str, str]]:
        wid, digest = status.workflow_id, status.plan_digest
        return [
            ("approve", _approve_cli(topo, wid, gate, digest)),
            ("or", _starter_cli(topo, f"approve {wid} --gate {gate} --by <you> --digest {digest}")),
            ("abort", _starter_cli(topo, f"abort {wid} --reason '<why>' --by <you>")),
            ("web UI", topo.workflow_url(wid)),
        ]

    return commands


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
            console.line(f"  web UI:   {topo.workflow_url(workflow_id)}")
            console.line(f"  watch it: {_starter_cli(topo, f'watch {workflow_id}')}")
            if not args.auto_approve:
                console.line("  gates: you approve them (the commands show when asked); --auto-approve skips this")
            view = RunView(
                console.stream,
                commands=gate_commands(topo),
                extra=lambda: load.live().render(),
                started=console.started,
                announce_gates=not args.auto_approve,
            )
            follower = Follower(view, topo, handle, args.auto_approve)
            cutover_started = time.monotonic()
            try:
                last_seen = await follower.follow()
            finally:
                view.close()
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


STOPPED_BY = {
    signal.SIGINT: ("interrupted (Ctrl-C)", EXIT_INTERRUPTED),
    signal.SIGTERM: ("terminated (SIGTERM)", EXIT_TERMINATED),
    signal.SIGHUP: ("hung up (SIGHUP: terminal closed)", EXIT_HANGUP),
}
STDOUT_GONE = -1
"""Stands for "standard output went away" among the signals that stop the demo."""


async def _main(args: argparse.Namespace, console: Console) -> int:
    """Run the demo; Ctrl-C, SIGTERM, SIGHUP and a vanished stdout cancel it, so every process is stopped.

    The handlers are installed here rather than left to asyncio, because a shell starts background
    jobs with SIGINT ignored and asyncio then never turns it into a cancellation, and SIGHUP's default
    action would kill the demo without its cleanup (the components run in their own sessions, so the
    terminal's hangup never reaches them). A second stop interrupts the graceful stop and kills every
    process at once.
    """
    task = asyncio.current_task()
    received: list[int] = []

    def stop(cause: int) -> None:
        received.append(cause)
        if len(received) == 1:
            console.line("stopping everything the demo started (again to kill at once)")
        if task is not None:
            task.cancel()

    loop = asyncio.get_running_loop()
    for sig in STOPPED_BY:
        loop.add_signal_handler(sig, stop, sig)

    def stdout_gone() -> None:
        loop.call_soon_threadsafe(stop, STDOUT_GONE)

    console.stream.on_gone = stdout_gone
    watcher = asyncio.ensure_future(console.stream.watch())
    try:
        if args.campaign:
            from sandbox.demo_campaign import run_campaign_demo

            return await run_campaign_demo(args)
        return await run_demo(args, console)
    except asyncio.CancelledError:
        if not received:
            raise
        if received[0] == STDOUT_GONE:
            return EXIT_STDOUT_GONE  # nobody to tell
        what, code = STOPPED_BY[signal.Signals(received[0])]
        console.line(f"{what}: every process the demo started is stopped")
        return code
    finally:
        watcher.cancel()
        for sig in STOPPED_BY:
            loop.remove_signal_handler(sig)


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
