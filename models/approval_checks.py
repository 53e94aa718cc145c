"""Who may approve: the worker policy's approval rules applied to one approval, as pure functions.

Each check takes the rules (``ApprovalRules``, from the worker's policy), the request and the facts
of the run, and returns the problem in words, or None. No clock, no I/O: the workflow's ``approve``
update validator and signal handler call them with ``workflow.now()`` and ``workflow.info()``.

Identities: an unsigned approval's identity is its ``by``; a signed one's is ``by`` *proven* by an
SSH signature from a key the allowed signers list for that principal, and the key's fingerprint is
part of the identity. Two approvals come from the same person when the names match (case-insensitive)
or the keys do, so one key listed under two principals (or a wildcard) can't pose as two people.

The starter's identity comes from the run's memo, written by ``starter.py start`` (``started_by``,
``started_at`` and, with ``--sign-with``, ``start_signature``, an SSH signature over
:func:`models.approval_signature.start_message`). A run started by the plain ``temporal`` CLI has no
such memo unless its starter adds one (``--memo started_by='"alice"'``); under ``approver_not_starter``
such a run is refused in ``verifying`` (:func:`start_problem`), before any change.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from models.allowed_signers import find_signer
from models.approval_rules import ApprovalRules
from models.approval_signature import NAMESPACE, SignatureError, approval_message, dearmor, parse, start_message, verify
from models.workflow import ApproveRequest

STARTED_BY_MEMO = "started_by"
STARTED_AT_MEMO = "started_at"
START_SIGNATURE_MEMO = "start_signature"
START_CLOCK_SKEW = timedelta(minutes=10)
"""How far a signed start's ``started-at`` may be from the run's real start: a replayed start signature
(to pose as someone else starting the same plan) works only within this window."""
SIGN_HOW = (
    "sign it: python starter.py approve ... --sign-with ~/.ssh/id_ed25519, or ssh-keygen -Y sign -n "
    f"{NAMESPACE} over the approval message (docs/operations.md#signed-approvals)"
)


class Approver(BaseModel):
    """Who approved (or started): the name and, when signed, the key's SHA256 fingerprint."""

    model_config = ConfigDict(frozen=True)

    name: str
    key_fingerprint: str | None = None

    def same_as(self, other: Approver) -> bool:
        """Same person: the same name (case-insensitive), or the same signing key."""
        if self.name.strip().casefold() == other.name.strip().casefold():
            return True
        return self.key_fingerprint is not None and self.key_fingerprint == other.key_fingerprint

    def describe(self) -> str:
        """The name, and the key when there is one."""
        return f"{self.name} (key {self.key_fingerprint})" if self.key_fingerprint else self.name


class GrantedApproval(BaseModel):
    """A gate already approved in this run."""

    model_config = ConfigDict(frozen=True)

    gate: str
    approver: Approver


class RunFacts(BaseModel):
    """What the checks need to know about the run."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    run_id: str
    digest: str
    now: datetime
    approvals: tuple[GrantedApproval, ...] = ()
    starter: Approver | None = None
    """The starter's identity as established by :func:`starter_identity`; None when unknown."""


