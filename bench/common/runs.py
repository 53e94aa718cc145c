"""A sandbox per measurement, and cutovers started and timed exactly as ``starter.py start`` runs them."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHistory,
)

import starter
from bench.common.output import BenchError, say
from bench.figures import EventRow
from models.plan import CutoverPlan
from models.workflow import CutoverStatus
from sandbox.topology import Topology
from settings import TemporalSettings


@contextlib.asynccontextmanager
async def bench_topology(keep: bool, **options: Any) -> AsyncIterator[Topology]:
    """A sandbox on free ports in a fresh temporary directory, removed afterwards unless ``keep``."""
    root = Path(tempfile.mkdtemp(prefix="cutover-bench-"))
    try:
        async with Topology(root / "sandbox", ports="auto", **options) as topo:
            yield topo
    finally:
        if keep:
            say(f"  work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def settings_for(topo: Topology) -> TemporalSettings:
    """How the starter reaches this topology's Temporal."""
    return TemporalSettings(address=topo.temporal_address, ui_url=topo.ui_url)


def utc_now() -> datetime:
    """An aware UTC timestamp (the workflow's timeline uses the same clock)."""
    return datetime.now(UTC)


@dataclass
class TimedRun:
    """One cutover: when the benchmark started it and got its result, and how it ended."""

    workflow_id: str
    called_at: datetime
    result_at: datetime
    status: CutoverStatus
    error: str | None = None

    @property
    def wall(self) -> float:
        """Seconds from the ``start_workflow`` call to the result."""
        return (self.result_at - self.called_at).total_seconds()


async def start_timed(client: Client, settings: TemporalSettings, plan: CutoverPlan) -> tuple[str, datetime]:
    """Start a run as ``starter.py start`` does; return its id and when the call was made."""
    called_at = utc_now()
    workflow_id = await starter.start(client, settings, plan)
    return workflow_id, called_at


async def await_timed(client: Client, workflow_id: str, called_at: datetime) -> TimedRun:
    """Wait for the run's end; a failed or rolled-back run is returned with its final status and error."""
    handle = client.get_workflow_handle(workflow_id, result_type=CutoverStatus)
    try:
        status = await handle.result()
    except WorkflowFailureError as exc:
        result_at = utc_now()
        status = await handle.query("status", result_type=CutoverStatus)
        return TimedRun(workflow_id, called_at, result_at, status, str(exc.cause))
    return TimedRun(workflow_id, called_at, utc_now(), status)


async def run_timed(client: Client, settings: TemporalSettings, plan: CutoverPlan) -> TimedRun:
    """Start one run and wait for its end."""
    workflow_id, called_at = await start_timed(client, settings, plan)
    return await await_timed(client, workflow_id, called_at)


async def dry_run(client: Client, settings: TemporalSettings, plan: CutoverPlan) -> TimedRun:
    """``starter.py plan``: the dry run an operator does first (it also warms the worker up)."""
    return await run_timed(client, settings, plan.model_copy(update={"dry_run": True}))


def require_completed(run: TimedRun) -> None:
    """A run the figure needs ended ``completed``; anything else is a failed measurement."""
    if run.status.phase != "completed":
        raise BenchError(f"{run.workflow_id} ended {run.status.phase}: {run.error or run.status.error}")


def event_rows(history: WorkflowHistory) -> list[EventRow]:
    """A fetched history reduced to :class:`~bench.figures.EventRow` (for :func:`~bench.figures.task_times`)."""
    rows = []
    for event in history.events:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        attributes = event.WhichOneof("attributes")
        scheduled_id = getattr(getattr(event, attributes), "scheduled_event_id", 0) if attributes else 0
        rows.append(EventRow(event.event_id, kind, event.event_time.ToDatetime(UTC).timestamp(), int(scheduled_id)))
    return rows
