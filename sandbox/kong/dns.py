"""Kong's two DNS clients, emulated over plain dnspython queries to one nameserver.

Legacy client (``kong/resty/dns/client.lua``, kong.md §1.2), one cache per nginx worker:

* cache key ``qtype:qname``; TTL = ``dns_valid_ttl`` if set, else the smallest TTL of the answer
  records owned by that name and type; the entry is evicted at TTL + ``dns_stale_ttl``;
* record types tried in ``dns_order`` (``LAST,SRV,A,CNAME``; LAST = the type that last worked
  for the name); a CNAME is dereferenced by resolving its target the same way;
* only answers whose type *and owner* match the query are stored under the key; the other
  records of the answer (the CNAME, the target's A records) are stored under their own keys;
* an expired entry is served at once (stale) while a background query refreshes it;
* a refresh that errors (SERVFAIL, timeout...) or comes back empty does not replace stale data;
  NXDOMAIN does (cached for ``dns_not_found_ttl``). Hence the A->CNAME hazard: after ``a`` turns
  into a CNAME, ``A:a`` refreshes come back "empty" and the old A records stay until eviction.

New client (``kong/dns/client.lua``, ``new_dns_client=on``, kong.md §1.3), one cache for all workers:

* queries A (then AAAA) and keeps every answer of the queried type whatever its owner, so the
  resolver's CNAME chain is followed implicitly; TTL = min over all answer records (CNAME
  included) unless ``resolver_valid_ttl``;
* errors and empty answers are cached for ``resolver_error_ttl``;
* an expired entry is served stale (up to ``resolver_stale_ttl``) while a background query runs,
  and only a successful, non-empty answer replaces it.

Not emulated: /etc/hosts, search domains and ndots, ``dns_no_sync``, LRU size limits, SRV
weights, AAAA in the legacy order, and the new client's 60 s re-query timer (each stale hit
starts at most one refresh instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

EntryKind = Literal["records", "empty", "nxdomain", "error"]


@dataclass(frozen=True)
class Record:
    """One answer record: owner, type, TTL and value (address, CNAME target, or SRV ``target:port``)."""

    owner: str
    type: str
    ttl: int
    value: str


@dataclass(frozen=True)
class Answer:
    """A nameserver's answer to one query."""

    kind: Literal["ok", "nxdomain", "error"]
    records: tuple[Record, ...] = ()
    error: str = ""


@dataclass
class CacheEntry:
    """One cache entry with its timing (monotonic seconds)."""

    kind: EntryKind
    records: tuple[Record, ...]
    ttl: float
    inserted: float
    evict_after: float
    """Seconds after expiry the entry is kept for stale serving."""
    error: str = ""

    @property
    def expires(self) -> float:
        """When the entry turns stale."""
        return self.inserted + self.ttl

    @property
    def evicts(self) -> float:
        """When the entry is dropped."""
        return self.expires + self.evict_after

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


@dataclass(frozen=True)
class Resolution:
    """What one lookup gave the balancer."""

    addresses: tuple[str, ...]
    port: int | None = None
    """Set by an SRV record."""
    chain: tuple[str, ...] = ()
    """Names followed (CNAME dereferences)."""
    stale: bool = False
    error: str = ""


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


def is_ip(host: str) -> bool:
    """True for an IPv4/IPv6 literal (no DNS needed)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class Nameserver:
    """Plain dnspython queries (recursion desired) to one server, translated to :class:`Answer`."""

    def __init__(self, host: str, port: int, timeout: float = 2.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.queries = 0

    async def query(self, name: str, qtype: str) -> Answer:
        """Ask the server; timeouts and refusals are errors, NXDOMAIN is its own kind."""
        self.queries += 1
        message = dns.message.make_query(dns.name.from_text(name), dns.rdatatype.from_text(qtype))
        try:
            response = await dns.asyncquery.udp(message, self.host, port=self.port, timeout=self.timeout)
            if response.flags & dns.flags.TC:
                response = await dns.asyncquery.tcp(message, self.host, port=self.port, timeout=self.timeout)
        except (dns.exception.DNSException, OSError) as exc:
            return Answer("error", error=f"dns server error: {type(exc).__name__}: {exc}")
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return Answer("nxdomain", error="dns server error: 3 name error")
        if rcode != dns.rcode.NOERROR:
            return Answer("error", error=f"dns server error: {rcode} {dns.rcode.to_text(rcode).lower()}")
        records = []
        for rrset in response.answer:
            rtype = dns.rdatatype.to_text(rrset.rdtype)
            for rdata in rrset:
                if rtype in ("A", "AAAA"):
                    value = rdata.address
                elif rtype == "CNAME":
                    value = _norm(rdata.target.to_text())
                elif rtype == "SRV":
                    value = f"{_norm(rdata.target.to_text())}:{rdata.port}"
                else:
                    continue
                records.append(Record(owner=_norm(rrset.name.to_text()), type=rtype, ttl=rrset.ttl, value=value))
        return Answer("ok", tuple(records))


@dataclass
class DnsSettings:
    """The emulated node's DNS configuration (Kong config keys, kong.md §1.1)."""

    new_dns_client: bool = False
    dns_valid_ttl: int | None = None
    dns_stale_ttl: int = 3600
    dns_not_found_ttl: int = 30
    dns_error_ttl: int = 1
    dns_order: tuple[str, ...] = ("LAST", "SRV", "A", "CNAME")
    resolver_valid_ttl: int | None = None
    resolver_stale_ttl: int = 3600
    resolver_error_ttl: int = 1
    resolver_family: tuple[str, ...] = ("A", "SRV")

    def update(self, changes: dict[str, Any]) -> None:
        """Apply Kong config keys; raises ValueError listing unknown keys or bad values."""
        problems = []
        for key, value in changes.items():
            if not hasattr(self, key):
                problems.append(f"{key}: unknown DNS setting")
                continue
            if key in ("dns_order", "resolver_family"):
                parts = value.split(",") if isinstance(value, str) else list(value)
                setattr(self, key, tuple(str(p).strip().upper() for p in parts))
            elif key == "new_dns_client":
                setattr(self, key, bool(value))
            elif value is None and key.endswith("valid_ttl"):
                setattr(self, key, None)
            elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                setattr(self, key, value)
            else:
                problems.append(f"{key}: expected a non-negative integer")
        if problems:
            raise ValueError("; ".join(problems))


