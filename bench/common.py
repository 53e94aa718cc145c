"""What every benchmark shares: machine facts, a quiet machine, timed runs, gate approval, DNS watching.

The benchmarks drive the sandbox (sandbox/topology/) as the demo does: one ``Topology`` per
measurement on free ports in its own temporary directory, cutovers started exactly as
``python starter.py start`` starts them, gates approved through the ``approve`` update. Every
address is on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import aiohttp
import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
from aiohttp import web
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowFailureError,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError

import starter
from bench.figures import EventRow, Observation
from models.plan import CutoverPlan
from models.workflow import PHASE_ATTRIBUTE, ApproveRequest, CutoverStatus
from sandbox.load import require_loopback
from sandbox.topology import REPO_ROOT, Topology, venv_binary
from settings import TemporalSettings

PHASE = SearchAttributeKey.for_keyword(PHASE_ATTRIBUTE)
GATE_PHASES = ("awaiting-flip-approval", "awaiting-decommission-approval")
APPROVER = "bench"
EXIT_ERROR = 1


class BenchError(RuntimeError):
    """The measurement could not be made (a run did not complete, a component failed): exit non-zero."""


# --- output ---------------------------------------------------------------------------------------------


def say(text: str = "") -> None:
    """Print and flush (the figures stream while a long benchmark runs)."""
    print(text, flush=True)


def package_version(name: str) -> str:
    """An installed distribution's version, or ``not installed``."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _command_output(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "?"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_total() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def machine_facts() -> dict[str, str]:
    """What a reader needs to interpret the figures: CPUs, load, versions, the commit measured."""
    load = os.getloadavg()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": f"{os.cpu_count()} x {_cpu_model()}",
        "memory": _memory_total(),
        "os": f"{platform.system()} {platform.release()}",
        "load average (1/5/15 min)": " / ".join(f"{value:.2f}" for value in load),
        "python": platform.python_version(),
        "temporalio": package_version("temporalio"),
        "temporal CLI (dev server)": _command_output([venv_binary("temporal"), "--version"]),
        "bind": _command_output(["/usr/sbin/named", "-v"]),
        "dnspython": package_version("dnspython"),
        "aiohttp": package_version("aiohttp"),
        "commit": _command_output(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]),
        "uncommitted product files": _uncommitted(),
    }


PRODUCT_PATHS = ("models", "providers", "activities", "workflows", "worker.py", "starter.py", "settings.py", "sandbox")
"""What the figures depend on: a change here that is not committed yet is measured too."""


def _uncommitted() -> str:
    """The product files that differ from the commit (others work in the same tree), or ``none``."""
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", *PRODUCT_PATHS],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    changed = [line[3:] for line in done.stdout.splitlines() if line.strip()]
    return ", ".join(changed) if changed else "none"


def print_facts(title: str) -> dict[str, str]:
    """Print the machine facts under a title; return them for the JSON output."""
    facts = machine_facts()
    say(f"== {title}")
    width = max(len(key) for key in facts)
    for key, value in facts.items():
        say(f"  {key:<{width}}  {value}")
    return facts


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


async def wait_for_quiet(threshold: float, timeout: float) -> float:
    """Wait until the 1-minute load average is below ``threshold`` (at most ``timeout`` s); return it.

    Other people's heavy tests on a 2-core machine distort every figure; the benchmark says so
    rather than silently measuring a busy machine.
    """
    deadline = time.monotonic() + timeout
    load = load_average()
    if load >= threshold:
        say(f"  load average {load:.2f} >= {threshold:g}: waiting up to {timeout:.0f} s for a quiet machine")
    while load >= threshold and time.monotonic() < deadline:
        await asyncio.sleep(5)
        load = load_average()
    if load >= threshold:
        say(f"  WARNING: load average still {load:.2f} (>= {threshold:g}): the figures below are from a busy machine")
    else:
        say(f"  load average {load:.2f} (< {threshold:g}): quiet enough")
    return load


async def quiet_start(args: argparse.Namespace) -> float:
    """Before one measured run: wait for a quiet machine (unless ``--quiet-timeout 0``); return the load average."""
    if args.quiet_timeout > 0:
        await wait_for_quiet(args.quiet_load, args.quiet_timeout)
    return load_average()


def common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every benchmark takes."""
    parser.add_argument("--quiet-load", type=float, default=1.0, help="wait for a 1-min load average below this (1.0)")
    parser.add_argument("--quiet-timeout", type=float, default=600.0, help="seconds to wait for it (600; 0: don't)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directories (logs)")


def write_report(
    args: argparse.Namespace,
    benchmark: str,
    facts: Mapping[str, Any],
    figures: Mapping[str, Any],
    load_before_after: tuple[float, float] | None = None,
) -> None:
    """Write a benchmark's figures with the machine facts and its arguments when ``--json`` was given."""
    header: dict[str, Any] = {
        "benchmark": benchmark,
        "facts": facts,
        "arguments": {k: str(v) for k, v in vars(args).items()},
    }
    if load_before_after is not None:
        header["load_average"] = {"before": load_before_after[0], "after": load_before_after[1]}
    write_json(args.json, {**header, **figures})


