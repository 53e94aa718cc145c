"""Verifying: read DNS on every nameserver and Kong, probe B as Kong will call it, resolve A and B.

Nothing is changed here. First of all the worker's policy judges the plan (``policy_check``): a
violation refuses the run (a dry run too) before anything is read, naming each rule, and the policy's
effective settings (forced gates, drain proof, approval rules) are kept on the run's state. Any other
reason not to start raises ``Refused``; the dry run stops after this phase with the planned changes,
waits and risks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.decommission import DecommissionInput
    from models.dns import DnsSnapshot, ResolveInput, SnapshotInput
    from models.kong import KongInspection, kong_host
    from models.kong_hazards import decommission_timing, ipv6_only_refusal
    from models.policy_rules import PolicyCheckInput
    from models.readiness import ReadinessInput
    from models.telemetry import BaselineInput, WindowSummary
    from workflows import planning
    from workflows.activity_refs import (
        DECOMMISSION_PREFLIGHT,
        DNS_RESOLVE,
        DNS_SNAPSHOT,
        KONG_INSPECT,
        POLICY_CHECK,
        READINESS_PROBE,
        TRAFFIC_BASELINE,
    )
    from workflows.approvals import establish_starter
    from workflows.errors import Refused, StepFailed
    from workflows.kit import Kit
    from workflows.lock import service_lock_id
    from workflows.status import set_phase


@dataclass(frozen=True)
class Verified:
    """What verifying read, for the phases after it."""

    snapshot: DnsSnapshot
    kong: KongInspection
    reality: planning.Reality
    addresses_a: tuple[str, ...]
    addresses_b: tuple[str, ...]
    baseline: WindowSummary | None

    def traffic_scope(self, kit: Kit) -> dict[str, Any]:
        """What every telemetry activity is told: the source, the service, and A's and B's addresses."""
        plan = kit.run.plan
        return {
            "monitor": plan.monitor,
            "service": plan.monitor_service,
            "a_addresses": self.addresses_a,
            "b_addresses": self.addresses_b,
        }


def decommission_input(kit: Kit, **extra: Any) -> DecommissionInput:
    """What the decommission activities are told about A and the run."""
    plan = kit.run.plan
    return DecommissionInput(
        decommission=plan.decommission,
        workflow_id=workflow.info().workflow_id,
        dns_project=plan.dns.provider.project if plan.dns.provider.kind == "clouddns" else None,
        **extra,
    )


POLICY_CHECK_PATCH = "policy-check-first"
"""Runs started before the worker policy existed replay without ``policy_check`` (golden histories)."""


async def check_policy(kit: Kit) -> None:
    """Have the worker's policy judge the plan; refuse on any violation, keep the effective settings."""
    run = kit.run
    if not workflow.patched(POLICY_CHECK_PATCH):
        return
    report = await kit.steps.call(
        POLICY_CHECK, PolicyCheckInput(plan=run.plan), "Check the plan against the worker policy"
    )
    run.policy = report
    run.warnings.extend(report.warnings)
    if report.violations:
        run.risks.extend(violation.describe() for violation in report.violations)
        raise Refused(
            f"the worker policy ({report.policy}) refuses this plan: "
            + "; ".join(violation.describe() for violation in report.violations)
        )


TARGET_TTL_PATCH = "upstream-target-address-ttl"
"""Runs from before it replay without the extra read."""


async def target_address_ttl(kit: Kit, kong: KongInspection, reality: planning.Reality) -> int | None:
    """The TTL of A's address records when the record is an Upstream target that is a CNAME today.

    Kong's balancer keeps the addresses a CNAME target led to and renews them only when *they* expire
    (kong/runloop/balancer/targets.lua), so their TTL adds to the cache bound. None when it does not
    apply, or when A's name can't be read through the plan's DNS (the bound then says it is unknown).
    """
    if kong.upstream is None or reality.flip_kind != "cname-to-cname" or not workflow.patched(TARGET_TTL_PATCH):
        return None
    plan = kit.run.plan
    try:
        snapshot = await kit.steps.call(
            DNS_SNAPSHOT,
            SnapshotInput(dns=plan.dns, name=reality.old_name),
            f"Read the TTL of {reality.old_name} (what Kong's balancer renews the target on)",
        )
    except StepFailed as exc:
        kit.run.warnings.append(f"the TTL of {reality.old_name} could not be read: {exc}")
        return None
    return snapshot.max_ttl or None


