"""The campaign's messages: ``approve``, ``pause``, ``resume``, ``abort`` (each an update and a signal), ``status``.

Every handler takes any number of arguments of any shape: one JSON object is decoded and checked by the
pure rules of ``workflows/campaign_logic.py``; anything else is refused (updates, the sender sees why)
or recorded in the status as ignored with the reason (signals, whose sender gets no answer). No
message can fail a workflow task, so none can freeze the campaign.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.campaign_status import AbortRecord, CampaignEvent, CampaignStatus, OperatorRequest, StopRecord
    from models.workflow import ApprovalRecord, ApproveRequest, IgnoredMessage
    from workflows import campaign_logic as logic
    from workflows.messages import M, decode_payload

EXAMPLES = {
    "approve": '{"gate": "wave-1-flip", "by": "alice", "digest": "<the wave\'s digest>"}',
    "abort": '{"by": "alice", "reason": "..."}',
}
"""What a sender should have sent, in the reason an empty message is ignored."""
KEPT = 100
"""Events, warnings and ignored messages kept in the status (the oldest are dropped)."""


class CampaignMessages:
    """The message handlers of CampaignWorkflow, over its status; the workflow's loop wakes on ``_wake``."""

    _status: CampaignStatus
    _invalid: str | None
    _wake: bool

    def _event(self, text: str) -> None:
        self._status.events = [*self._status.events[-(KEPT - 1) :], CampaignEvent(at=workflow.now(), text=text)]

    def _warn(self, text: str) -> None:
        self._status.warnings = [*self._status.warnings[-(KEPT - 1) :], text]

    # --- messages -------------------------------------------------------------------------------

    @workflow.query(name="status")
    def status(self) -> CampaignStatus:
        """Everything about the campaign, for ``starter.py campaign status`` and ``temporal workflow query``."""
        if self._invalid is not None:
            raise ValueError(f"invalid campaign: {self._invalid}")
        return self._status

    def _decode(self, name: str, args: tuple[Any, ...], model: type[M]) -> M | None:
        """One JSON object as ``model``; anything else is recorded as ignored (signals) or refused (updates)."""
        problem = self._message_problem(args, model)
        if isinstance(problem, str):
            self._ignore(name, problem)
            return None
        return problem

    @staticmethod
    def _message_problem(args: tuple[Any, ...], model: type[M]) -> M | str:
        example = EXAMPLES["approve" if model is ApproveRequest else "abort"]
        decoded, malformed = decode_payload(args, model, example)
        return decoded if decoded is not None else malformed

    def _ignore(self, name: str, reason: str, by: str | None = None) -> None:
        ignored = IgnoredMessage(name=name, at=workflow.now(), reason=reason, by=by)
        self._status.ignored = [*self._status.ignored[-(KEPT - 1) :], ignored]

    def _validated(self, name: str, args: tuple[Any, ...], model: type[M]) -> M:
        """For update validators: the request, or ValueError with why it is refused."""
        request = self._message_problem(args, model)
        if isinstance(request, str):
            raise ValueError(request)
        problem = self._problem(name, request)
        if problem:
            raise ValueError(problem)
        return request

    def _problem(self, name: str, request: Any) -> str | None:
        if self._invalid is not None:
            return f"invalid campaign: {self._invalid}"
        checks: dict[str, Callable[[CampaignStatus, Any], str | None]] = {
            "approve": logic.approval_problem,
            "pause": logic.pause_problem,
            "resume": logic.resume_problem,
            "abort": logic.abort_problem,
        }
        return checks[name](self._status, request)

    def _signal(self, name: str, args: tuple[Any, ...], model: type[M]) -> M | None:
        request = self._decode(name, args, model)
        if request is None:
            return None
        problem = self._problem(name, request)
        if problem:
            self._ignore(name, problem, getattr(request, "by", None))
            return None
        return request

    def _approve_wave(self, request: ApproveRequest, via: str) -> str:
        status = self._status
        assert request.gate and request.by
        match = logic.WAVE_GATE.match(request.gate)
        assert match is not None
        gate = logic.wave_gate(status, int(match.group(1)), match.group(2))
        assert gate is not None
        gate.approval = ApprovalRecord(
            gate=gate.gate, by=request.by, via=via, at=workflow.now(), comment=request.comment
        )
        status.approvals.append(gate.approval)
        self._event(f"{gate.gate} approved by {request.by}")
        self._wake = True
        kind, number = match.group(2), match.group(1)
        return f"{gate.gate} approved by {request.by}: the campaign approves each {kind} gate of wave {number}"

    def _pause(self, request: OperatorRequest) -> str:
        assert request.by and request.reason
        self._status.stopped = StopRecord(by=request.by, reason=request.reason, at=workflow.now(), automatic=False)
        self._event(f"paused by {request.by}: {request.reason}")
        self._wake = True
        return "paused: no new cutover starts; those in flight finish"

    def _resume(self, request: OperatorRequest) -> str:
        status = self._status
        assert request.by
        acknowledged = [e.name for e in logic.counted_failures(status)]
        status.acknowledged = [*status.acknowledged, *acknowledged]
        status.stopped = None
        self._event(
            f"resumed by {request.by}" + (f" (acknowledged: {', '.join(acknowledged)})" if acknowledged else "")
        )
        self._wake = True
        return "resumed" + (
            f"; acknowledged {len(acknowledged)} cutover(s) that did not complete" if acknowledged else ""
        )

    def _abort(self, request: OperatorRequest) -> str:
        assert request.by and request.reason
        self._status.abort = AbortRecord(by=request.by, reason=request.reason, at=workflow.now())
        self._event(f"abort by {request.by}: {request.reason}")
        self._wake = True
        return "aborting: cutovers before their point of no return are aborted, the others finish"

    @workflow.signal(name="approve")
    def approve_signal(self, *args: Any) -> None:
        """Approve a wave's gate; anything malformed or refused is recorded in the status as ignored."""
        request = self._signal("approve", args, ApproveRequest)
        if request is not None:
            self._approve_wave(request, "signal")

    @workflow.update(name="approve")
    def approve_update(self, *args: Any) -> str:
        """Approve a wave's gate with ``{"gate": "wave-2-flip", "by", "digest"}`` (the wave's digest)."""
        return self._approve_wave(self._validated("approve", args, ApproveRequest), "update")

    @approve_update.validator
    def _validate_approve(self, *args: Any) -> None:
        self._validated("approve", args, ApproveRequest)

    @workflow.signal(name="pause")
    def pause_signal(self, *args: Any) -> None:
        """Stop starting cutovers (those in flight finish) until ``resume``."""
        request = self._signal("pause", args, OperatorRequest)
        if request is not None:
            self._pause(request)

    @workflow.update(name="pause")
    def pause_update(self, *args: Any) -> str:
        """Stop starting cutovers (those in flight finish) until ``resume``."""
        return self._pause(self._validated("pause", args, OperatorRequest))

    @pause_update.validator
    def _validate_pause(self, *args: Any) -> None:
        self._validated("pause", args, OperatorRequest)

    @workflow.signal(name="resume")
    def resume_signal(self, *args: Any) -> None:
        """Carry on after a pause or a stopped line; the failures so far are acknowledged."""
        request = self._signal("resume", args, OperatorRequest)
        if request is not None:
            self._resume(request)

    @workflow.update(name="resume")
    def resume_update(self, *args: Any) -> str:
        """Carry on after a pause or a stopped line; the failures so far are acknowledged."""
        return self._resume(self._validated("resume", args, OperatorRequest))

    @resume_update.validator
    def _validate_resume(self, *args: Any) -> None:
        self._validated("resume", args, OperatorRequest)

    @workflow.signal(name="abort")
    def abort_signal(self, *args: Any) -> None:
        """Start no more cutovers, abort those before their point of no return, let the others finish."""
        request = self._signal("abort", args, OperatorRequest)
        if request is not None:
            self._abort(request)

    @workflow.update(name="abort")
    def abort_update(self, *args: Any) -> str:
        """Start no more cutovers, abort those before their point of no return, let the others finish."""
        return self._abort(self._validated("abort", args, OperatorRequest))

    @abort_update.validator
    def _validate_abort(self, *args: Any) -> None:
        self._validated("abort", args, OperatorRequest)