class StartClaim(BaseModel):
    """The starter's memo fields (any may be missing: the memo is whatever the starter sent)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    started_by: str | None = None
    started_at: str | None = None
    start_signature: str | None = None


def _signed_identity(
    rules: ApprovalRules, name: str, signature_text: str, message: bytes, at: datetime
) -> tuple[Approver | None, str | None]:
    try:
        signature = parse(dearmor(signature_text))
        verify(signature, message)
    except SignatureError as exc:
        return None, f"bad signature: {exc}"
    signer, why = find_signer(rules.allowed_signers, name, signature.public_key, NAMESPACE, at)
    if signer is None:
        return None, f"signature not accepted: {why} (key {signature.fingerprint})"
    return Approver(name=name, key_fingerprint=signature.fingerprint), None


def approver_identity(
    rules: ApprovalRules, request: ApproveRequest, facts: RunFacts
) -> tuple[Approver | None, str | None]:
    """The approver's identity, or why it can't be established.

    A signature is checked whenever the policy lists allowed signers (a bad one is refused even when
    signatures are optional); without allowed signers there is nothing to check it against and the
    identity is the ``by`` claim.
    """
    if not request.by:
        return None, "approve needs 'by': who approves"
    if not request.signature:
        if rules.require_signed_approvals:
            return None, f"this worker requires signed approvals and this one is unsigned: {SIGN_HOW}"
        return Approver(name=request.by), None
    if not rules.allowed_signers:
        return Approver(name=request.by), None
    message = approval_message(facts.workflow_id, facts.run_id, request.gate or "", request.digest or "")
    return _signed_identity(rules, request.by, request.signature, message, facts.now)


def approval_problem(rules: ApprovalRules, request: ApproveRequest, facts: RunFacts) -> str | None:
    """Everything the rules say against this approval, or None when it may be applied.

    The gate being awaited and the digest matching are the workflow's own checks; this adds: no second
    approval of a gate, a valid signature (``require_signed_approvals``), four eyes across the two gates
    (``distinct_approvers``) and an approver who is not the starter (``approver_not_starter``).
    """
    earlier = next((a for a in facts.approvals if a.gate == request.gate), None)
    if earlier is not None:
        return f"gate {request.gate!r} is already approved by {earlier.approver.describe()}"
    approver, problem = approver_identity(rules, request, facts)
    if approver is None:
        return problem
    if rules.distinct_approvers:
        other = next((a for a in facts.approvals if a.gate != request.gate and a.approver.same_as(approver)), None)
        if other is not None:
            return (
                f"distinct_approvers: {approver.describe()} approved the {other.gate} gate; "
                f"the {request.gate} gate needs someone else"
            )
    if rules.approver_not_starter:
        if facts.starter is None:
            return "approver_not_starter: this run's starter is unknown, so no approval can be checked against it"
        if facts.starter.same_as(approver):
            return f"approver_not_starter: {approver.describe()} started this run and may not approve it"
    return None


def starter_identity(
    rules: ApprovalRules, claim: StartClaim, workflow_id: str, digest: str, run_started_at: datetime
) -> tuple[Approver | None, str | None]:
    """The starter's identity from the memo, or why it is unknown.

    When the policy requires signed approvals the start must be signed too (``starter.py start
    --sign-with``), within :data:`START_CLOCK_SKEW` of the run's start; otherwise ``started_by`` is
    taken as said (and a signature, if any, is still checked).
    """
    if not claim.started_by:
        return None, (
            "the run's memo names no starter (started_by): start it with python starter.py start, or with "
            "temporal workflow start ... --memo started_by='\"<you>\"'"
        )
    if not claim.start_signature or not rules.allowed_signers:
        if rules.require_signed_approvals:
            return None, (
                f"this worker requires signed approvals, so the start must be signed too: "
                f"python starter.py start PLAN --sign-with KEY (started_by {claim.started_by!r} is unproven)"
            )
        return Approver(name=claim.started_by), None
    try:
        at = datetime.fromisoformat((claim.started_at or "").replace("Z", "+00:00"))
    except ValueError:
        return None, f"started_at {claim.started_at!r} is not an ISO 8601 time"
    if at.tzinfo is None or abs(at - run_started_at) > START_CLOCK_SKEW:
        return None, (
            f"the signed start is dated {claim.started_at}, not within {START_CLOCK_SKEW} of this run's start "
            f"({run_started_at:%Y-%m-%dT%H:%M:%SZ}): a start signature can't be reused for another run"
        )
    message = start_message(workflow_id, digest, claim.started_by, claim.started_at or "")
    return _signed_identity(rules, claim.started_by, claim.start_signature, message, run_started_at)


def start_problem(rules: ApprovalRules, starter: Approver | None, why_unknown: str | None) -> str | None:
    """Why the run must be refused before any change, or None.

    Under ``approver_not_starter`` a run whose starter can't be established could never be approved
    by the rule's meaning, so it is refused in ``verifying`` rather than left waiting at a gate.
    """
    if rules.approver_not_starter and starter is None:
        return f"approver_not_starter: {why_unknown}"
    return None
