"""What the end-to-end tests share: short timings, one lane per cutover, and readers of the outside world.

Everything the tests assert is read here independently of the code under test: DNS with plain
dnspython queries (RD=0) to each nameserver, the load's per-request records, the decommission
receiver's state, Kong's Admin API, the workflow's status query, result and history, and the CLI's
exit codes. The product is only driven (started, approved, aborted) as an operator would.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import aiohttp
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

import starter
from models.plan import CutoverPlan
from models.workflow import TERMINAL_PHASES, ApproveRequest, CutoverStatus, StepRecord
from providers.decommission.webhook import DeletionContext
from sandbox.demo import _worker_problems as worker_problems
from sandbox.load import LoadGenerator, RequestRecord
from sandbox.topology import REPO_ROOT, RUNTIME_ADDRESSES, TSIG_KEY_NAME, ZONE, Timings, Topology, venv_binary
from settings import TemporalSettings

E2E_TIMINGS = Timings(
    record_ttl=3,
    kong_dns_stale_ttl=1,
    kong_dns_not_found_ttl=3,  # Kong's negative cache, which the two-step rollback of a flip waits out
    cutover_ttl=1,
    final_ttl=7,
    wait_margin="1s",
    readiness_interval="500ms",
    readiness_successes=2,
    monitor_window="4s",
    poll_interval="500ms",
    min_requests=20,
    quiet_period="2s",
    drain_timeout="30s",
    approval_timeout="10m",
)
"""Short enough for a whole cutover in about 15 s, every phase still real: the zone's records hold
TTL 3, lowered to 1 and raised to 7 at the end; Kong keeps stale answers 1 s; a 4 s monitoring window
sees ~80 requests at the load's rate, so ``min_requests`` 20 is comfortably met."""
LOAD_RATE = 20.0
"""Requests per second through Kong (the issue asks for at least 20)."""
ZONE_ORIGIN = ZONE + "."
B_TARGET = "b-project.example.test."
A_ADDRESS = RUNTIME_ADDRESSES["A"]
E2E_BY = "e2e"


# --- lanes: one record, Kong Service and route per cutover ------------------------------------------


