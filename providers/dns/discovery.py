"""Where a zone's authoritative servers are: the plan's ``host:port`` list, or the zone's NS set and its glue.

Kept apart from the queries themselves (providers/dns/nameservers.py): finding the servers uses the
worker's recursive resolver for names outside the zone, reading them never does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from models.names import is_ip, split_host_port
from providers.dns.nameservers import Nameserver, TsigKey, authoritative_query, canonical_name, owned_rrsets
from providers.errors import DnsError, DnsRefused, DnsUnavailable


def system_resolver() -> dns.asyncresolver.Resolver:
    """The worker's resolver (``/etc/resolv.conf``), or DnsUnavailable when it has none."""
    try:
        return dns.asyncresolver.Resolver()
    except dns.resolver.NoResolverConfiguration as exc:
        raise DnsUnavailable(f"the worker has no DNS resolver configured ({exc})") from exc


async def host_addresses(host: str, resolver: dns.asyncresolver.Resolver | None) -> list[str]:
    """IP addresses of a configured server host: the host itself when it is an address.

    Raises:
        DnsUnavailable: the name does not resolve (retrying may help once DNS recovers).
    """
    if is_ip(host):
        return [host]
    resolver = resolver or system_resolver()
    addresses: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(host, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            break
        except dns.exception.DNSException as exc:
            raise DnsUnavailable(f"could not resolve nameserver host {host} ({exc})") from exc
        if answer.rrset is not None:
            addresses.extend(rd.to_text() for rd in answer.rrset)
    if not addresses:
        raise DnsUnavailable(f"nameserver host {host} has no A or AAAA address")
    return addresses


async def configured_nameservers(
    entries: Sequence[str], resolver: dns.asyncresolver.Resolver | None
) -> list[Nameserver]:
    """``host:port`` entries of the plan as addresses (a host name yields one server per address)."""
    servers: list[Nameserver] = []
    for entry in entries:
        host, port = split_host_port(entry, 53)
        for address in await host_addresses(host, resolver):
            servers.append(Nameserver(address, port, None if is_ip(host) else canonical_name(host)))
    return _unique(servers)


def _unique(servers: Iterable[Nameserver]) -> list[Nameserver]:
    seen: set[tuple[str, int]] = set()
    unique = []
    for server in servers:
        if (server.host, server.port) not in seen:
            seen.add((server.host, server.port))
            unique.append(server)
    return unique


async def zone_ns_names(primary: Nameserver, zone: str, *, timeout: float, tsig: TsigKey | None = None) -> list[str]:
    """The zone's NS set as the primary holds it."""
    response = await authoritative_query(primary, zone, "NS", timeout=timeout, tsig=tsig)
    names: list[str] = []
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.NS and rrset.name == dns.name.from_text(zone):
            names.extend(rd.target.to_text().lower() for rd in rrset)
    if not names:
        raise DnsRefused(f"{primary.label} has no NS records for {zone}")
    return sorted(names)


async def nameserver_addresses(
    ns_names: Sequence[str],
    zone: str,
    *,
    primary: Nameserver | None,
    resolver: dns.asyncresolver.Resolver | None,
    timeout: float,
    port: int = 53,
    tsig: TsigKey | None = None,
) -> list[Nameserver]:
    """Addresses of NS names: in-zone names from the primary (its glue), others from the resolver.

    Raises:
        DnsUnavailable: no NS name resolved to any address.
    """
    zone_name = dns.name.from_text(zone)
    servers: list[Nameserver] = []
    problems: list[str] = []
    for ns_name in ns_names:
        addresses: list[str] = []
        try:
            if primary is not None and dns.name.from_text(ns_name).is_subdomain(zone_name):
                for rdtype in ("A", "AAAA"):
                    response = await authoritative_query(primary, ns_name, rdtype, timeout=timeout, tsig=tsig)
                    for rrset in owned_rrsets(response, dns.name.from_text(ns_name)):
                        if rrset.type == rdtype:
                            addresses.extend(rrset.rdatas)
            else:
                addresses = await host_addresses(ns_name, resolver)
        except DnsError as exc:
            problems.append(f"{ns_name}: {exc}")
            continue
        if not addresses:
            problems.append(f"{ns_name}: no A or AAAA address")
        servers.extend(Nameserver(address, port, ns_name) for address in addresses)
    if not servers:
        raise DnsUnavailable(f"no address for any nameserver of {zone}: {'; '.join(problems)}")
    return _unique(servers)
