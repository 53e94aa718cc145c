"""Connection failures said in terms of the settings an operator can change, not as a stack trace."""

from __future__ import annotations

from temporalio.service import TLSConfig


class TemporalConfigError(Exception):
    """The Temporal settings are unusable or the server refused them; the message says what to change."""


_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("notvalidforname", "not valid for name", "hostname mismatch", "certificate is not valid for"),
        "the server's certificate does not name this address: set TEMPORAL_TLS_SERVER_NAME to a name in it",
    ),
    (
        ("unknownissuer", "unknown issuer", "certificate verify failed", "unknown ca", "badsignature"),
        "the server's certificate is not signed by a CA this client trusts: set TEMPORAL_TLS_SERVER_CA_CERT_PATH "
        "to the CA that signed it (or unset it to use the system's roots, as for Temporal Cloud)",
    ),
    (
        ("certificaterequired", "certificate required", "handshakefailure", "bad certificate", "badcertificate"),
        "the server asks for a client certificate (mTLS) and refused this one: set TEMPORAL_TLS_CLIENT_CERT_PATH "
        "and TEMPORAL_TLS_CLIENT_KEY_PATH to a certificate its CA accepts",
    ),
    (
        ("unauthenticated", "api key", "permission denied", "permissiondenied", "request unauthorized"),
        "the server refused the credentials: check TEMPORAL_API_KEY (or the client certificate) and the namespace",
    ),
    (
        ("corrupt message", "invalidcontenttype", "wrong version number", "http2 error", "frame with invalid size"),
        "TLS and plaintext don't match: the server may not speak TLS (unset TEMPORAL_TLS and the TLS/API-key "
        "settings) or may require it (set TEMPORAL_TLS=true)",
    ),
    (
        ("connection refused", "tcp connect error", "dns error", "failed to lookup", "timed out", "deadline"),
        "nothing answered there: check TEMPORAL_ADDRESS and that the server (or its proxy) is running",
    ),
)


# Matched with spaces removed: the transport names the same hang-up "connection reset" in its message
# and "ConnectionReset" in its error kind (``hyper::Error(Io, Kind(ConnectionReset))``).
_HUNG_UP = ("closenotify", "unexpectedeof", "brokenpipe", "connectionreset", "connectionclosed", "connectionaborted")


def describe_connect_failure(target: str, tls: bool | TLSConfig, detail: str) -> str:
    """One clear sentence about why connecting failed, the SDK's own words kept at the end.

    The SDK's native client raises ``RuntimeError("Failed client connect: ...")`` with the transport's
    chain of causes in one string; the first hint whose words appear in it names the setting to fix.
    """
    lowered = detail.lower().replace("_", "")
    reason = next((hint for words, hint in _HINTS if any(word in lowered for word in words)), None)
    compact = lowered.replace(" ", "")
    closed = any(word in compact for word in _HUNG_UP)
    if reason is None and closed and tls:
        # TLS 1.3: the client finishes its handshake before the server checks the client certificate, so
        # a refused (or missing) certificate shows up as the server hanging up on the first call.
        has_cert = isinstance(tls, TLSConfig) and bool(tls.client_cert)
        reason = (
            "the server hung up after the TLS handshake: it refused this client certificate (is it signed by a CA "
            "the server accepts?)"
            if has_cert
            else "the server hung up after the TLS handshake: it requires a client certificate (mTLS): set "
            "TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH"
        )
    if reason is None:
        reason = "see the detail below" if tls else "the server may require TLS (set TEMPORAL_TLS=true) or be down"
    detail = " ".join(detail.split())
    return f"cannot connect to Temporal at {target}: {reason}. Detail: {detail[:600]}"