@dataclass(frozen=True)
class Lane:
    """What one cutover owns on a topology: its record, its Kong Service and the route the load uses.

    Several lanes share one topology without touching each other: each has its own record in the zone
    (``api-NN``), its own Kong Service (``svc-NN``, whose host is that record) and its own route, so the
    file-log lines the monitor reads are told apart by service.
    """

    name: str
    """Plan name; the workflow id is ``cutover-<name>``."""
    record: str
    """The record the plan changes (absolute)."""
    service: str
    path: str
    """Route path prefix at Kong's proxy."""
    service_host: str
    """The Kong Service host before the cutover."""

    @property
    def workflow_id(self) -> str:
        """``cutover-<name>``."""
        return f"cutover-{self.name}"

    def load_url(self, topo: Topology) -> str:
        """Where the load sends its requests (through Kong's proxy)."""
        return f"{topo.kong_proxy_url}{self.path}/orders"

    def plan(
        self,
        topo: Topology,
        strategy: Literal["cname", "alias"] = "cname",
        *,
        replace: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> CutoverPlan:
        """The sandbox plan for this lane; ``overrides`` merge per section, ``replace`` swaps whole sections.

        ``Topology.render_plan`` merges mappings, so a section of another kind (``decommission:
        {kind: none}`` instead of the template's webhook) has to be replaced after rendering.
        """
        dns = {"record": self.record, **overrides.pop("dns", {})}
        kong = {"service": self.service, **overrides.pop("kong", {})}
        data = topo.render_plan(strategy, name=self.name, dns=dns, kong=kong, **overrides)
        data.update(replace or {})
        return CutoverPlan.model_validate(data)


def plan_keeping_a(topo: Topology, lane: Lane, **overrides: Any) -> CutoverPlan:
    """A cname plan that leaves A in place and opens no decommission gate.

    Runs on the shared topology use it: A serves every lane, so only the fresh topologies of the clean
    cutover tests let a decommission really stop it.
    """
    approvals = {"decommission": False, **overrides.pop("approvals", {})}
    return lane.plan(topo, approvals=approvals, replace={"decommission": {"kind": "none"}}, **overrides)


def sandbox_lane(strategy: Literal["cname", "alias"]) -> Lane:
    """The sandbox's own cutover (sandbox/plans/*.yaml): Service orders-api in front of a-project."""
    record = "a-project.example.test." if strategy == "cname" else "origin-api.example.test."
    return Lane(
        name="orders-api",
        record=record,
        service="orders-api",
        path="/orders/v1",
        service_host="a-project.example.test",
    )


def lane_records(count: int, ttl: int) -> str:
    """Zone lines for ``count`` lanes: ``api-NN <ttl> A <A's address>``."""
    return "".join(f"api-{index:02d} {ttl} A {A_ADDRESS}\n" for index in range(1, count + 1))


def lane_hosts(count: int) -> list[str]:
    """The names Kong sends for the lanes' records: both runtimes must serve them."""
    return [f"api-{index:02d}.{ZONE}" for index in range(1, count + 1)]


def numbered_lane(index: int) -> Lane:
    """Lane ``index`` of a shared topology started with :func:`lane_records`/:func:`lane_hosts`."""
    host = f"api-{index:02d}.{ZONE}"
    return Lane(
        name=f"e2e-{index:02d}",
        record=host + ".",
        service=f"svc-{index:02d}",
        path=f"/svc-{index:02d}",
        service_host=host,
    )


async def create_kong_service(topo: Topology, lane: Lane) -> None:
    """Create the lane's Service and route through Kong's Admin API (as an operator would)."""
    service = {
        "name": lane.service,
        "protocol": "https",
        "host": lane.service_host,
        "port": topo.ports.runtime,
        "path": "/orders/v1",
        "tls_verify": True,
    }
    route = {"name": f"{lane.service}-route", "paths": [lane.path], "strip_path": True}
    async with aiohttp.ClientSession() as session:
        for url, body in (
            (f"{topo.kong_admin_url}/services", service),
            (f"{topo.kong_admin_url}/services/{lane.service}/routes", route),
        ):
            async with session.post(url, json=body) as response:
                assert response.status == 201, f"POST {url}: {response.status} {await response.text()}"


async def kong_service_host(topo: Topology, service: str) -> str:
    """The Service's host as Kong's Admin API shows it now."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{topo.kong_admin_url}/services/{service}") as response:
            response.raise_for_status()
            return str((await response.json())["host"])


# --- DNS, read with plain queries -------------------------------------------------------------------


@dataclass(frozen=True)
class Rrset:
    """One rrset owned by the queried name, as a nameserver answers it."""

    type: str
    ttl: int
    rdatas: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.ttl} {self.type} {' '.join(self.rdatas)}"


def a_record(address: str, ttl: int) -> tuple[Rrset, ...]:
    """The expected answer for a name holding one A record."""
    return (Rrset("A", ttl, (address,)),)


def cname_record(target: str, ttl: int) -> tuple[Rrset, ...]:
    """The expected answer for a name holding a CNAME."""
    return (Rrset("CNAME", ttl, (target,)),)


def _split(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host, int(port)


def _ask(server: str, name: str, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    query.flags &= ~dns.flags.RD
    host, port = _split(server)
    response = dns.query.udp(query, host, port=port, timeout=2)
    assert response.flags & dns.flags.AA, f"{server} is not authoritative for {name}: {response}"
    return response


def read_name(server: str, name: str) -> tuple[Rrset, ...]:
    """The A or CNAME data ``server`` holds at ``name`` (an A query returns the CNAME when there is one)."""
    response = _ask(server, name, dns.rdatatype.A)
    if response.rcode() == dns.rcode.NXDOMAIN:
        return ()
    owner = dns.name.from_text(name)
    return tuple(
        sorted(
            (
                Rrset(dns.rdatatype.to_text(rrset.rdtype), rrset.ttl, tuple(sorted(r.to_text() for r in rrset)))
                for rrset in response.answer
                if rrset.name == owner
            ),
            key=lambda r: r.type,
        )
    )


def read_serial(server: str) -> int:
    """The zone's SOA serial at ``server``."""
    response = _ask(server, ZONE_ORIGIN, dns.rdatatype.SOA)
    return int(response.answer[0][0].serial)


@dataclass(frozen=True)
class DnsView:
    """One name and the zone serial as both nameservers answer them right now."""

    name: str
    primary: tuple[Rrset, ...]
    secondary: tuple[Rrset, ...]
    primary_serial: int
    secondary_serial: int

    def __str__(self) -> str:
        def text(rrsets: tuple[Rrset, ...]) -> str:
            return "; ".join(map(str, rrsets)) or "(nothing)"

        return (
            f"{self.name}: primary [{text(self.primary)}] serial {self.primary_serial}, "
            f"secondary [{text(self.secondary)}] serial {self.secondary_serial}"
        )


def dns_view(topo: Topology, name: str) -> DnsView:
    """Read ``name`` and the serial on the primary and the secondary."""
    primary, secondary = topo.nameservers
    return DnsView(
        name=name,
        primary=read_name(primary, name),
        secondary=read_name(secondary, name),
        primary_serial=read_serial(primary),
        secondary_serial=read_serial(secondary),
    )


def assert_on_both(view: DnsView, expected: tuple[Rrset, ...], serial: int | None = None) -> None:
    """Both nameservers hold ``expected`` at the name (TTL included), at the same serial (``serial`` if given)."""
    assert view.primary == expected and view.secondary == expected, f"expected {expected}; {view}"
    assert view.primary_serial == view.secondary_serial, f"the nameservers disagree on the serial: {view}"
    if serial is not None:
        assert view.primary_serial == serial, f"expected serial {serial}: {view}"


def signed_replace(topo: Topology, name: str, new: Rrset) -> int:
    """An outside edit: replace every A/CNAME at ``name`` with ``new`` by a TSIG-signed UPDATE; the rcode."""
    keyring = dns.tsigkeyring.from_text({TSIG_KEY_NAME: topo.tsig_secret})
    update = dns.update.UpdateMessage(
        ZONE_ORIGIN, keyring=keyring, keyname=dns.name.from_text(TSIG_KEY_NAME), keyalgorithm="hmac-sha256"
    )
    update.delete(name, "A")
    update.delete(name, "CNAME")
    update.add(name, new.ttl, new.type, *new.rdatas)
    host, port = _split(topo.nameservers[0])
    return int(dns.query.tcp(update, host, port=port, timeout=3).rcode())


# --- the load ---------------------------------------------------------------------------------------


def load_generator(topo: Topology, lane: Lane) -> LoadGenerator:
    """A steady load through Kong on the lane's route."""
    return LoadGenerator(lane.load_url(topo), rate=LOAD_RATE, timeout=5.0)


def failures(records: Iterable[RequestRecord]) -> list[str]:
    """One line per request without a 2xx answer."""
    return [f"+{r.offset:.1f}s {r.failure} (served by {r.served_by})" for r in records if not r.ok]


def served_by(records: Iterable[RequestRecord], start: float = 0.0, end: float = float("inf")) -> Counter[str]:
    """Who answered the requests started in ``[start, end)`` (epoch seconds)."""
    return Counter(str(r.served_by) for r in records if start <= r.started < end)


def last_served_by(records: Sequence[RequestRecord], runtime: str) -> float | None:
    """Start time (epoch) of the last request ``runtime`` answered."""
    return max((r.started for r in records if r.served_by == runtime), default=None)


async def traffic_moved_to(load: LoadGenerator, runtime: str, within: float, seconds: float = 1.5) -> bool:
    """Wait up to ``within`` s until every request of the last ``seconds`` got a 2xx from ``runtime``."""
    deadline = time.monotonic() + within + seconds + 1.0
    while True:
        recent = recent_records(load, seconds)
        if recent and all(r.ok and r.served_by == runtime for r in recent):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.25)


