"""Kong's legacy DNS client (``kong/resty/dns/client.lua``, Kong's default), one cache per nginx worker.

The rules, with the lines of ``../shared/kong-lua/kong/resty/dns/client.lua`` they come from:

* cache key ``qtype:qname``; TTL = ``dns_valid_ttl`` if set, else the smallest TTL of the records
  owned by that name and type; the entry lives TTL + ``dns_stale_ttl`` in the worker's lrucache and
  is dropped then (``cacheinsert``, 189-279). TTL 0 means stale at once; with ``dns_stale_ttl`` 0 as
  well nothing is cached (270-276);
* types are tried in ``dns_order`` (LAST = the type that last worked for the name, 1069-1130); the
  first answer with records wins, a CNAME is dereferenced by resolving its target the same way
  (1312-1315); NXDOMAIN, other rcodes and empty answers fall through to the next type (1266-1273);
  a query that gets no answer at all stops the search with that error (1258-1263);
* only records whose type *and owner* match the query are stored under the key; the answer's other
  records go under their own keys (``parseAnswer``, 686-735);
* a stale entry (negative ones too) is served at once while one background query per key refreshes
  it (``lookup``/``asyncQuery``, 835-976);
* a refresh that comes back empty or with an rcode error never replaces an entry holding records;
  NXDOMAIN does (cached ``dns_not_found_ttl``); empty answers are cached ``dns_not_found_ttl``,
  other rcodes ``dns_error_ttl`` (216-247); a query without answer (refused, timeout) caches nothing
  (``individualQuery`` returns before ``parseAnswer``, 742-766). Hence the A->CNAME hazard: after
  ``a`` turns into a CNAME, ``A:a`` refreshes come back empty and the old A stays until eviction.

Not emulated: the ``short:`` name cache (it only mirrors the per-type entries for these cases),
/etc/hosts, search domains, ``dns_no_sync``, LRU size limits, SRV weights.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox.kong.dns_base import ERR_EMPTY, Answer, DnsSettings, Nameserver, Record, Resolution, is_ip, norm

EntryKind = Literal["records", "empty", "nxdomain", "rcode"]
ADDRESS = ("A", "AAAA")


@dataclass
class CacheEntry:
    """One lrucache entry with its timing (clock seconds)."""

    kind: EntryKind
    records: tuple[Record, ...]
    ttl: float
    inserted: float
    stale_ttl: float
    error: str = ""

    @property
    def expires(self) -> float:
        """When the entry turns stale (``entry.expire``)."""
        return self.inserted + self.ttl

    @property
    def evicts(self) -> float:
        """When the lrucache drops it (``lru_ttl`` = TTL + ``dns_stale_ttl``)."""
        return self.expires + self.stale_ttl

    def describe(self, now: float) -> dict[str, Any]:
        """State for the emulator-control API."""
        return {
            "kind": self.kind,
            "records": [r.value for r in self.records],
            "ttl": self.ttl,
            "expires_in": round(self.expires - now, 3),
            "evicts_in": round(self.evicts - now, 3),
            "stale": now >= self.expires,
            "error": self.error or None,
        }


@dataclass
class _Cache:
    entries: dict[str, CacheEntry] = field(default_factory=dict)
    last: dict[str, str] = field(default_factory=dict)
    refreshing: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    rotation: dict[str, int] = field(default_factory=dict)


class LegacyResolver:
    """One nginx worker's legacy DNS client and cache."""

    def __init__(self, nameserver: Nameserver, settings: DnsSettings, clock: Callable[[], float]) -> None:
        self._ns, self._settings, self._clock = nameserver, settings, clock
        self._cache = _Cache()

    def reset(self) -> None:
        """Drop the cache, as a new worker (``kong reload``, restart) starts with."""
        for task in self._cache.refreshing.values():
            task.cancel()
        self._cache = _Cache()

    async def close(self) -> None:
        """Cancel and await background refreshes."""
        for task in list(self._cache.refreshing.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def state(self) -> dict[str, Any]:
        """Cache contents for the emulator-control API."""
        now = self._clock()
        live = {k: e for k, e in self._cache.entries.items() if now < e.evicts}
        return {"entries": {k: e.describe(now) for k, e in sorted(live.items())}, "last": dict(self._cache.last)}

    # -- the cache (cacheinsert / cachelookup) --

    def _get(self, key: str) -> CacheEntry | None:
        entry = self._cache.entries.get(key)
        if entry is not None and self._clock() >= entry.evicts:
            del self._cache.entries[key]
            return None
        return entry

    def _store(self, key: str, entry: CacheEntry) -> None:
        if entry.ttl + entry.stale_ttl <= 0:  # client.lua:270-276: already expired, not added
            self._cache.entries.pop(key, None)
            return
        self._cache.entries[key] = entry

    def _records_entry(self, records: tuple[Record, ...]) -> CacheEntry:
        s = self._settings
        ttl = s.dns_valid_ttl if s.dns_valid_ttl is not None else min(r.ttl for r in records)
        return CacheEntry("records", records, float(ttl), self._clock(), float(s.dns_stale_ttl))

    def _insert_negative(self, key: str, kind: EntryKind, error: str) -> CacheEntry:
        """Cache an NXDOMAIN/empty/rcode answer; empty and rcode never replace records (client.lua:224-245)."""
        s = self._settings
        entry = CacheEntry(
            kind,
            (),
            float(s.dns_error_ttl if kind == "rcode" else s.dns_not_found_ttl),
            self._clock(),
            float(s.dns_stale_ttl),
            error,
        )
        held = self._get(key)
        if kind != "nxdomain" and held is not None and held.records:
            return entry
        self._store(key, entry)
        return entry

    async def _query(self, name: str, qtype: str) -> tuple[CacheEntry | None, str]:
        """``individualQuery``: ask, cache what the answer holds, return what it said about ``qtype:name``."""
        answer: Answer = await self._ns.query(name, qtype)
        key = f"{qtype}:{name}"
        if answer.kind == "unreachable":
            return None, answer.error
        if answer.kind == "nxdomain":
            return self._insert_negative(key, "nxdomain", answer.error), ""
        if answer.kind == "rcode":
            return self._insert_negative(key, "rcode", answer.error), ""
        groups: dict[tuple[str, str], list[Record]] = {}
        for record in answer.records:
            groups.setdefault((record.type, record.owner), []).append(record)
        for (rtype, owner), records in groups.items():
            if (rtype, owner) != (qtype, name):
                self._store(f"{rtype}:{owner}", self._records_entry(tuple(records)))
                self._cache.last.setdefault(owner, rtype)  # a by-product sets LAST only if unset (731-733)
        mine = tuple(groups.get((qtype, name), ()))
        if not mine:
            return self._insert_negative(key, "empty", ERR_EMPTY), ""
        entry = self._records_entry(mine)
        self._store(key, entry)
        return entry, ""

    async def _refresh(self, name: str, qtype: str) -> None:
        await self._query(name, qtype)

    def _refresh_in_background(self, name: str, qtype: str) -> None:
        """``asyncQuery``: one query in flight per key."""
        key = f"{qtype}:{name}"
        running = self._cache.refreshing.get(key)
        if running is not None and not running.done():
            return
        task = asyncio.get_running_loop().create_task(self._refresh(name, qtype))
        self._cache.refreshing[key] = task
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _lookup(self, name: str, qtype: str) -> tuple[CacheEntry | None, bool, str]:
        """``lookup``: the cached entry (stale ones start a refresh), else a query; None: no answer."""
        entry = self._get(f"{qtype}:{name}")
        if entry is None:
            fresh, error = await self._query(name, qtype)
            return fresh, False, error
        if self._clock() >= entry.expires:
            self._refresh_in_background(name, qtype)
            return entry, True, ""
        return entry, False, ""

    def _order(self, name: str) -> list[str]:
        order: list[str] = []
        for qtype in self._settings.dns_order:
            qtype = self._cache.last.get(name, "") if qtype == "LAST" else qtype
            if qtype in ("A", "AAAA", "SRV", "CNAME") and qtype not in order:
                order.append(qtype)
        return order

    async def resolve(self, host: str) -> Resolution:
        """Resolve a host the way the legacy client's ``toip`` does."""
        name = norm(host)
        if is_ip(name):
            return Resolution((name.strip("[]"),))
        chain: list[str] = []
        stale = False
        port: int | None = None
        for _ in range(10):
            found: tuple[str, CacheEntry] | None = None
            error = ERR_EMPTY
            for qtype in self._order(name):
                entry, was_stale, failure = await self._lookup(name, qtype)
                if entry is None:  # no answer at all: stop searching (1258-1263)
                    return Resolution((), chain=tuple(chain), stale=stale, error=failure)
                if entry.kind in ("nxdomain", "rcode"):
                    error = entry.error
                elif not entry.records:
                    error = ERR_EMPTY
                else:
                    stale = stale or was_stale
                    found = (qtype, entry)
                    break
            if found is None:
                return Resolution((), chain=tuple(chain), stale=stale, error=error)
            qtype, entry = found
            self._cache.last[name] = qtype
            if qtype in ("CNAME", "SRV"):
                chain.append(name)
                target = entry.records[0].value
                if qtype == "SRV":
                    target, _, port_text = target.rpartition(":")
                    port = int(port_text)
                name = target
                continue
            addresses = tuple(r.value for r in entry.records)
            turn = self._cache.rotation.get(name, 0)
            self._cache.rotation[name] = turn + 1
            rotated = addresses[turn % len(addresses) :] + addresses[: turn % len(addresses)]
            return Resolution(rotated, port=port, chain=tuple(chain), stale=stale, expires=entry.expires)
        return Resolution((), chain=tuple(chain), stale=stale, error="recursion detected")
