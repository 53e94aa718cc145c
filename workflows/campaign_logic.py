"""The campaign's decisions, as pure functions of its status: what starts, when the line stops, which gates.

Nothing here does I/O or touches Temporal's state; :class:`workflows.campaign.CampaignWorkflow` calls
these and does what they say. Each function is small enough to test on plain data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError, FailureError, TerminatedError

with workflow.unsafe.imports_passed_through():
    from models.campaign import Campaign
    from models.campaign_status import (
        CAMPAIGN_TERMINAL,
        GATE_KINDS,
        ROLLED_BACK_TYPES,
        UNSUCCESSFUL,
        CampaignStatus,
        CutoverBrief,
        CutoverEntry,
        OperatorRequest,
        WaveGate,
        WaveStatus,
        terminated_reason,
    )
    from models.workflow import ApprovalRecord, ApproveRequest

WAVE_GATE = re.compile(r"^wave-(\d+)-(flip|decommission)$")


def new_status(campaign: Campaign, workflow_id: str) -> CampaignStatus:
    """A campaign before its first wave: every cutover pending, every wave with its digest and gates."""
    kinds = [k for k in GATE_KINDS if getattr(campaign.settings.approvals, k)]
    digests = campaign.plan_digests()
    waves = [
        WaveStatus(
            number=n,
            digest=campaign.wave_digest(n),
            cutovers=list(names),
            gates=[WaveGate(gate=f"wave-{n}-{kind}") for kind in kinds],
        )
        for n, names in enumerate(campaign.waves, 1)
    ]
    entries = [
        CutoverEntry(
            name=plan.name,
            workflow_id=plan.workflow_id,
            wave=n,
            record=plan.dns.record,
            service=plan.kong.service,
            plan_digest=digests[plan.name],
        )
        for n, names in enumerate(campaign.waves, 1)
        for plan in map(campaign.plan, names)
    ]
    settings = campaign.settings
    return CampaignStatus(
        name=campaign.name,
        workflow_id=workflow_id,
        digest=campaign.digest(),
        waves=waves,
        cutovers=entries,
        max_in_flight=settings.max_in_flight,
        per_wave=settings.approvals.per_wave,
        on_stop=settings.on_stop,
    )


# --- scheduling ----------------------------------------------------------------------------------


def startable(status: CampaignStatus, resources: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The pending cutovers of the current wave to start now, in order.

    Never more than ``max_in_flight`` in flight, and never two holding one record or Kong Service: a
    cutover whose resource is held is passed over until the holder ends.
    """
    if status.stopped is not None or status.abort is not None or status.current_wave == 0:
        return []
    in_flight = status.in_flight()
    room = status.max_in_flight - len(in_flight)
    held = {r for entry in in_flight for r in resources[entry.name]}
    out: list[str] = []
    for entry in status.wave_entries(status.current_wave):
        if room <= 0:
            break
        if entry.state != "pending" or held & set(resources[entry.name]):
            continue
        out.append(entry.name)
        held |= set(resources[entry.name])
        room -= 1
    return out


def wave_over(status: CampaignStatus) -> bool:
    """Every cutover of the current wave has ended (vacuously true before the first wave)."""
    return all(e.state not in ("pending", "in-flight") for e in status.wave_entries(status.current_wave))


def failing(entry: CutoverEntry) -> bool:
    """Did not complete, or is rolling back now (the line stops when a rollback starts, not when it ends)."""
    return entry.state in UNSUCCESSFUL or (entry.state == "in-flight" and entry.phase == "rolling-back")


def counted_failures(status: CampaignStatus) -> list[CutoverEntry]:
    """Failing cutovers that count for ``stop_on``: not acknowledged, not aborted by the campaign."""
    acknowledged = set(status.acknowledged)
    return [e for e in status.cutovers if failing(e) and e.name not in acknowledged and e.abort_sent is None]


def _named(entries: list[CutoverEntry]) -> str:
    shown = [e.name + (" (rolling back)" if e.state == "in-flight" else "") for e in entries[:10]]
    return ", ".join(shown) + (f" +{len(entries) - 10} more" if len(entries) > 10 else "")


