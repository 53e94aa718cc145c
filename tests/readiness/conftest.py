"""Fixtures for readiness: the sandbox CA with A/B certificates, variants of them, and a malformed one."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sandbox.pki import SANDBOX_NAMES, IssuedCert, Pki, issue


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A, B (both cover a-project and origin-api), B-narrow (only b-project), A-narrow (only a-project),
    B-expired (all names, expired)."""
    directory = tmp_path_factory.mktemp("pki")
    main = issue(
        directory,
        {**SANDBOX_NAMES, "B-narrow": ("b-project.example.test",), "A-narrow": ("a-project.example.test",)},
    )
    expired = issue(
        directory,
        {"B-expired": SANDBOX_NAMES["B"]},
        not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
    )
    return Pki(ca=main.ca, certs={**main.certs, **expired.certs})


@pytest.fixture(scope="session")
def malformed(tmp_path_factory: pytest.TempPathFactory) -> IssuedCert:
    """A certificate OpenSSL serves but that does not parse: its SAN dNSName holds non-ASCII bytes.

    Built as a valid certificate, then one name's bytes are overwritten in the DER (same length): the
    signature no longer matches, and the SAN is no IA5String, as a broken issuing tool might produce.
    """
    directory = tmp_path_factory.mktemp("malformed")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a-project.example.test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("zzzz-placeholder.example.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    der = certificate.public_bytes(serialization.Encoding.DER).replace(b"zzzz-placeholder", b"\xff\xfe" + b"z" * 14)
    cert_path, key_path = directory / "malformed.pem", directory / "malformed.key"
    cert_path.write_text(ssl.DER_cert_to_PEM_cert(der))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return IssuedCert(cert=cert_path, key=key_path, names=("a-project.example.test",))
