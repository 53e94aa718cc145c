"""The campaign workflow's contract: names, messages, the ``status`` query and its two activities' data.

``CampaignStatus`` is at once what the ``status`` query returns and the state a campaign carries
across continue-as-new: a new run starts from the last one's status, so the query can't tell them
apart. It is mutable (the workflow updates it in place) and ignores unknown fields, so a newer
worker can read what an older one carried.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.workflow import ApprovalRecord, IgnoredMessage

CAMPAIGN_WORKFLOW_TYPE = "CampaignWorkflow"
CAMPAIGN_NAME_ATTRIBUTE = "CampaignName"
CAMPAIGN_WAVE_ATTRIBUTE = "CampaignWave"
CampaignPhase = Literal["running", "awaiting-wave-approval", "paused", "completed", "aborted", "failed"]
CAMPAIGN_PHASES: tuple[str, ...] = CampaignPhase.__args__  # type: ignore[attr-defined]
CAMPAIGN_TERMINAL = ("completed", "aborted", "failed")
EntryState = Literal["pending", "in-flight", "completed", "rolled-back", "failed", "not-started"]
UNSUCCESSFUL = ("rolled-back", "failed")
GATE_KINDS = ("flip", "decommission")


class OperatorRequest(BaseModel):
    """Payload of ``pause``, ``resume`` and ``abort`` (signal and update): who, and why.

    Permissive like the cutover's messages: every field optional, unknown keys ignored, so that a
    malformed signal still arrives and is recorded as ignored with the reason.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    by: str | None = None
    reason: str | None = None


