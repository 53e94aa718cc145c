"""Run every scenario at once: one BIND, one nginx per client and settings group, the emulator beside each.

Each scenario's observers (Kong's client and the emulator's, for each client it runs on) are asked
at the same instants, so their caches fill and expire in phase; answers are recorded as labels
(an address, or ``503 nxdomain`` / ``503 empty`` / ``500 error`` as Kong's balancer would answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from sandbox.bind import BindPair, bind_pair, signed_update
from sandbox.free_ports import free_port
from sandbox.kong.dns import ERR_EMPTY, ERR_NXDOMAIN, DnsSettings, LegacyResolver, Nameserver, NewResolver
from sandbox.kong.dns import balancer_status as status_of
from tests.kong_conformance.kong_nginx import KongNginx, has_search_domains, kong_commit, kong_conf, kong_lua_dir
from tests.kong_conformance.relay import UdpRelay
from tests.kong_conformance.scenarios import (
    GROUPS,
    INSTANCES,
    POLL,
    ZONE,
    Client,
    Scenario,
    Step,
    on_half_grid,
    scenarios,
)
from tests.kong_conformance.scenarios import zone_records as initial_records

ONLY_ENV = "CUTOVER_CONFORMANCE_ONLY"
"""Comma-separated scenario ids to run (a developer chasing one scenario); default: all."""
LEAD = 7.0
"""Seconds from the start of the run to t0 (the earliest polls start at -4 s)."""


def label_of(ip: str | None, error: str | None) -> str:
    """An answer as a label: the address, or the status and kind of Kong's balancer error."""
    if ip:
        return ipaddress.ip_address(ip.strip("[]")).compressed
    error = error or "no answer"
    kind = "nxdomain" if error == ERR_NXDOMAIN else "empty" if error == ERR_EMPTY else "error"
    return f"{status_of(error)} {kind}"


class Observer(Protocol):
    """Something that resolves a name the way Kong's balancer does."""

    name: str

    async def ask(self, host: str) -> tuple[str, bool, str]:
        """(label, served stale, raw error)."""
        ...


@dataclass
class KongObserver:
    """Kong's own client under nginx (``GET /resolve``)."""

    name: str
    nginx: KongNginx
    http: httpx.AsyncClient

    async def ask(self, host: str) -> tuple[str, bool, str]:
        try:
            answer = (await self.http.get(f"http://127.0.0.1:{self.nginx.port}/resolve", params={"name": host})).json()
        except (httpx.HTTPError, ValueError) as exc:
            return f"POLL-FAIL {type(exc).__name__}", False, str(exc)
        detail = answer.get("err") or answer.get("tries") or ""
        return label_of(answer.get("ip"), answer.get("err")), bool(answer.get("stale")), detail


@dataclass
class EmulatorObserver:
    """The project's emulator (``sandbox/kong/dns.py``) with the same settings, against the same server."""

    name: str
    resolver: LegacyResolver | NewResolver

    async def ask(self, host: str) -> tuple[str, bool, str]:
        found = await self.resolver.resolve(host)
        return label_of(found.addresses[0] if found.addresses else None, found.error), found.stale, found.error


@dataclass
class Point:
    """One answer: seconds from t0, label, whether it was served stale."""

    t: float
    label: str
    stale: bool
    error: str


@dataclass
class ScenarioRun:
    """A scenario's record: each observer's answers and when the changes happened."""

    scenario: Scenario
    points: dict[str, list[Point]] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)

    def of(self, side: str, client: Client) -> list[Point]:
        """The answers of ``kong``/``emu`` for one client."""
        return self.points[f"{side}-{client}"]


@dataclass
class ConformanceRun:
    """Everything one run found."""

    kong_commit: str
    kong_lua: Path
    nginx: dict[str, Any]
    fqdn: bool
    seconds: float
    runs: dict[str, ScenarioRun]


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


