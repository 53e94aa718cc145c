"""CPU and memory figures of the sandbox's processes, from /proc."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common.output import stop_loop
from sandbox.topology import Topology


def proc_status_kib(pid: int, field_name: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM), None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine_cpu() -> tuple[int, int]:
    """``(busy, total)`` jiffies of the whole machine since boot (/proc/stat), everyone's processes included."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def machine_busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share (0..1) of all CPUs' time that was busy between two :func:`machine_cpu` readings."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def component_cpu(topo: Topology) -> dict[str, float]:
    """CPU seconds used so far by every sandbox process still running, and by this benchmark."""
    used = {row.name: cpu_seconds(row.pid) for row in topo.component_table() if row.pid is not None}
    times = os.times()
    out = {name: seconds for name, seconds in used.items() if seconds is not None}
    out["benchmark (load, approver, watchers)"] = times.user + times.system
    return out


@dataclass
class RssSampler:
    """Sample a process's resident memory every ``every`` seconds (VmHWM gives the exact peak)."""

    pid: int
    every: float = 0.5
    samples: list[tuple[float, int]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await stop_loop(self._task)

    async def _run(self) -> None:
        while True:
            rss = proc_status_kib(self.pid, "VmRSS")
            if rss is not None:
                self.samples.append((time.time(), rss))
            await asyncio.sleep(self.every)

    @property
    def peak_sampled_kib(self) -> int | None:
        """The highest sampled VmRSS."""
        return max((rss for _, rss in self.samples), default=None)
