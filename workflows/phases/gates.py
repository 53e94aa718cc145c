"""Human gates (flip, decommission) and the point of no return.

A gate shows the exact approve and abort commands in the current details and waits for an approval
bound to the plan's digest, an abort, or its timeout (``on_timeout``: abort, or keep waiting).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.durations import format_duration
    from workflows.errors import Aborted, StepFailed
    from workflows.kit import Kit
    from workflows.state import Gate
    from workflows.status import set_phase


def approve_command(workflow_id: str, gate: str, digest: str) -> str:
    """The Temporal CLI command that approves ``gate``."""
    return (
        f"temporal workflow update execute -w {workflow_id} --name approve "
        f'--input \'{{"gate":"{gate}","by":"<you>","digest":"{digest}"}}\''
    )


def abort_command(workflow_id: str) -> str:
    """The Temporal CLI command that aborts the run."""
    return f'temporal workflow update execute -w {workflow_id} --name abort --input \'{{"by":"<you>","reason":"..."}}\''


async def await_gate(kit: Kit, gate: str, question: str) -> None:
    """Wait for ``gate``'s approval; raise ``Aborted`` on abort, ``StepFailed`` on timeout with abort."""
    run = kit.run
    plan = run.plan
    run.gate = Gate(gate)
    wid = workflow.info().workflow_id
    approve = approve_command(wid, gate, run.digest)
    abort = abort_command(wid)
    set_phase(
        run,
        f"awaiting-{gate}-approval",
        f"Waiting for approval to {question}.\n\nApprove:\n```\n{approve}\n```\nAbort:\n```\n{abort}\n```\n"
        f"or `python starter.py approve {wid} --gate {gate} --by <you> --plan <the plan file you reviewed>`.",
    )
    await kit.steps.notify(f"gate-{gate}", f"cutover {plan.name} waits for approval to {question}.\n{approve}\n{abort}")
    while True:
        try:
            await workflow.wait_condition(
                lambda: (run.gate is not None and run.gate.approval is not None) or run.abort is not None,
                timeout=plan.approvals.timeout,
                timeout_summary=f"{gate} approval timeout ({format_duration(plan.approvals.timeout)})",
            )
        except TimeoutError:
            if plan.approvals.on_timeout == "abort":
                run.gate = None
                raise StepFailed(
                    f"no {gate} approval within {format_duration(plan.approvals.timeout)} (on_timeout: abort)"
                ) from None
            run.warnings.append(
                f"{gate} approval still pending after {format_duration(plan.approvals.timeout)}; waiting on"
            )
            await kit.steps.notify(f"gate-{gate}", f"cutover {plan.name} still waits for {gate} approval.\n{approve}")
            continue
        break
    run.gate = None
    if run.abort is not None:
        raise Aborted()


def decommission_question(kit: Kit) -> str:
    """What the decommission gate asks a human to approve."""
    run = kit.run
    d = run.plan.decommission
    target = {
        "gcp-project": f"delete project {getattr(d, 'project_id', '')}",
        "webhook": "call the decommission webhook",
    }
    verdict = f" (traffic verdict: {run.verdict.status})" if run.verdict else ""
    return f"{target.get(d.kind, 'finish and leave A in place')}{verdict}; this is the point of no return"


def pass_point_of_no_return(kit: Kit) -> None:
    """From here on nothing is undone: a late abort still rolls back; after this line, never."""
    run = kit.run
    if run.abort is not None:
        raise Aborted()
    run.point_of_no_return = True
    for undo in run.undos:
        if undo.state == "registered":
            undo.state = "not-needed"
            undo.detail = "past the point of no return: the cutover is kept"
