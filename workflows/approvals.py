"""Who may approve this run: the worker policy's approval rules (``models.approval_checks``) applied here.

The rules are ``Run.approval_rules``: the worker's policy hands them to the run in ``verifying``;
until it does (and for workers without a policy) they are the defaults, which check nothing beyond
"a gate is approved once". Everything here is a pure function of the run's state, the request and
``workflow.info()``/``workflow.now()``: the update validator and the signal handler call it, and it
schedules nothing, so it adds no command to history.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.approval_checks import (
        START_SIGNATURE_MEMO,
        STARTED_AT_MEMO,
        STARTED_BY_MEMO,
        Approver,
        GrantedApproval,
        RunFacts,
        StartClaim,
        approval_problem,
        approver_identity,
        start_problem,
        starter_identity,
    )
    from models.workflow import ApprovalRecord, ApproveRequest
    from workflows.state import Run


def run_facts(run: Run) -> RunFacts:
    """What the approval checks need to know about this run, now."""
    info = workflow.info()
    return RunFacts(
        workflow_id=info.workflow_id,
        run_id=info.run_id,
        digest=run.digest,
        now=workflow.now(),
        approvals=tuple(
            GrantedApproval(gate=a.gate, approver=Approver(name=a.by, key_fingerprint=a.key_fingerprint))
            for a in run.approvals
        ),
        starter=run.starter,
    )


def rules_problem(run: Run, request: ApproveRequest) -> str | None:
    """What the approval rules say against this approval (signature, four eyes, starter), or None."""
    return approval_problem(run.approval_rules, request, run_facts(run))


def approval_record(run: Run, request: ApproveRequest, via: str) -> ApprovalRecord:
    """The record of an accepted approval, with the signing key's fingerprint when it was checked."""
    approver, _ = approver_identity(run.approval_rules, request, run_facts(run))
    assert request.gate and request.by
    return ApprovalRecord(
        gate=request.gate,
        by=request.by,
        via="signal" if via == "signal" else "update",
        at=workflow.now(),
        comment=request.comment,
        key_fingerprint=approver.key_fingerprint if approver else None,
        caches_cleared=request.caches_cleared if request.gate == "decommission" else None,
    )


def _memo_text(memo: dict[str, Any], key: str) -> str | None:
    value = memo.get(key)
    return value if isinstance(value, str) else None


def establish_starter(run: Run) -> str | None:
    """Read who started the run from its memo (``starter.py start`` writes it) and check it.

    Returns why the run must be refused before any change (``approver_not_starter`` with an unknown
    or unproven starter), or None. Called in ``verifying``, once the policy's rules are known.
    """
    try:
        memo = dict(workflow.memo())
    except Exception:  # a memo value that doesn't decode names no starter; it must not fail the task
        memo = {}
    claim = StartClaim(
        started_by=_memo_text(memo, STARTED_BY_MEMO),
        started_at=_memo_text(memo, STARTED_AT_MEMO),
        start_signature=_memo_text(memo, START_SIGNATURE_MEMO),
    )
    info = workflow.info()
    run.starter, why = starter_identity(run.approval_rules, claim, info.workflow_id, run.digest, info.start_time)
    return start_problem(run.approval_rules, run.starter, why)
