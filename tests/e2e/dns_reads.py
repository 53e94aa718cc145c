"""DNS as the end-to-end tests read it: plain dnspython queries (RD=0) to each nameserver."""

from __future__ import annotations

from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update

from sandbox.topology import TSIG_KEY_NAME, Topology
from tests.e2e.lanes import ZONE_ORIGIN


@dataclass(frozen=True)
class Rrset:
    """One rrset owned by the queried name, as a nameserver answers it."""

    type: str
    ttl: int
    rdatas: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.ttl} {self.type} {' '.join(self.rdatas)}"


def a_record(address: str, ttl: int) -> tuple[Rrset, ...]:
    """The expected answer for a name holding one A record."""
    return (Rrset("A", ttl, (address,)),)


def cname_record(target: str, ttl: int) -> tuple[Rrset, ...]:
    """The expected answer for a name holding a CNAME."""
    return (Rrset("CNAME", ttl, (target,)),)


def _split(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host, int(port)


def _ask(server: str, name: str, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    query.flags &= ~dns.flags.RD
    host, port = _split(server)
    response = dns.query.udp(query, host, port=port, timeout=2)
    assert response.flags & dns.flags.AA, f"{server} is not authoritative for {name}: {response}"
    return response


def read_name(server: str, name: str) -> tuple[Rrset, ...]:
    """The A or CNAME data ``server`` holds at ``name`` (an A query returns the CNAME when there is one)."""
    response = _ask(server, name, dns.rdatatype.A)
    if response.rcode() == dns.rcode.NXDOMAIN:
        return ()
    owner = dns.name.from_text(name)
    return tuple(
        sorted(
            (
                Rrset(dns.rdatatype.to_text(rrset.rdtype), rrset.ttl, tuple(sorted(r.to_text() for r in rrset)))
                for rrset in response.answer
                if rrset.name == owner
            ),
            key=lambda r: r.type,
        )
    )


def read_serial(server: str) -> int:
    """The zone's SOA serial at ``server``."""
    response = _ask(server, ZONE_ORIGIN, dns.rdatatype.SOA)
    return int(response.answer[0][0].serial)


@dataclass(frozen=True)
class DnsView:
    """One name and the zone serial as both nameservers answer them right now."""

    name: str
    primary: tuple[Rrset, ...]
    secondary: tuple[Rrset, ...]
    primary_serial: int
    secondary_serial: int

    def __str__(self) -> str:
        def text(rrsets: tuple[Rrset, ...]) -> str:
            return "; ".join(map(str, rrsets)) or "(nothing)"

        return (
            f"{self.name}: primary [{text(self.primary)}] serial {self.primary_serial}, "
            f"secondary [{text(self.secondary)}] serial {self.secondary_serial}"
        )


def dns_view(topo: Topology, name: str) -> DnsView:
    """Read ``name`` and the serial on the primary and the secondary."""
    primary, secondary = topo.nameservers
    return DnsView(
        name=name,
        primary=read_name(primary, name),
        secondary=read_name(secondary, name),
        primary_serial=read_serial(primary),
        secondary_serial=read_serial(secondary),
    )


def assert_on_both(view: DnsView, expected: tuple[Rrset, ...], serial: int | None = None) -> None:
    """Both nameservers hold ``expected`` at the name (TTL included), at the same serial (``serial`` if given)."""
    assert view.primary == expected and view.secondary == expected, f"expected {expected}; {view}"
    assert view.primary_serial == view.secondary_serial, f"the nameservers disagree on the serial: {view}"
    if serial is not None:
        assert view.primary_serial == serial, f"expected serial {serial}: {view}"


def signed_replace(topo: Topology, name: str, new: Rrset) -> int:
    """An outside edit: replace every A/CNAME at ``name`` with ``new`` by a TSIG-signed UPDATE; the rcode."""
    keyring = dns.tsigkeyring.from_text({TSIG_KEY_NAME: topo.tsig_secret})
    update = dns.update.UpdateMessage(
        ZONE_ORIGIN, keyring=keyring, keyname=dns.name.from_text(TSIG_KEY_NAME), keyalgorithm="hmac-sha256"
    )
    update.delete(name, "A")
    update.delete(name, "CNAME")
    update.add(name, new.ttl, new.type, *new.rdatas)
    host, port = _split(topo.nameservers[0])
    return int(dns.query.tcp(update, host, port=port, timeout=3).rcode())