def stop_reason(status: CampaignStatus, campaign: Campaign) -> str | None:
    """Why the line must stop now (``stop_on`` tripped), or None."""
    stop = campaign.settings.stop_on
    counted = counted_failures(status)
    if stop.rollbacks is not None and len(counted) >= stop.rollbacks:
        return f"{len(counted)} cutover(s) did not complete ({_named(counted)}): stop_on.rollbacks is {stop.rollbacks}"
    failed = [e for e in counted if e.state == "failed"]
    if stop.failures is not None and len(failed) >= stop.failures:
        return f"{len(failed)} cutover(s) failed ({_named(failed)}): stop_on.failures is {stop.failures}"
    wave = status.current_wave
    allowed = stop.budget(len(status.wave_entries(wave))) if wave else None
    in_wave = [e for e in counted if e.wave == wave]
    if allowed is not None and len(in_wave) > allowed:
        return (
            f"{len(in_wave)} of wave {wave}'s {len(status.wave_entries(wave))} cutovers did not complete "
            f"({_named(in_wave)}): over the error budget of {stop.error_budget}"
        )
    return None


# --- cutover endings -----------------------------------------------------------------------------


def ending_of_failure(exc: BaseException) -> tuple[str, str]:
    """How a child run that raised ended: ``rolled-back`` or ``failed``, and why."""
    cause = exc.__cause__ if isinstance(exc, ChildWorkflowError) and exc.__cause__ is not None else exc
    if isinstance(cause, ApplicationError):
        state = "rolled-back" if cause.type in ROLLED_BACK_TYPES else "failed"
        return state, cause.message if state == "rolled-back" else f"{cause.type}: {cause.message}"
    if isinstance(cause, TerminatedError):
        return "failed", terminated_reason(cause.message)
    if isinstance(cause, FailureError):
        return "failed", f"{type(cause).__name__}: {cause.message}"
    return "failed", str(cause) or type(cause).__name__


def ending_of_brief(brief: CutoverBrief) -> tuple[str, str | None] | None:
    """How a closed run ended, from its last status; None while it runs."""
    if brief.closed is None:
        return None
    if brief.closed == "COMPLETED" and brief.phase == "completed":
        return "completed", None
    if brief.phase == "rolled-back":
        return "rolled-back", brief.error or f"closed {brief.closed.lower()}"
    return "failed", brief.error or brief.unreadable or f"the run ended {brief.closed.lower()} in phase {brief.phase}"


def read_ending(entry: CutoverEntry, brief: CutoverBrief, *, watched: bool) -> tuple[str, str | None] | None:
    """How a read says ``entry`` ended, when that may be concluded from it; None otherwise.

    Nothing is concluded from a read that could not get the status (a query timing out on a busy
    worker: the next read decides), except that the run no longer exists; nothing overrides an ending
    that is final (a completed child's own result beats a read that raced it); and a child still
    watched through its handle ends through that handle.
    """
    if entry.final or (brief.unreadable and brief.closed != "NOT_FOUND"):
        return None
    ending = ending_of_brief(brief)
    if ending is None or (entry.state == "in-flight" and watched):
        return None
    return ending


def apply_brief(entry: CutoverEntry, brief: CutoverBrief) -> None:
    """Take what a read of the cutover's status says (an unreadable read keeps what was known, and why)."""
    if brief.unreadable:
        entry.read_problem = brief.unreadable
        return
    entry.read_problem = None
    if list(brief.gates_awaited) != entry.gates_awaited:
        entry.needs_human = None
    entry.phase = brief.phase
    entry.gates_awaited = list(brief.gates_awaited)
    entry.point_of_no_return_passed = brief.point_of_no_return_passed
    entry.verdict_status = brief.verdict_status
    entry.verdict = brief.verdict
    entry.quiet_until = brief.quiet_until
    if brief.error:
        entry.error = brief.error
    entry.fingerprint = brief.fingerprint()


def next_read(status: CampaignStatus, now: datetime, interval: timedelta) -> datetime:
    """When to read the cutovers next: every ``interval``, but not before a cutover's durable wait ends.

    A cutover inside a TTL or drain wait changes nothing before the wait ends (an abort or an ending
    reaches the campaign by other means), so the reads, and the history they cost, wait with it.
    """
    soonest = now + interval
    times = [max(soonest, e.quiet_until or soonest) for e in status.in_flight()]
    if any(e.state in UNSUCCESSFUL and not e.final for e in status.cutovers):
        times.append(soonest)
    return min(times, default=soonest)


def end(entry: CutoverEntry, state: str, error: str | None, at: datetime) -> None:
    """Mark a cutover ended; the gates it awaited are no longer awaited."""
    entry.state = state  # type: ignore[assignment]
    entry.ended_at = entry.ended_at or at
    entry.gates_awaited = []
    if error:
        entry.error = error


# --- gates ---------------------------------------------------------------------------------------


def wave_gate(status: CampaignStatus, number: int, kind: str) -> WaveGate | None:
    """The gate ``wave-<number>-<kind>``, if this campaign has it."""
    if not 1 <= number <= len(status.waves):
        return None
    return next((g for g in status.waves[number - 1].gates if g.gate == f"wave-{number}-{kind}"), None)


