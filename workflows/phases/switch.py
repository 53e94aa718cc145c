"""The switch: flip the record to B, wait until nothing can still use A's address, watch the traffic.

The flip is one compare-and-swap change proven on every nameserver. The drain wait is the cutover TTL
plus Kong's cache bound, with its reasoning shown. Monitoring ends healthy, raises (rollback), or
returns that a human must decide.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.dns import RRset, describe_rrsets
    from models.durations import format_duration
    from models.telemetry import MonitorInput
    from workflows import planning
    from workflows.activity_refs import TRAFFIC_MONITOR
    from workflows.errors import StepFailed
    from workflows.kit import Kit
    from workflows.phases.verify import Verified
    from workflows.status import set_phase


async def flip(kit: Kit, current: tuple[RRset, ...]) -> None:
    """Make the record a CNAME to B (registering the undo first, in two steps under the legacy client)."""
    run = kit.run
    plan = run.plan
    set_phase(run, "flipping", f"Flipping {plan.dns.record} to CNAME {plan.dns.target}.")
    change = planning.flip_change(plan, current)
    undo = kit.saga.register_dns_undo(
        "restore-record",
        planning.undo_of(change, f"restore {plan.dns.record} as it was before the flip"),
        f"{plan.dns.record} is a CNAME to {plan.dns.target} (was {describe_rrsets(current)})",
    )
    kong = run.inspection
    if kong is not None and kong.dns.client == "legacy" and any(r.type in planning.ADDRESS_TYPES for r in current):
        undo.two_step = planning.two_step_rollback(plan, change.desired, current)
        undo.description += f" (in two steps, via {planning.rollback_name(plan)})"
    await kit.dns.apply_and_prove(change, f"Flip {plan.dns.record} -> CNAME {plan.dns.target}", undo)
    run.flipped_at = workflow.now()
    await kit.steps.notify("flipped", f"cutover {plan.name}: {plan.dns.record} now points at {plan.dns.target}")


async def drain(kit: Kit) -> None:
    """Wait out the cutover TTL and Kong's cache bound."""
    run = kit.run
    assert run.bound is not None
    wait, reason = planning.drain_wait(run.plan, run.bound)
    set_phase(
        run,
        "draining",
        f"Waiting {format_duration(wait)} for resolvers and Kong to drop A's address.\n\n"
        + "\n".join(f"- {line}" for line in run.bound.reasoning),
    )
    await kit.steps.wait(wait, reason)


async def monitor(kit: Kit, verified: Verified) -> bool:
    """Watch traffic; return True when a human must decide (inconclusive)."""
    run = kit.run
    monitor = run.plan.monitor
    window_index = 1
    while True:
        set_phase(
            run,
            "monitoring",
            f"Watching {monitor.source.kind} for {format_duration(monitor.window)} (window {window_index}).",
        )
        result = await kit.steps.call(
            TRAFFIC_MONITOR,
            MonitorInput(**verified.traffic_scope(kit), baseline=verified.baseline, window_index=window_index),
            f"Monitor traffic window {window_index} ({format_duration(monitor.window)})",
            attempt_timeout=monitor.window + monitor.poll_interval * 2 + timedelta(minutes=2),
            heartbeat=max(monitor.poll_interval * 3, timedelta(seconds=30)),
            abortable=True,
        )
        verdict = result.verdict
        run.verdict = verdict
        set_phase(run, "monitoring", f"Verdict: **{verdict.status}**: {verdict.reason}. {verdict.share.describe()}")
        if verdict.status == "healthy":
            return False
        if verdict.status == "unhealthy":
            raise StepFailed(f"B is unhealthy behind Kong: {verdict.reason}")
        if monitor.on_inconclusive == "rollback":
            raise StepFailed(f"traffic verdict inconclusive and on_inconclusive is rollback: {verdict.reason}")
        if monitor.on_inconclusive == "wait" and window_index < monitor.max_windows:
            window_index += 1
            continue
        run.warnings.append(f"traffic verdict inconclusive: {verdict.reason}; a human must decide")
        return True