def write_json(path: Path | None, data: Mapping[str, Any]) -> None:
    """Write the figures (and facts) when ``--json`` was given."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    say(f"figures written to {path}")


def run_main(main: Callable[[argparse.Namespace], Any], parser: argparse.ArgumentParser) -> int:
    """Parse, run, and exit 0 unless the measurement itself failed (a missed target is not a failure)."""
    args = parser.parse_args()
    try:
        asyncio.run(main(args))
    except BenchError as exc:
        say(f"ERROR: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    return 0


# --- topology ---------------------------------------------------------------------------------------------


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


# --- timed runs ---------------------------------------------------------------------------------------------


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


async def stop_loop(task: asyncio.Task[None] | None) -> None:
    """Cancel a watcher's background loop and wait until it has really stopped."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- gates -----------------------------------------------------------------------------------------------------


@dataclass
class GateApprover:
    """Approves every gate as soon as Temporal's visibility shows a run waiting at one.

    It lists runs by the ``CutoverPhase`` search attribute (what ``starter.py list --phase`` does),
    reads the plan digest from the memo and sends the ``approve`` update: no status queries, so
    it adds no work to the worker however many runs wait. The time until it notices is gate time
    (a human's), not overhead. An update that gets no answer in time is sent again after
    ``retry_after`` seconds (each attempt costs the worker a validation); one rejected because the
    gate is no longer awaited means an earlier attempt landed, and is not repeated.
    """

    client: Client
    interval: float = 0.2
    retry_after: float = 2.0
    approved: list[tuple[str, str, float]] = field(default_factory=list)
    problems: Counter[str] = field(default_factory=Counter)
    """Why attempts failed (normalised), with counts."""
    _handled: set[tuple[str, str, str]] = field(default_factory=set)
    _retry_at: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> GateApprover:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await stop_loop(self._task)
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    @property
    def failed_attempts(self) -> int:
        """Attempts that did not approve (rejected or unanswered)."""
        return sum(self.problems.values())

    async def _run(self) -> None:
        phases = ", ".join(f'"{phase}"' for phase in GATE_PHASES)
        query = f'ExecutionStatus = "Running" AND {PHASE_ATTRIBUTE} IN ({phases})'
        while True:
            try:
                async for execution in self.client.list_workflows(query):
                    phase = execution.typed_search_attributes.get(PHASE) or ""
                    gate = phase.removeprefix("awaiting-").removesuffix("-approval")
                    key = (execution.id, execution.run_id or "", gate)
                    if key in self._handled or self._retry_at.get(key, 0.0) > time.monotonic():
                        continue
                    self._handled.add(key)
                    digest = await execution.memo_value("plan_digest", type_hint=str)
                    task = asyncio.get_running_loop().create_task(self._approve(execution.id, gate, digest, key))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
            except RPCError as exc:
                self.problems[f"listing runs failed: {exc}"[:160]] += 1
            await asyncio.sleep(self.interval)

    async def _approve(self, workflow_id: str, gate: str, digest: str, key: tuple[str, str, str]) -> None:
        handle = self.client.get_workflow_handle(workflow_id)
        request = ApproveRequest(gate=gate, by=APPROVER, digest=digest, comment="benchmark auto-approval")
        try:
            await handle.execute_update("approve", request, result_type=str)
        except WorkflowUpdateFailedError as exc:
            reason = str(exc.cause or exc)
            self.problems[normalised_reason(f"rejected: {reason}")] += 1
            if "not awaited" not in reason and "has ended" not in reason:
                self._retry_later(key)
            return
        except (RPCTimeoutOrCancelledError, RPCError) as exc:
            self.problems[normalised_reason(f"no answer: {type(exc).__name__}: {exc}")] += 1
            self._retry_later(key)
            return
        self.approved.append((workflow_id, gate, time.time()))

    def _retry_later(self, key: tuple[str, str, str]) -> None:
        self._retry_at[key] = time.monotonic() + self.retry_after
        self._handled.discard(key)


def normalised_reason(reason: str) -> str:
    """A reason without run-specific names and digests, so equal reasons are counted together."""
    return re.sub(r"[0-9a-f]{64}|bench-\d{3}|cutover-[\w-]+", "<...>", reason)[:160]


# --- DNS -------------------------------------------------------------------------------------------------------


