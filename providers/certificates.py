"""B's (and A's) certificate as Kong will meet it: one TLS handshake with Kong's SNI, then a verifying one.

Part of readiness (providers/readiness.py): what was presented (subject, issuer, SANs, expiry) and
whether Kong, verifying, would accept it. A handshake that gets no answer can be tried again within
the readiness timeout (:class:`Patience`); a TLS failure is an answer and is reported at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from models.readiness import CertificateInfo, ProbeCheck
from providers.netguard import NetworkGuard, open_guarded_connection
from providers.tls import system_context, unverified_context, verify_context


def name_matches(pattern: str, name: str) -> bool:
    """RFC 6125 DNS-ID matching: exact, or a left-most ``*`` label matching exactly one label."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return False


def describe_certificate(der: bytes, name: str) -> CertificateInfo:
    """Subject, issuer, SANs and expiry of a DER certificate, and whether it covers ``name``."""
    cert = x509.load_der_x509_certificate(der)
    sans: list[str] = []
    try:
        extension = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        extension = None
    if isinstance(extension, x509.SubjectAlternativeName):
        sans.extend(extension.get_values_for_type(x509.DNSName))
        sans.extend(str(ip) for ip in extension.get_values_for_type(x509.IPAddress))
    try:
        ip = ipaddress.ip_address(name)
        covers = str(ip) in sans
    except ValueError:
        covers = any(name_matches(san, name) for san in sans)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=tuple(sans),
        not_after=cert.not_valid_after_utc,
        covers_name=covers,
    )


def trust_context(ca_bundle: str | None) -> ssl.SSLContext:
    """A verifying client context trusting ``ca_bundle`` (or the system roots); shared, built once."""
    return verify_context(ca_bundle, "readiness.ca_bundle") if ca_bundle else system_context()


@dataclass(frozen=True)
class Patience:
    """Until when (``time.monotonic()``) and how often a one-shot check is tried again when it got no answer.

    The status probe tolerates a lost request (it needs N successes in a row within the timeout);
    the certificate and parity checks made once each would otherwise let one lost connection (a
    busy worker or backend, a listen queue full for a moment) refuse a cutover whose B is ready.
    """

    deadline: float
    interval: float

    def allows_another(self) -> bool:
        """Whether one more try, after the interval, still fits before the deadline."""
        return time.monotonic() + self.interval <= self.deadline


def no_answer(exc: BaseException) -> bool:
    """A connection that got no answer (refused, reset, timed out), as opposed to a TLS failure, which is one."""
    return isinstance(exc, OSError | TimeoutError) and not isinstance(exc, ssl.SSLError)


async def _handshake(
    host: str,
    port: int,
    context: ssl.SSLContext,
    sni: str,
    timeout: float,
    guard: NetworkGuard,
    retry: Patience | None = None,
) -> bytes:
    while True:
        try:
            return await _handshake_once(host, port, context, sni, timeout, guard)
        except (OSError, TimeoutError) as exc:
            if retry is None or not no_answer(exc) or not retry.allows_another():
                raise
        await asyncio.sleep(retry.interval)


async def _handshake_once(
    host: str, port: int, context: ssl.SSLContext, sni: str, timeout: float, guard: NetworkGuard
) -> bytes:
    _, writer = await open_guarded_connection(
        guard, host, port, ssl_context=context, server_hostname=sni, timeout=timeout
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass
    if not der:
        raise ssl.SSLError("the server presented no certificate")
    return bytes(der)


async def check_certificate(
    url: str,
    sni: str,
    *,
    ca_bundle: str | None,
    tls_verify: bool | None,
    timeout: float,
    who: str = "B",
    guard: NetworkGuard | None = None,
    retry: Patience | None = None,
) -> tuple[ProbeCheck, CertificateInfo | None]:
    """Handshake with ``sni``; verify chain, expiry and name; describe what was presented.

    With ``retry``, a handshake that got no answer (refused, reset, timed out) is tried again until
    its deadline; a TLS failure is an answer and is reported at once.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    sent = {"url": f"{host}:{port}", "SNI": sni, "trust": ca_bundle or "system roots"}
    name = f"{who} certificate for {sni}"
    # Only an explicit tls_verify=false means Kong won't check: unset defers to nginx's proxy_ssl_verify,
    # which a deployment may turn on (nginx_proxy_proxy_ssl_verify), so it is treated as verifying.
    relaxed = tls_verify is False
    guard = guard or NetworkGuard()
    try:
        der = await _handshake(host, port, unverified_context(), sni, timeout, guard, retry)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        return (
            ProbeCheck(
                name=name,
                ok=False,
                sent=sent,
                received=f"no TLS handshake: {type(exc).__name__}: {exc}",
                detail=f"{who} could not be reached over TLS at {host}:{port}, so its certificate was not checked.",
            ),
            None,
        )
    try:
        info = describe_certificate(der, sni)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        # A certificate OpenSSL serves but that does not parse (a bad SAN encoding, a duplicated
        # extension) is a finding about the backend, not a crash of the probe.
        return (
            ProbeCheck(
                name=name,
                ok=False,
                sent=sent,
                received=f"a certificate that can't be parsed ({type(exc).__name__}: {exc})",
                detail=f"{who} presented a malformed certificate for {sni}: clients, Kong included, may reject it. "
                f"Reissue {who}'s certificate.",
            ),
            None,
        )
    received = (
        f"subject {info.subject}; issuer {info.issuer}; SANs {', '.join(info.sans) or '(none)'}; "
        f"expires {info.not_after.isoformat()}"
    )
    problem = ""
    try:
        await _handshake(host, port, trust_context(ca_bundle), sni, timeout, guard, retry)
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or str(exc)
        if not info.covers_name:
            problem = (
                f"{who}'s certificate covers {', '.join(info.sans) or 'no DNS name'} but not {sni}, the name Kong "
                f"sends as SNI: with tls_verify=true Kong's TLS handshake with {who} fails and clients get 502. "
                f"Add {sni} to {who}'s certificate (and domain mapping)."
            )
        elif info.not_after <= dt.datetime.now(dt.UTC):
            problem = f"{who}'s certificate expired on {info.not_after.isoformat()}."
        else:
            problem = (
                f"{who}'s certificate does not chain to {ca_bundle or 'the system roots'} ({reason}); issuer "
                f"{info.issuer}."
            )
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        problem = f"the verifying TLS handshake failed: {type(exc).__name__}: {exc}"
    if problem and relaxed:
        return (
            ProbeCheck(
                name=name,
                ok=True,
                sent=sent,
                received=received,
                detail=f"Kong does not verify {who}'s certificate (tls_verify=false), so this does not block; "
                f"but: {problem}",
            ),
            info,
        )
    return ProbeCheck(name=name, ok=not problem, sent=sent, received=received, detail=problem), info
