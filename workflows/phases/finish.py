"""After the point of no return: prove A drained, delete A, restore the record's final TTL.

Nothing here is rolled back: a failure is described (what is left, how to finish by hand) and the
run ends ``failed`` with the cutover kept. A failed GCP project deletion is undone (undelete).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.durations import format_duration
    from models.telemetry import DrainInput, DrainProof
    from workflows import planning
    from workflows.activity_refs import DECOMMISSION_DELETE, DECOMMISSION_UNDO, TRAFFIC_PROVE_DRAINED
    from workflows.errors import StepFailed
    from workflows.kit import Kit
    from workflows.phases.verify import Verified, decommission_input
    from workflows.status import set_phase
    from workflows.steps import CHANGE_RETRY


async def decommission_a(kit: Kit, verified: Verified) -> str | None:
    """Delete A once it is proven drained; return why A was not deleted, or None."""
    run, steps = kit.run, kit.steps
    plan = run.plan
    decommission = plan.decommission
    set_phase(run, "decommissioning", f"Decommissioning A ({decommission.kind}).")
    proof: DrainProof | None = None
    if decommission.require_drained and decommission.kind != "none":
        proof = await steps.call(
            TRAFFIC_PROVE_DRAINED,
            DrainInput(
                **verified.traffic_scope(kit),
                quiet_period_seconds=decommission.quiet_period.total_seconds(),
                timeout_seconds=decommission.drain_timeout.total_seconds(),
            ),
            f"Prove A received nothing for {format_duration(decommission.quiet_period)}",
            attempt_timeout=decommission.drain_timeout + timedelta(minutes=2),
            heartbeat=max(plan.monitor.poll_interval * 3, timedelta(seconds=30)),
        )
        if not proof.drained:
            run.left_changed.append("A was not deleted")
            run.manual_steps.append(
                "Find what still reaches A (Kong data planes with stale DNS caches: `kong reload`), then "
                "delete A by hand."
            )
            return f"A is not drained, so it was not deleted: {proof.reason}"
    request = decommission_input(kit, drain_proof=proof)
    try:
        run.decommission = await steps.call(
            DECOMMISSION_DELETE,
            request,
            f"Decommission A ({decommission.kind})",
            retry=CHANGE_RETRY,
            attempt_timeout=timedelta(minutes=30),
            deadline=timedelta(hours=1),
            heartbeat=timedelta(minutes=1),
        )
    except StepFailed as exc:
        message = f"decommissioning A failed: {exc}"
        if decommission.kind == "gcp-project":
            try:
                run.decommission = await steps.call(
                    DECOMMISSION_UNDO,
                    request,
                    "Undo a partial decommission of A (undelete)",
                    retry=CHANGE_RETRY,
                    attempt_timeout=timedelta(minutes=10),
                    deadline=timedelta(hours=1),
                    heartbeat=timedelta(minutes=1),
                )
                message += "; the project deletion was undone (undelete), A is left as it was"
            except StepFailed as undo_exc:
                message += f"; undeleting the project also failed: {undo_exc}"
                run.left_changed.append(f"GCP project {decommission.project_id} may be DELETE_REQUESTED")
                run.manual_steps.append(
                    f"gcloud projects describe {decommission.project_id}; "
                    f"gcloud projects undelete {decommission.project_id} to restore it"
                )
        run.manual_steps.append("Delete A by hand once the cause is fixed.")
        return message
    return None


async def restore_final_ttl(kit: Kit) -> None:
    """Raise the new record's TTL to ``final_ttl``."""
    run = kit.run
    plan = run.plan
    set_phase(run, "restoring-ttl", f"Raising the TTL of {plan.dns.record} to {plan.dns.final_ttl} s.")
    try:
        await kit.dns.apply_and_prove(planning.final_ttl_change(plan), f"Restore TTL {plan.dns.final_ttl} s")
    except StepFailed:
        run.left_changed.append(f"{plan.dns.record} keeps TTL {plan.dns.cutover_ttl}")
        run.manual_steps.append(
            f"Set the TTL of {plan.dns.record} CNAME {plan.dns.target} to {plan.dns.final_ttl} by hand"
        )
        raise