class Runner:
    """Owns the processes of one run and drives the scenarios."""

    def __init__(self, bind: BindPair, relay: UdpRelay, instances: dict[tuple[str, Client], KongNginx]) -> None:
        self.bind, self.relay, self.instances = bind, relay, instances
        self.fqdn = has_search_domains()
        self.http = httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_connections=64))
        self.emulators: dict[tuple[str, Client], EmulatorObserver] = {}
        for group, client in INSTANCES:
            port = relay.port if group == "outage" else bind.primary.port
            settings = DnsSettings(new_dns_client=client == "new")
            settings.update({k: v for k, v in GROUPS[group].items() if hasattr(settings, k)})
            kind = NewResolver if client == "new" else LegacyResolver
            resolver = kind(Nameserver("127.0.0.1", port), settings, time.monotonic)
            self.emulators[(group, client)] = EmulatorObserver(f"emu-{client}", resolver)

    def host(self, label: str) -> str:
        """The name Kong resolves: a trailing dot turns resolv.conf search domains off in both clients."""
        return f"{label}.{ZONE}" + ("." if self.fqdn else "")

    def observers(self, scenario: Scenario) -> list[Observer]:
        out: list[Observer] = []
        for client, group in scenario.groups.items():
            out.append(KongObserver(f"kong-{client}", self.instances[(group, client)], self.http))
            out.append(self.emulators[(group, client)])
        return out

    async def _ask_all(self, run: ScenarioRun, observers: list[Observer], t0: float) -> None:
        sent = time.monotonic()
        answers = await asyncio.gather(*(o.ask(self.host(run.scenario.label)) for o in observers))
        for observer, (label, stale, error) in zip(observers, answers, strict=True):
            run.points.setdefault(observer.name, []).append(Point(round(sent - t0, 3), label, stale, error))

    async def _observe(self, run: ScenarioRun, t0: float) -> None:
        observers = self.observers(run.scenario)
        for name in (o.name for o in observers):
            run.points[name] = []
        if run.scenario.poll is not None:
            start, end = run.scenario.poll
            tick = math.ceil(start / POLL - 1e-9)  # polls on the common grid t0 + k * POLL
            while tick * POLL <= end + 1e-9:
                await _sleep_until(t0 + tick * POLL)
                await self._ask_all(run, observers, t0)
                tick = max(tick + 1, math.ceil((time.monotonic() - t0) / POLL))
        for at in run.scenario.probes:
            await _sleep_until(t0 + at)
            await self._ask_all(run, observers, t0)

    async def _apply(self, run: ScenarioRun, step: Step, t0: float) -> None:
        await _sleep_until(t0 + on_half_grid(step.at))
        if step.relay == "down":
            self.relay.down()
        if step.ops:
            await signed_update(self.bind, f"{ZONE}.", *step.ops)
        if step.relay == "up":
            await self.relay.up()
        run.events.append((round(time.monotonic() - t0, 3), step.what))

    async def run(self) -> dict[str, ScenarioRun]:
        only = {s for s in os.environ.get(ONLY_ENV, "").split(",") if s}
        all_scenarios = [s for s in scenarios() if not only or s.id in only]
        runs = {s.id: ScenarioRun(s) for s in all_scenarios}
        await self._sanity()
        t0 = time.monotonic() + LEAD
        work = [self._observe(runs[s.id], t0) for s in all_scenarios]
        work += [self._apply(runs[s.id], step, t0) for s in all_scenarios for step in s.steps]
        await asyncio.gather(*work)
        return runs

    async def _sanity(self) -> None:
        """Every Kong instance resolves B's name before anything starts (fails with nginx's log otherwise)."""
        for (group, client), nginx in self.instances.items():
            observer = KongObserver(f"kong-{client}", nginx, self.http)
            label, _, error = await observer.ask(self.host("b-project"))
            if label != "127.0.0.3":
                raise RuntimeError(
                    f"Kong's {client} client ({group}) resolved b-project to {label} ({error}):\n{nginx.log()[-3000:]}"
                )

    async def close(self) -> None:
        await self.http.aclose()
        for emulator in self.emulators.values():
            await emulator.resolver.close()


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[ConformanceRun]:
    """Start BIND, the relay and every nginx, run all scenarios, stop everything."""
    lua = kong_lua_dir()
    started = time.monotonic()
    with bind_pair(records=initial_records()) as bind, tempfile.TemporaryDirectory(prefix="kong-conf-") as tmp:
        relay = UdpRelay(free_port(), ("127.0.0.1", bind.primary.port))
        await relay.up()
        instances: dict[tuple[str, Client], KongNginx] = {}
        runner: Runner | None = None
        try:
            for group, client in INSTANCES:
                port = relay.port if group == "outage" else bind.primary.port
                nginx = KongNginx(
                    f"{group}-{client}",
                    client == "new",
                    kong_conf(f"127.0.0.1:{port}", GROUPS[group]),
                    Path(tmp) / f"{group}-{client}",
                    lua,
                )
                instances[(group, client)] = nginx
                nginx.start()
            runner = Runner(bind, relay, instances)
            runs = await runner.run()
            first = next(iter(instances.values()))
            yield ConformanceRun(kong_commit(lua), lua, first.info, runner.fqdn, time.monotonic() - started, runs)
        finally:
            if runner is not None:
                await runner.close()
            await relay.close()
            for nginx in instances.values():
                nginx.stop()
