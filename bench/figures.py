"""The arithmetic of the benchmarks, with no I/O, so tests/bench can check how every figure is derived.

Overhead is what a cutover costs beyond the waits it must do. The waits are read from the run itself
(its :class:`~models.workflow.CutoverStatus`), never from constants:

* **timers**: every entry of ``status.waits`` (old TTL + margin while ``lowering-ttl``, cutover TTL +
  Kong cache bound + margin while ``draining``, Kong's config delay while ``repointing``), matched to
  the timeline step that ran it;
* **monitoring window**: each ``Monitor traffic window`` step, up to the plan's ``monitor.window``;
* **gates**: from the moment a gate opened (the last step before the approval finished, in the same
  workflow task that opened the gate) to the approval's ``at``;
* **readiness spacing**: ``(successes - 1) x interval`` of the readiness probe, a wait the plan
  configures like the monitoring window. The issue's list does not name it, so the *strict* overhead
  counts it as overhead.

Everything else (activity work, timers firing late, workflow tasks between steps, notifications,
start and result latency) is overhead, itemised per step and per gap between steps so the items add
up exactly to ``wall - mandatory``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from models.plan import CutoverPlan
from models.workflow import CutoverStatus, StepRecord
from sandbox.load import RequestRecord

READINESS_STEP = "Probe B"
"""How the workflow's readiness step starts (workflows/cutover.py ``_verify``)."""
MONITOR_STEP = "Monitor traffic window"
"""How the workflow's monitoring steps start (workflows/cutover.py ``_monitor``)."""
MATCH_TOLERANCE = timedelta(milliseconds=1)

WaitKind = Literal["timer", "monitor-window", "gate", "readiness-spacing"]


class FigureError(ValueError):
    """A status that can't give the figure asked for (not completed, a wait with no step, ...)."""


@dataclass(frozen=True)
class PlanWaits:
    """The waits a plan configures that the status does not record as timers."""

    monitor_window: float
    """Seconds of one monitoring window."""
    readiness_spacing: float
    """Seconds between the first and the last of the consecutive readiness successes."""

    @classmethod
    def of(cls, plan: CutoverPlan) -> PlanWaits:
        """Read them from the plan the run was started with."""
        readiness = plan.readiness
        return cls(
            monitor_window=plan.monitor.window.total_seconds(),
            readiness_spacing=(readiness.successes - 1) * readiness.interval.total_seconds(),
        )


@dataclass(frozen=True)
class MandatoryWait:
    """One wait the cutover had to do."""

    kind: WaitKind
    phase: str
    seconds: float
    what: str


@dataclass(frozen=True)
class OverheadItem:
    """Seconds of overhead spent in one step or between two steps."""

    phase: str
    what: str
    seconds: float


@dataclass(frozen=True)
class OverheadBreakdown:
    """A cutover's wall time split into mandatory waits and itemised overhead."""

    wall: float
    mandatory: tuple[MandatoryWait, ...]
    items: tuple[OverheadItem, ...]

    @property
    def mandatory_seconds(self) -> float:
        """Every mandatory wait, readiness spacing included."""
        return sum(wait.seconds for wait in self.mandatory)

    @property
    def overhead(self) -> float:
        """Wall time minus every mandatory wait (readiness spacing counted as mandatory)."""
        return self.wall - self.mandatory_seconds

    @property
    def strict_overhead(self) -> float:
        """Wall time minus only the waits the issue lists (TTL/cache timers, monitoring window, gates)."""
        return self.wall - sum(wait.seconds for wait in self.mandatory if wait.kind != "readiness-spacing")

    def mandatory_by_kind(self) -> dict[str, float]:
        """Seconds per kind of wait, in the order first seen."""
        totals: dict[str, float] = {}
        for wait in self.mandatory:
            totals[wait.kind] = totals.get(wait.kind, 0.0) + wait.seconds
        return totals

    def by_phase(self) -> dict[str, float]:
        """Overhead seconds per phase, in the order the phases ran."""
        totals: dict[str, float] = {}
        for item in self.items:
            totals[item.phase] = totals.get(item.phase, 0.0) + item.seconds
        return totals


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def _finished(step: StepRecord) -> datetime:
    if step.finished_at is None:
        raise FigureError(f"step {step.step!r} of phase {step.phase} has not finished")
    return step.finished_at


