"""SSH signatures on approvals: the SSHSIG format of ``ssh-keygen -Y sign`` and git, made and checked here.

Pure and deterministic (no clock, no files), so the workflow's update validator can verify an
approval. The format is OpenSSH's PROTOCOL.sshsig: the signer signs ``"SSHSIG" || string(namespace)
|| string("") || string(hash_algorithm) || string(H(message))`` and ships ``"SSHSIG" || uint32(1) ||
string(public key) || string(namespace) || string("") || string(hash_algorithm) || string(signature)``,
base64-armored between ``-----BEGIN SSH SIGNATURE-----`` lines. Keys: ed25519, ecdsa (nistp256/384/521)
and rsa (``rsa-sha2-256``/``rsa-sha2-512`` signatures, as ssh-keygen accepts).

What an approver signs (namespace ``cutover-approval``) is :func:`approval_message`: four lines, each
ending in a newline, so plain ``printf`` and ``ssh-keygen -Y sign`` produce the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

NAMESPACE = "cutover-approval"
"""The SSHSIG namespace of approvals and signed starts (``ssh-keygen -Y sign -n cutover-approval``)."""
MAGIC = b"SSHSIG"
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
_ECDSA_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "ecdsa-sha2-nistp256": hashes.SHA256,
    "ecdsa-sha2-nistp384": hashes.SHA384,
    "ecdsa-sha2-nistp521": hashes.SHA512,
}
_RSA_HASH: dict[str, type[hashes.HashAlgorithm]] = {"rsa-sha2-256": hashes.SHA256, "rsa-sha2-512": hashes.SHA512}
MAX_SIGNATURE_CHARS = 16_384
"""An armored RSA-8192 signature is ~2.5 KB: anything far larger is not a signature."""

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class SignatureError(ValueError):
    """A signature can't be parsed or doesn't verify; the message says why, never quoting key material."""


def approval_message(workflow_id: str, run_id: str, gate: str, digest: str) -> bytes:
    """The exact bytes an approver signs: the run (id and run id), the gate and the plan digest."""
    return (
        f"cutover-approval v1\nworkflow-id: {workflow_id}\nrun-id: {run_id}\ngate: {gate}\ndigest: {digest}\n"
    ).encode()


def start_message(workflow_id: str, digest: str, started_by: str, started_at: str) -> bytes:
    """The exact bytes a starter signs: who starts which plan under which workflow id, and when (UTC, ISO 8601)."""
    return (
        f"cutover-start v1\nworkflow-id: {workflow_id}\ndigest: {digest}\nstarted-by: {started_by}\n"
        f"started-at: {started_at}\n"
    ).encode()


# --- SSH wire format -------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def raw(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise SignatureError("signature is truncated")
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.raw(4))[0]
        return value

    def string(self) -> bytes:
        return self.raw(self.u32())

    def text(self) -> str:
        try:
            return self.string().decode()
        except UnicodeDecodeError:
            raise SignatureError("signature has a non-UTF-8 name field") from None

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=True)

    def done(self) -> bool:
        return self.at == len(self.data)


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _mpint(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b""
    return _string(raw)


def key_type(blob: bytes) -> str:
    """The key type named at the start of a public key blob."""
    try:
        return _Reader(blob).text()
    except SignatureError:
        raise SignatureError("public key blob is malformed") from None


def fingerprint(blob: bytes) -> str:
    """OpenSSH's ``SHA256:`` fingerprint of a public key blob (what ``ssh-keygen -l`` prints)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def load_public_key(blob: bytes) -> PublicKey:
    """A public key blob as a cryptography key; only the supported types."""
    kind = key_type(blob)
    if kind not in KEY_TYPES:
        raise SignatureError(f"key type {kind!r} is not supported (use one of {', '.join(KEY_TYPES)})")
    try:
        key = serialization.load_ssh_public_key(f"{kind} {base64.b64encode(blob).decode()}".encode())
    except (ValueError, UnsupportedAlgorithm):
        raise SignatureError(f"{kind} public key is malformed") from None
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise SignatureError(f"key type {kind!r} is not supported")
    return key


def public_key_blob(key: PublicKey) -> bytes:
    """The SSH wire blob of a public key."""
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


# --- SSHSIG -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshSignature:
    """A parsed SSHSIG blob."""

    public_key: bytes
    namespace: str
    hash_algorithm: str
    signature: bytes

    @property
    def fingerprint(self) -> str:
        """The signer key's SHA256 fingerprint."""
        return fingerprint(self.public_key)


