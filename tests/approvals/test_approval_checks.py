"""The approval rules as pure functions: one table of (rules, request, run facts) -> problem or None."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import ValidationError

from models.approval_checks import (
    Approver,
    GrantedApproval,
    RunFacts,
    StartClaim,
    approval_problem,
    approver_identity,
    start_problem,
    starter_identity,
)
from models.approval_rules import ApprovalRules
from models.approval_signature import approval_message, fingerprint, public_key_blob, sign, start_message
from models.workflow import ApproveRequest

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
WID, RUN, DIGEST = "cutover-orders-api", "run-1", "a" * 64
ALICE_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
BOB_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)
EVE_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x03" * 32)


def line(principals: str, key: ed25519.Ed25519PrivateKey, options: str = "") -> str:
    blob = base64.b64encode(public_key_blob(key.public_key())).decode()
    return " ".join(part for part in (principals, options, f"ssh-ed25519 {blob}") if part)


SIGNERS = (line("alice", ALICE_KEY), line("bob", BOB_KEY), line("carol,carol@example.com", EVE_KEY))
SIGNED = ApprovalRules(require_signed_approvals=True, allowed_signers=SIGNERS)
FOUR_EYES = ApprovalRules(
    require_signed_approvals=True, allowed_signers=SIGNERS, distinct_approvers=True, approver_not_starter=True
)
OPEN = ApprovalRules()


def signed(by, key, gate="flip", digest=DIGEST, run=RUN, wid=WID):
    return ApproveRequest(
        gate=gate, by=by, digest=digest, signature=sign(key, approval_message(wid, run, gate, digest))
    )


def facts(*approvals: tuple[str, Approver], starter: Approver | None = None) -> RunFacts:
    return RunFacts(
        workflow_id=WID,
        run_id=RUN,
        digest=DIGEST,
        now=NOW,
        approvals=tuple(GrantedApproval(gate=g, approver=a) for g, a in approvals),
        starter=starter,
    )


def fp(key):
    return fingerprint(public_key_blob(key.public_key()))


ALICE = Approver(name="alice", key_fingerprint=fp(ALICE_KEY))
CAROL = Approver(name="carol", key_fingerprint=fp(EVE_KEY))


@pytest.mark.parametrize(
    ("rules", "request_", "run", "expected"),
    [
        # no rules: any named approval, once per gate
        (OPEN, ApproveRequest(gate="flip", by="alice", digest=DIGEST), facts(), None),
        (OPEN, ApproveRequest(gate="flip", digest=DIGEST), facts(), "needs 'by'"),
        (
            OPEN,
            ApproveRequest(gate="flip", by="bob", digest=DIGEST),
            facts(("flip", ALICE)),
            "already approved by alice",
        ),
        # signatures
        (SIGNED, signed("alice", ALICE_KEY), facts(), None),
        (SIGNED, ApproveRequest(gate="flip", by="alice", digest=DIGEST), facts(), "requires signed approvals"),
        (SIGNED, signed("alice", EVE_KEY), facts(), "not the key of 'alice'"),
        (SIGNED, signed("mallory", EVE_KEY), facts(), "'mallory' is not an allowed signer"),
        (SIGNED, signed("alice", ALICE_KEY, run="run-0"), facts(), "does not match"),
        (SIGNED, signed("alice", ALICE_KEY, wid="cutover-other"), facts(), "does not match"),
        (
            SIGNED,
            signed("alice", ALICE_KEY, gate="decommission").model_copy(update={"gate": "flip"}),
            facts(),
            "does not match",
        ),
        (
            SIGNED,
            signed("alice", ALICE_KEY, digest="b" * 64).model_copy(update={"digest": DIGEST}),
            facts(),
            "does not match",
        ),
        (SIGNED, ApproveRequest(gate="flip", by="alice", digest=DIGEST, signature="hello"), facts(), "bad signature"),
        # a bad signature is refused even when signatures are optional (but the policy lists signers)
        (ApprovalRules(allowed_signers=SIGNERS), signed("alice", EVE_KEY), facts(), "not the key of 'alice'"),
        # four eyes across the gates
        (
            FOUR_EYES,
            signed("alice", ALICE_KEY, gate="decommission"),
            facts(("flip", ALICE), starter=Approver(name="bob")),
            "distinct_approvers",
        ),
        (
            FOUR_EYES,
            signed("ALICE", ALICE_KEY, gate="decommission"),
            facts(("flip", Approver(name="alice")), starter=Approver(name="bob")),
            "not an allowed signer",
        ),
        (
            FOUR_EYES,
            signed("carol@example.com", EVE_KEY, gate="decommission"),
            facts(("flip", CAROL), starter=Approver(name="bob")),
            "distinct_approvers",
        ),
        (FOUR_EYES, signed("bob", BOB_KEY, gate="decommission"), facts(("flip", ALICE), starter=CAROL), None),
        (
            ApprovalRules(distinct_approvers=True),
            ApproveRequest(gate="decommission", by="Alice ", digest=DIGEST),
            facts(("flip", ALICE)),
            "distinct_approvers",
        ),
        # the starter may not approve
        (FOUR_EYES, signed("alice", ALICE_KEY), facts(starter=ALICE), "approver_not_starter: alice"),
        (FOUR_EYES, signed("alice", ALICE_KEY), facts(starter=None), "starter is unknown"),
        (FOUR_EYES, signed("bob", BOB_KEY), facts(starter=ALICE), None),
    ],
)
def test_approval_rules(rules, request_, run, expected):
    problem = approval_problem(rules, request_, run)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem, problem


def test_a_signed_approval_records_the_key():
    approver, problem = approver_identity(SIGNED, signed("alice", ALICE_KEY), facts())
    assert problem is None and approver == ALICE


def test_an_expired_signer_is_refused():
    rules = ApprovalRules(
        require_signed_approvals=True, allowed_signers=(line("alice", ALICE_KEY, 'valid-before="20261201Z"'),)
    )
    assert "expired" in str(approval_problem(rules, signed("alice", ALICE_KEY), facts()))


def start_claim(by, key, at=NOW, digest=DIGEST):
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return StartClaim(started_by=by, started_at=stamp, start_signature=sign(key, start_message(WID, digest, by, stamp)))


@pytest.mark.parametrize(
    ("rules", "claim", "expected"),
    [
        (OPEN, StartClaim(started_by="alice"), None),
        (OPEN, StartClaim(), "names no starter"),
        (SIGNED, StartClaim(started_by="alice"), "start must be signed"),
        (SIGNED, start_claim("alice", ALICE_KEY), None),
        (SIGNED, start_claim("alice", BOB_KEY), "not the key of 'alice'"),
        (SIGNED, start_claim("alice", ALICE_KEY, at=NOW - timedelta(hours=2)), "can't be reused"),
        (SIGNED, start_claim("alice", ALICE_KEY, digest="c" * 64), "does not match"),
    ],
)
def test_starter_identity(rules, claim, expected):
    starter, why = starter_identity(rules, claim, WID, DIGEST, NOW)
    if expected is None:
        assert why is None and starter is not None and starter.name == claim.started_by
    else:
        assert starter is None and expected in str(why), why


def test_an_unknown_starter_refuses_the_run_only_under_approver_not_starter():
    starter, why = starter_identity(FOUR_EYES, StartClaim(), WID, DIGEST, NOW)
    assert "approver_not_starter" in str(start_problem(FOUR_EYES, starter, why))
    assert start_problem(SIGNED, starter, why) is None


def test_rules_validate_their_signers():
    with pytest.raises(ValidationError, match="allowed_signers line 2"):
        ApprovalRules(allowed_signers=("# ops", "alice ssh-ed25519 nope"))
    with pytest.raises(ValidationError, match="nobody could approve"):
        ApprovalRules(require_signed_approvals=True)
    text = "\n".join(SIGNERS)
    assert ApprovalRules.model_validate({"allowed_signers": text}).allowed_signers == SIGNERS


def test_any_corruption_of_a_signature_is_a_problem_never_an_exception():
    """A handler accepts any payload: every single-byte change of a valid signature is refused in words."""
    from models.approval_signature import armor, dearmor

    good = signed("alice", ALICE_KEY)
    blob = dearmor(good.signature or "")
    for position in range(len(blob)):
        for flip in (0x01, 0x80, 0xFF):
            corrupted = bytearray(blob)
            corrupted[position] ^= flip
            request = good.model_copy(update={"signature": armor(bytes(corrupted))})
            problem = approval_problem(SIGNED, request, facts())
            assert problem, (position, flip)
    for junk in ("", "-----BEGIN SSH SIGNATURE-----", "x" * 20_000, "U1NIU0lH", armor(b"SSHSIG" + b"\xff" * 40)):
        assert approval_problem(SIGNED, good.model_copy(update={"signature": junk}), facts())
