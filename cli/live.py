"""One live view of a cutover run: what ``starter.py watch`` and the sandbox demo show while a run goes on.

It reads nothing but the workflow's ``status`` query answers (:class:`~models.workflow.CutoverStatus`)
handed to :meth:`RunView.update`, so it follows any run however it was started.

* :class:`StatusTracker` turns successive snapshots into events: phase changes, each finished step
  once, gates opened and approved, ignored messages, a new verdict.
* On a TTY, :class:`RunView` keeps a panel updated in place under the events (rich's ``Live``):
  the phase, the current step or wait with its time left, the verdict so far, an extra line (the
  demo's load counters), and, while a gate is open, its exact approve and abort commands, pinned
  in view until the gate closes. Events are printed once above it.
* Elsewhere (CI logs, pipes) it prints one line per event and at most one heartbeat line every
  :data:`HEARTBEAT_SECONDS`, so a whole run stays short enough to read.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Protocol, cast

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.rule import Rule
from rich.text import Text

from models.workflow import TERMINAL_PHASES, CutoverStatus

HEARTBEAT_SECONDS = 10.0
"""Without a TTY, the longest silence before a heartbeat line, and the shortest gap between two."""


class Stream(Protocol):
    """Where the view writes: a text stream (stdout, or the demo's stream that survives a closed pipe)."""

    def write(self, text: str, /) -> int:
        """Write text."""

    def flush(self) -> None:
        """Flush."""

    def isatty(self) -> bool:
        """Whether it is a terminal."""


GateCommands = Callable[[CutoverStatus, str], list[tuple[str, str]]]
"""For a run and an open gate: (label, command) pairs a human runs to approve it or roll back."""


def approve_command(workflow_id: str, gate: str, digest: str, *, by: str = "<you>", temporal: str = "temporal") -> str:
    """The exact plain-Temporal-CLI command that approves ``gate`` of a run (the update, with the digest)."""
    payload = json.dumps({"gate": gate, "by": by, "digest": digest})
    return f"{temporal} workflow update execute -w {workflow_id} --name approve --input '{payload}'"


def starter_commands(status: CutoverStatus, gate: str, starter: str = "python starter.py") -> list[tuple[str, str]]:
    """The commands ``watch`` pins for an open gate: approve with starter.py or the temporal CLI, or abort."""
    wid = status.workflow_id
    return [
        ("approve", f"{starter} approve {wid} --gate {gate} --by <you> --digest {status.plan_digest}"),
        ("or", approve_command(wid, gate, status.plan_digest)),
        ("abort", f"{starter} abort {wid} --reason '<why>' --by <you>"),
    ]


def current_activity(status: CutoverStatus, now: datetime | None = None) -> str:
    """What the run is doing right now: the running wait with its reason and time left, or the step."""
    now = now or datetime.now(UTC)
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


def verdict_line(status: CutoverStatus) -> str:
    """The latest verdict in one line, or ``-``."""
    verdict = status.last_verdict
    if verdict is None:
        return "-"
    share = verdict.share.describe() if verdict.share.known else "share unknown"
    return f"{verdict.status}: {verdict.reason}; {share}"


class StatusTracker:
    """What changed since the last snapshot, as event lines; the phases seen, with when each began."""

    def __init__(self) -> None:
        self.seen_steps = 0
        self.phase = ""
        self.phases: list[tuple[float, str]] = []
        """(unix time, phase) for every phase entered, in order."""
        self.open_gates: tuple[str, ...] = ()
        self.approvals = 0
        self.ignored = 0
        self.verdict: tuple[str, str] | None = None
        self.last: CutoverStatus | None = None

    def update(self, status: CutoverStatus) -> tuple[list[str], list[str]]:
        """Event lines for what changed, and the gates that opened with this snapshot."""
        events: list[str] = []
        for step in status.timeline[self.seen_steps :]:
            if step.ok is None:
                break
            events += self._enter(step.phase, step.started_at.timestamp())
            took = (step.finished_at - step.started_at).total_seconds() if step.finished_at else 0.0
            events.append(f"    {'ok ' if step.ok else 'ERR'} {step.step} ({took:.1f} s): {step.result}")
            self.seen_steps += 1
        # A phase seen by polling began when the last step before it finished, not when we looked.
        finished = [s.finished_at.timestamp() for s in status.timeline if s.finished_at is not None]
        began = max(finished) if finished else time.time()
        events += self._enter(status.phase, max([began, *(at for at, _ in self.phases[-1:])]))
        for approval in status.approvals[self.approvals :]:
            events.append(f"    approved {approval.gate} by {approval.by} via {approval.via}")
        self.approvals = len(status.approvals)
        for message in status.ignored[self.ignored :]:
            events.append(f"    ignored {message.name} from {message.by or '?'}: {message.reason}")
        self.ignored = len(status.ignored)
        if status.last_verdict is not None:
            key = (status.last_verdict.status, status.last_verdict.reason)
            if key != self.verdict:
                self.verdict = key
                events.append(f"    verdict {verdict_line(status)}")
        opened = [gate for gate in status.gates_awaited if gate not in self.open_gates]
        self.open_gates = tuple(status.gates_awaited)
        self.last = status
        return events, opened

    def _enter(self, phase: str, at: float) -> list[str]:
        if phase == self.phase:
            return []
        self.phase = phase
        self.phases.append((at, phase))
        return [f"== phase: {phase}"]


def final_lines(status: CutoverStatus) -> list[str]:
    """How the run ended, in a few lines: outcome, reason, what is left changed and what to do by hand."""
    lines = [f"{status.workflow_id} ended {status.phase}" + (f": {status.error}" if status.error else "")]
    if status.last_verdict is not None:
        lines.append(f"  last verdict {verdict_line(status)}")
    lines += [f"  LEFT CHANGED: {item}" for item in status.left_changed]
    lines += [f"  to finish by hand: {item}" for item in status.manual_steps]
    return lines


class RunView:
    """Show one run: a live panel on a TTY, plain event lines with sparse heartbeats elsewhere.

    Args:
        stream: where to write (default: stdout).
        commands: the approve/abort commands for an open gate.
        extra: a line added to the panel and heartbeats (the demo's load counters).
        tty: force the mode (default: ``stream.isatty()``).
        started: ``time.monotonic()`` the ``[mm:ss]`` stamps of plain lines count from.
        heartbeat: seconds between heartbeat lines without a TTY.
        announce_gates: show the commands of an open gate (off when the caller approves by itself).
    """

    def __init__(
        self,
        stream: Stream | None = None,
        *,
        commands: GateCommands = starter_commands,
        extra: Callable[[], str] | None = None,
        tty: bool | None = None,
        started: float | None = None,
        heartbeat: float = HEARTBEAT_SECONDS,
        announce_gates: bool = True,
    ) -> None:
        self.stream: Stream = stream or sys.stdout
        self.commands = commands
        self.extra = extra
        self.tracker = StatusTracker()
        self.started = time.monotonic() if started is None else started
        self.heartbeat = heartbeat
        self.announce_gates = announce_gates
        self.tty = self.stream.isatty() if tty is None else tty
        self._last_line = time.monotonic()
        self._live: Live | None = None
        if self.tty:
            console = Console(file=cast(IO[str], self.stream), force_terminal=True, highlight=False, soft_wrap=False)
            self._live = Live(get_renderable=self._panel, console=console, refresh_per_second=2, redirect_stdout=False)
            self._live.start()

    # -- what callers use --

    def update(self, status: CutoverStatus) -> None:
        """Show a new snapshot: its events, and the panel (TTY) or a heartbeat when one is due."""
        events, opened = self.tracker.update(status)
        for line in events:
            self.event(line)
        for gate in opened if self.announce_gates else []:
            if self._live is None:
                self.event(f">>> the run waits for your approval of the {gate} gate; run ONE of:")
                for label, command in self.commands(status, gate):
                    self.event(f"      {label + ':':9} {command}")
            else:
                self.event(f">>> the run waits for your approval of the {gate} gate (commands below)")
        if self._live is not None:
            self._live.refresh()
        elif time.monotonic() - self._last_line >= self.heartbeat and status.phase not in TERMINAL_PHASES:
            self.event(self.heartbeat_line(status))

    def event(self, text: str) -> None:
        """Print a line (or lines) once: above the panel on a TTY, stamped ``[mm:ss]`` elsewhere."""
        self._last_line = time.monotonic()
        if self._live is not None:
            self._live.console.print(Text(text), overflow="fold")
            return
        elapsed = int(time.monotonic() - self.started)
        stamp = f"[{elapsed // 60:02d}:{elapsed % 60:02d}]"
        try:
            for part in text.splitlines() or [""]:
                self.stream.write(f"{stamp} {part}\n")
            self.stream.flush()
        except ValueError:  # the stream was closed under us (the demo's stdout went away)
            raise BrokenPipeError("the output stream is closed") from None

    def heartbeat_line(self, status: CutoverStatus) -> str:
        """``  phase | step or wait | extra``: proof of life without a TTY."""
        extra = f" | {self.extra()}" if self.extra is not None else ""
        return f"  {status.phase} | {current_activity(status)}{extra}"

    def close(self) -> None:
        """Stop the live panel, leaving its last state on the screen."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- the panel --

    def _panel(self) -> RenderableType:
        status = self.tracker.last
        if status is None:
            return Text("waiting for the run's first status ...")
        past = "  (past the point of no return)" if status.point_of_no_return_passed else ""
        rows: list[RenderableType] = [
            Rule(f"{status.workflow_id}: {status.record} -> {status.target} ({status.strategy})", style="dim"),
            self._row("phase", status.phase + past),
            self._row("now", current_activity(status)),
            self._row("verdict", verdict_line(status)),
        ]
        if self.extra is not None:
            rows.append(self._row("load", self.extra()))
        for gate in status.gates_awaited if self.announce_gates else ():
            rows.append(Text(f">>> waiting for your approval of the {gate} gate; run ONE of:", style="bold yellow"))
            for label, command in self.commands(status, gate):
                rows.append(self._row(label, command, style="bold"))
        return Group(*rows)

    @staticmethod
    def _row(label: str, value: str, style: str = "") -> Text:
        text = Text(f"{label + ':':9} ", style="dim")
        text.append(value, style=style)
        text.overflow = "fold"
        return text
