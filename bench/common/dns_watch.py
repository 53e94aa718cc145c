"""What the nameservers answer for a record during a run, watched from outside."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rdatatype

from bench.figures import Observation
from sandbox.load import require_loopback


def describe_answer(response: dns.message.Message, name: str) -> tuple[str, int | None]:
    """The record's own RRset in an answer as ``("A 127.0.0.2", ttl)``; ``("none", None)`` if absent."""
    owner = dns.name.from_text(name)
    for rrset in response.answer:
        if rrset.name == owner:
            data = " ".join(sorted(rdata.to_text() for rdata in rrset))
            return f"{dns.rdatatype.to_text(rrset.rdtype)} {data}", int(rrset.ttl)
    return "none", None


def resolved_addresses(response: dns.message.Message, name: str) -> str:
    """The A addresses ``name`` resolves to within one answer, CNAMEs followed (``""`` when none)."""
    current = dns.name.from_text(name)
    for _ in range(10):
        rrsets = [rrset for rrset in response.answer if rrset.name == current]
        addresses = sorted(r.to_text() for rrset in rrsets if rrset.rdtype == dns.rdatatype.A for r in rrset)
        if addresses:
            return " ".join(addresses)
        targets = [r.target for rrset in rrsets if rrset.rdtype == dns.rdatatype.CNAME for r in rrset]
        if not targets:
            return ""
        current = targets[0]
    return ""


@dataclass
class DnsWatcher:
    """Ask every nameserver for one name every ``every`` seconds and keep each answer with its time.

    The benchmark's own view of the outside world: when a record *really* changed on each
    authoritative server, independent of what the workflow reports.
    """

    servers: Sequence[str]
    """``host:port`` of each nameserver (127.0.0.0/8)."""
    name: str
    every: float = 0.02
    observations: list[Observation] = field(default_factory=list)
    errors: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def __aenter__(self) -> DnsWatcher:
        loop = asyncio.get_running_loop()
        for server in self.servers:
            require_loopback(f"http://{server}/")
            self._tasks.append(loop.create_task(self._watch(server)))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _watch(self, server: str) -> None:
        host, _, port = server.rpartition(":")
        while True:
            query = dns.message.make_query(self.name, "A")
            try:
                response = await dns.asyncquery.udp(query, host, port=int(port), timeout=0.5)
            except (dns.exception.DNSException, OSError):
                self.errors += 1
            else:
                answer, ttl = describe_answer(response, self.name)
                addresses = resolved_addresses(response, self.name)
                self.observations.append(Observation(time.time(), server, answer, ttl, addresses))
            await asyncio.sleep(self.every)
