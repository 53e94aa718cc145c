"""The traffic activities run in Temporal's ActivityEnvironment over a real file-log: inputs, heartbeats, writers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.testing import ActivityEnvironment

from models.plan import MonitorSection
from models.telemetry import DrainInput, MonitorInput
from providers.telemetry.base import from_rfc3339
from tests.telemetry.kong_lines import A_IP, B_IP, SERVICE

LOGGING_PROJECT = "kong-gke-project"


def file_monitor(path: Path, **overrides: Any) -> MonitorSection:
    data: dict[str, Any] = {
        "source": {"kind": "kong-file-log", "path": str(path)},
        "window": "1500ms",
        "poll_interval": "300ms",
        "min_requests": 5,
        "max_error_ratio": 0.05,
    }
    return MonitorSection.model_validate({**data, **overrides})


def monitor_input(monitor: MonitorSection, **overrides: Any) -> MonitorInput:
    return MonitorInput(monitor=monitor, service=SERVICE, a_addresses=(A_IP,), b_addresses=(B_IP,), **overrides)


def append(path: Path, *lines: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(lines))


def file_size(path: Path) -> int:
    return path.stat().st_size


class Recorder:
    """An ActivityEnvironment whose heartbeats are kept (as JSON, the way Temporal would carry them)."""

    def __init__(self) -> None:
        self.env = ActivityEnvironment()
        self.heartbeats: list[Any] = []
        self.beating = asyncio.Event()
        """Set at the first heartbeat: the activity has opened its cursor."""
        self.env.on_heartbeat = self._record

    def _record(self, *details: Any) -> None:
        self.heartbeats.append(json.loads(json.dumps(details)))
        self.beating.set()

    def resume_from(self, details: Any) -> None:
        self.env.info = dataclasses.replace(self.env.info, heartbeat_details=[details])

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.env.run(fn, *args)


async def write_lines(
    path: Path, every: float, make: Callable[[], str], count: int, *, after: asyncio.Event | None = None
) -> None:
    """Append ``count`` lines, one every ``every`` seconds, once ``after`` is set (the cursor is open)."""
    if after is not None:
        await after.wait()
    for _ in range(count):
        append(path, make())
        await asyncio.sleep(every)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def listing_bounds(request: dict[str, Any]) -> tuple[datetime, datetime]:
    """The ``timestamp>=`` and ``timestamp<`` bounds of a Cloud Logging listing's filter."""
    lower = request["filter"].split('timestamp>="')[1].split('"')[0]
    upper = request["filter"].split('timestamp<"')[1].split('"')[0]
    return from_rfc3339(lower), from_rfc3339(upper)


def drain_input(monitor: MonitorSection, quiet: float, timeout: float) -> DrainInput:
    return DrainInput(
        monitor=monitor,
        service=SERVICE,
        a_addresses=(A_IP,),
        b_addresses=(B_IP,),
        quiet_period_seconds=quiet,
        timeout_seconds=timeout,
    )
