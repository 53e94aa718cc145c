"""The workflow's public contract: names, phases, messages (approve/abort) and the status query."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from models.decommission import DecommissionResult
from models.kong import CacheBound
from models.telemetry import Verdict

TASK_QUEUE = "cutover"
WORKFLOW_TYPE = "CutoverWorkflow"
PHASE_ATTRIBUTE = "CutoverPhase"
RECORD_ATTRIBUTE = "CutoverRecord"

Phase = Literal[
    "starting",
    "verifying",
    "repointing",
    "lowering-ttl",
    "awaiting-flip-approval",
    "flipping",
    "draining",
    "monitoring",
    "awaiting-decommission-approval",
    "decommissioning",
    "restoring-ttl",
    "rolling-back",
    "completed",
    "planned",
    "rolled-back",
    "failed",
]
PHASES: tuple[str, ...] = Phase.__args__  # type: ignore[attr-defined]
TERMINAL_PHASES = ("completed", "planned", "rolled-back", "failed")
Gate = Literal["flip", "decommission"]


class _Model(BaseModel):
    # Unknown fields are ignored, not refused: during a rolling deploy a newer activity may return a
    # field an older workflow doesn't know, and a decode error would fail the run without rollback.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ApproveRequest(BaseModel):
    """Payload of ``approve`` (signal and update).

    Deliberately permissive: Temporal drops a signal whose payload fails to decode, silently. With
    every field optional and unknown keys ignored, a malformed approval still arrives and is recorded
    in the status as ignored, with the reason.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    gate: str | None = None
    by: str | None = None
    digest: str | None = None
    comment: str | None = None
    caches_cleared: bool | None = None
    """Decommission gate: the operator confirms every data plane was restarted (or reloaded) at least the
    cutover TTL after the flip, as the plan's ``kong.dns_caches_cleared`` announces; A may then go sooner."""
    signature: str | None = None
    """The armored SSH signature (``ssh-keygen -Y sign -n cutover-approval``) over
    ``models.approval_signature.approval_message``: required when the worker's policy says so."""


class AbortRequest(BaseModel):
    """Payload of ``abort`` (signal and update): roll back from wherever the run is."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    by: str | None = None
    reason: str | None = None


class StepRecord(_Model):
    """One line of the timeline."""

    phase: str
    step: str
    started_at: datetime
    finished_at: datetime | None = None
    ok: bool | None = None
    """None while running."""
    result: str = ""


class CompensationRecord(_Model):
    """An undo registered before its step ran."""

    id: str
    description: str
    state: Literal["registered", "running", "done", "failed", "not-needed"] = "registered"
    detail: str = ""


class ApprovalRecord(_Model):
    """Who approved which gate, and how."""

    gate: str
    by: str
    via: Literal["signal", "update"]
    at: datetime
    comment: str | None = None
    caches_cleared: bool | None = None
    key_fingerprint: str | None = None
    """The SHA256 fingerprint of the SSH key that signed the approval, when it was signed and checked."""


class IgnoredMessage(_Model):
    """A signal that arrived but could not be acted on (Temporal gives its sender no error)."""

    name: str
    at: datetime
    reason: str
    by: str | None = None


class WaitRecord(_Model):
    """A computed wait, with its reasoning."""

    phase: str
    seconds: float
    reason: str
    until: datetime | None = None


class PlannedChange(_Model):
    """One change the run will make, in order (the dry run prints these)."""

    phase: str
    description: str
    undo: str | None = None


class CutoverStatus(_Model):
    """Everything an operator needs at 3 a.m.: the answer of the ``status`` query and the result."""

    name: str
    workflow_id: str
    phase: str
    plan_digest: str
    strategy: str
    record: str
    target: str
    dry_run: bool = False
    gates_awaited: tuple[str, ...] = ()
    point_of_no_return_passed: bool = False
    timeline: tuple[StepRecord, ...] = ()
    compensations: tuple[CompensationRecord, ...] = ()
    approvals: tuple[ApprovalRecord, ...] = ()
    ignored: tuple[IgnoredMessage, ...] = ()
    waits: tuple[WaitRecord, ...] = ()
    planned_changes: tuple[PlannedChange, ...] = ()
    risks: tuple[str, ...] = ()
    last_verdict: Verdict | None = None
    decommission_not_before: datetime | None = None
    """The earliest moment A may be deleted (flip + the idle-worker bound), once the run knows it."""
    cache_bound: CacheBound | None = None
    decommission: DecommissionResult | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None
    """Why the run rolled back or failed."""
    left_changed: tuple[str, ...] = ()
    """What is still changed in the outside world when the run ended ``failed``."""
    manual_steps: tuple[str, ...] = ()
    """How to finish by hand."""


class LockRequest(BaseModel):
    """Input of a ``CutoverLock`` child: which resource it guards and for which run."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    resource: str
    holder: str
    """The workflow id of the cutover that holds the lock."""


class LockHolder(BaseModel):
    """Who holds a lock, as the lock look-up activity found it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    lock_id: str
    holder: str | None = None
    """The holding cutover's workflow id; None when the lock has just been released."""
    holder_run_id: str | None = None
    status: str = ""