async def verify(kit: Kit) -> Verified:
    """Check the policy, read everything, refuse if the plan doesn't fit reality; record changes and waits."""
    run, steps = kit.run, kit.steps
    plan = run.plan
    set_phase(run, "verifying", "Reading DNS on every nameserver, Kong, and probing B.")
    await check_policy(kit)
    # Now that the policy's approval rules are known: a run whose starter can't be established under
    # approver_not_starter could never be approved.
    starter_problem = establish_starter(run)
    if starter_problem:
        raise Refused(starter_problem)
    snapshot = await steps.call(
        DNS_SNAPSHOT,
        SnapshotInput(dns=plan.dns, name=plan.dns.record),
        f"Snapshot {plan.dns.record} on every nameserver",
    )
    kong = await steps.call(
        KONG_INSPECT,
        planning.kong_inspect_input(plan),
        f"Read Kong Service {plan.kong.service}, routes and DNS settings",
    )
    run.inspection = kong
    if run.locking:
        service = kong.service
        await kit.locks.acquire(
            f"Kong Service {service.name or service.id} ({service.id})", service_lock_id(service.id)
        )
    reality, problems = planning.assess_reality(plan, snapshot, kong)
    if reality is None:
        raise Refused(" ".join(problems))
    run.bound = planning.cache_bound_for(plan, kong, reality, await target_address_ttl(kit, kong, reality))
    run.planned = planning.planned_changes(plan, reality, kong)
    run.risks = planning.risks(plan, reality, kong, run.bound)
    run.warnings.extend(run.bound.warnings)

    readiness = await steps.call(
        READINESS_PROBE,
        ReadinessInput(
            readiness=plan.readiness,
            shape=kong.shape_after,
            parity_hosts=(kong_host(plan.dns.record),) if plan.strategy == "alias" else (),
            started_at=workflow.now(),
        ),
        f"Probe B with Host {kong.shape_after.host_header} / SNI {kong.shape_after.sni}",
        attempt_timeout=plan.readiness.timeout + timedelta(minutes=1),
        heartbeat=timedelta(seconds=30),
        abortable=True,
    )
    if not readiness.ready:
        run.risks.extend(readiness.failures())
        if not plan.dry_run:
            raise Refused("B is not ready for what Kong will send: " + "; ".join(readiness.failures()))

    addresses = await steps.call(
        DNS_RESOLVE,
        ResolveInput(dns=plan.dns, names=(reality.old_name, plan.dns.target)),
        f"Resolve A ({reality.old_name}) and B ({plan.dns.target})",
    )
    addresses_a = tuple(addresses.addresses.get(reality.old_name, ()))
    addresses_b = tuple(addresses.addresses.get(plan.dns.target, ()))
    if not addresses_b:
        raise Refused(f"the target {plan.dns.target} resolves to no address")
    ipv6_only = ipv6_only_refusal(kong.dns, addresses_b)
    if ipv6_only:
        if not plan.dry_run:
            raise Refused(ipv6_only)
        run.risks.append(ipv6_only)
    if set(addresses_a) & set(addresses_b):
        run.warnings.append(
            f"A and B share addresses {sorted(set(addresses_a) & set(addresses_b))}: "
            "the traffic share can't tell them apart"
        )

    preflight = await steps.call(
        DECOMMISSION_PREFLIGHT, decommission_input(kit), f"Preflight: {plan.decommission.kind} decommission of A"
    )
    if not preflight.ok:
        raise Refused("decommission preflight failed: " + "; ".join(preflight.problems))

    verified = Verified(snapshot, kong, reality, addresses_a, addresses_b, None)
    if plan.monitor.baseline:
        baseline = await steps.call(
            TRAFFIC_BASELINE,
            BaselineInput(**verified.traffic_scope(kit)),
            "Measure A's error ratio before the flip (baseline)",
            attempt_timeout=plan.monitor.poll_interval * 2 + timedelta(minutes=1),
            heartbeat=max(plan.monitor.poll_interval * 3, timedelta(seconds=30)),
            abortable=True,
        )
        verified = Verified(snapshot, kong, reality, addresses_a, addresses_b, baseline)
    if plan.decommission.kind != "none":
        run.decommission_timing = decommission_timing(plan, kong, run.bound)
    run.estimates = planning.estimated_waits(plan, snapshot, reality, run.bound, kong)
    return verified
