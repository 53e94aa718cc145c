"""The change this worker just read back from the primary, for the propagation proof that follows.

``DnsProvider.apply`` reads a change back from the primary right after sending it; the proof that
follows asks the same server for the same name again. A zone version holds the same data for as long
as it is served, so the proof may start from the read-back: it asks the primary's SOA once and keeps
the read-back only if the primary still serves that very serial, the rule a proof already applies
between its own polls (providers/dns/propagation.py). That saves four of the five queries of a read.

Only read-backs are kept, never other reads: a read from before the change (a snapshot, say) must
not stand in for the server's answer after it, even on a server that does not move its serial on an
update. They are kept briefly, with the types they asked for: a proof comparing a type the read-back
didn't ask for reads the server again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from models.dns import RRset

KEEP_SECONDS = 60.0
"""How long a read stays usable: enough for an apply and the proof after it."""
MAX_KEPT = 4096
"""Reads kept at once (oldest dropped first): a few per cutover in flight."""


@dataclass(frozen=True)
class RecentRead:
    """One consistent read of a name on one server."""

    serial: int
    rrsets: tuple[RRset, ...]
    asked: frozenset[str]
    """The types queried one by one (besides ANY): a later read needing others can't reuse this one."""
    read_at: float
    """``time.monotonic()`` when the read finished."""


Key = tuple[str, int, str, str, str | None]
"""(server address, port, zone, name, TSIG key name): a TSIG key can select another view of the zone."""


class RecentReads:
    """A bounded, short-lived memo of consistent reads (the event loop's thread only)."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS, max_kept: int = MAX_KEPT) -> None:
        self._keep = keep_seconds
        self._max = max_kept
        self._reads: OrderedDict[Key, RecentRead] = OrderedDict()

    def remember(self, key: Key, serial: int, rrsets: tuple[RRset, ...], asked: Iterable[str]) -> None:
        """Keep a read whose opening and closing serials were both ``serial``."""
        self._reads[key] = RecentRead(serial, rrsets, frozenset(asked), time.monotonic())
        self._reads.move_to_end(key)
        while len(self._reads) > self._max:
            self._reads.popitem(last=False)

    def recall(self, key: Key, needed: Iterable[str]) -> RecentRead | None:
        """The last read at ``key`` if it is recent and asked for every type in ``needed``."""
        read = self._reads.get(key)
        if read is None or time.monotonic() - read.read_at > self._keep:
            return None
        return read if read.asked.issuperset(needed) else None

    def clear(self) -> None:
        """Forget everything (tests)."""
        self._reads.clear()


RECENT = RecentReads()
"""The worker's memo: ``read_name`` fills it, a propagation proof starts from it."""
