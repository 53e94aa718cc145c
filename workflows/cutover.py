"""CutoverWorkflow: one durable, observable, reversible move of a record from A to B.

Phases (each upserted as the ``CutoverPhase`` search attribute and shown as Markdown current
details): verifying -> repointing (alias) -> lowering-ttl -> awaiting-flip-approval -> flipping ->
draining -> monitoring -> awaiting-decommission-approval (point of no return) -> decommissioning ->
restoring-ttl -> completed. Every change registers its undo *before* it runs; a failure, an
``abort`` or an unhealthy verdict runs the undos in reverse (``rolling-back``) and the run ends
``rolled-back``, or ``failed`` with exactly what is left changed when an undo itself fails.

The workflow does no I/O: activities are called by name, and only models and pure planning
functions are imported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    import pydantic

    from models.decommission import (
        DecommissionInput,
        DecommissionPreflight,
        DecommissionResult,
        NotifyInput,
    )
    from models.dns import (
        AddressMap,
        ApplyInput,
        DnsChange,
        DnsChangeResult,
        DnsSnapshot,
        PropagationInput,
        PropagationReport,
        ResolveInput,
        RRset,
        SnapshotInput,
        describe_rrsets,
    )
    from models.durations import format_duration
    from models.kong import (
        CacheBound,
        DataPlaneSync,
        DataPlaneSyncInput,
        KongInspectInput,
        KongInspection,
        RepointInput,
        RestoreServiceInput,
        ServiceSnapshot,
        kong_host,
    )
    from models.plan import CutoverPlan, describe_problems
    from models.readiness import ReadinessInput, ReadinessReport
    from models.telemetry import (
        BaselineInput,
        DrainInput,
        DrainProof,
        MonitorInput,
        MonitorResult,
        Verdict,
        WindowSummary,
    )
    from models.workflow import (
        PHASE_ATTRIBUTE,
        RECORD_ATTRIBUTE,
        TERMINAL_PHASES,
        WORKFLOW_TYPE,
        AbortRequest,
        ApprovalRecord,
        ApproveRequest,
        CompensationRecord,
        CutoverStatus,
        IgnoredMessage,
        StepRecord,
        WaitRecord,
    )
    from workflows import planning

PHASE = SearchAttributeKey.for_keyword(PHASE_ATTRIBUTE)
RECORD = SearchAttributeKey.for_keyword(RECORD_ATTRIBUTE)
T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)

# Retries: short reads retry fast; changes retry with backoff long enough to ride out a DNS primary
# or Kong restart; undos retry longer still, because giving up leaves the world half-changed.
READ_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=5))
CHANGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=15)
)
UNDO_PATIENCE = 5
KONG_SYNC_TIMEOUT = timedelta(minutes=2)
CHANGED_OUTSIDE = ("PreconditionFailed", "GatewayConflict")
UNREACHABLE = ("DnsUnavailable", "GatewayUnavailable")
"""Error types meaning "someone else changed it": the step wrote nothing, and nothing may be overwritten."""
NOTIFY_RETRY = RetryPolicy(maximum_attempts=3)


class _Aborted(Exception):
    """Raised inside the run when an ``abort`` arrived before the point of no return."""


class _Refused(Exception):
    """Raised when verifying finds a reason not to start; nothing was changed."""


@dataclass
class _Undo:
    """A registered compensation: the activity that undoes one step."""

    id: str
    description: str
    activity: str
    argument: Any
    result_type: type[pydantic.BaseModel]
    state: str = "registered"
    detail: str = ""
    left_changed: str = ""
    """What stays changed if this undo fails."""
    manual: str = ""
    """How to undo it by hand."""
    target: str = ""
    """What the undo touches, e.g. "the record a-project.example.test." or "Kong Service orders-api"."""
    original: str = ""
    """What the target was before the cutover touched it."""
    settle: bool = False
    """Wait for Kong to apply this undo before running the next one."""
    two_step: planning.TwoStepRollback | None = None
    """Set for an A->CNAME flip under Kong's legacy DNS client: undo it in two steps (see planning)."""


@dataclass
class _Gate:
    name: str
    approval: ApprovalRecord | None = None


