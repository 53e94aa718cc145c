"""A DNS change as the run makes it: one compare-and-swap apply, then proof on every nameserver.

Forward steps, undos and the final TTL restore all change DNS through ``DnsSteps.apply_and_prove``;
its patience (how long retries may go on) is the plan's ``retry_deadline``, five times that for undos
and after the point of no return, where nothing is left to roll back to.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from models.dns import ApplyInput, DnsChange, DnsChangeResult, PropagationInput, RRset, describe_rrsets
    from workflows.activity_refs import DNS_APPLY, DNS_VERIFY_PROPAGATION
    from workflows.errors import CHANGED_OUTSIDE, StepFailed
    from workflows.state import Undo
    from workflows.steps import CHANGE_RETRY, Steps

UNDO_PATIENCE = 5


class DnsSteps:
    """Apply-and-prove for one run."""

    def __init__(self, steps: Steps) -> None:
        self.steps = steps

    def attempt(self) -> timedelta:
        """One DNS attempt: read, update, read back (Cloud DNS also polls the change until done)."""
        provider = self.steps.run.plan.dns.provider
        return provider.timeout * 4 if provider.kind == "rfc2136" else provider.poll_timeout + timedelta(minutes=1)

    def patience(self) -> timedelta:
        """How long one DNS step may retry: longer for undos and past the point of no return."""
        run = self.steps.run
        patient = run.rolling_back or run.point_of_no_return
        return run.plan.dns.retry_deadline * (UNDO_PATIENCE if patient else 1)

    async def apply_and_prove(self, change: DnsChange, summary: str, undo: Undo | None = None) -> tuple[RRset, ...]:
        """Apply ``change`` (compare-and-swap) and prove it on every nameserver; returns the new rrsets."""
        patience = self.patience()
        try:
            result = await self.steps.call(
                DNS_APPLY,
                ApplyInput(dns=self.steps.run.plan.dns, change=change),
                summary,
                retry=CHANGE_RETRY,
                attempt_timeout=min(self.attempt(), patience),
                deadline=patience,
            )
        except StepFailed as exc:
            wrote_nothing(undo, exc)
            raise
        await self.prove(change.name, change.desired, result)
        return change.desired

    async def prove(self, name: str, desired: tuple[RRset, ...], result: DnsChangeResult) -> None:
        """Wait until every authoritative nameserver serves ``desired`` at a serial >= the change's."""
        plan = self.steps.run.plan
        await self.steps.call(
            DNS_VERIFY_PROPAGATION,
            PropagationInput(
                dns=plan.dns, name=name, desired=desired, min_serial=result.serial_after, read_back=result.readback
            ),
            f"Prove {describe_rrsets(desired) if desired else name + ' removed'} on every nameserver",
            attempt_timeout=plan.dns.propagation_timeout + timedelta(seconds=30),
            heartbeat=timedelta(seconds=30),
            retry=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1)),
        )


def wrote_nothing(undo: Undo | None, exc: StepFailed) -> None:
    """A step refused because of an outside change wrote nothing: its undo must not run either."""
    if undo is not None and exc.failure_type in CHANGED_OUTSIDE:
        undo.state = "not-needed"
        undo.detail = "the step found an outside change and wrote nothing"
