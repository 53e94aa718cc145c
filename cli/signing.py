"""``--sign-with KEY``: sign an approval or a start with the operator's SSH private key.

Reads an OpenSSH (or PEM) private key file, asking for its passphrase on the terminal when it has
one. Keys that live only in an agent or on a hardware token sign with plain ``ssh-keygen -Y sign``
instead (docs/operations.md#signed-approvals): the result is the same SSHSIG text.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from models.approval_checks import START_SIGNATURE_MEMO, STARTED_AT_MEMO, STARTED_BY_MEMO
from models.approval_signature import PrivateKey, approval_message, sign, start_message


class SigningError(Exception):
    """The key can't be used to sign; the message says why (never quoting the key)."""


def _ask_passphrase(path: str) -> bytes:
    if not sys.stdin.isatty():
        raise SigningError(
            f"{path} is protected by a passphrase and there is no terminal to ask it on: "
            "sign with ssh-keygen -Y sign (it uses your ssh-agent) and pass --signature"
        )
    return getpass.getpass(f"passphrase for {path}: ").encode()


def load_private_key(path: str, ask: Callable[[str], bytes] = _ask_passphrase) -> PrivateKey:
    """The private key in ``path`` (OpenSSH or PEM); ed25519, ecdsa or rsa."""
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read {path}: {exc.strerror}") from None
    loader = serialization.load_ssh_private_key if b"OPENSSH PRIVATE KEY" in data else _load_pem
    try:
        key = loader(data, None)
    except TypeError:  # encrypted: cryptography asks for the password this way
        try:
            key = loader(data, ask(path))
        except ValueError:
            raise SigningError(f"{path}: wrong passphrase") from None
    except ValueError as exc:
        raise SigningError(f"{path} is not a private key cryptography can read ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise SigningError(f"{path}: only ed25519, ecdsa and rsa keys can sign approvals")
    return key


def _load_pem(data: bytes, password: bytes | None) -> object:
    return serialization.load_pem_private_key(data, password)


def sign_approval(key_path: str, workflow_id: str, run_id: str, gate: str, digest: str) -> str:
    """The armored SSHSIG over the approval message of this run, gate and digest."""
    return sign(load_private_key(key_path), approval_message(workflow_id, run_id, gate, digest))


def start_memo(started_by: str, workflow_id: str, digest: str, key_path: str | None) -> dict[str, str]:
    """The memo fields naming the starter, signed when a key is given (see models.approval_checks)."""
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    memo = {STARTED_BY_MEMO: started_by, STARTED_AT_MEMO: started_at}
    if key_path:
        message = start_message(workflow_id, digest, started_by, started_at)
        memo[START_SIGNATURE_MEMO] = sign(load_private_key(key_path), message)
    return memo
