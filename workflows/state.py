"""Everything a cutover run knows, in one place: the plan, the phase, the undo stack and the record.

The other workflow modules are functions and small classes over this state; the ``status`` query is a
rendering of it (``workflows/status.py``). It holds no I/O and nothing secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.approval_checks import Approver
    from models.approval_rules import ApprovalRules
    from models.decommission import DecommissionResult
    from models.kong import CacheBound, KongInspection
    from models.plan import CutoverPlan
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
    attempt_timeout: Any = None
    """One attempt of the undo (a timedelta): never shorter than one attempt of the step it undoes."""


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
    approval_rules: ApprovalRules = field(default_factory=ApprovalRules)
    """Who may approve: the worker policy's approval rules. The policy check in ``verifying`` sets them
    (the ``policy_check`` activity's answer); until then, and without a policy, the defaults."""
    starter: Approver | None = None
    """Who started the run, as established from its memo in ``verifying`` (workflows/approvals.py)."""

    def abort_pending(self) -> bool:
        """An abort arrived and can still stop forward steps."""
        return self.abort is not None and not self.point_of_no_return and not self.rolling_back
