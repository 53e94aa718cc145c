"""Real SSH keys and signatures from OpenSSH's own ssh-keygen, for checking ours against it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

SSH_KEYGEN = "/usr/bin/ssh-keygen"


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public_line: str
    """``keytype base64`` without the comment."""


def make_key(directory: Path, name: str, kind: str = "ed25519", bits: int | None = None) -> KeyPair:
    """A fresh key pair made by ssh-keygen (no passphrase)."""
    path = directory / name
    args = [SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", name, "-f", str(path)]
    if bits:
        args += ["-b", str(bits)]
    subprocess.run(args, check=True, capture_output=True)
    kind_name, blob = Path(f"{path}.pub").read_text().split()[:2]
    return KeyPair(private=path, public_line=f"{kind_name} {blob}")


def keygen_sign(key: KeyPair, message: bytes, directory: Path, namespace: str = "cutover-approval") -> str:
    """``ssh-keygen -Y sign`` over the message: the armored signature it writes."""
    path = directory / "message"
    path.write_bytes(message)
    signature = Path(f"{path}.sig")
    signature.unlink(missing_ok=True)
    subprocess.run(
        [SSH_KEYGEN, "-Y", "sign", "-f", str(key.private), "-n", namespace, str(path)],
        check=True,
        capture_output=True,
    )
    return signature.read_text()


def keygen_verify(
    allowed_signers: list[str],
    identity: str,
    signature: str,
    message: bytes,
    directory: Path,
    namespace: str = "cutover-approval",
) -> subprocess.CompletedProcess[str]:
    """``ssh-keygen -Y verify``: returncode 0 and "Good ..." when OpenSSH accepts the signature."""
    allowed = directory / "allowed_signers"
    allowed.write_text("\n".join(allowed_signers) + "\n")
    sig = directory / "candidate.sig"
    sig.write_text(signature)
    return subprocess.run(
        [SSH_KEYGEN, "-Y", "verify", "-f", str(allowed), "-I", identity, "-n", namespace, "-s", str(sig)],
        input=message.decode(),
        capture_output=True,
        text=True,
    )
