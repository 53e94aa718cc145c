"""Who may approve a gate: the operator's rules, carried by the worker policy (never by a plan).

The worker loads them with its policy and hands them to each run in ``verifying``; the workflow's
approve validators apply them. Public keys only: nothing here is secret.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ApprovalRules(BaseModel):
    """The approval section of a worker policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    require_signed_approvals: bool = False
    """Reject an approval that carries no valid SSH signature (SSHSIG, namespace ``cutover-approval``)."""
    allowed_signers: tuple[str, ...] = ()
    """Lines of an OpenSSH ``allowed_signers`` file: ``<principal(s)> [options] <keytype> <base64-key>``."""
    distinct_approvers: bool = False
    """The flip and decommission gates must be approved by different identities."""
    approver_not_starter: bool = False
    """The identity that started the run may not approve it."""
