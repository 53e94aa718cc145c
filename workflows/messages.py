"""``approve`` and ``abort``: whether a message can be acted on, as pure functions of the run's state.

The update validators raise these problems back to the sender; the signal handlers, whose sender
gets no answer, record them in the status as ignored. Nothing here changes the run.
"""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import pydantic

    from models.workflow import TERMINAL_PHASES, AbortRequest, ApproveRequest
    from workflows.state import Run

M = TypeVar("M", bound=pydantic.BaseModel)


def approval_problem(run: Run, request: ApproveRequest) -> str | None:
    """Why this approval can't be accepted now, or None."""
    if run.phase in TERMINAL_PHASES:
        return f"the run has ended ({run.phase})"
    if not request.by:
        return "approve needs 'by': who approves"
    if request.gate not in ("flip", "decommission"):
        return f"unknown gate {request.gate!r}: use 'flip' or 'decommission'"
    earlier = next((a for a in run.approvals if a.gate == request.gate), None)
    if earlier is not None:
        return f"gate {request.gate!r} is already approved by {earlier.by}"
    if run.gate is None or run.gate.name != request.gate:
        awaited = run.gate.name if run.gate else "none"
        return f"gate {request.gate!r} is not awaited (phase {run.phase}, awaiting: {awaited})"
    if request.digest != run.digest:
        return (
            f"digest {request.digest!r} does not match this run's plan digest {run.digest}: "
            "you may be approving another version of the plan"
        )
    return None


def abort_problem(run: Run, request: AbortRequest) -> str | None:
    """Why this abort can't be accepted now, or None."""
    if run.phase in TERMINAL_PHASES:
        return f"the run has ended ({run.phase})"
    if run.point_of_no_return:
        return "past the point of no return (decommission approved): abort is no longer possible"
    if run.abort is not None:
        return f"already aborted by {run.abort.by}"
    if not request.by or not request.reason:
        return "abort needs 'by' and 'reason'"
    if run.phase == "rolling-back":
        return "already rolling back"
    return None


def decode_payload(payload: Any, model: type[M]) -> tuple[M | None, str]:
    """The payload as ``model``, or None and why not (for the status's ignored list)."""
    try:
        return model.model_validate(payload), ""
    except pydantic.ValidationError as exc:
        reason = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors())
        return None, f"malformed: {reason}"
