"""Kong's new DNS client (``kong/dns/client.lua``, ``new_dns_client = on``), one cache per node.

The rules, with the lines of ``../shared/kong-lua/kong/dns/client.lua`` (and of Kong's mlcache,
``kong/resty/mlcache/init.lua``) they come from:

* one entry per ``name:A/AAAA`` (or ``name:SRV`` for ``_svc._proto`` names); A is asked, then AAAA
  only if ``resolver_family`` holds it (default ``A,SRV``: never AAAA) (141-158, 472-494);
* every answer record of the asked type is kept whatever its owner, so the resolver's CNAME chain
  is followed implicitly; TTL = ``resolver_valid_ttl`` or the smallest TTL of the whole answer, CNAME
  records included (290-337). A TTL of 0 is mlcache's "never expires" (mlcache 343-346, 387-389):
  such an answer is kept for good;
* NXDOMAIN, rcode errors and empty answers are cached ``resolver_error_ttl`` (290-295, 326-329) and
  are never served stale (562); a query without answer is not cached at all (420-429, mlcache 674-713);
* an expired answer is served stale while a background query refreshes it, until its expiry +
  ``resolver_stale_ttl`` (562-582). The stale answer is cached again for min(stale time left, 60 s):
  when the refresh fails, nothing asks again for that long (570-581, 497-511);
* the cache is a shared dict with an LRU list: a read of an expired entry (``get_stale``) moves it to
  the front, and every write first frees up to two *expired* entries at the LRU tail, stopping at a
  live or never-expiring one (lua-nginx-module ``ngx_http_lua_ffi_shdict_store`` ->
  ``ngx_http_lua_shdict_expire(ctx, 1)``). So on a node that resolves other names, an idle name's
  expired entry disappears and its next lookup queries afresh; on a quiet node it is served stale.
  A fresh entry is answered by the worker's L1 lrucache without touching the shared dict.

Not emulated: /etc/hosts, search domains, per-worker L1 caches (one L1 for the node), SRV weights.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from sandbox.kong.dns_base import ERR_EMPTY, DnsSettings, Nameserver, Record, Resolution, is_ip, norm

STALE_RECHECK = 60
"""Seconds a stale answer is cached again after being served (kong/dns/client.lua:570)."""


@dataclass(frozen=True)
class Value:
    """What the new client stores for a key: records, or an error answer."""

    kind: Literal["records", "error"]
    records: tuple[Record, ...]
    ttl: float
    expire: float
    """``answers.expire``: when the answer turns stale."""
    error: str = ""
    expire_at: float | None = None
    """``answers._expire_at``: the end of stale serving, set when first served stale."""


@dataclass
class _Slot:
    value: Value
    shm_expires: float | None
    """None: no expiry (TTL 0)."""


class NewResolver:
    """The 3.8+ client: one cache shared by every worker of the node."""

    def __init__(self, nameserver: Nameserver, settings: DnsSettings, clock: Callable[[], float]) -> None:
        self._ns, self._settings, self._clock = nameserver, settings, clock
        self._shm: OrderedDict[str, _Slot] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._rotation: dict[str, int] = {}

    def reset(self) -> None:
        """Empty the shared dict (a restart; ``kong reload`` keeps it)."""
        for task in self._tasks:
            task.cancel()
        self._shm.clear()
        self._rotation.clear()

    async def close(self) -> None:
        """Cancel and await background refreshes."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def state(self) -> dict[str, Any]:
        """Cache contents for the emulator-control API, in LRU order (least recently used first)."""
        now = self._clock()
        entries = {}
        for key, slot in self._shm.items():
            v = slot.value
            entries[key] = {
                "kind": v.kind,
                "records": [r.value for r in v.records],
                "ttl": v.ttl,
                "expires_in": None if slot.shm_expires is None else round(slot.shm_expires - now, 3),
                "stale": slot.shm_expires is not None and now >= slot.shm_expires,
                "error": v.error or None,
            }
        return {"entries": entries}

    # -- the shared dict --

    def _fresh(self, slot: _Slot, now: float) -> bool:
        return slot.shm_expires is None or now < slot.shm_expires

    def _set(self, key: str, value: Value, ttl: float) -> None:
        """``shdict:set``: free up to two expired LRU-tail entries first, then store at the front."""
        now = self._clock()
        for _ in range(2):
            if not self._shm:
                break
            tail_key, tail = next(iter(self._shm.items()))
            if tail.shm_expires is None or tail.shm_expires > now:
                break
            del self._shm[tail_key]
        self._shm[key] = _Slot(value, None if ttl == 0 else now + ttl)
        self._shm.move_to_end(key)

    def _get_stale(self, key: str) -> _Slot | None:
        slot = self._shm.get(key)
        if slot is not None:
            self._shm.move_to_end(key)
        return slot

    # -- queries --

    def _process(self, records: tuple[Record, ...], qtype: str) -> Value:
        """``process_answers``: keep the asked type whatever the owner; TTL over the whole answer."""
        s = self._settings
        now = self._clock()
        mine = tuple(r for r in records if r.type == qtype)
        if not mine:
            return self._error(ERR_EMPTY)
        ttl = float(s.resolver_valid_ttl if s.resolver_valid_ttl is not None else min(r.ttl for r in records))
        return Value("records", mine, ttl, now + ttl)

    def _error(self, error: str) -> Value:
        ttl = float(self._settings.resolver_error_ttl)
        return Value("error", (), ttl, self._clock() + ttl, error)

    async def _query(self, name: str, qtype: str) -> tuple[Value | None, str]:
        started = time.monotonic()
        answer = await self._ns.query(name, qtype)
        if answer.kind == "unreachable":
            took = int((time.monotonic() - started) * 1000)
            return None, f"DNS server error: {answer.error}, took {took} ms"
        if answer.kind != "ok":
            return self._error(answer.error), ""
        return self._process(answer.records, qtype), ""

    async def _query_types(self, name: str, qtype: str) -> tuple[Value | None, str]:
        """``resolve_query_types``: A, then AAAA if enabled; a query without answer stops there."""
        if qtype == "SRV":
            return await self._query(name, "SRV")
        family = self._settings.resolver_family
        result: tuple[Value | None, str] = (None, "no address family enabled in resolver_family")
        for wanted in ("A", "AAAA"):
            if wanted not in family:
                continue
            result = await self._query(name, wanted)
            if result[0] is None or result[0].kind == "records":
                return result
        return result

    async def _refresh(self, name: str, qtype: str, key: str) -> None:
        """``stale_update_task``: only a successful answer replaces the stale one."""
        value, _ = await self._query_types(name, qtype)
        if value is not None and value.kind == "records":
            self._set(key, value, value.ttl)

    def _start_refresh(self, name: str, qtype: str, key: str) -> None:
        task = asyncio.get_running_loop().create_task(self._refresh(name, qtype, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lookup(self, name: str, qtype: str) -> tuple[Value | None, bool, str]:
        """The mlcache ``get`` with ``resolve_callback``: (value, served stale, error without answer)."""
        key = f"{name}:{qtype}"
        slot = self._shm.get(key)
        if slot is not None and self._fresh(slot, self._clock()):
            return slot.value, False, ""  # L1 hit: the shared dict is not touched
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            slot = self._get_stale(key)
            now = self._clock()
            if slot is not None and self._fresh(slot, now):
                return slot.value, False, ""  # another request filled it meanwhile
            held = slot.value if slot is not None else None
            if held is not None and held.kind == "records":
                expire_at = held.expire_at
                if expire_at is None:
                    expire_at = held.expire + self._settings.resolver_stale_ttl
                remaining = min(expire_at - now, STALE_RECHECK)
                if remaining > 0:
                    self._start_refresh(name, qtype, key)
                    stale = replace(held, ttl=remaining, expire=now + remaining, expire_at=expire_at)
                    self._set(key, stale, remaining)
                    return stale, True, ""
            value, error = await self._query_types(name, qtype)
            if value is None:
                return None, False, error
            self._set(key, value, value.ttl)
            return value, False, ""

    async def resolve(self, host: str) -> Resolution:
        """``resolve_address``: A/AAAA (SRV for ``_svc._proto.name``); the server follows CNAMEs."""
        name = norm(host)
        if is_ip(name):
            return Resolution((name.strip("[]"),))
        qtype = "SRV" if name.startswith("_") and "SRV" in self._settings.resolver_family else "A/AAAA"
        value, stale, failure = await self._lookup(name, qtype)
        if value is None:
            return Resolution((), error=failure)
        if value.kind == "error":
            return Resolution((), error=value.error)
        if qtype == "SRV":
            target, _, port = value.records[0].value.rpartition(":")
            inner = await self.resolve(target)
            return replace(inner, port=int(port), chain=(name, *inner.chain), stale=stale or inner.stale)
        addresses = tuple(r.value for r in value.records)
        turn = self._rotation.get(name, 0)
        self._rotation[name] = turn + 1
        rotated = addresses[turn % len(addresses) :] + addresses[: turn % len(addresses)]
        return Resolution(rotated, stale=stale, expires=None if value.ttl == 0 else value.expire)
