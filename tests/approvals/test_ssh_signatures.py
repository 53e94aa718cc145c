"""Our SSHSIG code against OpenSSH's ssh-keygen, both ways, and allowed_signers decisions side by side."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cli.signing import load_private_key
from models.allowed_signers import find_signer, line_problems
from models.approval_signature import (
    NAMESPACE,
    SignatureError,
    approval_message,
    dearmor,
    parse,
    sign,
    verify,
)
from tests.approvals.sshkeys import keygen_sign, keygen_verify, make_key

MESSAGE = approval_message("cutover-orders-api", "0199-run", "flip", "d" * 64)
KEY_KINDS = [("ed25519", None), ("ecdsa", 256), ("ecdsa", 384), ("ecdsa", 521), ("rsa", 2048)]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    return {f"{kind}{bits or ''}": make_key(directory, f"{kind}{bits or ''}", kind, bits) for kind, bits in KEY_KINDS}


def ours_accepts(lines, identity, signature_text, message=MESSAGE, at=None):
    signature = parse(dearmor(signature_text))
    verify(signature, message)
    signer, why = find_signer(tuple(lines), identity, signature.public_key, NAMESPACE, at or datetime.now(UTC))
    return signer is not None, why


@pytest.mark.parametrize("name", [f"{k}{b or ''}" for k, b in KEY_KINDS])
def test_signatures_by_ssh_keygen_verify_with_ours(keys, name, tmp_path):
    key = keys[name]
    signature = keygen_sign(key, MESSAGE, tmp_path)
    accepted, why = ours_accepts([f"alice {key.public_line}"], "alice", signature)
    assert accepted, why
    with pytest.raises(SignatureError, match="does not match"):
        verify(parse(dearmor(signature)), approval_message("cutover-orders-api", "0199-run", "decommission", "d" * 64))


@pytest.mark.parametrize("name", [f"{k}{b or ''}" for k, b in KEY_KINDS])
def test_our_signatures_verify_with_ssh_keygen(keys, name, tmp_path):
    key = keys[name]
    signature = sign(load_private_key(str(key.private)), MESSAGE)
    result = keygen_verify([f"alice {key.public_line}"], "alice", signature, MESSAGE, tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'Good "cutover-approval" signature for alice' in result.stdout
    tampered = keygen_verify([f"alice {key.public_line}"], "alice", signature, MESSAGE + b"x", tmp_path)
    assert tampered.returncode != 0


def test_a_signature_survives_json_and_shell_quoting(keys, tmp_path):
    signature = keygen_sign(keys["ed25519"], MESSAGE, tmp_path)
    for variant in (
        signature,
        signature.replace("\n", "\\n"),
        signature.replace("\n", " "),
        "".join(signature.split("\n")[1:-2]),
    ):
        assert ours_accepts([f"alice {keys['ed25519'].public_line}"], "alice", variant)[0]


def test_another_namespace_is_refused(keys, tmp_path):
    signature = keygen_sign(keys["ed25519"], MESSAGE, tmp_path, namespace="git")
    with pytest.raises(SignatureError, match="namespace 'git'"):
        verify(parse(dearmor(signature)), MESSAGE)


@pytest.mark.parametrize(
    ("template", "identity"),
    [
        ("alice {ed}", "alice"),
        ("alice {ed}", "bob"),
        ("alice,bob {ed}", "bob"),
        ("*@example.com {ed}", "alice@example.com"),
        ("*@example.com,!mallory@example.com {ed}", "mallory@example.com"),
        ("a?ice {ed}", "alice"),
        ("alice {rsa}", "alice"),
        ('alice namespaces="cutover-approval" {ed}', "alice"),
        ('alice namespaces="git,file" {ed}', "alice"),
        ('alice namespaces="cutover-*" {ed}', "alice"),
        ('alice valid-after="20200101Z" {ed}', "alice"),
        ('alice valid-after="29990101Z" {ed}', "alice"),
        ('alice valid-before="20200101000000Z" {ed}', "alice"),
        ('alice valid-after="20200101Z",valid-before="29991231Z" {ed}', "alice"),
        ("alice {ed} a comment with words", "alice"),
    ],
)
def test_allowed_signers_decisions_match_ssh_keygen(keys, template, identity, tmp_path):
    line = template.format(ed=keys["ed25519"].public_line, rsa=keys["rsa2048"].public_line)
    assert line_problems((line,)) == []
    signature = keygen_sign(keys["ed25519"], MESSAGE, tmp_path)
    theirs = keygen_verify([line], identity, signature, MESSAGE, tmp_path).returncode == 0
    ours, why = ours_accepts([line], identity, signature)
    assert ours == theirs, (line, identity, why)
    if not ours:
        assert why


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("alice", "expected: principals"),
        ('alice namespaces="x" ssh-ed25519', "missing key"),
        ("alice ssh-dss AAAAB3NzaC1kc3M=", "not supported"),
        ("alice cert-authority ssh-ed25519 AAAA", "cert-authority"),
        ('alice valid-after="20200101" ssh-ed25519 AAAA', "UTC"),
        ('alice frobnicate="x" ssh-ed25519 AAAA', "unknown option"),
        ("alice ssh-ed25519 not-base64!", "not valid base64"),
        ('alice namespaces="a",namespaces="b" ssh-ed25519 AAAA', "twice"),
    ],
)
def test_malformed_lines_are_named(line, words):
    problems = line_problems(("# a comment", "", line))
    assert len(problems) == 1 and problems[0].startswith("allowed_signers line 3:") and words in problems[0], problems
