"""The load through Kong as the end-to-end tests read it: who served each request, and what clients saw."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Sequence

import aiohttp

from sandbox.load import LoadGenerator, RequestRecord
from sandbox.topology import Topology
from tests.e2e.lanes import LOAD_RATE, Lane


def load_generator(topo: Topology, lane: Lane) -> LoadGenerator:
    """A steady load through Kong on the lane's route."""
    return LoadGenerator(lane.load_url(topo), rate=LOAD_RATE, timeout=5.0)


def failures(records: Iterable[RequestRecord]) -> list[str]:
    """One line per request without a 2xx answer."""
    return [f"+{r.offset:.1f}s {r.failure} (served by {r.served_by})" for r in records if not r.ok]


def served_by(records: Iterable[RequestRecord], start: float = 0.0, end: float = float("inf")) -> Counter[str]:
    """Who answered the requests started in ``[start, end)`` (epoch seconds)."""
    return Counter(str(r.served_by) for r in records if start <= r.started < end)


def last_served_by(records: Sequence[RequestRecord], runtime: str) -> float | None:
    """Start time (epoch) of the last request ``runtime`` answered."""
    return max((r.started for r in records if r.served_by == runtime), default=None)


async def traffic_moved_to(load: LoadGenerator, runtime: str, within: float, seconds: float = 1.5) -> bool:
    """Wait up to ``within`` s until every request of the last ``seconds`` got a 2xx from ``runtime``."""
    deadline = time.monotonic() + within + seconds + 1.0
    while True:
        recent = recent_records(load, seconds)
        if recent and all(r.ok and r.served_by == runtime for r in recent):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.25)


def recent_records(load: LoadGenerator, seconds: float) -> list[RequestRecord]:
    """Requests started in the ``seconds`` before the last second (the last second's may still be in flight)."""
    now = time.time()
    return [r for r in load.records if now - seconds - 1.0 <= r.started < now - 1.0]


def what_clients_saw(load: LoadGenerator, since: float) -> str:
    """Who served the requests started after ``since`` (epoch), and how many failed, for failure messages."""
    after = [r for r in load.records if r.started >= since]
    failed = [r for r in after if not r.ok]
    first_failure = f", first failure at +{failed[0].started - since:.1f} s" if failed else ""
    last_failure = f", last at +{failed[-1].started - since:.1f} s" if failed else ""
    return (
        f"{len(after)} requests since then: served by {dict(served_by(after))}, "
        f"{len(failed)} failed {dict(Counter(r.failure for r in failed))}{first_failure}{last_failure}"
    )


async def kong_dns_cache(topo: Topology, name: str) -> list[str]:
    """The Kong emulator's DNS cache entries for ``name`` (``/_emulator/dns-cache``): evidence for failures."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{topo.kong_admin_url}/_emulator/dns-cache") as response:
            state = await response.json()
    name = name.rstrip(".")
    lines = []
    for worker in state.get("workers", []):
        for key, entry in worker.get("entries", {}).items():
            if key.endswith(":" + name):
                lines.append(
                    f"{key} {entry['kind']} {entry['records']} ttl {entry['ttl']} expires in {entry['expires_in']} s"
                )
        lines.append(f"last type for {name}: {worker.get('last', {}).get(name)}")
    return lines


def assert_load_rate(load: LoadGenerator) -> None:
    """The load really ran at (nearly) its nominal rate, so "zero failures" means something."""
    summary = load.summary()
    assert summary.requests / summary.duration >= LOAD_RATE * 0.9, summary.render()
    assert summary.skipped == 0, summary.render()
