"""Upstream targets' addresses, per worker, renewed the way Kong's balancer renews them.

From ``../shared/kong-lua/kong/runloop/balancer/targets.lua``: a worker keeps the records
``dns_client.resolve(target)`` gave it (for a CNAME target, the dereferenced address records, with
*their* expiry) and renews them at that expiry + 0.5 s, from one timer that runs every second
whether requests come or not (286-310, 318-346); a request that finds them expired re-queries
inline (534-550). A failed query leaves the target without addresses for ``requeryInterval``
(30 s, balancers.lua:27; targets.lua:513-524). A stale answer changes nothing and is renewed again
0.5 s later (346), by when the client's background refresh has landed.

Not emulated: TTL-0 targets (``ttl0Interval``), SRV targets' weights, the ring-balancer's slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.kong.dns import DnsClients, Resolution

TIMER_INTERVAL = 1.0
RENEW_DELAY = 0.5
REQUERY_INTERVAL = 30.0


@dataclass
class _Target:
    resolution: Resolution
    expires: float
    renew_at: float


class TargetAddresses:
    """Every worker's address lists for the Upstream targets it has used."""

    def __init__(self, dns: DnsClients, clock: Callable[[], float] = time.monotonic) -> None:
        self._dns, self._clock = dns, clock
        self._targets: dict[tuple[int, str], _Target] = {}
        self._timer: asyncio.Task[None] | None = None

    async def _query(self, worker: int, hostname: str) -> Resolution:
        resolver = self._dns.for_worker(worker)
        now = self._clock()
        if resolver is None:
            return Resolution((hostname,))
        found = await resolver.resolve(hostname)
        if not found.addresses:
            expires = now + REQUERY_INTERVAL
        else:
            expires = found.expires if found.expires is not None else float("inf")
        self._targets[(worker, hostname)] = _Target(found, expires, max(now, expires) + RENEW_DELAY)
        return found

    async def resolve(self, worker: int, hostname: str) -> Resolution:
        """The worker's addresses for a target; re-queried inline when they expired."""
        held = self._targets.get((worker, hostname))
        if held is None or held.expires < self._clock():
            return await self._query(worker, hostname)
        return held.resolution

    def start(self) -> None:
        """Start the renewal timer (one per node, serving every worker, like Kong's per-worker timers)."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TIMER_INTERVAL)
            now = self._clock()
            for (worker, hostname), target in list(self._targets.items()):
                if target.renew_at < now:
                    with contextlib.suppress(Exception):
                        await self._query(worker, hostname)

    def reset(self) -> None:
        """Forget every address list (a restart)."""
        self._targets.clear()

    async def close(self) -> None:
        """Stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
