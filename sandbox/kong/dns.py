"""Kong's two DNS clients, emulated over plain dnspython queries to one nameserver.

The legacy client (Kong's default, one cache per nginx worker) is in :mod:`sandbox.kong.dns_legacy`,
the new client (``new_dns_client = on``, one cache per node) in :mod:`sandbox.kong.dns_new`; their
module docstrings list each rule with the line of Kong's code it comes from. Both are checked
against Kong's real client code under nginx by ``tests/kong_conformance/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sandbox.kong.dns_base import (
    ERR_EMPTY,
    ERR_NXDOMAIN,
    Answer,
    DnsSettings,
    Nameserver,
    Record,
    Resolution,
    balancer_status,
    is_ip,
)
from sandbox.kong.dns_legacy import LegacyResolver
from sandbox.kong.dns_new import NewResolver

__all__ = [
    "ERR_EMPTY",
    "ERR_NXDOMAIN",
    "Answer",
    "DnsClients",
    "DnsSettings",
    "LegacyResolver",
    "Nameserver",
    "NewResolver",
    "Record",
    "Resolution",
    "Resolver",
    "balancer_status",
    "is_ip",
]

Resolver = LegacyResolver | NewResolver


class DnsClients:
    """The node's resolvers: one legacy cache per worker, or one shared new-client cache."""

    def __init__(
        self,
        nameserver: Nameserver | None,
        settings: DnsSettings,
        workers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nameserver = nameserver
        self.settings = settings
        self.workers = max(1, workers)
        self._clock = clock
        self._build()

    def _build(self) -> None:
        self._legacy: list[LegacyResolver] = []
        self._new: NewResolver | None = None
        if self.nameserver is None:
            return
        if self.settings.new_dns_client:
            self._new = NewResolver(self.nameserver, self.settings, self._clock)
        else:
            self._legacy = [LegacyResolver(self.nameserver, self.settings, self._clock) for _ in range(self.workers)]

    def for_worker(self, worker: int) -> Resolver | None:
        """The resolver a worker uses (None when no DNS server is configured)."""
        if self._new is not None:
            return self._new
        return self._legacy[worker % self.workers] if self._legacy else None

    def _all(self) -> list[Resolver]:
        return [*self._legacy, *([self._new] if self._new else [])]

    def reset(self) -> None:
        """Clear every cache and rebuild for the current settings (a restart of the node)."""
        for resolver in self._all():
            resolver.reset()
        self._build()

    def state(self) -> dict[str, Any]:
        """Per-worker (legacy) or shared (new) cache contents."""
        if self._new is not None:
            return {"client": "new", "shared": self._new.state()}
        return {
            "client": "legacy",
            "workers": [{"worker": i, **r.state()} for i, r in enumerate(self._legacy)],
        }

    async def close(self) -> None:
        """Cancel background refreshes."""
        for resolver in self._all():
            await resolver.close()
