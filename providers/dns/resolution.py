"""Resolve names the way Kong will: inside the zone at its own nameservers, outside through the system resolver."""

from __future__ import annotations

from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

from models.dns import AddressMap
from providers.dns.discovery import system_resolver
from providers.dns.nameservers import (
    MAX_CNAME_CHAIN,
    Nameserver,
    authoritative_query,
    canonical_name,
    owned_rrsets,
)
from providers.errors import DnsUnavailable


async def _first_answer(
    servers: Sequence[Nameserver], qname: str, rdtype: str, *, timeout: float
) -> dns.message.Message:
    problems = []
    for server in servers:
        try:
            return await authoritative_query(server, qname, rdtype, timeout=timeout)
        except DnsUnavailable as exc:
            problems.append(str(exc))
    raise DnsUnavailable(f"no authoritative server answered {qname} {rdtype}: {'; '.join(problems)}")


async def _resolve_in_zone(name: str, servers: Sequence[Nameserver], *, timeout: float) -> tuple[str | None, list[str]]:
    """(CNAME target, []) or (None, addresses) for a name inside the zone."""
    owner = dns.name.from_text(name)
    addresses: list[str] = []
    for rdtype in ("A", "AAAA"):
        response = await _first_answer(servers, name, rdtype, timeout=timeout)
        for rrset in owned_rrsets(response, owner):
            if rrset.type == "CNAME":
                return rrset.rdatas[0], []
            if rrset.type == rdtype:
                addresses.extend(rrset.rdatas)
    return None, addresses


async def _resolve_outside(name: str, resolver: dns.asyncresolver.Resolver) -> tuple[list[str], list[str]]:
    """(CNAME chain, addresses) from the recursive resolver for a name outside the zone."""
    chain: list[str] = []
    addresses: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return chain, addresses
        except dns.exception.DNSException as exc:
            raise DnsUnavailable(f"the resolver could not resolve {name} {rdtype} ({exc})") from exc
        if rdtype == "A":
            for rrset in answer.response.answer:
                if rrset.rdtype == dns.rdatatype.CNAME:
                    chain.extend(rd.target.to_text().lower() for rd in rrset)
        if answer.rrset is not None:
            addresses.extend(rd.to_text() for rd in answer.rrset)
    return chain, addresses


async def resolve_names(
    names: Sequence[str],
    zone: str,
    servers: Sequence[Nameserver],
    *,
    resolver: dns.asyncresolver.Resolver | None,
    timeout: float,
) -> AddressMap:
    """Follow CNAMEs from each name to addresses: in-zone names at the authoritative servers, others recursively.

    ``chains[name]`` lists the CNAME targets followed in order (empty when the name holds addresses).
    A name that does not exist maps to no addresses.
    """
    zone_name = dns.name.from_text(zone)
    addresses: dict[str, tuple[str, ...]] = {}
    chains: dict[str, tuple[str, ...]] = {}
    for original in names:
        name = canonical_name(original)
        current = name
        chain: list[str] = []
        found: list[str] = []
        for _ in range(MAX_CNAME_CHAIN):
            if dns.name.from_text(current).is_subdomain(zone_name):
                target, found = await _resolve_in_zone(current, servers, timeout=timeout)
                if target is None:
                    break
                if target in chain or target == name:
                    found = []
                    break
                chain.append(target)
                current = target
            else:
                outside_chain, found = await _resolve_outside(current, resolver or system_resolver())
                chain.extend(outside_chain)
                break
        addresses[name] = tuple(sorted(set(found)))
        chains[name] = tuple(chain)
    return AddressMap(addresses=addresses, chains=chains)