def recent_records(load: LoadGenerator, seconds: float) -> list[RequestRecord]:
    """Requests started in the ``seconds`` before the last second (the last second's may still be in flight)."""
    now = time.time()
    return [r for r in load.records if now - seconds - 1.0 <= r.started < now - 1.0]


def what_clients_saw(load: LoadGenerator, since: float) -> str:
    """Who served the requests started after ``since`` (epoch), and how many failed, for failure messages."""
    after = [r for r in load.records if r.started >= since]
    failed = [r for r in after if not r.ok]
    first_failure = f", first failure at +{failed[0].started - since:.1f} s" if failed else ""
    last_failure = f", last at +{failed[-1].started - since:.1f} s" if failed else ""
    return (
        f"{len(after)} requests since then: served by {dict(served_by(after))}, "
        f"{len(failed)} failed {dict(Counter(r.failure for r in failed))}{first_failure}{last_failure}"
    )


async def kong_dns_cache(topo: Topology, name: str) -> list[str]:
    """The Kong emulator's DNS cache entries for ``name`` (``/_emulator/dns-cache``): evidence for failures."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{topo.kong_admin_url}/_emulator/dns-cache") as response:
            state = await response.json()
    name = name.rstrip(".")
    lines = []
    for worker in state.get("workers", []):
        for key, entry in worker.get("entries", {}).items():
            if key.endswith(":" + name):
                lines.append(
                    f"{key} {entry['kind']} {entry['records']} ttl {entry['ttl']} expires in {entry['expires_in']} s"
                )
        lines.append(f"last type for {name}: {worker.get('last', {}).get(name)}")
    return lines


def assert_load_rate(load: LoadGenerator) -> None:
    """The load really ran at (nearly) its nominal rate, so "zero failures" means something."""
    summary = load.summary()
    assert summary.requests / summary.duration >= LOAD_RATE * 0.9, summary.render()
    assert summary.skipped == 0, summary.render()


# --- the run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How a run ended: its final status, and for a failed workflow the failure's type."""

    status: CutoverStatus
    failure_type: str | None