@dataclass
class _State:
    timeline: list[StepRecord] = field(default_factory=list)
    approvals: list[ApprovalRecord] = field(default_factory=list)
    ignored: list[IgnoredMessage] = field(default_factory=list)
    waits: list[WaitRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    left_changed: list[str] = field(default_factory=list)
    manual_steps: list[str] = field(default_factory=list)


def admission_error(problems: str) -> Exception:
    """What a plan that doesn't validate raises at the start of ``run``.

    A new run fails at once, with every problem listed. The plan is taken as plain JSON and validated
    by the workflow rather than by the data converter, because of open runs: when one is replayed by a
    newer worker whose plan rules are stricter, failing it would abandon its changes without rollback.
    A replay instead fails the workflow *task*, which Temporal retries until the worker is rolled back
    or fixed, while the run's changes stay as described in its history.
    """
    if workflow.unsafe.is_replaying():
        return RuntimeError(
            "this run's plan no longer validates with this worker's code; roll the worker back or make the new "
            f"rule accept existing plans: {problems}"
        )
    return ApplicationError(f"invalid plan: {problems}", type="InvalidPlan", non_retryable=True)


@workflow.defn(name=WORKFLOW_TYPE)
class CutoverWorkflow:
    """Cut a record over from A to B. Signals/updates: ``approve``, ``abort``; query: ``status``."""

    @workflow.init
    def __init__(self, plan: dict[str, Any]) -> None:
        self._invalid_plan: str | None = None
        try:
            self._plan = CutoverPlan.model_validate(plan)
            self._digest = self._plan.digest()
            self._phase = "starting"
        except pydantic.ValidationError as exc:
            # Raised from run(), not here: an exception in init leaves the SDK's run coroutine unawaited.
            self._invalid_plan = describe_problems(exc)
            self._plan = cast(CutoverPlan, None)
            self._digest = ""
            self._phase = "failed"
        self._state = _State()
        self._undos: list[_Undo] = []
        self._gate: _Gate | None = None
        self._abort: AbortRequest | None = None
        self._point_of_no_return = False
        self._inspection: KongInspection | None = None
        self._bound: CacheBound | None = None
        self._verdict: Verdict | None = None
        self._decommission: DecommissionResult | None = None
        self._planned: list[Any] = []
        self._risks: list[str] = []
        self._error: str | None = None
        self._details: str = ""
        self._estimates: list[WaitRecord] = []
        self._repointed_hashes: dict[str, str] = {}
        self._rolling_back = False
        self._flipped_at: datetime | None = None

    # --- run ------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, raw_plan: dict[str, Any]) -> CutoverStatus:
        """Run the phases; roll back on failure, abort or cancellation."""
        if self._invalid_plan is not None:
            raise admission_error(self._invalid_plan)
        plan = self._plan
        workflow.upsert_search_attributes([RECORD.value_set(plan.dns.record)])
        workflow.upsert_memo({"plan_digest": self._digest, "ticket": plan.ticket or ""})
        try:
            await self._execute()
        except _Refused as exc:
            self._error = str(exc)
            self._set_phase("rolled-back", f"Refused before any change: {exc}")
            await self._notify("refused", f"cutover {plan.name} refused before any change: {exc}")
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(
                f"refused before any change: {exc}", type="CutoverRefused", non_retryable=True
            ) from None
        except _Aborted:
            assert self._abort is not None
            reason = f"aborted by {self._abort.by}: {self._abort.reason}"
            await self._shielded_roll_back(reason)
            raise ApplicationError(self._ending_message(reason), type=self._ending_type(), non_retryable=True) from None
        except asyncio.CancelledError:
            await self._shielded_roll_back("the workflow was cancelled")
            raise
        except (FailureError, _StepFailed) as exc:
            # A step's failure already names the step ("Flip ...: <why>"); keep that, not only the why.
            reason = str(exc) if isinstance(exc, _StepFailed) else _describe_failure(exc)
            await self._shielded_roll_back(reason)
            raise ApplicationError(self._ending_message(reason), type=self._ending_type(), non_retryable=True) from exc
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status()

    async def _execute(self) -> None:
        plan = self._plan
        snapshot, kong, reality, addresses_a, addresses_b, baseline = await self._verify()
        if plan.dry_run:
            self._set_phase("planned", self._plan_markdown())
            return
        current = reality.record_rrsets
        if plan.strategy == "alias":
            current = await self._repoint(reality, kong, snapshot)
        current = await self._lower_ttl(current, snapshot)
        if plan.approvals.flip:
            await self._await_gate("flip", f"flip {plan.dns.record} to CNAME {plan.dns.target}")
        await self._flip(current)
        await self._drain()
        ask_human = await self._monitor(addresses_a, addresses_b, baseline)
        if plan.approvals.decommission or ask_human:
            await self._await_gate("decommission", self._decommission_question())
        self._pass_point_of_no_return()
        decommission_error = await self._decommission_a(addresses_a, addresses_b)
        await self._restore_final_ttl()
        if decommission_error:
            raise _StepFailed(decommission_error)
        self._set_phase("completed", f"{plan.dns.record} now points at {plan.dns.target}; done.")
        await self._notify("completed", f"cutover {plan.name} completed: {plan.dns.record} -> {plan.dns.target}")

    # --- phases ---------------------------------------------------------------------------------

    async def _verify(
        self,
    ) -> tuple[DnsSnapshot, KongInspection, planning.Reality, list[str], list[str], WindowSummary | None]:
        plan = self._plan
        self._set_phase("verifying", "Reading DNS on every nameserver, Kong, and probing B.")
        snapshot = await self._call(
            "dns_snapshot",
            SnapshotInput(dns=plan.dns, name=plan.dns.record),
            DnsSnapshot,
            f"Snapshot {plan.dns.record} on every nameserver",
        )
        kong = await self._call(
            "kong_inspect",
            KongInspectInput(kong=plan.kong, strategy=plan.strategy, record=plan.dns.record, target=plan.dns.target),
            KongInspection,
            f"Read Kong Service {plan.kong.service}, routes and DNS settings",
        )
        self._inspection = kong
        reality, problems = planning.assess_reality(plan, snapshot, kong)
        if reality is None:
            raise _Refused(" ".join(problems))
        self._bound = planning.cache_bound_for(plan, kong, reality)
        self._planned = planning.planned_changes(plan, reality, kong)
        self._risks = planning.risks(plan, reality, kong, self._bound)
        self._state.warnings.extend(self._bound.warnings)

        readiness = await self._call(
            "readiness_probe",
            ReadinessInput(
                readiness=plan.readiness,
                shape=kong.shape_after,
                parity_hosts=(kong_host(plan.dns.record),) if plan.strategy == "alias" else (),
                started_at=workflow.now(),
            ),
            ReadinessReport,
            f"Probe B with Host {kong.shape_after.host_header} / SNI {kong.shape_after.sni}",
            attempt_timeout=plan.readiness.timeout + timedelta(minutes=1),
            heartbeat=timedelta(seconds=30),
            abortable=True,
        )
        if not readiness.ready:
            self._risks.extend(readiness.failures())
            if not plan.dry_run:
                raise _Refused("B is not ready for what Kong will send: " + "; ".join(readiness.failures()))

        addresses = await self._call(
            "dns_resolve",
            ResolveInput(dns=plan.dns, names=(reality.old_name, plan.dns.target)),
            AddressMap,
            f"Resolve A ({reality.old_name}) and B ({plan.dns.target})",
        )
        addresses_a = list(addresses.addresses.get(reality.old_name, ()))
        addresses_b = list(addresses.addresses.get(plan.dns.target, ()))
        if not addresses_b:
            raise _Refused(f"the target {plan.dns.target} resolves to no address")
        if set(addresses_a) & set(addresses_b):
            self._state.warnings.append(
                f"A and B share addresses {sorted(set(addresses_a) & set(addresses_b))}: "
                "the traffic share can't tell them apart"
            )

        preflight = await self._call(
            "decommission_preflight",
            DecommissionInput(
                decommission=plan.decommission,
                workflow_id=workflow.info().workflow_id,
                dns_project=plan.dns.provider.project if plan.dns.provider.kind == "clouddns" else None,
            ),
            DecommissionPreflight,
            f"Preflight: {plan.decommission.kind} decommission of A",
        )
        if not preflight.ok:
            raise _Refused("decommission preflight failed: " + "; ".join(preflight.problems))

        baseline = None
        if plan.monitor.baseline:
            baseline = await self._call(
                "traffic_baseline",
                BaselineInput(
                    **self._traffic_scope(addresses_a, addresses_b),
                ),
                WindowSummary,
                "Measure A's error ratio before the flip (baseline)",
                attempt_timeout=plan.monitor.poll_interval * 2 + timedelta(minutes=1),
                heartbeat=max(plan.monitor.poll_interval * 3, timedelta(seconds=30)),
                abortable=True,
            )
        self._record_wait_plan(snapshot, reality)
        return snapshot, kong, reality, addresses_a, addresses_b, baseline

    async def _repoint(
        self, reality: planning.Reality, kong: KongInspection, snapshot: DnsSnapshot
    ) -> tuple[RRset, ...]:
        plan = self._plan
        self._set_phase("repointing", f"Pointing Kong at the alias {plan.dns.record}.")
        current = reality.record_rrsets
        if not reality.alias_exists:
            change = planning.create_alias_change(plan, reality.old_name)
            undo = self._register_dns_undo(
                "delete-alias",
                planning.undo_of(change, f"delete the alias {plan.dns.record} cutover created"),
                f"the alias {plan.dns.record} exists (CNAME {reality.old_name})",
            )
            current = await self._apply_and_prove(change, f"Create alias {plan.dns.record} -> {reality.old_name}", undo)
            # A resolver that answered NXDOMAIN for the alias before it existed may keep that answer for
            # the zone's negative TTL (RFC 2308): Kong must not be pointed at it before that runs out.
            await self._wait(*planning.negative_ttl_wait(plan, snapshot))
        if reality.repoint_needed:
            alias = kong_host(plan.dns.record)
            self._register(
                _Undo(
                    id="restore-kong-service",
                    description=f"Kong Service {plan.kong.service}: host back to {kong.service.host}",
                    activity="kong_restore_service",
                    argument=RestoreServiceInput(kong=plan.kong, original=kong.service, repointed_host=alias),
                    result_type=ServiceSnapshot,
                    left_changed=f"Kong Service {plan.kong.service} has host {alias} (was {kong.service.host})",
                    manual=f"PATCH {plan.kong.admin_url}/services/{plan.kong.service} host={kong.service.host}",
                    target=f"Kong Service {plan.kong.service}",
                    original=f"host {kong.service.host}",
                    settle=True,
                )
            )
            try:
                await self._call(
                    "kong_repoint_service",
                    RepointInput(kong=plan.kong, expected=kong.service, new_host=alias),
                    ServiceSnapshot,
                    f"Repoint Kong Service {plan.kong.service}: {kong.service.host} -> {alias}",
                    retry=CHANGE_RETRY,
                    attempt_timeout=timedelta(seconds=30),
                    deadline=plan.dns.retry_deadline,
                )
            except _StepFailed as exc:
                self._wrote_nothing(self._undos[-1], exc)
                raise
            await self._await_kong_applied(kong)
        return current

    async def _await_kong_applied(self, kong: KongInspection) -> None:
        """Prove the data planes run the repointed Service (hybrid), or give Kong its update interval."""
        plan = self._plan
        if not plan.kong.status_urls:
            await self._wait(*planning.kong_apply_wait(plan))
            return
        sync = await self._call(
            "kong_await_data_planes",
            self._data_plane_sync_input(kong.config_hashes),
            DataPlaneSync,
            f"Wait for {len(plan.kong.status_urls)} data plane(s) to apply the repointed Service",
            attempt_timeout=KONG_SYNC_TIMEOUT + timedelta(seconds=30),
            heartbeat=timedelta(seconds=30),
            abortable=True,
        )
        if not sync.in_sync:
            raise _StepFailed("data planes did not apply the repointed Service: " + "; ".join(sync.lagging))
        self._repointed_hashes = dict(sync.hashes)

    async def _lower_ttl(self, current: tuple[RRset, ...], snapshot: DnsSnapshot) -> tuple[RRset, ...]:
        plan = self._plan
        self._set_phase("lowering-ttl", f"Lowering the TTL of {plan.dns.record} to {plan.dns.cutover_ttl} s.")
        change = planning.lower_ttl_change(plan, current)
        if change is None:
            self._state.warnings.append(f"{plan.dns.record} already has a TTL of at most {plan.dns.cutover_ttl} s")
            return current
        undo = self._register_dns_undo(
            "restore-ttl",
            planning.undo_of(change, f"restore the TTL of {plan.dns.record}"),
            f"{plan.dns.record} has TTL {plan.dns.cutover_ttl} (was {describe_rrsets(change.expected)})",
        )
        lowered = await self._apply_and_prove(
            change, f"Lower TTL of {plan.dns.record} to {plan.dns.cutover_ttl} s", undo
        )
        await self._wait(*planning.old_ttl_wait(plan, snapshot))
        return lowered

    async def _flip(self, current: tuple[RRset, ...]) -> None:
        plan = self._plan
        self._set_phase("flipping", f"Flipping {plan.dns.record} to CNAME {plan.dns.target}.")
        change = planning.flip_change(plan, current)
        undo = self._register_dns_undo(
            "restore-record",
            planning.undo_of(change, f"restore {plan.dns.record} as it was before the flip"),
            f"{plan.dns.record} is a CNAME to {plan.dns.target} (was {describe_rrsets(current)})",
        )
        kong = self._inspection
        if kong is not None and kong.dns.client == "legacy" and any(r.type in planning.ADDRESS_TYPES for r in current):
            undo.two_step = planning.two_step_rollback(plan, change.desired, current)
            undo.description += f" (in two steps, via {planning.rollback_name(plan)})"
        await self._apply_and_prove(change, f"Flip {plan.dns.record} -> CNAME {plan.dns.target}", undo)
        self._flipped_at = workflow.now()
        await self._notify("flipped", f"cutover {plan.name}: {plan.dns.record} now points at {plan.dns.target}")

    async def _drain(self) -> None:
        plan = self._plan
        bound = self._bound
        assert bound is not None
        wait, reason = planning.drain_wait(plan, bound)
        self._set_phase(
            "draining",
            f"Waiting {format_duration(wait)} for resolvers and Kong to drop A's address.\n\n"
            + "\n".join(f"- {line}" for line in bound.reasoning),
        )
        await self._wait(wait, reason)

    async def _monitor(self, addresses_a: list[str], addresses_b: list[str], baseline: WindowSummary | None) -> bool:
        """Watch traffic; return True when a human must decide (inconclusive)."""
        plan = self._plan
        monitor = plan.monitor
        window_index = 1
        while True:
            self._set_phase(
                "monitoring",
                f"Watching {monitor.source.kind} for {format_duration(monitor.window)} (window {window_index}).",
            )
            result = await self._call(
                "traffic_monitor",
                MonitorInput(
                    **self._traffic_scope(addresses_a, addresses_b),
                    baseline=baseline,
                    window_index=window_index,
                ),
                MonitorResult,
                f"Monitor traffic window {window_index} ({format_duration(monitor.window)})",
                attempt_timeout=monitor.window + monitor.poll_interval * 2 + timedelta(minutes=2),
                heartbeat=max(monitor.poll_interval * 3, timedelta(seconds=30)),
                abortable=True,
            )
            verdict = result.verdict
            self._verdict = verdict
            self._set_phase(
                "monitoring", f"Verdict: **{verdict.status}**: {verdict.reason}. {verdict.share.describe()}"
            )
            if verdict.status == "healthy":
                return False
            if verdict.status == "unhealthy":
                raise _StepFailed(f"B is unhealthy behind Kong: {verdict.reason}")
            if monitor.on_inconclusive == "rollback":
                raise _StepFailed(f"traffic verdict inconclusive and on_inconclusive is rollback: {verdict.reason}")
            if monitor.on_inconclusive == "wait" and window_index < monitor.max_windows:
                window_index += 1
                continue
            self._state.warnings.append(f"traffic verdict inconclusive: {verdict.reason}; a human must decide")
            return True

    async def _decommission_a(self, addresses_a: list[str], addresses_b: list[str]) -> str | None:
        """Delete A once it is proven drained; return why A was not deleted, or None."""
        plan = self._plan
        decommission = plan.decommission
        self._set_phase("decommissioning", f"Decommissioning A ({decommission.kind}).")
        proof: DrainProof | None = None
        if decommission.require_drained and decommission.kind != "none":
            proof = await self._call(
                "traffic_prove_drained",
                DrainInput(
                    **self._traffic_scope(addresses_a, addresses_b),
                    quiet_period_seconds=decommission.quiet_period.total_seconds(),
                    timeout_seconds=decommission.drain_timeout.total_seconds(),
                ),
                DrainProof,
                f"Prove A received nothing for {format_duration(decommission.quiet_period)}",
                attempt_timeout=decommission.drain_timeout + timedelta(minutes=2),
                heartbeat=max(plan.monitor.poll_interval * 3, timedelta(seconds=30)),
            )
            if not proof.drained:
                self._state.left_changed.append("A was not deleted")
                self._state.manual_steps.append(
                    "Find what still reaches A (Kong data planes with stale DNS caches: `kong reload`), then "
                    "delete A by hand."
                )
                return f"A is not drained, so it was not deleted: {proof.reason}"
        request = DecommissionInput(
            decommission=decommission,
            workflow_id=workflow.info().workflow_id,
            dns_project=plan.dns.provider.project if plan.dns.provider.kind == "clouddns" else None,
            drain_proof=proof,
        )
        try:
            self._decommission = await self._call(
                "decommission_delete",
                request,
                DecommissionResult,
                f"Decommission A ({decommission.kind})",
                retry=CHANGE_RETRY,
                attempt_timeout=timedelta(minutes=30),
                deadline=timedelta(hours=1),
                heartbeat=timedelta(minutes=1),
            )
        except _StepFailed as exc:
            message = f"decommissioning A failed: {exc}"
            if decommission.kind == "gcp-project":
                try:
                    self._decommission = await self._call(
                        "decommission_undo",
                        request,
                        DecommissionResult,
                        "Undo a partial decommission of A (undelete)",
                        retry=CHANGE_RETRY,
                        attempt_timeout=timedelta(minutes=10),
                        deadline=timedelta(hours=1),
                        heartbeat=timedelta(minutes=1),
                    )
                    message += "; the project deletion was undone (undelete), A is left as it was"
                except _StepFailed as undo_exc:
                    message += f"; undeleting the project also failed: {undo_exc}"
                    self._state.left_changed.append(f"GCP project {decommission.project_id} may be DELETE_REQUESTED")
                    self._state.manual_steps.append(
                        f"gcloud projects describe {decommission.project_id}; "
                        f"gcloud projects undelete {decommission.project_id} to restore it"
                    )
            self._state.manual_steps.append("Delete A by hand once the cause is fixed.")
            return message
        return None

    async def _restore_final_ttl(self) -> None:
        plan = self._plan
        self._set_phase("restoring-ttl", f"Raising the TTL of {plan.dns.record} to {plan.dns.final_ttl} s.")
        try:
            await self._apply_and_prove(planning.final_ttl_change(plan), f"Restore TTL {plan.dns.final_ttl} s")
        except _StepFailed:
            self._state.left_changed.append(f"{plan.dns.record} keeps TTL {plan.dns.cutover_ttl}")
            self._state.manual_steps.append(
                f"Set the TTL of {plan.dns.record} CNAME {plan.dns.target} to {plan.dns.final_ttl} by hand"
            )
            raise

    # --- gates, waits, point of no return ------------------------------------------------------

    async def _await_gate(self, gate: str, question: str) -> None:
        plan = self._plan
        self._gate = _Gate(gate)
        phase = f"awaiting-{gate}-approval"
        wid = workflow.info().workflow_id
        approve = (
            f"temporal workflow update execute -w {wid} --name approve "
            f'--input \'{{"gate":"{gate}","by":"<you>","digest":"{self._digest}"}}\''
        )
        abort = f'temporal workflow update execute -w {wid} --name abort --input \'{{"by":"<you>","reason":"..."}}\''
        self._set_phase(
            phase,
            f"Waiting for approval to {question}.\n\nApprove:\n```\n{approve}\n```\nAbort:\n```\n{abort}\n```\n"
            f"or `python starter.py approve {wid} --gate {gate} --by <you> --plan <the plan file you reviewed>`.",
        )
        await self._notify(f"gate-{gate}", f"cutover {plan.name} waits for approval to {question}.\n{approve}\n{abort}")
        while True:
            try:
                await workflow.wait_condition(
                    lambda: (self._gate is not None and self._gate.approval is not None) or self._abort is not None,
                    timeout=plan.approvals.timeout,
                    timeout_summary=f"{gate} approval timeout ({format_duration(plan.approvals.timeout)})",
                )
            except TimeoutError:
                if plan.approvals.on_timeout == "abort":
                    self._gate = None
                    raise _StepFailed(
                        f"no {gate} approval within {format_duration(plan.approvals.timeout)} (on_timeout: abort)"
                    ) from None
                self._state.warnings.append(
                    f"{gate} approval still pending after {format_duration(plan.approvals.timeout)}; waiting on"
                )
                await self._notify(f"gate-{gate}", f"cutover {plan.name} still waits for {gate} approval.\n{approve}")
                continue
            break
        if self._abort is not None:
            self._gate = None
            raise _Aborted()
        self._gate = None

    async def _wait(self, duration: timedelta, reason: str, *, interruptible: bool = True) -> None:
        """A durable timer that an abort interrupts (unless it is part of a rollback)."""
        until = workflow.now() + duration
        self._state.waits.append(
            WaitRecord(phase=self._phase, seconds=duration.total_seconds(), reason=reason, until=until)
        )
        summary = f"Wait {format_duration(duration)}: {reason}"
        self._details = f"{summary}, until {until:%H:%M:%S} UTC."
        self._refresh_details()
        step = self._step_started(summary)
        try:
            await workflow.wait_condition(
                lambda: interruptible and self._abort is not None, timeout=duration, timeout_summary=summary[:190]
            )
        except TimeoutError:
            self._step_finished(step, True, "waited")
            return
        self._step_finished(step, False, "interrupted by abort")
        raise _Aborted()

    def _pass_point_of_no_return(self) -> None:
        if self._abort is not None:
            raise _Aborted()
        self._point_of_no_return = True
        for undo in self._undos:
            if undo.state == "registered":
                undo.state = "not-needed"
                undo.detail = "past the point of no return: the cutover is kept"

    def _traffic_scope(self, addresses_a: list[str], addresses_b: list[str]) -> dict[str, Any]:
        """What every telemetry activity is told: the source, the service, and A's and B's addresses."""
        plan = self._plan
        return {
            "monitor": plan.monitor,
            "service": plan.monitor_service,
            "a_addresses": tuple(addresses_a),
            "b_addresses": tuple(addresses_b),
        }

    def _decommission_question(self) -> str:
        d = self._plan.decommission
        target = {
            "gcp-project": f"delete project {getattr(d, 'project_id', '')}",
            "webhook": "call the decommission webhook",
        }
        verdict = f" (traffic verdict: {self._verdict.status})" if self._verdict else ""
        return f"{target.get(d.kind, 'finish and leave A in place')}{verdict}; this is the point of no return"

    # --- compensation ---------------------------------------------------------------------------

    def _register(self, undo: _Undo) -> None:
        self._undos.append(undo)

    def _register_dns_undo(self, undo_id: str, change: DnsChange, left_changed: str) -> _Undo:
        undo = _Undo(
            id=undo_id,
            description=change.reason,
            activity="dns_apply",
            argument=ApplyInput(dns=self._plan.dns, change=change),
            result_type=DnsChangeResult,
            left_changed=left_changed,
            manual=f"set {change.name} to {describe_rrsets(change.desired)}",
            target=f"the record {change.name}",
            original=describe_rrsets(change.desired),
        )
        self._register(undo)
        return undo

    async def _shielded_roll_back(self, reason: str) -> None:
        """Roll back in a task a cancellation can't interrupt: half an undo is worse than none."""
        task = asyncio.ensure_future(self._roll_back(reason))
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                self._state.warnings.append("cancellation requested during rollback: finishing the undos first")

    async def _roll_back(self, reason: str) -> None:
        if self._point_of_no_return:
            self._end_failed_past_point_of_no_return(reason)
            await self._notify("failed", f"cutover {self._plan.name}: {reason}")
            return
        self._rolling_back = True
        self._error = reason
        self._gate = None
        pending = [u for u in reversed(self._undos) if u.state == "registered"]
        self._set_phase("rolling-back", f"Rolling back: {reason}. {len(pending)} undo(s) to run.")
        for undo in pending:
            await self._run_undo(undo)
        failed = [u for u in self._undos if u.state == "failed"]
        if failed:
            self._set_phase("failed", f"Rollback incomplete: {len(failed)} undo(s) failed. {reason}")
        else:
            self._set_phase("rolled-back", f"Rolled back: {reason}")
        await self._notify(
            "rolled-back" if not failed else "failed", f"cutover {self._plan.name}: {self._phase}: {reason}"
        )

    async def _run_undo(self, undo: _Undo) -> None:
        undo.state = "running"
        self._refresh_details()
        if undo.two_step is not None:
            await self._undo_flip_in_two_steps(undo, undo.two_step)
            return
        step = self._step_started(f"Undo: {undo.description}")
        try:
            raw = await workflow.execute_activity(
                undo.activity,
                undo.argument,
                result_type=dict,
                start_to_close_timeout=timedelta(minutes=2),
                schedule_to_close_timeout=self._plan.dns.retry_deadline * UNDO_PATIENCE,
                retry_policy=CHANGE_RETRY,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=f"Undo: {undo.description}"[:190],
            )
            result = undo.result_type.model_validate(raw)
        except (ActivityError, pydantic.ValidationError) as exc:
            undo.detail = _describe_failure(exc)
            if _failure_type(exc) in CHANGED_OUTSIDE:
                undo.state = "failed"
                self._state.left_changed.append(
                    f"left alone: {undo.target} was changed outside cutover after cutover's step ({undo.detail}); "
                    "cutover did not overwrite it"
                )
                self._state.manual_steps.append(
                    f"Review {undo.target} by hand: before the cutover it was {undo.original}; cutover's own change "
                    "is no longer there to undo"
                )
            elif _failure_type(exc) in UNREACHABLE:
                undo.state = "failed"
                self._state.left_changed.append(
                    f"unknown, {undo.target} could not be reached ({undo.detail}): if the step took effect, "
                    f"{undo.left_changed}"
                )
                self._state.manual_steps.append(f"When it is reachable, check {undo.target}; if needed, {undo.manual}")
            else:
                undo.state = "failed"
                self._state.left_changed.append(f"not undone: {undo.left_changed} (undo failed: {undo.detail})")
                self._state.manual_steps.append(undo.manual)
            self._step_finished(step, False, undo.detail)
            return
        undo.state = "done"
        undo.detail = getattr(result, "outcome", "restored")
        self._step_finished(step, True, _short_result(result))
        if isinstance(result, DnsChangeResult) and result.outcome == "applied":
            change = ApplyInput.model_validate(undo.argument).change
            try:
                await self._prove(change.name, change.desired, result)
            except _StepFailed as exc:
                self._state.warnings.append(f"undo {undo.id} applied, but not yet seen on every nameserver: {exc}")
        if undo.settle:
            await self._settle_after(undo)

    async def _undo_flip_in_two_steps(self, undo: _Undo, steps: planning.TwoStepRollback) -> None:
        """Put A back behind the record without a window where Kong can't resolve it (see planning)."""
        plan = self._plan
        assert self._inspection is not None
        kong = self._inspection.dns
        record = plan.dns.record
        temporary = planning.rollback_name(plan)
        flipped = describe_rrsets(steps.retarget.expected)
        before = describe_rrsets(steps.restore.desired)
        stage = f"{record} could not be read; it may still be {flipped}"
        try:
            now = await self._call(
                "dns_snapshot",
                SnapshotInput(dns=plan.dns, name=record),
                DnsSnapshot,
                f"Read {record} before undoing",
                attempt_timeout=min(self._dns_attempt(), plan.dns.retry_deadline * UNDO_PATIENCE),
                deadline=plan.dns.retry_deadline * UNDO_PATIENCE,
            )
            if set(now.rrsets) == set(steps.restore.desired):
                undo.state, undo.detail = "not-needed", "the flip never took effect"
                return
            if set(now.rrsets) != set(steps.retarget.expected):
                raise _StepFailed(
                    f"{record} holds {describe_rrsets(now.rrsets)}, not cutover's flip", "PreconditionFailed"
                )
            stage = f"{record} is still {flipped}; {temporary} may hold A's addresses"
            await self._apply_and_prove(steps.create_temporary, steps.create_temporary.reason)
            await self._apply_and_prove(steps.retarget, steps.retarget.reason)
            stage = f"{record} is CNAME {temporary} (A's addresses: traffic is on A)"
            undo.detail = f"traffic back on A through {temporary}"
            flipped_at = self._flipped_at or workflow.now()
            remaining = flipped_at + planning.negative_entry_expiry(plan, kong) - workflow.now()
            if remaining > timedelta(0):
                await self._wait(
                    remaining + plan.dns.wait_margin,
                    f"Kong's cached 'no A record' for {record} expires (dns_not_found_ttl {kong.not_found_ttl} s)",
                    interruptible=False,
                )
            await self._apply_and_prove(steps.restore, steps.restore.reason)
            stage = f"{record} is restored; the temporary {temporary} still exists"
            await self._wait(
                planning.stale_cname_window(plan, kong) + plan.dns.wait_margin,
                f"Kong may still follow the stale CNAME to {planning.rollback_name(plan)}",
                interruptible=False,
            )
            await self._apply_and_prove(steps.remove_temporary, steps.remove_temporary.reason)
        except _StepFailed as exc:
            undo.state, undo.detail = "failed", str(exc)
            if exc.failure_type in CHANGED_OUTSIDE:
                self._state.left_changed.append(
                    f"left alone: the record {record} was changed outside cutover ({exc}); cutover did not overwrite it"
                )
                self._state.manual_steps.append(
                    f"Review {record} by hand: before the cutover it was {describe_rrsets(steps.restore.desired)}"
                )
            else:
                self._state.left_changed.append(f"rollback of the flip incomplete ({exc}): {stage}")
                self._state.manual_steps.append(
                    f"Check {record}: if it is not {before}, set it to {before} once Kong's dns_not_found_ttl "
                    f"({kong.not_found_ttl} s) has passed since the flip; delete {temporary} if it exists"
                )
            return
        undo.state = "done"
        undo.detail = f"restored in two steps via {planning.rollback_name(plan)}"

    def _data_plane_sync_input(self, previous_hashes: dict[str, str]) -> DataPlaneSyncInput:
        """What kong_await_data_planes is told: wait until every data plane's config hash moved on."""
        return DataPlaneSyncInput(
            kong=self._plan.kong, previous_hashes=previous_hashes, timeout_seconds=KONG_SYNC_TIMEOUT.total_seconds()
        )

    async def _settle_after(self, undo: _Undo) -> None:
        """After restoring Kong's Service, let Kong apply it before anything it resolved is removed."""
        plan = self._plan
        if plan.kong.status_urls and self._inspection is not None:
            sync = await workflow.execute_activity(
                "kong_await_data_planes",
                self._data_plane_sync_input(self._repointed_hashes),
                result_type=DataPlaneSync,
                start_to_close_timeout=KONG_SYNC_TIMEOUT + timedelta(seconds=30),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=READ_RETRY,
                summary="Wait for the data planes to apply the restored Service",
            )
            if not sync.in_sync:
                self._state.warnings.append(f"data planes still on the repointed Service: {', '.join(sync.lagging)}")
        else:
            wait, reason = planning.kong_apply_wait(plan)
            await workflow.sleep(wait, summary=f"Wait {format_duration(wait)}: {reason}"[:190])

    def _end_failed_past_point_of_no_return(self, reason: str) -> None:
        plan = self._plan
        self._error = reason
        self._gate = None
        self._state.left_changed.insert(
            0, f"the cutover is kept (past the point of no return): {plan.dns.record} points at {plan.dns.target}"
        )
        self._set_phase("failed", f"Failed after the point of no return: {reason}")

    def _ending_type(self) -> str:
        return "CutoverRolledBack" if self._phase == "rolled-back" else "CutoverFailed"

    def _ending_message(self, reason: str) -> str:
        if self._phase == "rolled-back":
            return f"rolled back: {reason}"
        what = "failed after the point of no return" if self._point_of_no_return else "rollback incomplete"
        return (
            f"{what} ({reason}). Left changed: {'; '.join(self._state.left_changed)}. "
            f"To finish by hand: {'; '.join(self._state.manual_steps)}"
        )

    # --- activities -----------------------------------------------------------------------------

    async def _call(
        self,
        activity: str,
        argument: Any,
        result_type: type[T],
        summary: str,
        *,
        attempt_timeout: timedelta = timedelta(minutes=2),
        deadline: timedelta | None = None,
        heartbeat: timedelta | None = None,
        retry: RetryPolicy = READ_RETRY,
        abortable: bool = False,
    ) -> T:
        """Run one activity as a timeline step; optionally interruptible by ``abort``.

        ``attempt_timeout`` bounds one attempt, ``deadline`` all attempts (default three attempts' worth).
        """
        if self._abort is not None and not self._point_of_no_return and not self._rolling_back:
            raise _Aborted()
        step = self._step_started(summary)
        coroutine: Awaitable[Any] = workflow.execute_activity(
            activity,
            argument,
            result_type=dict if issubclass(result_type, pydantic.BaseModel) else result_type,
            start_to_close_timeout=attempt_timeout,
            schedule_to_close_timeout=deadline or attempt_timeout * 3,
            heartbeat_timeout=heartbeat,
            retry_policy=retry,
            # On abort, wait until the activity has really stopped (it learns of it at its next
            # heartbeat): an undo never races the step it undoes, and nothing keeps running unseen.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=summary[:190],
        )
        try:
            raw = await (self._abortable(coroutine) if abortable else coroutine)
            # Decoded here, not by the converter: a result this code can't read fails the step (and
            # rolls back) instead of failing the whole run.
            result: T = result_type.model_validate(raw) if issubclass(result_type, pydantic.BaseModel) else raw
        except _Aborted:
            self._step_finished(step, False, "interrupted by abort")
            raise
        except (ActivityError, pydantic.ValidationError) as exc:
            self._step_finished(step, False, _describe_failure(exc))
            raise _StepFailed(f"{summary}: {_describe_failure(exc)}", _failure_type(exc)) from exc
        self._step_finished(step, True, _short_result(result))
        return result

    async def _abortable(self, coroutine: Awaitable[Any]) -> Any:
        task = asyncio.ensure_future(coroutine)
        await workflow.wait_condition(lambda: task.done() or self._abort is not None)
        if not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, ActivityError):
                pass
            raise _Aborted()
        return task.result()

    async def _apply_and_prove(self, change: DnsChange, summary: str, undo: _Undo | None = None) -> tuple[RRset, ...]:
        # retry_deadline bounds the whole step, retries included. Undos, and the steps after the point
        # of no return (nothing is left to roll back to), are five times as patient.
        attempt = self._dns_attempt()
        patient = self._rolling_back or self._point_of_no_return
        patience = self._plan.dns.retry_deadline * (UNDO_PATIENCE if patient else 1)
        try:
            result = await self._call(
                "dns_apply",
                ApplyInput(dns=self._plan.dns, change=change),
                DnsChangeResult,
                summary,
                retry=CHANGE_RETRY,
                attempt_timeout=min(attempt, patience),
                deadline=patience,
            )
        except _StepFailed as exc:
            self._wrote_nothing(undo, exc)
            raise
        await self._prove(change.name, change.desired, result)
        return change.desired

    def _dns_attempt(self) -> timedelta:
        """One DNS attempt: read, update, read back (Cloud DNS also polls the change until done)."""
        provider = self._plan.dns.provider
        return provider.timeout * 4 if provider.kind == "rfc2136" else provider.poll_timeout + timedelta(minutes=1)

    @staticmethod
    def _wrote_nothing(undo: _Undo | None, exc: _StepFailed) -> None:
        """A step refused because of an outside change wrote nothing: its undo must not run either."""
        if undo is not None and exc.failure_type in CHANGED_OUTSIDE:
            undo.state = "not-needed"
            undo.detail = "the step found an outside change and wrote nothing"

    async def _prove(self, name: str, desired: tuple[RRset, ...], result: DnsChangeResult) -> None:
        plan = self._plan
        await self._call(
            "dns_verify_propagation",
            PropagationInput(dns=plan.dns, name=name, desired=desired, min_serial=result.serial_after),
            PropagationReport,
            f"Prove {describe_rrsets(desired) if desired else name + ' removed'} on every nameserver",
            attempt_timeout=plan.dns.propagation_timeout + timedelta(seconds=30),
            heartbeat=timedelta(seconds=30),
            retry=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1)),
        )

    async def _notify(self, event: str, text: str) -> None:
        """Best effort: a failing notification never fails the cutover."""
        if self._plan.notify is None or self._plan.dry_run:
            return
        try:
            delivered = await workflow.execute_activity(
                "notify",
                NotifyInput(
                    webhook_env=self._plan.notify.webhook_env,
                    event=event,
                    text=text,
                    workflow_id=workflow.info().workflow_id,
                ),
                result_type=bool,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=NOTIFY_RETRY,
                summary=f"Notify: {event}",
            )
        except ActivityError as exc:
            self._state.warnings.append(f"notification {event} failed: {_describe_failure(exc)}")
            return
        if not delivered:
            self._state.warnings.append(f"notification {event} was not delivered (see the worker log)")

    # --- status and UI --------------------------------------------------------------------------

    def _set_phase(self, phase: str, details: str) -> None:
        self._phase = phase
        self._details = details
        workflow.upsert_search_attributes([PHASE.value_set(phase)])
        self._refresh_details()

    def _refresh_details(self) -> None:
        plan = self._plan
        lines = [
            f"## {plan.name}: **{self._phase}**",
            f"`{plan.dns.record}` -> `{plan.dns.target}` ({plan.strategy} strategy), plan digest `{self._digest[:12]}`",
            "",
            self._details,
        ]
        if self._bound is not None and self._phase in ("draining", "verifying", "planned"):
            lines += ["", f"Kong cache bound: {self._bound.seconds} s"]
        registered = [u for u in self._undos if u.state in ("registered", "running", "failed")]
        if registered:
            lines += ["", "Undo on rollback: " + "; ".join(f"{u.description} ({u.state})" for u in registered)]
        if self._state.warnings:
            lines += ["", "Warnings:"] + [f"- {w}" for w in self._state.warnings[-5:]]
        workflow.set_current_details("\n".join(lines))

    def _plan_markdown(self) -> str:
        lines = ["Dry run: nothing was changed. The run would:"]
        lines += [f"{i}. [{c.phase}] {c.description}" for i, c in enumerate(self._planned, 1)]
        if self._risks:
            lines += ["", "Risks:"] + [f"- {r}" for r in self._risks]
        lines += ["", f"Approve with digest `{self._digest}`."]
        return "\n".join(lines)

    def _record_wait_plan(self, snapshot: DnsSnapshot, reality: planning.Reality) -> None:
        assert self._bound is not None
        self._estimates = planning.estimated_waits(self._plan, snapshot, reality, self._bound)

    def _step_started(self, step: str) -> int:
        self._state.timeline.append(StepRecord(phase=self._phase, step=step, started_at=workflow.now()))
        return len(self._state.timeline) - 1

    def _step_finished(self, index: int, ok: bool, result: str) -> None:
        record = self._state.timeline[index]
        self._state.timeline[index] = record.model_copy(
            update={"finished_at": workflow.now(), "ok": ok, "result": result}
        )

    def _status(self) -> CutoverStatus:
        plan = self._plan
        waits = list(self._state.waits)
        if self._phase == "planned":
            waits = list(self._estimates)
        return CutoverStatus(
            name=plan.name,
            workflow_id=workflow.info().workflow_id,
            phase=self._phase,
            plan_digest=self._digest,
            strategy=plan.strategy,
            record=plan.dns.record,
            target=plan.dns.target,
            dry_run=plan.dry_run,
            gates_awaited=(self._gate.name,) if self._gate is not None else (),
            point_of_no_return_passed=self._point_of_no_return,
            timeline=tuple(self._state.timeline),
            compensations=tuple(
                CompensationRecord(id=u.id, description=u.description, state=u.state, detail=u.detail)
                for u in self._undos
            ),
            approvals=tuple(self._state.approvals),
            ignored=tuple(self._state.ignored),
            waits=tuple(waits),
            planned_changes=tuple(self._planned),
            risks=tuple(self._risks),
            last_verdict=self._verdict,
            cache_bound=self._bound,
            decommission=self._decommission,
            warnings=tuple(dict.fromkeys(self._state.warnings)),
            error=self._error,
            left_changed=tuple(self._state.left_changed),
            manual_steps=tuple(self._state.manual_steps),
        )

    # --- messages -------------------------------------------------------------------------------

    @workflow.query(name="status")
    def status(self) -> CutoverStatus:
        """Everything about the run, for ``starter.py status`` and ``temporal workflow query``."""
        if self._invalid_plan is not None:
            raise ValueError(f"invalid plan: {self._invalid_plan}")
        return self._status()

    def _approval_problem(self, request: ApproveRequest) -> str | None:
        if self._phase in TERMINAL_PHASES:
            return f"the run has ended ({self._phase})"
        if not request.by:
            return "approve needs 'by': who approves"
        if request.gate not in ("flip", "decommission"):
            return f"unknown gate {request.gate!r}: use 'flip' or 'decommission'"
        if self._gate is None or self._gate.name != request.gate:
            awaited = self._gate.name if self._gate else "none"
            return f"gate {request.gate!r} is not awaited (phase {self._phase}, awaiting: {awaited})"
        if request.digest != self._digest:
            return (
                f"digest {request.digest!r} does not match this run's plan digest {self._digest}: "
                "you may be approving another version of the plan"
            )
        return None

    def _approve(self, request: ApproveRequest, via: str) -> str:
        assert self._gate is not None and request.by and request.gate
        record = ApprovalRecord(gate=request.gate, by=request.by, via=via, at=workflow.now(), comment=request.comment)
        self._gate.approval = record
        self._state.approvals.append(record)
        return f"{request.gate} approved by {request.by}"

    def _decode_signal(self, name: str, payload: Any, model: type[M]) -> M | None:
        """Signals carry no error back to the sender: record an undecodable one as ignored."""
        try:
            return model.model_validate(payload)
        except pydantic.ValidationError as exc:
            reason = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors())
            self._state.ignored.append(IgnoredMessage(name=name, at=workflow.now(), reason=f"malformed: {reason}"))
            return None

    @workflow.signal(name="approve")
    def approve_signal(self, payload: Any) -> None:
        """Approve a gate. Malformed or invalid approvals are recorded in the status as ignored.

        The payload is taken as plain JSON and validated here: Temporal would otherwise drop a signal
        that fails to decode without telling anyone.
        """
        request = self._decode_signal("approve", payload, ApproveRequest)
        if request is None:
            return
        problem = self._approval_problem(request)
        if problem:
            self._state.ignored.append(IgnoredMessage(name="approve", at=workflow.now(), reason=problem, by=request.by))
            return
        self._approve(request, "signal")

    @workflow.update(name="approve")
    def approve_update(self, request: ApproveRequest) -> str:
        """Approve a gate; the validator rejects a gate not awaited or a wrong digest."""
        return self._approve(request, "update")

    @approve_update.validator
    def _validate_approve(self, request: ApproveRequest) -> None:
        problem = self._approval_problem(request)
        if problem:
            raise ValueError(problem)

    def _abort_problem(self, request: AbortRequest) -> str | None:
        if self._phase in TERMINAL_PHASES:
            return f"the run has ended ({self._phase})"
        if self._point_of_no_return:
            return "past the point of no return (decommission approved): abort is no longer possible"
        if self._abort is not None:
            return f"already aborted by {self._abort.by}"
        if not request.by or not request.reason:
            return "abort needs 'by' and 'reason'"
        if self._phase == "rolling-back":
            return "already rolling back"
        return None

    @workflow.signal(name="abort")
    def abort_signal(self, payload: Any) -> None:
        """Roll back from wherever the run is, until the point of no return."""
        request = self._decode_signal("abort", payload, AbortRequest)
        if request is None:
            return
        problem = self._abort_problem(request)
        if problem:
            self._state.ignored.append(IgnoredMessage(name="abort", at=workflow.now(), reason=problem, by=request.by))
            return
        self._abort = request

    @workflow.update(name="abort")
    def abort_update(self, request: AbortRequest) -> str:
        """Roll back from wherever the run is; rejected past the point of no return."""
        self._abort = request
        return f"aborting: rolling back from {self._phase}"

    @abort_update.validator
    def _validate_abort(self, request: AbortRequest) -> None:
        problem = self._abort_problem(request)
        if problem:
            raise ValueError(problem)


