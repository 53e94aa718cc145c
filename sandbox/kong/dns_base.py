"""What both emulated DNS clients share: records, answers, the nameserver, the settings, Kong's error strings.

Every rule here is checked against Kong's own code in ``../shared/kong-lua`` (Kong commit in its README) and
against Kong's real client by ``tests/kong_conformance/``; file:line references are to that tree.
"""

from __future__ import annotations

import ipaddress
import math
import socket
from dataclasses import dataclass
from typing import Any, Literal

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

ERR_NXDOMAIN = "dns server error: 3 name error"
"""Both clients' text for NXDOMAIN (kong/resty/dns/client.lua:1268, kong/dns/client.lua:639-642)."""
ERR_EMPTY = "dns client error: 101 empty record received"
"""Both clients' text for an answer without a record of the asked type (client.lua:1272, dns/client.lua:78-79)."""
RCODE_TEXT = {1: "format error", 2: "server failure", 3: "name error", 4: "not implemented", 5: "refused"}
"""lua-resty-dns's ``resolver_errstrs`` (resty/dns/resolver.lua), which both clients put after the code."""


def balancer_status(error: str) -> int:
    """The status Kong's balancer answers for a failed lookup.

    kong/runloop/balancer/init.lua:383-391: NXDOMAIN and "empty record" are 503 "name resolution
    failed"; every other DNS failure (a server error, a refused or timed-out query) is a 500.
    """
    return 503 if error in (ERR_NXDOMAIN, ERR_EMPTY) else 500


@dataclass(frozen=True)
class Record:
    """One answer record: owner, type, TTL and value (address, CNAME target, or SRV ``target:port``)."""

    owner: str
    type: str
    ttl: int
    value: str


@dataclass(frozen=True)
class Answer:
    """A nameserver's answer to one query.

    ``rcode`` is an error rcode other than NXDOMAIN (cacheable by the legacy client); ``unreachable``
    means no answer at all (refused, timed out): neither client caches that.
    """

    kind: Literal["ok", "nxdomain", "rcode", "unreachable"]
    records: tuple[Record, ...] = ()
    error: str = ""
    """For ``rcode``: ``dns server error: 2 server failure``; for ``unreachable``: lua-resty-dns's reason."""


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
    """Kong's own error text (``dns server error: 3 name error``, ...)."""
    expires: float | None = None
    """When the address entry turns stale (clock seconds; None: never). The balancer renews targets then."""

    @property
    def status(self) -> int | None:
        """Kong's balancer answer for a failed lookup (503 or 500), None when it resolved."""
        return None if self.addresses else balancer_status(self.error)


def norm(name: str) -> str:
    """Lower-case, without the trailing dot (both clients compare names that way)."""
    return name.rstrip(".").lower()


def is_ip(host: str) -> bool:
    """True for an IPv4/IPv6 literal (no DNS needed)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _parse(response: dns.message.Message) -> Answer:
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return Answer("nxdomain", error=ERR_NXDOMAIN)
    if rcode != dns.rcode.NOERROR:
        return Answer("rcode", error=f"dns server error: {rcode} {RCODE_TEXT.get(rcode, 'unknown')}")
    records = []
    for rrset in response.answer:
        rtype = dns.rdatatype.to_text(rrset.rdtype)
        for rdata in rrset:
            if rtype in ("A", "AAAA"):
                value = rdata.address
            elif rtype == "CNAME":
                value = norm(rdata.target.to_text())
            elif rtype == "SRV":
                value = f"{norm(rdata.target.to_text())}:{rdata.port}"
            else:
                continue
            records.append(Record(owner=norm(rrset.name.to_text()), type=rtype, ttl=rrset.ttl, value=value))
    return Answer("ok", tuple(records))


class Nameserver:
    """Queries to one server the way lua-resty-dns makes them.

    A connected UDP socket, so that a server that is gone answers "connection refused" at once
    (the ICMP error), as Kong sees it; ``retrans`` tries of ``timeout`` seconds each (Kong takes both
    from resolv.conf, default 5 and 2 s: kong/resty/dns/client.lua:627-648, kong/dns/client.lua:187-189);
    TCP on truncation.
    """

    def __init__(self, host: str, port: int, timeout: float = 2.0, retrans: int = 5) -> None:
        self.host, self.port, self.timeout, self.retrans = host, port, timeout, max(1, retrans)
        self.queries = 0

    async def _once(self, message: dns.message.Message) -> dns.message.Message:
        backend = dns.asyncbackend.get_default_backend()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = await backend.make_socket(family, socket.SOCK_DGRAM, 0, None, (self.host, self.port))  # type: ignore[no-untyped-call]
        try:
            return await dns.asyncquery.udp(message, self.host, port=self.port, timeout=self.timeout, sock=sock)
        finally:
            await sock.close()

    async def query(self, name: str, qtype: str) -> Answer:
        """Ask the server; no answer after every try is ``unreachable`` with lua-resty-dns's reason."""
        self.queries += 1
        message = dns.message.make_query(dns.name.from_text(name), dns.rdatatype.from_text(qtype))
        reason = "timeout"
        for _ in range(self.retrans):
            try:
                response = await self._once(message)
                if response.flags & dns.flags.TC:
                    response = await dns.asyncquery.tcp(message, self.host, port=self.port, timeout=self.timeout)
                return _parse(response)
            except ConnectionRefusedError:
                reason = "connection refused"
            except (dns.exception.Timeout, TimeoutError):
                reason = "timeout"
            except (dns.exception.DNSException, OSError) as exc:
                reason = type(exc).__name__
        return Answer("unreachable", error=f"failed to receive reply from UDP server {self.host}:{self.port}: {reason}")


Number = int | float


def _seconds(value: Any, key: str) -> Number:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or not math.isfinite(value):
        raise ValueError(f"{key}: expected a non-negative number")
    return value


@dataclass
class DnsSettings:
    """The emulated node's DNS configuration (Kong config keys, kong.md §1.1); seconds may be fractional."""

    new_dns_client: bool = False
    dns_valid_ttl: Number | None = None
    dns_stale_ttl: Number = 3600
    dns_not_found_ttl: Number = 30
    dns_error_ttl: Number = 1
    dns_order: tuple[str, ...] = ("LAST", "SRV", "A", "CNAME")
    resolver_valid_ttl: Number | None = None
    resolver_stale_ttl: Number = 3600
    resolver_error_ttl: Number = 1
    resolver_family: tuple[str, ...] = ("A", "SRV")

    def update(self, changes: dict[str, Any]) -> None:
        """Apply Kong config keys; raises ValueError listing unknown keys or bad values."""
        problems = []
        for key, value in changes.items():
            if not hasattr(self, key):
                problems.append(f"{key}: unknown DNS setting")
                continue
            try:
                if key in ("dns_order", "resolver_family"):
                    parts = value.split(",") if isinstance(value, str) else list(value)
                    setattr(self, key, tuple(str(p).strip().upper() for p in parts))
                elif key == "new_dns_client":
                    setattr(self, key, bool(value))
                elif value is None and key.endswith("valid_ttl"):
                    setattr(self, key, None)
                else:
                    setattr(self, key, _seconds(value, key))
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