@dataclass
class Run:
    """One cutover run, driven through the public client API as the CLI and the demo do."""

    topo: Topology
    handle: WorkflowHandle[Any, CutoverStatus]
    plan: CutoverPlan

    @property
    def workflow_id(self) -> str:
        """The run's workflow id."""
        return self.handle.id

    async def idempotency_key(self) -> str:
        """The key a webhook decommission of this run carries: sha256 of its run id and plan digest."""
        run_id = (await self.handle.describe()).run_id
        context = DeletionContext(workflow_id=self.workflow_id, run_id=run_id, plan_digest=self.plan.digest())
        return context.idempotency_key

    async def status(self, timeout: float = 60) -> CutoverStatus:
        """The ``status`` query; retried while a killed worker or a restarting server can't answer."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await self.handle.query("status", result_type=CutoverStatus, rpc_timeout=timedelta(seconds=3))
            except RPCError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    async def wait_for(
        self, predicate: Callable[[CutoverStatus], bool], what: str, timeout: float = 60
    ) -> CutoverStatus:
        """Poll the status until ``predicate`` holds; fail with the status if the run ends or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            status = await self.status()
            if predicate(status):
                return status
            if status.phase in TERMINAL_PHASES or time.monotonic() > deadline:
                raise AssertionError(f"waiting for {what}, the run is {status.phase}:\n{self.describe(status)}")
            await asyncio.sleep(0.2)

    async def until_phase(self, phase: str, *, waiting: bool = False, timeout: float = 60) -> CutoverStatus:
        """Until the run is in ``phase`` (and, with ``waiting``, inside one of its timers)."""
        return await self.wait_for(
            lambda s: s.phase == phase and (not waiting or in_timer(s)),
            f"phase {phase}" + (" (in its wait)" if waiting else ""),
            timeout,
        )

    async def approve(self, gate: str) -> str:
        """Approve ``gate`` with the update, quoting the digest of the plan this test built."""
        await self.wait_for(lambda s: gate in s.gates_awaited, f"the {gate} gate")
        request = ApproveRequest(gate=gate, by=E2E_BY, digest=self.plan.digest(), comment="end-to-end test")
        return await self.handle.execute_update("approve", request, result_type=str)

    async def outcome(self, timeout: float = 90) -> Outcome:
        """Wait for the end: the returned status, or the failure's type and the status query after it."""
        try:
            status = await asyncio.wait_for(self.handle.result(), timeout)
        except WorkflowFailureError as exc:
            cause = exc.cause
            failure_type = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
            return Outcome(await self.status(), failure_type)
        return Outcome(status, None)

    def describe(self, status: CutoverStatus | None = None) -> str:
        """The status as ``starter.py status`` prints it, and the worker's warnings (for failure messages)."""
        text = starter.render_status(status) if status is not None else "(no status)"
        return f"{text}\n{worker_problems(self.topo)}"

    async def activity_attempts(self, activity: str) -> list[int]:
        """The attempt number each completed or failed ``activity`` finished on (from the history)."""
        scheduled: dict[int, str] = {}
        attempts = []
        async for event in self.handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                attributes = event.activity_task_started_event_attributes
                if scheduled.get(attributes.scheduled_event_id) == activity:
                    attempts.append(attributes.attempt)
        return attempts

    async def retries(self, activity: str, until_attempt: int = 2, timeout: float = 30) -> list[Retry]:
        """Watch ``activity`` fail and wait in its retry backoff until attempt ``until_attempt`` is next.

        Only the server knows about retries (the history records the last attempt only), so this reads
        the pending activity from ``describe``: one :class:`Retry` per backoff seen, in order.
        """
        seen: dict[int, Retry] = {}
        deadline = time.monotonic() + timeout
        while True:
            described = await self.handle.describe(rpc_timeout=timedelta(seconds=3))
            for pending in described.raw_description.pending_activities:
                if (
                    pending.activity_type.name == activity
                    and pending.attempt >= 2
                    and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
                ):
                    seen.setdefault(
                        pending.attempt,
                        Retry(
                            pending.attempt,
                            pending.current_retry_interval.ToTimedelta().total_seconds(),
                            pending.last_failure.message,
                        ),
                    )
            if seen and max(seen) >= until_attempt:
                return [seen[attempt] for attempt in sorted(seen)]
            if time.monotonic() > deadline:
                raise AssertionError(f"{activity} is not retrying: {described.raw_description.pending_activities}")
            await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Retry:
    """One backoff of a failing activity, as the server shows it."""

    attempt: int
    """The attempt it waits for."""
    interval: float
    """Seconds of backoff before that attempt."""
    failure: str
    """Why the previous attempt failed."""


