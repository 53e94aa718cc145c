"""Typed errors raised by every provider, and whether retrying can help.

Providers translate third-party exceptions (dnspython, httpx, google-auth) into these at the
boundary; activities turn them into Temporal ``ApplicationError`` with ``type`` set to the class name
and ``non_retryable`` set from ``retryable``. Tree::

    CutoverError
    ├── ConfigError                 (missing secret variable, unreadable CA bundle ...)      no retry
    │   └── PolicyViolation         (the worker policy refuses a destination or a secret's use) no retry
    ├── DnsError
    │   ├── DnsAuthError            (TSIG BADSIG/BADKEY, Google 401/403)                     no retry
    │   ├── DnsRefused              (REFUSED, NOTAUTH: the server won't take it)             no retry
    │   ├── NotInZone               (NOTZONE, name outside the zone)                         no retry
    │   ├── InvalidChange           (CNAME beside other data, at the apex; change ignored)   no retry
    │   ├── PreconditionFailed      (someone else changed the record: 412, NXRRSET, ...)     no retry
    │   ├── PropagationTimeout      (a nameserver still lags after the deadline)             no retry
    │   └── DnsUnavailable          (timeout, connection refused, SERVFAIL, 5xx)             retry
    ├── GatewayError
    │   ├── GatewayAuthError        (401/403)                                                 no retry
    │   ├── GatewayReadOnly         (405: DB-less node or hybrid data plane)                  no retry
    │   ├── GatewayUnsupported      (Konnect, unknown deployment)                             no retry
    │   ├── GatewayNotFound         (404)                                                     no retry
    │   ├── GatewayConflict         (the Service changed since it was read; 409)              no retry
    │   ├── GatewayRejected         (400 schema violation)                                    no retry
    │   └── GatewayUnavailable      (5xx, timeout, connection refused)                        retry
    ├── TelemetryError
    │   ├── TelemetryAuthError      (401/403 from the log or metrics source)                  no retry
    │   ├── TelemetryQuotaExceeded  (429 after backoff)                                       retry
    │   └── TelemetryUnavailable    (source unreachable, file missing)                        retry
    └── DecommissionError
        ├── DecommissionRefused     (protected project, no permission, not drained)           no retry
        └── DecommissionUnavailable (5xx, timeout)                                            retry
"""

from __future__ import annotations

import ssl
from typing import ClassVar


class CutoverError(Exception):
    """Base of every error cutover raises on purpose."""

    retryable: ClassVar[bool] = False


class ConfigError(CutoverError):
    """The worker's environment lacks something the plan names (a secret variable, a file)."""


class PolicyViolation(ConfigError):
    """The worker policy refuses what a plan asks: a destination, a secret sent somewhere, a deletion."""


class DnsError(CutoverError):
    """A DNS provider failed."""


class DnsAuthError(DnsError):
    """The TSIG key or Google credentials were rejected."""


class DnsRefused(DnsError):
    """The server refused the update (REFUSED, NOTAUTH) or the API said forbidden."""


class NotInZone(DnsError):
    """The name is not in the zone the provider updates."""


class InvalidChange(DnsError):
    """The change would break DNS rules (CNAME beside other data, CNAME at the apex)."""


class PreconditionFailed(DnsError):
    """The record is not what cutover expected: someone else changed it. Nothing was overwritten."""


class PropagationTimeout(DnsError):
    """Some authoritative server still doesn't answer the new data after the deadline."""


class DnsUnavailable(DnsError):
    """The server or API could not be reached or answered with a transient failure."""

    retryable = True


class GatewayError(CutoverError):
    """The Kong Admin API failed."""


class GatewayAuthError(GatewayError):
    """401/403: the Admin API token is missing or lacks permission."""


class GatewayReadOnly(GatewayError):
    """405: a DB-less node or hybrid data plane; changes must go to the Control Plane."""


class GatewayUnsupported(GatewayError):
    """A deployment cutover can't drive (yet), e.g. Konnect."""


class GatewayNotFound(GatewayError):
    """404: the Service, Route or Upstream does not exist."""


class GatewayConflict(GatewayError):
    """The Service changed since cutover read it; nothing was overwritten."""


class GatewayRejected(GatewayError):
    """400: Kong rejected the request (schema violation)."""


class GatewayUnavailable(GatewayError):
    """5xx, timeout or connection failure."""

    retryable = True


class TelemetryError(CutoverError):
    """A log or metrics source failed."""


class TelemetryAuthError(TelemetryError):
    """The source rejected our credentials."""


class TelemetryQuotaExceeded(TelemetryError):
    """The source kept answering 429 after backing off."""

    retryable = True


class TelemetryUnavailable(TelemetryError):
    """The source can't be read right now."""

    retryable = True


class DecommissionError(CutoverError):
    """Deleting A failed."""


class DecommissionRefused(DecommissionError):
    """Deletion refused: protected project, missing permission, A not drained, ..."""


class DecommissionUnavailable(DecommissionError):
    """The decommission API is unreachable or failed transiently."""

    retryable = True


# --- describing third-party failures without their text ----------------------------------------------


def certificate_problem(exc: BaseException) -> str | None:
    """OpenSSL's verification reason when ``exc`` was caused by an untrusted certificate, else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or "certificate verify failed"
        current = current.__cause__ or current.__context__
    return None


def describe_transport_error(exc: BaseException) -> str:
    """``ConnectError (Connection refused)``: the class name and the OS's or OpenSSL's reason, never ``str(exc)``.

    Transport exceptions may quote what was sent or received: h11's protocol errors repeat a header
    line, and a request header may be ``Kong-Admin-Token``, ``Authorization: Bearer ...`` or a
    webhook's key. The only detail kept is text that can't hold a header: the ``strerror`` of an
    ``OSError`` in the cause chain (``Connection refused``) or a certificate verification reason.
    """
    name = type(exc).__name__
    reason = certificate_problem(exc)
    if reason is None:
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen and reason is None:
            seen.add(id(current))
            if isinstance(current, ssl.SSLError):
                reason = current.reason
            elif isinstance(current, OSError) and current.strerror:
                reason = current.strerror
            current = current.__cause__ or current.__context__
    return f"{name} ({reason})" if reason else name
