"""What the run shows: the ``CutoverPhase`` search attribute, the Markdown current details, the status.

Everything here renders ``Run``; nothing decides. The current details are what the web UI's
"User Metadata" tab and ``temporal workflow metadata`` show while the run is open.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from models.decommission import DecommissionPreflight, DecommissionResult
    from models.dns import AddressMap, DnsChangeResult, DnsSnapshot, PropagationReport, describe_rrsets
    from models.kong import KongInspection, ServiceSnapshot
    from models.readiness import ReadinessReport
    from models.telemetry import DrainProof, MonitorResult, WindowSummary
    from models.workflow import PHASE_ATTRIBUTE, CompensationRecord, CutoverStatus
    from workflows.state import Run

PHASE = SearchAttributeKey.for_keyword(PHASE_ATTRIBUTE)


def set_phase(run: Run, phase: str, details: str) -> None:
    """Enter a phase: search attribute, current details."""
    run.phase = phase
    run.details = details
    workflow.upsert_search_attributes([PHASE.value_set(phase)])
    refresh_details(run)


def refresh_details(run: Run) -> None:
    """Re-render the Markdown current details from the state."""
    plan = run.plan
    lines = [
        f"## {plan.name}: **{run.phase}**",
        f"`{plan.dns.record}` -> `{plan.dns.target}` ({plan.strategy} strategy), plan digest `{run.digest[:12]}`",
        "",
        run.details,
    ]
    if run.bound is not None and run.phase in ("draining", "verifying", "planned"):
        lines += ["", f"Kong cache bound: {run.bound.seconds} s"]
    registered = [u for u in run.undos if u.state in ("registered", "running", "failed")]
    if registered:
        lines += ["", "Undo on rollback: " + "; ".join(f"{u.description} ({u.state})" for u in registered)]
    if run.warnings:
        lines += ["", "Warnings:"] + [f"- {w}" for w in run.warnings[-5:]]
    workflow.set_current_details("\n".join(lines))


def plan_markdown(run: Run) -> str:
    """The dry run's answer: every change in order, the risks, the digest to approve."""
    lines = ["Dry run: nothing was changed. The run would:"]
    lines += [f"{i}. [{c.phase}] {c.description}" for i, c in enumerate(run.planned, 1)]
    if run.risks:
        lines += ["", "Risks:"] + [f"- {r}" for r in run.risks]
    lines += ["", f"Approve with digest `{run.digest}`."]
    return "\n".join(lines)


def status_of(run: Run) -> CutoverStatus:
    """The answer of the ``status`` query and the run's result."""
    plan = run.plan
    waits = list(run.estimates) if run.phase == "planned" else list(run.waits)
    return CutoverStatus(
        name=plan.name,
        workflow_id=workflow.info().workflow_id,
        phase=run.phase,
        plan_digest=run.digest,
        strategy=plan.strategy,
        record=plan.dns.record,
        target=plan.dns.target,
        dry_run=plan.dry_run,
        gates_awaited=(run.gate.name,) if run.gate is not None else (),
        point_of_no_return_passed=run.point_of_no_return,
        timeline=tuple(run.timeline),
        compensations=tuple(
            CompensationRecord(id=u.id, description=u.description, state=u.state, detail=u.detail) for u in run.undos
        ),
        approvals=tuple(run.approvals),
        ignored=tuple(run.ignored),
        waits=tuple(waits),
        planned_changes=tuple(run.planned),
        risks=tuple(run.risks),
        last_verdict=run.verdict,
        cache_bound=run.bound,
        decommission=run.decommission,
        warnings=tuple(dict.fromkeys(run.warnings)),
        error=run.error,
        left_changed=tuple(run.left_changed),
        manual_steps=tuple(run.manual_steps),
    )


def short_result(result: Any) -> str:
    """One line for the timeline: what a step's result says."""
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