def _step_mandatory(
    step: StepRecord, status: CutoverStatus, plan_waits: PlanWaits, used: set[int]
) -> MandatoryWait | None:
    """The wait a step ran, if any: a recorded timer, a monitoring window or the readiness spacing."""
    took = _seconds(_finished(step), step.started_at)
    for index, wait in enumerate(status.waits):
        if index in used or wait.until is None:
            continue
        began = wait.until - timedelta(seconds=wait.seconds)
        if abs(began - step.started_at) <= MATCH_TOLERANCE:
            used.add(index)
            return MandatoryWait("timer", step.phase, min(wait.seconds, took), wait.reason)
    if step.step.startswith(MONITOR_STEP):
        return MandatoryWait("monitor-window", step.phase, min(plan_waits.monitor_window, took), step.step)
    if step.step.startswith(READINESS_STEP) and plan_waits.readiness_spacing > 0:
        return MandatoryWait("readiness-spacing", step.phase, min(plan_waits.readiness_spacing, took), step.step)
    return None


def derive_overhead(
    status: CutoverStatus, plan_waits: PlanWaits, called_at: datetime, result_at: datetime
) -> OverheadBreakdown:
    """Split one completed run into mandatory waits and overhead items.

    Args:
        status: the run's result (or final status).
        plan_waits: what the plan configured (:meth:`PlanWaits.of`).
        called_at: when the benchmark called ``start_workflow`` (aware datetime, same clock as the workflow).
        result_at: when the benchmark got the result.

    Raises:
        FigureError: the run has no timeline, a step never finished, a recorded wait has no step,
            or an approval lies outside the gaps between steps.
    """
    steps = list(status.timeline)
    if not steps:
        raise FigureError(f"{status.workflow_id} has no timeline (phase {status.phase})")
    used: set[int] = set()
    mandatory: list[MandatoryWait] = []
    items = [OverheadItem("starting", "start_workflow call -> first step", _seconds(steps[0].started_at, called_at))]
    gates = sorted(status.approvals, key=lambda approval: approval.at)
    for index, step in enumerate(steps):
        wait = _step_mandatory(step, status, plan_waits, used)
        took = _seconds(_finished(step), step.started_at)
        if wait is not None:
            mandatory.append(wait)
        items.append(OverheadItem(step.phase, step.step, took - (wait.seconds if wait else 0.0)))
        gap_start = _finished(step)
        gap_end = steps[index + 1].started_at if index + 1 < len(steps) else result_at
        label = f"after: {step.step}" if index + 1 < len(steps) else "last step -> result"
        phase = steps[index + 1].phase if index + 1 < len(steps) else status.phase
        in_gap = [g for g in gates if gap_start - MATCH_TOLERANCE <= g.at <= gap_end + MATCH_TOLERANCE]
        gate_seconds = 0.0
        for gate in in_gap:
            seconds = max(0.0, _seconds(gate.at, gap_start))
            mandatory.append(MandatoryWait("gate", f"awaiting-{gate.gate}-approval", seconds, f"approved by {gate.by}"))
            gate_seconds += seconds
            gates.remove(gate)
            phase = f"awaiting-{gate.gate}-approval"
        items.append(OverheadItem(phase, label, _seconds(gap_end, gap_start) - gate_seconds))
    unmatched = [wait for index, wait in enumerate(status.waits) if index not in used]
    if unmatched:
        raise FigureError("recorded wait(s) with no timeline step: " + "; ".join(w.reason for w in unmatched))
    if gates:
        raise FigureError("approval(s) outside the gaps between steps: " + ", ".join(g.gate for g in gates))
    return OverheadBreakdown(wall=_seconds(result_at, called_at), mandatory=tuple(mandatory), items=tuple(items))


