"""The sandbox's components started and stopped together, and the knobs failure tests turn."""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp

from sandbox import pki
from sandbox.bind import BindPair, bind_pair
from sandbox.topology.components import define_components, python_env
from sandbox.topology.config import (
    DECOMMISSION_AUTH_ENV,
    MARKER,
    NOTIFY_URL_ENV,
    RUNTIME_HOSTS,
    TSIG_ENV,
    TSIG_KEY_NAME,
    ZONE,
    PortBusyError,
    Timings,
    TopologyError,
    zone_records,
)
from sandbox.topology.layout import Layout
from sandbox.topology.leftovers import kill_leftovers, process_identity
from sandbox.topology.ports import Ports
from sandbox.topology.process import Component


@dataclass
class ComponentInfo:
    """One row of the demo's component table."""

    name: str
    address: str
    pid: int | None
    log: str
    description: str


class Topology(Layout):
    """Every component of the sandbox as its own process, started and stopped together.

    Use as ``async with Topology(workdir, ports="auto") as topo:`` (or ``await topo.start()`` /
    ``await topo.stop()``). Component operations for failure tests: :meth:`kill_worker` /
    :meth:`start_worker`, :meth:`stop_temporal` / :meth:`start_temporal` (same SQLite file),
    :meth:`stop_bind_primary` / :meth:`start_bind_primary`, :meth:`stop_runtime` /
    :meth:`start_runtime`, :meth:`runtime_control` (make B fail).

    Args:
        workdir: the work directory; wiped at start (it must be empty, missing, or an earlier work directory).
        ports: ``"default"`` (the demo's fixed ports), ``"auto"`` (free ports) or explicit :class:`Ports`.
        timings: TTLs and plan timings.
        worker: start ``python worker.py`` (False: the test runs its own worker).
        kong_workers: nginx workers the emulator simulates (one legacy DNS cache each).
        extra_records: zone-file lines added to the sandbox zone (e.g. one record per cutover of a
            benchmark: ``"api-001 20 A 127.0.0.2"``).
        extra_hosts: more Host names both runtimes answer and their certificates cover (the names
            Kong sends for ``extra_records``).
        echo: called with one line per component as it becomes ready (the demo prints them).
    """

    def __init__(
        self,
        workdir: str | Path,
        *,
        ports: Ports | Literal["default", "auto"] = "default",
        timings: Timings | None = None,
        worker: bool = True,
        kong_workers: int = 1,
        extra_records: str = "",
        extra_hosts: Sequence[str] = (),
        echo: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(workdir, ports=ports, timings=timings)
        self.worker = worker
        self.kong_workers = kong_workers
        self.zone_records = zone_records(self.timings.record_ttl) + extra_records.strip("\n") + "\n"
        self.runtime_hosts = {name: (*hosts, *extra_hosts) for name, hosts in RUNTIME_HOSTS.items()}
        self.echo = echo
        self.tsig_secret = base64.b64encode(os.urandom(32)).decode()
        self.decommission_auth = secrets.token_urlsafe(24)
        self.components: dict[str, Component] = {}
        self.bind: BindPair | None = None
        self.pki: pki.Pki | None = None
        self._bind_stack: contextlib.ExitStack | None = None
        self._owns_workdir = False

    # -- lifecycle --

    async def __aenter__(self) -> Topology:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start every component, in dependency order, each waited for; on failure stop what started."""
        atexit.register(self.kill_all_now)
        try:
            # Claim the directory (refusing a live sandbox's, stopping a dead one's leftovers, which may
            # hold the ports), check the ports, and only then wipe: a refused start destroys nothing.
            await asyncio.to_thread(self._claim_workdir)
            busy = self.ports.busy()
            if busy:
                raise PortBusyError(
                    "cannot start the sandbox: "
                    + "; ".join(busy)
                    + ". Stop what listens there (`ss -ltnup`), or use free ports (--ports auto)."
                )
            await asyncio.to_thread(self._wipe_workdir)
            self.pki = await asyncio.to_thread(pki.issue, self.workdir / "pki", self.runtime_hosts)
            self.components.update(define_components(self))
            # Temporal takes longest: it starts alongside the rest, only the worker waits for it.
            temporal = asyncio.ensure_future(self._start_component("temporal", timeout=60))
            try:
                await asyncio.to_thread(self._start_bind)
                await asyncio.gather(*(self._start_component(n) for n in ("runtime-A", "runtime-B", "receiver")))
                await self._start_component("kong")
                await temporal
            finally:
                if not temporal.done():
                    temporal.cancel()
                    await asyncio.wait([temporal])  # let it finish cancelling; its error is not ours
            if self.worker:
                await self._start_component("worker", timeout=60)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop everything: the worker, then SIGTERM to every other process group at once; SIGKILL what is left."""
        try:
            # The worker first, while Temporal still takes its last reports (cancelled activities);
            # stopped together with Temporal it retries them until the grace period runs out.
            worker = self.components.get("worker")
            if worker is not None:
                await worker.stop()
            running = [c for c in self.components.values() if c.process is not None and c is not worker]
            await asyncio.gather(*(c.stop() for c in running), asyncio.to_thread(self._stop_bind))
        except BaseException:
            self.kill_all_now()
            raise
        finally:
            self._write_pids()
            atexit.unregister(self.kill_all_now)

    def kill_all_now(self) -> None:
        """SIGKILL every component synchronously: the last resort (atexit, a second Ctrl-C)."""
        for component in self.components.values():
            component.kill_now()
        if self.bind is not None:
            for server in (self.bind.secondary, self.bind.primary):
                if server.process is not None and server.process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(server.process.pid, signal.SIGKILL)
                    server.process.wait()

    def _claim_workdir(self) -> None:
        root = self.workdir
        if root.exists():
            if any(root.iterdir()) and not (root / MARKER).exists():
                raise TopologyError(
                    f"{root} is not empty and is not a sandbox work directory (no {MARKER} file): "
                    "refusing to wipe it; choose another --workdir"
                )
            stopped = kill_leftovers(root)
            if stopped:
                self._say(f"stopped {len(stopped)} process(es) a crashed run left in {root}: {sorted(stopped)}")

    def _wipe_workdir(self) -> None:
        root = self.workdir
        self._owns_workdir = True
        if root.exists():
            shutil.rmtree(root)
        for sub in ("logs", "run", "plans", "kong"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / MARKER).write_text("work directory of sandbox.topology; wiped at every start\n")
        self._write_pids()

    def worker_env(self) -> dict[str, str]:
        """The variables only the worker gets: Temporal address and the secrets plans name."""
        return {
            "TEMPORAL_ADDRESS": self.temporal_address,
            TSIG_ENV: self.tsig_secret,
            DECOMMISSION_AUTH_ENV: self.decommission_auth,
            NOTIFY_URL_ENV: f"{self.receiver_url}/notify",
        }

    def cli_env(self) -> dict[str, str]:
        """An environment for ``python starter.py ...`` and ``temporal ...`` against this topology (no secrets)."""
        env = python_env()
        env["TEMPORAL_ADDRESS"] = self.temporal_address
        env["TEMPORAL_UI_URL"] = self.ui_url
        return env

    async def _start_component(self, name: str, timeout: float = 20.0) -> None:
        component = self.components[name]
        component.spawn()
        if name.startswith("runtime-"):
            self.runtime_pid_file(name.removeprefix("runtime-")).write_text(f"{component.pid}\n")
        self._write_pids()
        await component.wait_ready(timeout)
        self._say(f"{name:15} ready  {component.address}")

    def _start_bind(self) -> None:
        stack = contextlib.ExitStack()
        try:
            self.bind = stack.enter_context(
                bind_pair(
                    zone=ZONE,
                    records=self.zone_records,
                    key_name=TSIG_KEY_NAME,
                    secret=self.tsig_secret,
                    primary_port=self.ports.bind_primary,
                    secondary_port=self.ports.bind_secondary,
                    directory=str(self.workdir / "bind"),
                )
            )
        except BaseException as exc:
            stack.close()
            if isinstance(exc, RuntimeError):
                raise TopologyError(f"BIND did not start: {exc}") from exc
            raise
        self._bind_stack = stack
        self._write_pids()
        self._say(f"{'bind':15} ready  primary {self.bind.primary.address}, secondary {self.bind.secondary.address}")

    def _stop_bind(self) -> None:
        if self._bind_stack is not None:
            self._bind_stack.close()
            self._bind_stack = None

    def _write_pids(self) -> None:
        """Record this process and every live component, for :func:`kill_leftovers` after a crash."""
        if not self._owns_workdir and (self.workdir / "pids.json").exists():
            return  # a refused start never overwrites the record of the sandbox that owns the directory
        processes: dict[str, int] = {n: c.pid for n, c in self.components.items() if c.running and c.pid}
        if self.bind is not None:
            for server in (self.bind.primary, self.bind.secondary):
                if server.process is not None and server.process.poll() is None:
                    processes[f"bind-{server.role}"] = server.process.pid
        if self.workdir.exists():
            identities = {str(pid): process_identity(pid) for pid in processes.values()}
            record = {
                "owner": os.getpid(),
                "owner_identity": process_identity(os.getpid()),
                "processes": processes,
                "identities": {pid: identity for pid, identity in identities.items() if identity is not None},
            }
            (self.workdir / "pids.json").write_text(json.dumps(record, indent=1))

    def _say(self, line: str) -> None:
        if self.echo is not None:
            self.echo(line)

    def component_table(self) -> list[ComponentInfo]:
        """Every component with its address, pid and log, in start order."""
        rows = []
        if self.bind is not None:
            for server in (self.bind.primary, self.bind.secondary):
                rows.append(
                    ComponentInfo(
                        name=f"bind-{server.role}",
                        address=server.address,
                        pid=server.process.pid if server.process is not None else None,
                        log=str(server.directory / "named.log"),
                        description=f"BIND 9 {server.role} for {ZONE} (TSIG key {TSIG_KEY_NAME})",
                    )
                )
        for component in self.components.values():
            rows.append(
                ComponentInfo(
                    name=component.name,
                    address=component.address,
                    pid=component.pid if component.running else None,
                    log=str(component.log),
                    description=component.description,
                )
            )
        return rows

    def pids(self) -> list[int]:
        """Pids of every process (and process group) started, alive or not: for "no orphans" checks."""
        found = [c.pid for c in self.components.values() if c.pid is not None]
        if self.bind is not None:
            found += [s.process.pid for s in (self.bind.primary, self.bind.secondary) if s.process is not None]
        return found

    # -- failure knobs for tests and benchmarks --

    def kill_worker(self, sig: int = signal.SIGKILL) -> None:
        """Signal the worker's process group (default SIGKILL: a crash mid-activity) and reap it."""
        component = self.components["worker"]
        component.send(sig)
        if sig == signal.SIGKILL and component.process is not None:
            component.process.wait(timeout=5)

    async def start_worker(self, timeout: float = 60) -> None:
        """Start (or restart) the worker and wait until it polls the task queue."""
        await self._start_component("worker", timeout=timeout)

    async def stop_worker(self) -> None:
        """Stop the worker gracefully (SIGTERM)."""
        await self.components["worker"].stop()

    async def stop_temporal(self) -> None:
        """Stop the dev server gracefully; its SQLite file keeps every workflow."""
        await self.components["temporal"].stop()

    async def start_temporal(self, timeout: float = 60) -> None:
        """Start the dev server again on the same SQLite file and ports."""
        await self._start_component("temporal", timeout=timeout)

    async def restart_temporal(self) -> None:
        """Stop and start the dev server (workers reconnect by themselves)."""
        await self.stop_temporal()
        await self.start_temporal()

    def _require_bind(self) -> BindPair:
        if self.bind is None:
            raise TopologyError("BIND is not running")
        return self.bind

    async def stop_bind_primary(self) -> None:
        """Stop the BIND primary (the secondary keeps answering from its copy)."""
        pair = self._require_bind()
        await asyncio.to_thread(pair.primary.stop)
        self._write_pids()

    async def start_bind_primary(self) -> None:
        """Start the BIND primary again with its zone and journal (earlier updates are kept)."""
        pair = self._require_bind()
        await asyncio.to_thread(pair.primary.start)
        await asyncio.to_thread(pair.wait_ready, pair.primary)
        self._write_pids()

    async def stop_runtime(self, runtime: str) -> None:
        """Stop runtime A or B."""
        await self.components[f"runtime-{runtime}"].stop()

    async def start_runtime(self, runtime: str) -> None:
        """Start runtime A or B again (e.g. A after the decommission, to reset a test)."""
        await self._start_component(f"runtime-{runtime}")

    def runtime_running(self, runtime: str) -> bool:
        """True while the runtime's process lives (the decommission stops A's)."""
        return self.components[f"runtime-{runtime}"].running

    async def runtime_control(self, runtime: str, action: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call a runtime's control endpoint, e.g. ``runtime_control("B", "fail", {"status": 503})``."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        context.check_hostname = False  # the control endpoint is addressed by IP
        url = self.runtime_control_url(runtime, action)
        async with aiohttp.ClientSession() as session:
            request = (
                session.get(url, ssl=context)
                if action == "stats"
                else session.post(url, json=dict(body or {}), ssl=context)
            )
            async with request as response:
                response.raise_for_status()
                return await response.json()

    async def receiver_state(self) -> Any:
        """What the decommission receiver saw: deletions (with idempotency keys) and notifications."""
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.receiver_url}/_receiver/state") as response:
                response.raise_for_status()
                return await response.json()