class _StepFailed(Exception):
    """A step failed after its retries; the message says which and why."""

    def __init__(self, message: str, failure_type: str | None = None) -> None:
        super().__init__(message)
        self.failure_type = failure_type


def _failure_type(exc: BaseException) -> str | None:
    """The ApplicationError type somewhere in a failure chain (e.g. ``PreconditionFailed``)."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, _StepFailed) and current.failure_type:
            return current.failure_type
        if isinstance(current, ApplicationError) and current.type:
            return current.type
        current = current.__cause__
    return None


def _describe_failure(exc: BaseException) -> str:
    """The most useful message of a Temporal failure chain: the typed error an activity raised, if any."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ApplicationError) and current.type and current.message:
            return f"{current.type}: {current.message}"
        current = current.__cause__
    messages: list[str] = []
    current = exc
    while current is not None:
        text = getattr(current, "message", None) or str(current)
        if text and text not in messages and text != "Activity task failed":
            messages.append(text)
        current = current.__cause__
    return messages[-1] if messages else type(exc).__name__


def _short_result(result: Any) -> str:
    if isinstance(result, DnsChangeResult):
        return f"{result.outcome}, serial {result.serial_before} -> {result.serial_after}"
    if isinstance(result, PropagationReport):
        return f"{len(result.servers)} nameserver(s) in sync in {result.elapsed_seconds:.1f} s"
    if isinstance(result, ReadinessReport):
        return "ready" if result.ready else "not ready: " + "; ".join(result.failures())[:300]
    if isinstance(result, MonitorResult):
        return f"{result.verdict.status}: {result.verdict.reason}"
    if isinstance(result, DnsSnapshot):
        return f"{describe_rrsets(result.rrsets)}; max TTL {result.max_ttl} s"
    if isinstance(result, ServiceSnapshot):
        return f"Service {result.name or result.id}: host {result.host}"
    if isinstance(result, KongInspection):
        return f"{result.mode}, host {result.service.host}, {result.dns.client} DNS client"
    if isinstance(result, DrainProof):
        return result.reason
    if isinstance(result, DecommissionResult):
        return f"{result.state}: {result.detail}"
    if isinstance(result, DecommissionPreflight):
        return "ok" if result.ok else "; ".join(result.problems)
    if isinstance(result, AddressMap):
        return "; ".join(f"{k} -> {', '.join(v)}" for k, v in result.addresses.items())
    if isinstance(result, WindowSummary):
        ratio = result.error_ratio
        return f"{result.requests} requests, error ratio {ratio:.2%}" if ratio is not None else "no requests"
    return type(result).__name__