class _State(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StopRecord(_State):
    """Why the line stopped: a ``pause`` from a human, or ``stop_on`` tripping."""

    by: str
    reason: str
    at: datetime
    automatic: bool


class AbortRecord(_State):
    """Who aborted the campaign, and why."""

    by: str
    reason: str
    at: datetime


class CutoverEntry(_State):
    """One cutover of the campaign, as the campaign knows it."""

    name: str
    workflow_id: str
    wave: int
    record: str
    service: str
    plan_digest: str
    state: EntryState = "pending"
    phase: str = ""
    """The cutover's own phase, as last read."""
    gates_awaited: list[str] = []
    point_of_no_return_passed: bool = False
    verdict: str | None = None
    """The last traffic verdict, e.g. ``unhealthy: error ratio 41% > 1%``."""
    verdict_status: str | None = None
    error: str | None = None
    """Why it did not complete, or why it could not be started."""
    approved_gates: list[str] = []
    """Gates the campaign approved for it (on behalf of the wave's approver)."""
    needs_human: str | None = None
    """A gate the campaign will not approve by itself (e.g. decommission after an inconclusive verdict)."""
    abort_sent: str | None = None
    """The reason of the abort the campaign sent it, if any."""
    fingerprint: str = ""
    """Of the last status read (the poll returns only what changed)."""
    quiet_until: datetime | None = None
    """The end of the durable wait it was in at the last read: no need to read it again before."""
    final: bool = False
    """Its final status has been read."""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    read_problem: str | None = None
    """Why its status could not be read at the last read (it stays in flight; shown in the details)."""


class WaveGate(_State):
    """A wave's gate (``wave-2-flip``) and its approval."""

    gate: str
    approval: ApprovalRecord | None = None


class WaveStatus(_State):
    """One wave: its cutovers (by name), digest, gates and times."""

    number: int
    digest: str
    cutovers: list[str]
    gates: list[WaveGate] = []
    started_at: datetime | None = None
    ended_at: datetime | None = None


class CampaignEvent(_State):
    """A line of the campaign's own timeline (wave started, line stopped, resumed, ...)."""

    at: datetime
    text: str


class CampaignStatus(_State):
    """Everything about a campaign: the answer of ``status``, the result, and the state continue-as-new carries."""

    name: str
    workflow_id: str
    digest: str
    phase: str = "running"
    current_wave: int = 0
    """1-based; 0 before the first wave starts."""
    waves: list[WaveStatus] = []
    cutovers: list[CutoverEntry] = []
    max_in_flight: int = 1
    per_wave: str = "both"
    on_stop: str = "finish"
    stopped: StopRecord | None = None
    abort: AbortRecord | None = None
    acknowledged: list[str] = []
    """Cutovers whose failure a ``resume`` acknowledged: ``stop_on`` counts the others."""
    approvals: list[ApprovalRecord] = []
    ignored: list[IgnoredMessage] = []
    events: list[CampaignEvent] = []
    warnings: list[str] = []
    next_wave_at: datetime | None = None
    """While soaking between waves (``pause_between_waves``): when the next wave starts."""
    runs: int = 1
    """Runs of the workflow so far (continue-as-new starts a new one)."""
    error: str | None = None
    commands: dict[str, str] = {}
    """The exact commands for what the campaign waits for (approve, resume, abort)."""

    def entry(self, name: str) -> CutoverEntry:
        """The cutover called ``name``."""
        return next(e for e in self.cutovers if e.name == name)

    def wave_entries(self, number: int) -> list[CutoverEntry]:
        """The cutovers of wave ``number``, in order."""
        return [e for e in self.cutovers if e.wave == number]

    def in_flight(self) -> list[CutoverEntry]:
        """Cutovers started and not yet ended."""
        return [e for e in self.cutovers if e.state == "in-flight"]

    def counts(self) -> dict[str, int]:
        """How many cutovers are in each state."""
        out = {state: 0 for state in EntryState.__args__}  # type: ignore[attr-defined]
        for entry in self.cutovers:
            out[entry.state] += 1
        return out


# --- the activities' data ------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


ROLLED_BACK_TYPES = ("CutoverRolledBack", "CutoverRefused")
"""The error types of a cutover run that ended rolled back (refused before any change counts as one)."""


def terminated_reason(message: str) -> str:
    """Why a terminated cutover did not complete, and what its operator must check."""
    return f"terminated: {message} (no undo ran: check its record and Kong Service by hand)"


class CutoverBrief(_Frozen):
    """What the campaign needs of a cutover's ``status``: a few fields, not its whole timeline."""

    workflow_id: str
    phase: str = ""
    gates_awaited: tuple[str, ...] = ()
    point_of_no_return_passed: bool = False
    verdict_status: str | None = None
    verdict: str | None = None
    error: str | None = None
    closed: str | None = None
    """Temporal's status of a closed run (``COMPLETED``, ``FAILED``, ``TERMINATED``, ...); None while it runs."""
    unreadable: str | None = None
    """Why the run could not be read this time (the campaign keeps what it knew)."""
    quiet_until: datetime | None = None
    """The end of the durable wait the run is in: nothing changes before, short of an abort."""

    def fingerprint(self) -> str:
        """Changes whenever anything the campaign acts on changes."""
        parts = (self.phase, ",".join(self.gates_awaited), str(self.point_of_no_return_passed))
        quiet = self.quiet_until.isoformat() if self.quiet_until else ""
        return "|".join([*parts, self.verdict_status or "", self.closed or "", self.error or "", quiet])


class BriefsInput(_Frozen):
    """Read these cutovers; return only those whose fingerprint differs from ``known``."""

    workflow_ids: tuple[str, ...]
    known: dict[str, str] = {}


class BriefsResult(_Frozen):
    """The cutovers that changed since the last read."""

    briefs: tuple[CutoverBrief, ...] = ()


class ChildApproval(_Frozen):
    """Approve a cutover's gate with its ``approve`` update, on behalf of the wave's approver."""

    workflow_id: str
    gate: str
    by: str
    digest: str
    comment: str


class ChildApprovalResult(_Frozen):
    """Whether the cutover accepted the approval, and its answer (or why it refused)."""

    approved: bool
    message: str


CONTINUE_AFTER_EVENTS = 5000
"""A run continues as new past this many history events (Temporal warns at 10,240 and stops at 51,200)."""
CONTINUE_AFTER_BYTES = 4 * 1024 * 1024
"""... or past this many bytes (Temporal warns at 10 MB and stops at 50 MB): each cutover's start and
result (its whole status) put a few KB in the campaign's history."""


class CampaignCarry(BaseModel):
    """The workflow's second argument: the state carried by continue-as-new, and when to continue.

    A campaign started by a user has no carry; ``continue_after_events`` is for operators (and tests)
    that want shorter histories.
    """

    model_config = ConfigDict(extra="ignore")

    state: CampaignStatus | None = None
    continue_after_events: int = Field(default=CONTINUE_AFTER_EVENTS, ge=50, le=40000)
