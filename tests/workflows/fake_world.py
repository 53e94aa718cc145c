"""An in-memory outside world for workflow logic tests: activities faked by name (samples-python style).

The DNS fake keeps compare-and-swap semantics (already-applied / applied / PreconditionFailed) so the
workflow's idempotence and conflict handling are exercised; tests that check the *real* outside world
use the real activities against BIND and the Kong emulator instead (tests/workflows/test_real_world.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.decommission import DecommissionInput, DecommissionPreflight, DecommissionResult, NotifyInput
from models.dns import (
    AddressMap,
    ApplyInput,
    DnsChangeResult,
    DnsSnapshot,
    NameserverState,
    PropagationInput,
    PropagationReport,
    ResolveInput,
    RRset,
    SnapshotInput,
)
from models.kong import (
    DataPlaneSync,
    DataPlaneSyncInput,
    KongDnsSettings,
    KongInspectInput,
    KongInspection,
    KongRequestShape,
    RepointInput,
    RestoreServiceInput,
    ServiceSnapshot,
    UpstreamInfo,
)
from models.policy import WorkerPolicy
from models.policy_rules import PolicyCheckInput, PolicyReport, check_plan
from models.readiness import ReadinessInput, ReadinessReport
from models.telemetry import (
    BaselineInput,
    DrainInput,
    DrainProof,
    MonitorInput,
    MonitorResult,
    Verdict,
    WindowSummary,
    evaluate,
)

A = "a-project.example.test."
B = "b-project.example.test."
ALIAS = "origin-api.example.test."


def _a(name: str, ip: str, ttl: int = 300) -> RRset:
    return RRset(name=name, type="A", ttl=ttl, rdatas=(ip,))


def change_is_undo(reason: str) -> bool:
    """The workflow words every undo's reason as "restore ..." or "delete the alias ..."."""
    return reason.startswith(("restore", "delete the alias"))


def fake_inspection(
    service: ServiceSnapshot, host: str, stale_ttl: int, upstream: UpstreamInfo | None = None
) -> KongInspection:
    """What kong_inspect reports of a writable traditional Kong (legacy DNS client) in front of ``host``."""
    return KongInspection(
        mode="traditional",
        writable=True,
        service=service,
        dns=KongDnsSettings(
            client="legacy",
            valid_ttl=None,
            stale_ttl=stale_ttl,
            not_found_ttl=30,
            error_ttl=1,
            source="fake",
        ),
        shape_after=KongRequestShape(scheme="https", host_header=host + ":8443", sni=host, port=8443),
        upstream=upstream,
    )


def judged(summary: WindowSummary, input: MonitorInput) -> Verdict:
    """The verdict the real monitor reaches on ``summary`` for this activity input."""
    return evaluate(
        summary,
        input.monitor,
        a_addresses=list(input.a_addresses),
        b_addresses=list(input.b_addresses),
        baseline=input.baseline,
    )