def describe_answer(response: dns.message.Message, name: str) -> tuple[str, int | None]:
    """The record's own RRset in an answer as ``("A 127.0.0.2", ttl)``; ``("none", None)`` if absent."""
    owner = dns.name.from_text(name)
    for rrset in response.answer:
        if rrset.name == owner:
            data = " ".join(sorted(rdata.to_text() for rdata in rrset))
            return f"{dns.rdatatype.to_text(rrset.rdtype)} {data}", int(rrset.ttl)
    return "none", None


def resolved_addresses(response: dns.message.Message, name: str) -> str:
    """The A addresses ``name`` resolves to within one answer, CNAMEs followed (``""`` when none)."""
    current = dns.name.from_text(name)
    for _ in range(10):
        rrsets = [rrset for rrset in response.answer if rrset.name == current]
        addresses = sorted(r.to_text() for rrset in rrsets if rrset.rdtype == dns.rdatatype.A for r in rrset)
        if addresses:
            return " ".join(addresses)
        targets = [r.target for rrset in rrsets if rrset.rdtype == dns.rdatatype.CNAME for r in rrset]
        if not targets:
            return ""
        current = targets[0]
    return ""


@dataclass
class DnsWatcher:
    """Ask every nameserver for one name every ``every`` seconds and keep each answer with its time.

    The benchmark's own view of the outside world: when a record *really* changed on each
    authoritative server, independent of what the workflow reports.
    """

    servers: Sequence[str]
    """``host:port`` of each nameserver (127.0.0.0/8)."""
    name: str
    every: float = 0.02
    observations: list[Observation] = field(default_factory=list)
    errors: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def __aenter__(self) -> DnsWatcher:
        loop = asyncio.get_running_loop()
        for server in self.servers:
            require_loopback(f"http://{server}/")
            self._tasks.append(loop.create_task(self._watch(server)))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _watch(self, server: str) -> None:
        host, _, port = server.rpartition(":")
        while True:
            query = dns.message.make_query(self.name, "A")
            try:
                response = await dns.asyncquery.udp(query, host, port=int(port), timeout=0.5)
            except (dns.exception.DNSException, OSError):
                self.errors += 1
            else:
                answer, ttl = describe_answer(response, self.name)
                addresses = resolved_addresses(response, self.name)
                self.observations.append(Observation(time.time(), server, answer, ttl, addresses))
            await asyncio.sleep(self.every)


# --- Kong services and a decommission sink for many cutovers ----------------------------------------------


async def seed_kong_services(topo: Topology, names: Sequence[str]) -> None:
    """Create one Kong Service (host ``<name>.example.test``) and one route (``/<name>``) per name.

    Shaped like sandbox/services.yaml's orders-api, through Kong's Admin API as an operator would.
    """
    admin = require_loopback(topo.kong_admin_url)
    semaphore = asyncio.Semaphore(20)
    async with aiohttp.ClientSession() as session:

        async def create(name: str) -> None:
            service = {
                "name": name,
                "protocol": "https",
                "host": f"{name}.example.test",
                "port": topo.ports.runtime,
                "path": "/orders/v1",
                "retries": 5,
                "connect_timeout": 5000,
                "read_timeout": 10000,
                "write_timeout": 10000,
                "tls_verify": True,
            }
            route = {"name": name, "paths": [f"/{name}"], "strip_path": True, "preserve_host": False}
            async with semaphore:
                for url, body in ((f"{admin}/services", service), (f"{admin}/services/{name}/routes", route)):
                    async with session.post(url, json=body) as response:
                        if response.status != 201:
                            text = await response.text()
                            raise BenchError(f"Kong Admin API: POST {url} -> {response.status}: {text}")

        await asyncio.gather(*(create(name) for name in names))


@dataclass
class DecommissionSink:
    """A loopback webhook that accepts "delete project <name>" and only records it.

    The sandbox's receiver really stops runtime A, which serves every benchmark record: deleting it
    after the first of many cutovers would break the others. This sink keeps A running while each
    cutover still proves A drained for its own Service and calls its webhook.
    """

    calls: dict[str, int] = field(default_factory=dict)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> DecommissionSink:
        app = web.Application()
        app.router.add_route("DELETE", "/projects/{project}", self._delete)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _delete(self, request: web.Request) -> web.Response:
        project = request.match_info["project"]
        self.calls[project] = self.calls.get(project, 0) + 1
        return web.json_response({"project": project, "deleted": True})


# --- histories -------------------------------------------------------------------------------------------


def event_rows(history: WorkflowHistory) -> list[EventRow]:
    """A fetched history reduced to :class:`~bench.figures.EventRow` (for :func:`~bench.figures.task_times`)."""
    rows = []
    for event in history.events:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        attributes = event.WhichOneof("attributes")
        scheduled_id = getattr(getattr(event, attributes), "scheduled_event_id", 0) if attributes else 0
        rows.append(EventRow(event.event_id, kind, event.event_time.ToDatetime(UTC).timestamp(), int(scheduled_id)))
    return rows


# --- process figures ------------------------------------------------------------------------------------------


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
