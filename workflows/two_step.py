"""Undo an A -> CNAME flip under Kong's legacy DNS client in two steps, without a window of 503s.

Restoring the A record at once would meet Kong's cached "no A record" for the name (the legacy
client's negative entry, ``dns_not_found_ttl``). So the record first points at a temporary name that
holds A's addresses, the A record comes back only once that entry has expired, and the temporary
name goes last, after Kong's stale CNAME window (see ``workflows/planning.py``).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.dns import SnapshotInput, describe_rrsets
    from workflows import planning
    from workflows.activity_refs import DNS_SNAPSHOT
    from workflows.dns_steps import UNDO_PATIENCE, DnsSteps
    from workflows.errors import CHANGED_OUTSIDE, StepFailed
    from workflows.state import Undo


async def undo_flip_in_two_steps(dns: DnsSteps, undo: Undo, steps: planning.TwoStepRollback) -> None:
    """Put A back behind the record without a window where Kong can't resolve it."""
    run = dns.steps.run
    plan = run.plan
    assert run.inspection is not None
    kong = run.inspection.dns
    record = plan.dns.record
    temporary = planning.rollback_name(plan)
    flipped = describe_rrsets(steps.retarget.expected)
    before = describe_rrsets(steps.restore.desired)
    stage = f"{record} could not be read; it may still be {flipped}"
    try:
        now = await dns.steps.call(
            DNS_SNAPSHOT,
            SnapshotInput(dns=plan.dns, name=record),
            f"Read {record} before undoing",
            attempt_timeout=min(dns.attempt(), plan.dns.retry_deadline * UNDO_PATIENCE),
            deadline=plan.dns.retry_deadline * UNDO_PATIENCE,
        )
        if set(now.rrsets) == set(steps.restore.desired):
            undo.state, undo.detail = "not-needed", "the flip never took effect"
            return
        if set(now.rrsets) != set(steps.retarget.expected):
            raise StepFailed(f"{record} holds {describe_rrsets(now.rrsets)}, not cutover's flip", "PreconditionFailed")
        stage = f"{record} is still {flipped}; {temporary} may hold A's addresses"
        await dns.apply_and_prove(steps.create_temporary, steps.create_temporary.reason)
        await dns.apply_and_prove(steps.retarget, steps.retarget.reason)
        stage = f"{record} is CNAME {temporary} (A's addresses: traffic is on A)"
        undo.detail = f"traffic back on A through {temporary}"
        flipped_at = run.flipped_at or workflow.now()
        remaining = flipped_at + planning.negative_entry_expiry(plan, kong) - workflow.now()
        if remaining > timedelta(0):
            await dns.steps.wait(
                remaining + plan.dns.wait_margin,
                f"Kong's cached 'no A record' for {record} expires (dns_not_found_ttl {kong.not_found_ttl} s)",
                interruptible=False,
            )
        await dns.apply_and_prove(steps.restore, steps.restore.reason)
        stage = f"{record} is restored; the temporary {temporary} still exists"
        await dns.steps.wait(
            planning.stale_cname_window(plan, kong) + plan.dns.wait_margin,
            f"Kong may still follow the stale CNAME to {temporary}",
            interruptible=False,
        )
        await dns.apply_and_prove(steps.remove_temporary, steps.remove_temporary.reason)
    except StepFailed as exc:
        undo.state, undo.detail = "failed", str(exc)
        if exc.failure_type in CHANGED_OUTSIDE:
            run.left_changed.append(
                f"left alone: the record {record} was changed outside cutover ({exc}); cutover did not overwrite it"
            )
            run.manual_steps.append(
                f"Review {record} by hand: before the cutover it was {describe_rrsets(steps.restore.desired)}"
            )
        else:
            run.left_changed.append(f"rollback of the flip incomplete ({exc}): {stage}")
            run.manual_steps.append(
                f"Check {record}: if it is not {before}, set it to {before} once Kong's dns_not_found_ttl "
                f"({kong.not_found_ttl} s) has passed since the flip; delete {temporary} if it exists"
            )
        return
    undo.state = "done"
    undo.detail = f"restored in two steps via {temporary}"