def dearmor(text: str) -> bytes:
    """The SSHSIG blob from its armored text.

    Lenient about layout so a signature survives JSON and shell quoting: the armor lines are optional
    and all whitespace (line breaks included, or a backslash-n written out literally) is ignored.
    """
    if len(text) > MAX_SIGNATURE_CHARS:
        raise SignatureError(f"signature is {len(text)} characters: not an SSH signature")
    body = text.replace("\\n", "\n").strip()
    if body.startswith(BEGIN):
        body = body[len(BEGIN) :]
        end = body.find(END)
        if end < 0:
            raise SignatureError(f"signature has no {END} line")
        body = body[:end]
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("signature is not base64 (expected the armored output of ssh-keygen -Y sign)") from None


def armor(blob: bytes) -> str:
    """The armored text of an SSHSIG blob, as ``ssh-keygen -Y sign`` writes it (70 columns)."""
    encoded = base64.b64encode(blob).decode()
    lines = [encoded[i : i + 70] for i in range(0, len(encoded), 70)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def parse(blob: bytes) -> SshSignature:
    """Parse an SSHSIG blob (version 1, no trailing data)."""
    reader = _Reader(blob)
    if reader.raw(6) != MAGIC:
        raise SignatureError("not an SSH signature (no SSHSIG preamble)")
    version = reader.u32()
    if version != 1:
        raise SignatureError(f"SSH signature version {version} is not supported")
    public_key = reader.string()
    namespace = reader.text()
    reader.string()  # reserved
    hash_algorithm = reader.text()
    signature = reader.string()
    if not reader.done():
        raise SignatureError("signature has trailing data")
    return SshSignature(public_key, namespace, hash_algorithm, signature)


def _signed_data(namespace: str, hash_algorithm: str, message: bytes) -> bytes:
    digest = HASHES[hash_algorithm](message).digest()
    return MAGIC + _string(namespace.encode()) + _string(b"") + _string(hash_algorithm.encode()) + _string(digest)


def verify(signature: SshSignature, message: bytes, namespace: str = NAMESPACE) -> None:
    """Check the signature over ``message`` with the key it carries.

    Whether that key may sign (allowed signers, principals) is the caller's question.

    Raises:
        SignatureError: wrong namespace, unsupported algorithm, or a signature that does not match.
    """
    if signature.namespace != namespace:
        raise SignatureError(f"signature is for namespace {signature.namespace!r}, not {namespace!r}")
    if signature.hash_algorithm not in HASHES:
        raise SignatureError(f"hash algorithm {signature.hash_algorithm!r} is not sha256 or sha512")
    key = load_public_key(signature.public_key)
    data = _signed_data(namespace, signature.hash_algorithm, message)
    inner = _Reader(signature.signature)
    sig_type, sig = inner.text(), inner.string()
    kind = key_type(signature.public_key)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey) and sig_type == kind:
            key.verify(sig, data)
        elif isinstance(key, ec.EllipticCurvePublicKey) and sig_type == kind:
            numbers = _Reader(sig)
            r, s = numbers.mpint(), numbers.mpint()
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(_ECDSA_HASH[kind]()))
        elif isinstance(key, rsa.RSAPublicKey) and sig_type in _RSA_HASH:
            key.verify(sig, data, padding.PKCS1v15(), _RSA_HASH[sig_type]())
        else:
            raise SignatureError(f"signature algorithm {sig_type!r} does not fit a {kind} key")
    except InvalidSignature:
        raise SignatureError(
            "the signature does not match: it was made over other content (another run, gate or digest) "
            "or with another key"
        ) from None


def sign(key: PrivateKey, message: bytes, namespace: str = NAMESPACE, hash_algorithm: str = "sha512") -> str:
    """Sign ``message`` as ``ssh-keygen -Y sign`` does and return the armored signature."""
    public = public_key_blob(key.public_key())
    data = _signed_data(namespace, hash_algorithm, message)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        inner = _string(b"ssh-ed25519") + _string(key.sign(data))
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        kind = key_type(public)
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(_ECDSA_HASH[kind]())))
        inner = _string(kind.encode()) + _string(_mpint(r) + _mpint(s))
    else:
        inner = _string(b"rsa-sha2-512") + _string(key.sign(data, padding.PKCS1v15(), hashes.SHA512()))
    blob = (
        MAGIC
        + struct.pack(">I", 1)
        + _string(public)
        + _string(namespace.encode())
        + _string(b"")
        + _string(hash_algorithm.encode())
        + _string(inner)
    )
    return armor(blob)