async def start_run(topo: Topology, plan: CutoverPlan) -> Run:
    """Start the plan exactly as ``python starter.py start`` (and the demo) do."""
    client = await topo.temporal_client()
    workflow_id = await starter.start(client, TemporalSettings(address=topo.temporal_address), plan)
    return Run(topo, client.get_workflow_handle(workflow_id, result_type=CutoverStatus), plan)


def in_timer(status: CutoverStatus) -> bool:
    """True while the run sits in one of its durable waits."""
    last = status.timeline[-1] if status.timeline else None
    return last is not None and last.ok is None and last.step.startswith("Wait")


def step(status: CutoverStatus, phase: str, starts_with: str) -> StepRecord:
    """The one timeline step of ``phase`` whose text starts with ``starts_with``."""
    found = [s for s in status.timeline if s.phase == phase and s.step.startswith(starts_with)]
    assert len(found) == 1, f"expected one {phase} step {starts_with!r}, found {found}"
    return found[0]


def kong_switch_seconds(status: CutoverStatus) -> float:
    """How long Kong may keep using a record's previous answer after a change, as the run computed it.

    That is the draining wait: cutover TTL + Kong's cache bound + margin. A rollback's reverse change is
    the same kind of change, so traffic should be back on A within it.
    """
    waits = [w.seconds for w in status.waits if w.phase == "draining"]
    assert waits, f"the run computed no draining wait: {status.waits}"
    return waits[0]


def finished_at(record: StepRecord) -> float:
    """Epoch seconds a step finished."""
    assert record.finished_at is not None, f"step still running: {record}"
    return record.finished_at.timestamp()


def parse_time(text: str) -> float:
    """Epoch seconds of an ISO 8601 time (the receiver's)."""
    return datetime.fromisoformat(text).timestamp()


# --- the command line ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    """Exit code and output of one command."""

    code: int
    output: str


async def run_cli(topo: Topology, *argv: str, timeout: float = 30) -> CliResult:
    """Run a command as an operator would, against this topology (``topo.cli_env()``: no secrets)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=REPO_ROOT,
        env=topo.cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return CliResult(process.returncode, output.decode(errors="replace"))


async def temporal_cli(topo: Topology, *arguments: str) -> CliResult:
    """``temporal ...`` (the binary installed in the venv)."""
    return await run_cli(topo, venv_binary("temporal"), *arguments)


async def starter_cli(topo: Topology, *arguments: str) -> CliResult:
    """``python starter.py ...``."""
    return await run_cli(topo, sys.executable, "starter.py", *arguments)


def json_arg(value: dict[str, Any]) -> str:
    """A payload for ``--input``."""
    return json.dumps(value)


def tcp_refused(address: str, port: int) -> bool:
    """True when nothing accepts connections at ``address:port`` (A after its decommission)."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((address, port)) != 0