class FakeWorld:
    """Records, a Kong Service and scripted telemetry; every activity call is logged in ``calls``."""

    def __init__(self, *, service_host: str = "a-project.example.test") -> None:
        self.records: dict[str, tuple[RRset, ...]] = {
            A: (_a(A, "127.0.0.2"),),
            B: (_a(B, "127.0.0.3"),),
            ALIAS: (RRset(name=ALIAS, type="CNAME", ttl=300, rdatas=(A,)),),
        }
        self.serial = 1
        self.service = {"id": "svc-1", "name": "orders-api", "host": service_host, "port": 8443, "protocol": "https"}
        self.updated_at = 1
        self.calls: list[str] = []
        self.proofs: list[tuple[PropagationInput, DnsChangeResult | None]] = []
        """Each propagation proof's input, with the result of the change it followed."""
        self._last_change: DnsChangeResult | None = None
        self.ready = True
        self.verdicts: list[str] = ["healthy"]
        self.failures: dict[str, ApplicationError] = {}
        self.fail_at: dict[str, int] = {}
        """Activity name -> which call (1-based) fails."""
        self.drained = True
        self.deleted = False
        self.notifications: list[str] = []
        self.monitor_started = asyncio.Event()
        self.monitor_cancelled = asyncio.Event()
        self.monitor_seconds = 0.0
        self.decommission_seconds = 0.0
        self.kong_stale_ttl = 4
        """Kong's dns_stale_ttl as kong_inspect reports it."""
        self.data_planes_in_sync = True
        self.readiness_seconds = 0.0
        self.readiness_started = asyncio.Event()
        self.notify_ok = True
        self.undo_seconds = 0.0
        self.apply_deadlines: list[timedelta | None] = []
        """The schedule-to-close timeout of every dns_apply call: how patient the workflow was."""
        self.upstream: UpstreamInfo | None = None
        """Kong's Upstream when the record is one of its targets (kong_inspect reports it)."""
        self.flaky: set[str] = set()
        """Activity names that always fail with a retryable error (a server that never comes back)."""
        self.secondary_answers: tuple[RRset, ...] | None = None
        """What the secondary answers for the record, when it should disagree with the primary."""
        self.policy: WorkerPolicy | None = None
        """The worker policy ``policy_check`` judges plans by (the real pure rules); None: the rules needing none."""
        self.decommission_inputs: list[DecommissionInput] = []

    # --- helpers -----------------------------------------------------------------------------

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        failure = self.failures.get(name)
        nth = self.fail_at.get(name)
        if nth is not None and self.calls.count(name) == nth:
            failure = ApplicationError(
                f"injected failure of {name} call {nth}", type="InjectedFailure", non_retryable=True
            )
        if failure is not None:
            raise failure
        if name in self.flaky:
            raise ApplicationError(f"injected outage of {name}", type="InjectedOutage")

    def fail(self, name: str, message: str = "injected failure") -> None:
        """Make activity ``name`` fail, non-retryable."""
        self.failures[name] = ApplicationError(message, type="InjectedFailure", non_retryable=True)

    def snapshot_service(self) -> ServiceSnapshot:
        """The Service as the fake Kong holds it."""
        return ServiceSnapshot(
            id=self.service["id"],
            name=self.service["name"],
            host=self.service["host"],
            port=self.service["port"],
            protocol=self.service["protocol"],
            updated_at=self.updated_at,
            entity=dict(self.service),
        )

    # --- activities ------------------------------------------------------------------------------

    def activities(self) -> list[Callable[..., Any]]:
        """Activities with the names the workflow calls."""
        world = self

        @activity.defn(name="policy_check")
        async def policy_check(input: PolicyCheckInput) -> PolicyReport:
            world._enter("policy_check")
            return check_plan(input.plan, world.policy)

        @activity.defn(name="dns_snapshot")
        async def dns_snapshot(input: SnapshotInput) -> DnsSnapshot:
            world._enter("dns_snapshot")
            rrsets = world.records.get(input.name, ())
            states = tuple(
                NameserverState(server=s, serial=world.serial, authoritative=True, rrsets=rrsets)
                for s in ("127.0.0.1:5353", "127.0.0.1:5354")
            )
            if world.secondary_answers is not None:
                states = (states[0], states[1].model_copy(update={"rrsets": world.secondary_answers}))
            return DnsSnapshot(
                zone="example.test.",
                name=input.name,
                rrsets=rrsets,
                serial=world.serial,
                nameservers=states,
                max_ttl=max((r.ttl for r in rrsets), default=0),
                negative_ttl=60,
                taken_at=datetime.now(UTC),
            )

        @activity.defn(name="dns_apply")
        async def dns_apply(input: ApplyInput) -> DnsChangeResult:
            world.apply_deadlines.append(activity.info().schedule_to_close_timeout)
            world._enter("dns_apply")
            if change_is_undo(input.change.reason):
                await asyncio.sleep(world.undo_seconds)
            change = input.change
            current = world.records.get(change.name, ())
            if set(current) == set(change.desired):
                return DnsChangeResult(
                    outcome="already-applied", serial_before=world.serial, serial_after=world.serial, readback=current
                )
            if set(current) != set(change.expected):
                raise ApplicationError(
                    f"{change.name}: expected {change.expected}, found {current}",
                    type="PreconditionFailed",
                    non_retryable=True,
                )
            before = world.serial
            world.serial += 1
            if change.desired:
                world.records[change.name] = change.desired
            else:
                world.records.pop(change.name, None)
            world.calls.append(f"changed:{change.reason}")
            world._last_change = DnsChangeResult(
                outcome="applied", serial_before=before, serial_after=world.serial, readback=change.desired
            )
            return world._last_change

        @activity.defn(name="dns_verify_propagation")
        async def dns_verify_propagation(input: PropagationInput) -> PropagationReport:
            world._enter("dns_verify_propagation")
            world.proofs.append((input, world._last_change))
            return PropagationReport(name=input.name, in_sync=True, servers=())

        @activity.defn(name="dns_resolve")
        async def dns_resolve(input: ResolveInput) -> AddressMap:
            world._enter("dns_resolve")
            out: dict[str, tuple[str, ...]] = {}
            for name in input.names:
                current = name
                for _ in range(8):
                    rrsets = world.records.get(current, ())
                    cname = next((r for r in rrsets if r.type == "CNAME"), None)
                    if cname is None:
                        break
                    current = cname.rdatas[0]
                out[name] = tuple(ip for r in world.records.get(current, ()) if r.type == "A" for ip in r.rdatas)
            return AddressMap(addresses=out)

        @activity.defn(name="kong_inspect")
        async def kong_inspect(input: KongInspectInput) -> KongInspection:
            world._enter("kong_inspect")
            host = input.record.rstrip(".")
            return fake_inspection(world.snapshot_service(), host, world.kong_stale_ttl, world.upstream)

        @activity.defn(name="kong_repoint_service")
        async def kong_repoint_service(input: RepointInput) -> ServiceSnapshot:
            world._enter("kong_repoint_service")
            if world.service["host"] == input.new_host:
                return world.snapshot_service()
            if world.service["host"] != input.expected.host:
                raise ApplicationError("service changed", type="GatewayConflict", non_retryable=True)
            world.service["host"] = input.new_host
            world.updated_at += 1
            return world.snapshot_service()

        @activity.defn(name="kong_restore_service")
        async def kong_restore_service(input: RestoreServiceInput) -> ServiceSnapshot:
            world._enter("kong_restore_service")
            if world.service["host"] == input.repointed_host:
                world.service["host"] = input.original.host
                world.updated_at += 1
            return world.snapshot_service()

        @activity.defn(name="kong_await_data_planes")
        async def kong_await_data_planes(input: DataPlaneSyncInput) -> DataPlaneSync:
            world._enter("kong_await_data_planes")
            hashes = {url: f"hash-{world.updated_at}" for url in input.kong.status_urls}
            return DataPlaneSync(
                in_sync=world.data_planes_in_sync,
                hashes=hashes,
                lagging=() if world.data_planes_in_sync else tuple(hashes),
            )

        @activity.defn(name="readiness_probe")
        async def readiness_probe(input: ReadinessInput) -> ReadinessReport:
            world._enter("readiness_probe")
            world.readiness_started.set()
            for _ in range(int(world.readiness_seconds * 10)):
                activity.heartbeat("probing")
                await asyncio.sleep(0.1)
            return ReadinessReport(
                ready=world.ready,
                host_header=input.shape.host_header,
                sni=input.shape.sni,
                checks=(),
                attempts=1,
                consecutive_successes=1 if world.ready else 0,
                elapsed_seconds=0.1,
            )

        @activity.defn(name="traffic_baseline")
        async def traffic_baseline(input: BaselineInput) -> WindowSummary:
            world._enter("traffic_baseline")
            return WindowSummary(source="fake", requests=100, upstream_errors=0, requests_per_ip={"127.0.0.2": 100})

        @activity.defn(name="traffic_monitor")
        async def traffic_monitor(input: MonitorInput) -> MonitorResult:
            world._enter("traffic_monitor")
            world.monitor_started.set()
            try:
                for _ in range(int(world.monitor_seconds * 10)):
                    activity.heartbeat("watching")
                    await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                world.monitor_cancelled.set()
                raise
            status = world.verdicts.pop(0) if len(world.verdicts) > 1 else world.verdicts[0]
            requests = {"healthy": 200, "unhealthy": 200, "inconclusive": 3}[status]
            errors = 100 if status == "unhealthy" else 0
            summary = WindowSummary(
                source="fake", requests=requests, upstream_errors=errors, requests_per_ip={"127.0.0.3": requests}
            )
            return MonitorResult(verdict=judged(summary, input), polls=1, stopped_early=status == "unhealthy")

        @activity.defn(name="traffic_prove_drained")
        async def traffic_prove_drained(input: DrainInput) -> DrainProof:
            world._enter("traffic_prove_drained")
            return DrainProof(
                drained=world.drained,
                reason="A quiet" if world.drained else "A still receives requests",
                quiet_period_seconds=input.quiet_period_seconds,
                b_requests=10,
                total_requests=10,
            )

        @activity.defn(name="decommission_preflight")
        async def decommission_preflight(input: DecommissionInput) -> DecommissionPreflight:
            world._enter("decommission_preflight")
            return DecommissionPreflight(ok=True, checks=("fake",), reversible=False, description="fake")

        @activity.defn(name="decommission_delete")
        async def decommission_delete(input: DecommissionInput) -> DecommissionResult:
            world._enter("decommission_delete")
            world.decommission_inputs.append(input)
            for _ in range(int(world.decommission_seconds * 10)):
                activity.heartbeat("deleting")
                await asyncio.sleep(0.1)
            world.deleted = True
            return DecommissionResult(kind=input.decommission.kind, done=True, state="deleted", detail="fake")

        @activity.defn(name="decommission_undo")
        async def decommission_undo(input: DecommissionInput) -> DecommissionResult:
            world._enter("decommission_undo")
            world.deleted = False
            return DecommissionResult(kind=input.decommission.kind, done=True, state="restored", detail="fake")

        @activity.defn(name="notify")
        async def notify(input: NotifyInput) -> bool:
            world._enter("notify")
            world.notifications.append(input.event)
            return world.notify_ok

        return [
            policy_check,
            dns_snapshot,
            dns_apply,
            dns_verify_propagation,
            dns_resolve,
            kong_inspect,
            kong_repoint_service,
            kong_restore_service,
            kong_await_data_planes,
            readiness_probe,
            traffic_baseline,
            traffic_monitor,
            traffic_prove_drained,
            decommission_preflight,
            decommission_delete,
            decommission_undo,
            notify,
        ]