async def _cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    for task in list(tasks):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@dataclass
class _Cache:
    entries: dict[str, CacheEntry] = field(default_factory=dict)
    last: dict[str, str] = field(default_factory=dict)
    refreshing: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    rotation: dict[str, int] = field(default_factory=dict)


class _CachingResolver:
    """What both DNS clients share: a nameserver, the settings, a clock and one cache."""

    def __init__(self, nameserver: Nameserver, settings: DnsSettings, clock: Callable[[], float]) -> None:
        self._ns, self._settings, self._clock = nameserver, settings, clock
        self._cache = _Cache()

    def reset(self) -> None:
        """Drop the cache, as ``kong reload`` or a restart does."""
        for task in self._cache.refreshing.values():
            task.cancel()
        self._cache = _Cache()

    async def close(self) -> None:
        """Cancel and await background refreshes."""
        await _cancel_all(self._cache.refreshing.values())

    def _described_entries(self) -> dict[str, Any]:
        now = self._clock()
        return {key: entry.describe(now) for key, entry in sorted(self._cache.entries.items())}


class LegacyResolver(_CachingResolver):
    """One nginx worker's legacy DNS client and cache."""

    def state(self) -> dict[str, Any]:
        """Cache contents for the emulator-control API."""
        return {
            "entries": self._described_entries(),
            "last": dict(self._cache.last),
        }

    def _entry(self, kind: EntryKind, records: tuple[Record, ...], error: str = "") -> CacheEntry:
        s = self._settings
        if kind == "records":
            ttl = float(s.dns_valid_ttl if s.dns_valid_ttl is not None else min(r.ttl for r in records))
        elif kind == "error":
            ttl = float(s.dns_error_ttl)
        else:
            ttl = float(s.dns_not_found_ttl)
        return CacheEntry(kind, records, ttl, self._clock(), float(s.dns_stale_ttl), error)

    def _insert(self, key: str, new: CacheEntry) -> None:
        """``cacheinsert``: errors and empty answers never replace a stale record (kong.md §1.2)."""
        old = self._cache.entries.get(key)
        if old is not None and old.kind == "records" and new.kind in ("error", "empty"):
            return
        self._cache.entries[key] = new

    async def _query_and_store(self, name: str, qtype: str) -> None:
        answer = await self._ns.query(name, qtype)
        key = f"{qtype}:{name}"
        if answer.kind == "nxdomain":
            self._insert(key, self._entry("nxdomain", (), answer.error))
            return
        if answer.kind == "error":
            self._insert(key, self._entry("error", (), answer.error))
            return
        groups: dict[tuple[str, str], list[Record]] = {}
        for record in answer.records:
            groups.setdefault((record.type, record.owner), []).append(record)
        for (rtype, owner), records in groups.items():
            if (rtype, owner) != (qtype, name):
                self._insert(f"{rtype}:{owner}", self._entry("records", tuple(records)))
        mine = tuple(groups.get((qtype, name), ()))
        self._insert(key, self._entry("records", mine) if mine else self._entry("empty", (), "empty record received"))

    def _refresh_in_background(self, name: str, qtype: str) -> None:
        key = f"{qtype}:{name}"
        running = self._cache.refreshing.get(key)
        if running is not None and not running.done():
            return
        task = asyncio.get_running_loop().create_task(self._query_and_store(name, qtype))
        self._cache.refreshing[key] = task
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _lookup(self, name: str, qtype: str) -> tuple[CacheEntry, bool]:
        key = f"{qtype}:{name}"
        now = self._clock()
        entry = self._cache.entries.get(key)
        if entry is not None and now >= entry.evicts:
            del self._cache.entries[key]
            entry = None
        if entry is None:
            await self._query_and_store(name, qtype)
            entry = self._cache.entries[key]
            return entry, False
        if now >= entry.expires:
            self._refresh_in_background(name, qtype)
            return entry, True
        return entry, False

    async def resolve(self, host: str) -> Resolution:
        """Resolve a host the way the legacy client's ``toip`` does."""
        name = _norm(host)
        if is_ip(name):
            return Resolution((name.strip("[]"),))
        chain: list[str] = []
        stale = False
        port: int | None = None
        for _ in range(10):
            order: list[str] = []
            for qtype in self._settings.dns_order:
                qtype = self._cache.last.get(name, "") if qtype == "LAST" else qtype
                if qtype in ("A", "AAAA", "SRV", "CNAME") and qtype not in order:
                    order.append(qtype)
            found: tuple[str, CacheEntry] | None = None
            error = "empty record received"
            for qtype in order:
                entry, was_stale = await self._lookup(name, qtype)
                if entry.kind == "records" and entry.records:
                    stale = stale or was_stale
                    found = (qtype, entry)
                    break
                if entry.error and entry.kind != "empty":
                    error = entry.error
            if found is None:
                return Resolution((), chain=tuple(chain), stale=stale, error=f"{name}: {error}")
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
            return Resolution(rotated, port=port, chain=tuple(chain), stale=stale)
        return Resolution((), chain=tuple(chain), stale=stale, error=f"{host}: CNAME chain too long")


