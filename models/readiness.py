"""Proof that B accepts exactly what Kong will send it: Host header, SNI, certificate, status."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from models.kong import KongRequestShape
from models.plan import ReadinessSection


class _Model(BaseModel):
    # Unknown fields are ignored, not refused: during a rolling deploy a newer activity may return a
    # field an older workflow doesn't know, and a decode error would fail the run without rollback.
    model_config = ConfigDict(extra="ignore", frozen=True)


class CertificateInfo(_Model):
    """The certificate B presented for the SNI Kong will send."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_after: datetime
    covers_name: bool
    """True when a SAN matches the name Kong sends."""


class ProbeCheck(_Model):
    """One check, with what was sent and what came back, for the status and the UI."""

    name: str
    ok: bool
    sent: dict[str, str]
    """e.g. url, Host, SNI."""
    received: str
    detail: str = ""


class ReadinessReport(_Model):
    """Every readiness check and the overall answer."""

    ready: bool
    host_header: str
    sni: str | None
    checks: tuple[ProbeCheck, ...]
    attempts: int
    consecutive_successes: int
    elapsed_seconds: float
    certificate: CertificateInfo | None = None

    def failures(self) -> list[str]:
        """One line per failed check."""
        return [f"{c.name}: {c.detail or c.received}" for c in self.checks if not c.ok]


class ReadinessInput(_Model):
    """Probe B (and optionally A) with Kong's Host and SNI."""

    readiness: ReadinessSection
    shape: KongRequestShape
    parity_hosts: tuple[str, ...] = ()
    """Host values A must also accept (alias strategy: Kong will send the alias to A before the flip)."""
    started_at: datetime | None = None
