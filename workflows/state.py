"""Everything a cutover run knows, in one place: the plan, the phase, the undo stack and the record.

The other workflow modules are functions and small classes over this state; the ``status`` query is a
rendering of it (``workflows/status.py``). It holds no I/O and nothing secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.approval_checks import Approver
    from models.approval_rules import ApprovalRules
    from models.decommission import DecommissionResult
    from models.kong import CacheBound, KongInspection
    from models.kong_hazards import DecommissionTiming
    from models.plan import CutoverPlan
    from models.policy_rules import PolicyReport
    from models.telemetry import Verdict
    from models.workflow import (
        AbortRequest,
        ApprovalRecord,
        IgnoredMessage,
        PlannedChange,
        StepRecord,
        WaitRecord,
    )
    from workflows import planning
    from workflows.activity_refs import ActivityRef


@dataclass
class Undo:
    """A registered compensation: the activity that undoes one step, and what is left if it fails."""

    id: str
    description: str
    activity: ActivityRef[Any, Any]
    argument: Any
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
    attempt_timeout: timedelta = timedelta(0)
    """One attempt of the step it undoes: an undo attempt is never shorter."""
    requires: tuple[str, ...] = ()
    """Undos that must have succeeded (and, for Kong, been applied by every data plane) before this one."""
    guard: str | None = None
    """A fresh read that must show it is safe to run (``kong-off-alias``), or the undo is kept back."""
    settled: bool = True
    """For ``settle`` undos: Kong has applied it (set by the rollback engine)."""


@dataclass
class Gate:
    """An approval gate the run waits at."""

    name: str
    approval: ApprovalRecord | None = None


@dataclass
class Run:
    """The state of one cutover run."""

    plan: CutoverPlan
    digest: str
    phase: str = "starting"
    upserted_phase: str = ""
    """The ``CutoverPhase`` value last upserted: upserts happen only when it changes."""
    phase_started: datetime | None = None
    locking: bool = False
    """This run takes the per-record and per-Kong-Service locks (runs started before them replay without)."""
    details: str = ""
    """The Markdown paragraph of the current phase (the rest of the current details is derived)."""
    timeline: list[StepRecord] = field(default_factory=list)
    approvals: list[ApprovalRecord] = field(default_factory=list)
    ignored: list[IgnoredMessage] = field(default_factory=list)
    waits: list[WaitRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    left_changed: list[str] = field(default_factory=list)
    manual_steps: list[str] = field(default_factory=list)
    undos: list[Undo] = field(default_factory=list)
    gate: Gate | None = None
    abort: AbortRequest | None = None
    point_of_no_return: bool = False
    rolling_back: bool = False
    inspection: KongInspection | None = None
    bound: CacheBound | None = None
    verdict: Verdict | None = None
    decommission: DecommissionResult | None = None
    planned: list[PlannedChange] = field(default_factory=list)
    risks: list[str] = field(default_factory=list)
    error: str | None = None
    estimates: list[WaitRecord] = field(default_factory=list)
    repointed_hashes: dict[str, str] = field(default_factory=dict)
    flipped_at: datetime | None = None
    decommission_timing: DecommissionTiming | None = None
    """How long after the flip A must stay (idle Kong workers), as known so far."""
    decommission_not_before: datetime | None = None
    policy: PolicyReport | None = None
    """The worker policy's verdict on the plan (``policy_check``, first in verifying); None for runs
    started before it existed, which keep the plan's own settings."""
    starter: Approver | None = None
    """Who started the run, as established from its memo in ``verifying`` (workflows/approvals.py)."""

    @property
    def approval_rules(self) -> ApprovalRules:
        """Who may approve, from the worker policy: what the approve validators check."""
        return self.policy.effective.approval_rules if self.policy is not None else ApprovalRules()

    @property
    def flip_gate(self) -> bool:
        """Wait at the flip gate: the plan's choice, or forced by the policy for a destructive decommission."""
        return self.policy.effective.flip_gate if self.policy is not None else self.plan.approvals.flip

    @property
    def decommission_gate(self) -> bool:
        """Wait at the decommission gate (as :attr:`flip_gate`)."""
        return self.policy.effective.decommission_gate if self.policy is not None else self.plan.approvals.decommission

    @property
    def require_drained(self) -> bool:
        """A must be proven drained before it is deleted (as :attr:`flip_gate`)."""
        decommission = self.plan.decommission
        if self.policy is not None:
            return self.policy.effective.require_drained
        return decommission.require_drained and decommission.kind != "none"

    def caches_cleared_confirmed(self) -> bool:
        """The decommission approval confirmed the restart/reload the plan announces."""
        return any(a.gate == "decommission" and a.caches_cleared for a in self.approvals)

    def abort_pending(self) -> bool:
        """An abort arrived and can still stop forward steps."""
        return self.abort is not None and not self.point_of_no_return and not self.rolling_back
