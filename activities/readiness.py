"""Readiness activity: probe B with the Host and SNI Kong will send, heartbeating every attempt.

The probe can take minutes (``readiness.timeout``), so it heartbeats after each attempt
("probe 3/10: 200 from 127.0.0.3 (2/3 in a row)") and at least every few seconds while it waits,
which makes a stuck probe visible in the UI and lets Temporal deliver a cancellation. An unready B
is a ``ReadinessReport`` with ``ready=False`` and every check explained, not an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.errors import maps_provider_errors
from activities.heartbeats import KeepAlive
from models.readiness import ReadinessInput, ReadinessReport
from providers.netguard import NetworkGuard
from providers.readiness import probe_readiness

KEEPALIVE_SECONDS = 5.0
"""Heartbeat at least this often, even while waiting between attempts."""


class ReadinessActivities:
    """Probe B (and optionally A) before anything changes."""

    def __init__(self, keepalive_seconds: float = KEEPALIVE_SECONDS, guard: NetworkGuard | None = None) -> None:
        """Args: keepalive_seconds: longest gap between heartbeats; guard: the worker policy's network guard."""
        self._keepalive = keepalive_seconds
        self._guard = guard

    def activities(self) -> list[Callable[..., Any]]:
        """The activity callables to register on a worker."""
        return [self.probe]

    @activity.defn(name="readiness_probe")
    @maps_provider_errors
    async def probe(self, input: ReadinessInput) -> ReadinessReport:
        """Probe until ready or out of time; the report lists every check with what was sent and received."""
        first = f"probing {input.readiness.url} with Host {input.shape.host_header}"
        async with KeepAlive(first, self._keepalive) as heartbeats:
            report = await probe_readiness(input, on_progress=heartbeats.progress, guard=self._guard)
        activity.logger.info(
            "readiness_probe: %s after %d attempts (Host %s, SNI %s)%s",
            "ready" if report.ready else "NOT ready",
            report.attempts,
            report.host_header,
            report.sni,
            "" if report.ready else ": " + "; ".join(report.failures()),
        )
        return report
