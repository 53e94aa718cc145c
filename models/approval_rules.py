"""Who may approve a gate: the operator's rules, carried by the worker policy (never by a plan).

The worker loads them with its policy and hands them to each run in ``verifying``; the workflow's
approve validators apply them (``models.approval_checks``). Public keys only: nothing here is secret.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from models.allowed_signers import line_problems


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

    @field_validator("allowed_signers", mode="before")
    @classmethod
    def _lines(cls, value: object) -> object:
        """Accept the file's text as one string too (a YAML block scalar), split into lines."""
        return tuple(value.splitlines()) if isinstance(value, str) else value

    @field_validator("allowed_signers")
    @classmethod
    def _well_formed(cls, lines: tuple[str, ...]) -> tuple[str, ...]:
        problems = line_problems(lines)
        if problems:
            raise ValueError("; ".join(problems))
        return lines

    @model_validator(mode="after")
    def _signers_for_signatures(self) -> ApprovalRules:
        if self.require_signed_approvals and not any(
            line.strip() and not line.lstrip().startswith("#") for line in self.allowed_signers
        ):
            raise ValueError("require_signed_approvals needs allowed_signers: nobody could approve")
        return self
