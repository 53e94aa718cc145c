"""How a cutover run stops early, and how a Temporal failure chain is turned into one readable line.

``Aborted``, ``Refused`` and ``StepFailed`` are raised inside the run and caught by
``CutoverWorkflow.run``, which decides between "refused, nothing changed", "rolled back" and "failed";
they never leave the workflow as such.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

CHANGED_OUTSIDE = ("PreconditionFailed", "GatewayConflict")
"""Error types meaning "someone else changed it": the step wrote nothing, and nothing may be overwritten."""
UNREACHABLE = ("DnsUnavailable", "GatewayUnavailable")
"""Error types meaning the server could not be reached: whether the step took effect is unknown."""


class Aborted(Exception):
    """An ``abort`` arrived before the point of no return."""


class Refused(Exception):
    """Verifying found a reason not to start; nothing was changed."""


class StepFailed(Exception):
    """A step failed after its retries; the message says which and why."""

    def __init__(self, message: str, failure_type: str | None = None) -> None:
        super().__init__(message)
        self.failure_type = failure_type


def failure_type(exc: BaseException) -> str | None:
    """The ApplicationError type somewhere in a failure chain (e.g. ``PreconditionFailed``)."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, StepFailed) and current.failure_type:
            return current.failure_type
        if isinstance(current, ApplicationError) and current.type:
            return current.type
        current = current.__cause__
    return None


def describe_failure(exc: BaseException) -> str:
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
