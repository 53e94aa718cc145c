"""Business metrics of cutover runs, through the SDK's workflow metric meter.

They are served with the SDK's own metrics on the worker's Prometheus endpoint (``worker.py
--metrics``); the workflow meter records nothing while a history is replayed, so each event counts
once. Names and labels are listed in docs/operations.md.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.state import Run

RUNS = "cutover_runs_total"
PHASE_SECONDS = "cutover_phase_seconds"
ROLLBACKS = "cutover_rollbacks_total"
UNDO_FAILURES = "cutover_undo_failures_total"
GATE_WAIT_SECONDS = "cutover_gate_wait_seconds"

HISTOGRAM_BUCKETS: dict[str, list[float]] = {
    name: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 604800]
    for name in (PHASE_SECONDS, GATE_WAIT_SECONDS)
}
"""Buckets from a second to a week: gates wait up to a day or more, and the SDK's default stops at 10,000 s."""

_OUTCOMES = {"completed": "completed", "planned": "planned", "rolled-back": "rolled-back", "failed": "failed"}


def phase_changed(run: Run, previous: str, phase: str) -> None:
    """Time spent in the phase just left; gate waits separately; one count per ending."""
    meter = workflow.metric_meter()
    now = workflow.now()
    if run.phase_started is not None and previous != "starting":
        seconds = (now - run.phase_started).total_seconds()
        meter.create_histogram_float(PHASE_SECONDS, "Seconds a cutover spent in each phase", "s").record(
            seconds, {"phase": previous}
        )
        if previous.startswith("awaiting-") and previous.endswith("-approval"):
            gate = previous.removeprefix("awaiting-").removesuffix("-approval")
            meter.create_histogram_float(GATE_WAIT_SECONDS, "Seconds a cutover waited at a gate", "s").record(
                seconds, {"gate": gate}
            )
    run.phase_started = now
    if phase in _OUTCOMES:
        meter.create_counter(RUNS, "Cutover runs by outcome").add(1, {"outcome": _OUTCOMES[phase]})


def rolled_back(reason: str) -> None:
    """A rollback started; ``reason`` is its kind (abort, failure, unhealthy, cancel, approval-timeout)."""
    workflow.metric_meter().create_counter(ROLLBACKS, "Cutover rollbacks by reason").add(1, {"reason": reason})


def undo_failed(undo_id: str) -> None:
    """An undo failed or was kept back: the world is left partly changed."""
    workflow.metric_meter().create_counter(UNDO_FAILURES, "Undos that failed or were kept back").add(
        1, {"undo": undo_id}
    )