# --- spreads and targets --------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (``q`` in 0..1) of ``values``, which must not be empty."""
    if not values:
        raise FigureError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The middle value (mean of the two middle ones for an even count)."""
    if not values:
        raise FigureError("no values")
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(frozen=True)
class Spread:
    """Median, p95 and max of a series."""

    count: int
    median: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """The spread of a non-empty series."""
        return cls(len(values), median(values), quantile(values, 0.95), max(values))

    def render(self, unit: str = "s", digits: int = 2) -> str:
        """``median 1.23 s, p95 1.50 s, max 1.61 s (n=5)``."""
        f = f"{{:.{digits}f}} {unit}"
        return f"median {f.format(self.median)}, p95 {f.format(self.p95)}, max {f.format(self.max)} (n={self.count})"


def target_mark(value: float, limit: float) -> str:
    """``PASS`` when ``value`` is at most ``limit``, else ``MISS``."""
    return "PASS" if value <= limit else "MISS"


def within_ratio(value: float, reference: float, ratio: float) -> bool:
    """True when ``value`` exceeds ``reference`` by at most ``ratio`` of it (0.10: within 10%)."""
    return value <= reference * (1 + ratio)


def phase_medians(breakdowns: Iterable[OverheadBreakdown]) -> dict[str, float]:
    """Median overhead per phase across runs (a phase a run lacks counts as 0 s for it)."""
    runs = [b.by_phase() for b in breakdowns]
    phases: dict[str, None] = {}
    for run in runs:
        phases.update(dict.fromkeys(run))
    return {phase: median([run.get(phase, 0.0) for run in runs]) for phase in phases} if runs else {}


def item_medians(
    breakdowns: Sequence[OverheadBreakdown], normalize: Callable[[str], str] = lambda text: text
) -> list[tuple[str, str, float]]:
    """``(phase, what, median seconds)`` per overhead item across runs, largest first.

    ``normalize`` makes the items of different runs comparable (e.g. replaces each run's record name).
    """
    groups: dict[tuple[str, str], list[float]] = {}
    for breakdown in breakdowns:
        seen: dict[tuple[str, str], float] = {}
        for item in breakdown.items:
            key = (item.phase, normalize(item.what))
            seen[key] = seen.get(key, 0.0) + item.seconds
        for key, seconds in seen.items():
            groups.setdefault(key, []).append(seconds)
    rows = [
        (phase, what, median(values + [0.0] * (len(breakdowns) - len(values))))
        for (phase, what), values in groups.items()
    ]
    return sorted(rows, key=lambda row: -row[2])


# --- history ---------------------------------------------------------------------------------------------


class EventRow(NamedTuple):
    """One history event, reduced to what the latency figures need."""

    event_id: int
    kind: str
    """The event type without its prefix: ``WORKFLOW_TASK_SCHEDULED``, ``ACTIVITY_TASK_STARTED``, ..."""
    at: float
    """Epoch seconds."""
    scheduled_id: int = 0
    """For started/completed/failed task events: the id of the scheduled event they belong to."""


@dataclass(frozen=True)
class TaskTimes:
    """Seconds a run's tasks spent waiting for and running on a worker (sums over the run)."""

    workflow_task_wait: float
    """Workflow tasks from scheduled to picked up by the worker."""
    workflow_task_run: float
    """Workflow tasks from picked up to completed (the worker running workflow code)."""
    activity_wait: float
    """Activity tasks from scheduled to started on the worker (a free slot, a poll)."""
    activity_run: float
    """Activities from started to closed (includes the monitoring window and readiness spacing)."""
    workflow_tasks: int
    activities: int


ACTIVITY_CLOSED = (
    "ACTIVITY_TASK_COMPLETED",
    "ACTIVITY_TASK_FAILED",
    "ACTIVITY_TASK_TIMED_OUT",
    "ACTIVITY_TASK_CANCELED",
)
WORKFLOW_TASK_CLOSED = ("WORKFLOW_TASK_COMPLETED", "WORKFLOW_TASK_FAILED", "WORKFLOW_TASK_TIMED_OUT")


def task_times(events: Sequence[EventRow]) -> TaskTimes:
    """Sum the wait and run times of every workflow task and activity in one history."""
    by_id = {event.event_id: event for event in events}
    started: dict[int, EventRow] = {}
    sums = {"wft_wait": 0.0, "wft_run": 0.0, "act_wait": 0.0, "act_run": 0.0}
    counts = {"wft": 0, "act": 0}
    started_kinds = {"WORKFLOW_TASK_STARTED": "wft", "ACTIVITY_TASK_STARTED": "act"}
    closed_kinds = dict.fromkeys(WORKFLOW_TASK_CLOSED, "wft") | dict.fromkeys(ACTIVITY_CLOSED, "act")
    for event in events:
        scheduled = by_id.get(event.scheduled_id)
        if scheduled is None:
            continue
        if task := started_kinds.get(event.kind):
            started[scheduled.event_id] = event
            sums[f"{task}_wait"] += event.at - scheduled.at
        elif (task := closed_kinds.get(event.kind)) and scheduled.event_id in started:
            sums[f"{task}_run"] += event.at - started[scheduled.event_id].at
            counts[task] += 1
    return TaskTimes(sums["wft_wait"], sums["wft_run"], sums["act_wait"], sums["act_run"], counts["wft"], counts["act"])


# --- client load --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """What the clients saw between two instants."""

    label: str
    start: float
    end: float
    requests: int
    failures: dict[str, int]
    served: dict[str, int]

    @property
    def failed(self) -> int:
        """Requests without a 2xx answer."""
        return sum(self.failures.values())

    def share(self, runtime: str) -> float | None:
        """Share of the segment's requests ``runtime`` served (0..1), None without requests."""
        return self.served.get(runtime, 0) / self.requests if self.requests else None


def segment(records: Iterable[RequestRecord], label: str, start: float, end: float) -> Segment:
    """Requests that *started* in ``[start, end)`` (epoch seconds)."""
    picked = [r for r in records if start <= r.started < end]
    failures: Counter[str] = Counter(r.failure for r in picked if r.failure is not None)
    served: Counter[str] = Counter(r.served_by for r in picked if r.served_by is not None)
    return Segment(label, start, end, len(picked), dict(failures), dict(served))


def segments(records: Sequence[RequestRecord], bounds: Sequence[tuple[str, float]], end: float) -> list[Segment]:
    """Consecutive segments: each ``(label, start)`` runs until the next one's start, the last until ``end``."""
    out = []
    for index, (label, start) in enumerate(bounds):
        stop = bounds[index + 1][1] if index + 1 < len(bounds) else end
        out.append(segment(records, label, start, stop))
    return out


# --- rollback ---------------------------------------------------------------------------------------------


class Observation(NamedTuple):
    """One answer of one nameserver for the watched record."""

    at: float
    """Epoch seconds."""
    server: str
    answer: str
    """The record's own RRset as ``"A 127.0.0.2"`` or ``"CNAME b-project.example.test."`` (``"none"``)."""
    ttl: int | None
    addresses: str = ""
    """The addresses the name resolves to in the same answer, CNAMEs followed (``"127.0.0.2"``)."""


def first_on_all(
    observations: Iterable[Observation],
    servers: Sequence[str],
    after: float,
    *,
    answer: str | None = None,
    ttl: int | None = None,
    addresses: str | None = None,
) -> float | None:
    """The instant from which every server had answered as asked (at least once) since ``after``.

    ``answer``, ``ttl`` and ``addresses`` are compared when given. The instant is the latest of the
    servers' first matching answers; None when some server never answered so.
    """
    firsts: dict[str, float] = {}
    for seen in sorted(observations):
        matches = (
            (answer is None or seen.answer == answer)
            and (ttl is None or seen.ttl == ttl)
            and (addresses is None or seen.addresses == addresses)
        )
        if seen.at >= after and matches and seen.server not in firsts:
            firsts[seen.server] = seen.at
    if any(server not in firsts for server in servers):
        return None
    return max(firsts[server] for server in servers)


def last_failure(records: Iterable[RequestRecord], after: float) -> float | None:
    """When the last failed client request started, among those started at or after ``after``."""
    return max((r.started for r in records if r.started >= after and r.failure is not None), default=None)


@dataclass(frozen=True)
class RollbackTimes:
    """The instants of one rollback run (epoch seconds)."""

    failed_at: float
    """The benchmark told B to fail (the control call returned)."""
    first_error_at: float | None
    """The first client request through Kong that got a 5xx after that."""
    detected_at: float
    """The monitor's poll that judged the window unhealthy (the verdict's window end)."""
    monitor_done_at: float
    """The workflow recorded the monitoring step as finished."""
    addresses_back_at: float
    """Every nameserver resolved the record to A's addresses again (possibly through a temporary name)."""
    restored_at: float
    """Every nameserver answered the original record (its data) again."""
    ttl_restored_at: float | None
    """... and the original TTL too (the last undo)."""
    ended_at: float
    """The run's result (rolled back) reached the benchmark."""
    last_error_at: float | None = None
    """The last client request through Kong that failed (clients were served again after it)."""

    @property
    def from_detection(self) -> float:
        """Seconds from the unhealthy poll to A's addresses answered by every nameserver."""
        return self.addresses_back_at - self.detected_at

    @property
    def from_failure(self) -> float:
        """Seconds from B failing to A's addresses answered by every nameserver (includes detection)."""
        return self.addresses_back_at - self.failed_at

    @property
    def record_from_detection(self) -> float:
        """Seconds from the unhealthy poll to the original record answered by every nameserver."""
        return self.restored_at - self.detected_at


def rollback_target(poll_interval: float) -> float:
    """The issue's target: one poll interval + 2 s."""
    return poll_interval + 2.0


def render_shares(served: Mapping[str, int], total: int, runtimes: Sequence[str] = ("A", "B")) -> str:
    """``A 40% / B 60%`` (``-`` without requests)."""
    if not total:
        return " / ".join(f"{r} -" for r in runtimes)
    return " / ".join(f"{r} {100 * served.get(r, 0) / total:.0f}%" for r in runtimes)


# --- rendering ---------------------------------------------------------------------------------------------


def render_run_line(label: str, breakdown: OverheadBreakdown) -> str:
    """One run on one line: wall = mandatory (by kind) + overhead."""
    kinds = ", ".join(f"{kind} {seconds:.2f}" for kind, seconds in breakdown.mandatory_by_kind().items())
    return (
        f"{label}: wall {breakdown.wall:.2f} s = mandatory {breakdown.mandatory_seconds:.2f} s ({kinds}) "
        f"+ overhead {breakdown.overhead:.2f} s (strict {breakdown.strict_overhead:.2f} s)"
    )


def render_items(breakdown: OverheadBreakdown, limit: int = 12) -> list[str]:
    """The largest overhead items of one run, largest first, and what the rest add up to."""
    ordered = sorted(breakdown.items, key=lambda item: -item.seconds)
    lines = [f"  {item.seconds:7.3f} s  [{item.phase}] {item.what[:90]}" for item in ordered[:limit]]
    rest = ordered[limit:]
    if rest:
        lines.append(f"  {sum(item.seconds for item in rest):7.3f} s  ({len(rest)} smaller items)")
    return lines