def approvals_due(status: CampaignStatus) -> list[tuple[CutoverEntry, str, ApprovalRecord]]:
    """Cutover gates the campaign must approve now: awaited, and their wave's gate approved.

    A gate the campaign has no wave gate for, or a decommission after a verdict other than healthy (the
    run asks a human because its traffic was inconclusive), is flagged for a human instead.
    """
    due = []
    for entry in status.in_flight():
        for kind in entry.gates_awaited:
            if kind in entry.approved_gates or entry.needs_human:
                continue
            gate = wave_gate(status, entry.wave, kind)
            if gate is None:
                entry.needs_human = f"its {kind} gate is not a wave gate of this campaign: approve the cutover itself"
            elif kind == "decommission" and entry.verdict_status != "healthy":
                entry.needs_human = (
                    f"decommission after a {entry.verdict_status or 'missing'} traffic verdict: a human decides, "
                    "on the cutover itself"
                )
            elif gate.approval is not None:
                due.append((entry, kind, gate.approval))
    return due


def awaiting_wave_gates(status: CampaignStatus) -> list[WaveGate]:
    """Unapproved gates of the current wave that a cutover in flight is waiting for."""
    wanted = {kind for e in status.in_flight() for kind in e.gates_awaited if kind not in e.approved_gates}
    return [
        gate
        for kind in GATE_KINDS
        if kind in wanted and (gate := wave_gate(status, status.current_wave, kind)) is not None and not gate.approval
    ]


def phase_of(status: CampaignStatus) -> str:
    """The campaign's state while it runs: paused, awaiting-wave-approval, or running."""
    if status.phase in CAMPAIGN_TERMINAL:
        return status.phase
    if status.stopped is not None and status.abort is None:
        return "paused"
    if status.abort is None and awaiting_wave_gates(status):
        return "awaiting-wave-approval"
    return "running"


# --- messages ------------------------------------------------------------------------------------


def _ended(status: CampaignStatus) -> str | None:
    if status.phase in CAMPAIGN_TERMINAL:
        return f"the campaign has ended ({status.phase})"
    if status.abort is not None:
        return f"the campaign is being aborted by {status.abort.by}"
    return None


def approval_problem(status: CampaignStatus, request: ApproveRequest) -> str | None:
    """Why this wave approval can't be accepted now, or None."""
    problem = _ended(status)
    if problem:
        return problem
    if not request.by:
        return "approve needs 'by': who approves"
    match = WAVE_GATE.match(request.gate or "")
    if match is None:
        return f"unknown gate {request.gate!r}: a campaign's gates are wave-N-flip and wave-N-decommission"
    number, kind = int(match.group(1)), match.group(2)
    if kind not in {"flip": ("flip",), "decommission": ("decommission",), "both": GATE_KINDS}.get(status.per_wave, ()):
        return f"this campaign has no {kind} gate per wave (approvals.per_wave: {status.per_wave})"
    if not 1 <= number <= len(status.waves):
        return f"there is no wave {number}: the campaign has {len(status.waves)}"
    if number > status.current_wave:
        return f"wave {number} has not started (the current wave is {status.current_wave})"
    if number < status.current_wave:
        return f"wave {number} is over"
    gate = wave_gate(status, number, kind)
    if gate is None:
        return f"this campaign has no gate {request.gate}"
    if gate.approval is not None:
        return f"{gate.gate} is already approved by {gate.approval.by}"
    digest = status.waves[number - 1].digest
    if request.digest != digest:
        return (
            f"digest {request.digest!r} does not match wave {number}'s digest {digest}: "
            f"the plans of wave {number} are not the ones you reviewed"
        )
    return None


def pause_problem(status: CampaignStatus, request: OperatorRequest) -> str | None:
    """Why this pause can't be accepted now, or None."""
    problem = _ended(status)
    if problem:
        return problem
    if not request.by or not request.reason:
        return "pause needs 'by' and 'reason'"
    if status.stopped is not None:
        return f"already paused ({status.stopped.reason})"
    return None


def resume_problem(status: CampaignStatus, request: OperatorRequest) -> str | None:
    """Why this resume can't be accepted now, or None."""
    problem = _ended(status)
    if problem:
        return problem
    if not request.by:
        return "resume needs 'by': who resumes"
    if status.stopped is None:
        return "the campaign is not paused"
    return None


def abort_problem(status: CampaignStatus, request: OperatorRequest) -> str | None:
    """Why this abort can't be accepted now, or None."""
    problem = _ended(status)
    if problem:
        return problem
    if not request.by or not request.reason:
        return "abort needs 'by' and 'reason'"
    return None
