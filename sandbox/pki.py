"""A private certificate authority for the sandbox's HTTPS runtimes (A and B), built with trustme.

Kong verifies B's certificate against the name it sends as SNI when the Service has
``tls_verify=true`` (shared/reference/kong.md §5), so the sandbox needs certificates whose names are
under our control: both runtimes normally cover ``a-project``, ``origin-api`` and their own name, and
tests issue a B certificate that lacks the old name to see readiness report it.

``issue(directory, {"A": [...], "B": [...]})`` writes ``ca.pem`` (and the CA key, so later calls
reuse the same CA) plus ``<name>.pem`` / ``<name>.key`` per runtime, and returns their paths.
``python -m sandbox.pki --dir DIR`` does the same for the demo with the sandbox's names.
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import trustme

SANDBOX_NAMES: dict[str, tuple[str, ...]] = {
    "A": ("a-project.example.test", "origin-api.example.test"),
    "B": ("b-project.example.test", "a-project.example.test", "origin-api.example.test"),
}
"""Both runtimes cover the names Kong may send them under either strategy (cname and alias)."""

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"


@dataclass(frozen=True)
class IssuedCert:
    """Where one runtime's certificate chain and key were written."""

    cert: Path
    key: Path
    names: tuple[str, ...]


@dataclass(frozen=True)
class Pki:
    """The CA bundle and every issued certificate."""

    ca: Path
    certs: dict[str, IssuedCert]


def load_or_create_ca(directory: Path) -> trustme.CA:
    """The CA stored in ``directory``, or a new one written there (so every cert shares one CA)."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if cert_path.exists() and key_path.exists():
        return trustme.CA.from_pem(cert_path.read_bytes(), key_path.read_bytes())
    ca = trustme.CA(organization_name="cutover sandbox")
    directory.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(ca.cert_pem.bytes())
    key_path.write_bytes(ca.private_key_pem.bytes())
    key_path.chmod(0o600)
    return ca


def issue(
    directory: str | Path,
    names: Mapping[str, Sequence[str]] | None = None,
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Pki:
    """Issue one server certificate per runtime, all signed by the CA kept in ``directory``.

    Args:
        directory: where ``ca.pem`` and the per-runtime files go (created if missing).
        names: runtime name -> DNS names its certificate covers; default :data:`SANDBOX_NAMES`.
        not_before: validity start (default: trustme's, in the past).
        not_after: validity end, e.g. in the past to make an expired certificate for a test.
    """
    root = Path(directory)
    ca = load_or_create_ca(root)
    issued: dict[str, IssuedCert] = {}
    for runtime, dns_names in (names or SANDBOX_NAMES).items():
        if not dns_names:
            raise ValueError(f"runtime {runtime!r}: a certificate needs at least one DNS name")
        leaf = ca.issue_cert(*dns_names, common_name=dns_names[0], not_before=not_before, not_after=not_after)
        cert_path, key_path = root / f"{runtime}.pem", root / f"{runtime}.key"
        cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key_path.write_bytes(leaf.private_key_pem.bytes())
        key_path.chmod(0o600)
        issued[runtime] = IssuedCert(cert=cert_path, key=key_path, names=tuple(dns_names))
    return Pki(ca=root / CA_CERT, certs=issued)


def _parse_runtime(text: str) -> tuple[str, list[str]]:
    name, _, hosts = text.partition("=")
    if not name or not hosts:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=host1,host2")
    return name, [host.strip() for host in hosts.split(",") if host.strip()]


def main() -> None:
    """Write the sandbox PKI: ``python -m sandbox.pki --dir .sandbox/pki [--runtime B=b.example.test,...]``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, help="output directory")
    parser.add_argument(
        "--runtime",
        action="append",
        type=_parse_runtime,
        help="NAME=host1,host2 (repeatable); default: A and B with the sandbox names",
    )
    args = parser.parse_args()
    names = dict(args.runtime) if args.runtime else None
    pki = issue(args.dir, names)
    print(
        json.dumps(
            {
                "ca": str(pki.ca),
                "certs": {
                    k: {"cert": str(v.cert), "key": str(v.key), "names": list(v.names)} for k, v in pki.certs.items()
                },
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