class NewResolver(_CachingResolver):
    """The 3.8+ client: one cache shared by every worker (L1/L2 collapsed into one)."""

    def state(self) -> dict[str, Any]:
        """Cache contents for the emulator-control API."""
        return {"entries": self._described_entries()}

    def _entry_for(self, answer: Answer, qtype: str) -> CacheEntry:
        s = self._settings
        mine = tuple(r for r in answer.records if r.type == qtype)
        if answer.kind == "ok" and mine:
            ttl = s.resolver_valid_ttl if s.resolver_valid_ttl is not None else min(r.ttl for r in answer.records)
            return CacheEntry("records", mine, float(ttl), self._clock(), float(s.resolver_stale_ttl))
        kind: EntryKind = "nxdomain" if answer.kind == "nxdomain" else "error" if answer.kind == "error" else "empty"
        error = answer.error or "empty record received"
        return CacheEntry(kind, (), float(s.resolver_error_ttl), self._clock(), float(s.resolver_stale_ttl), error)

    async def _refresh(self, name: str, qtype: str) -> None:
        entry = self._entry_for(await self._ns.query(name, qtype), qtype)
        if entry.kind == "records":
            self._cache.entries[f"{name}:{qtype}"] = entry

    async def _lookup(self, name: str, qtype: str) -> tuple[CacheEntry, bool]:
        key = f"{name}:{qtype}"
        now = self._clock()
        entry = self._cache.entries.get(key)
        if entry is not None and now < entry.expires:
            return entry, False
        if entry is not None and now < entry.evicts:
            running = self._cache.refreshing.get(key)
            if running is None or running.done():
                task = asyncio.get_running_loop().create_task(self._refresh(name, qtype))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
                self._cache.refreshing[key] = task
            return entry, True
        entry = self._entry_for(await self._ns.query(name, qtype), qtype)
        self._cache.entries[key] = entry
        return entry, False

    async def resolve(self, host: str) -> Resolution:
        """Resolve A then AAAA (SRV for ``_svc._proto.name``); the server follows CNAMEs."""
        name = _norm(host)
        if is_ip(name):
            return Resolution((name.strip("[]"),))
        families = ("SRV",) if name.startswith("_") else ("A", "AAAA")
        error = "empty record received"
        for qtype in families:
            entry, stale = await self._lookup(name, qtype)
            if entry.kind == "records":
                if qtype == "SRV":
                    target, _, port = entry.records[0].value.rpartition(":")
                    inner = await self.resolve(target)
                    return Resolution(inner.addresses, int(port), (name, *inner.chain), stale or inner.stale)
                addresses = tuple(r.value for r in entry.records)
                turn = self._cache.rotation.get(name, 0)
                self._cache.rotation[name] = turn + 1
                rotated = addresses[turn % len(addresses) :] + addresses[: turn % len(addresses)]
                return Resolution(rotated, stale=stale)
            error = entry.error or error
        return Resolution((), error=f"{name}: {error}")


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
        """Clear every cache and rebuild for the current settings (like ``kong reload``)."""
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
