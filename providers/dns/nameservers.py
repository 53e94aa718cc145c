"""Ask authoritative nameservers directly: what they hold at a name, at which serial, and whether they agree.

Everything here talks plain DNS (dnspython), the same for every provider: a Cloud DNS change in status
``done`` and a NOERROR from a BIND primary only mean the change was *sent*; the proof that resolvers
can see it is every authoritative server answering it, asked without recursion (RD=0), with the AA
flag, at a serial at least as new as the change (RFC 1982 arithmetic, ``dns.serial.Serial``).

Reading "every type at a name": qtype ANY may be answered minimally (RFC 8482: one rrset, or a
synthesised HINFO), so it is only a hint that can *add* types, never replace a query. The name is read
with one query each for A and AAAA (a CNAME at the name comes back in either answer, RFC 1034 4.3.2),
for the types the caller compares (the desired rrsets of a propagation proof, the provider's rrsets of
a snapshot, a change's types), and for every type the ANY answer reveals, bracketed by two SOA
queries; when the serial moved between them the read is repeated, so the result is one consistent
version of the zone; in a zone that keeps changing elsewhere, two reads in a row that found the same
content at the name are that content, with the first read's opening serial as a lower bound.
That is about five queries per server per read, not one per known type: authoritative servers with
response-rate-limiting drop repeated empty answers. This needs nothing but query access, which every
authoritative server gives (a zone transfer would need a transfer ACL, a stronger privilege than
cutover's least-privilege update key), and it works the same on a primary, a secondary or a Cloud DNS
nameserver. The queries of one read share one UDP socket, and those that may go together are sent
together (providers/dns/exchange.py); the first failing answer ends the read.
Where the servers are (the plan's list, the zone's NS set) is providers/dns/discovery.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import dns.asyncquery
import dns.asyncresolver
import dns.entropy
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import dns.serial
import dns.tsig

from models.dns import NameserverState, RRset
from providers.dns.exchange import Check, QueryFailed, Session, unsigned_query
from providers.errors import DnsAuthError, DnsError, DnsRefused, DnsUnavailable

QUERY_TYPES: tuple[str, ...] = (
    "A",
    "AAAA",
    "CNAME",
    "DNAME",
    "TXT",
    "MX",
    "NS",
    "SOA",
    "SRV",
    "CAA",
    "PTR",
    "HINFO",
    "NAPTR",
    "SSHFP",
    "TLSA",
    "SVCB",
    "HTTPS",
    "DS",
    "LOC",
    "RP",
    "URI",
    "CERT",
    "SPF",
)
"""Types a record that cutover moves may carry beside it: the RFC 2136 provider's ``absent``
prerequisites when it writes a CNAME (the server checks them, so none are queried for that)."""

ALWAYS_READ: tuple[str, ...] = ("A", "AAAA")
"""Types queried at every read, whatever ANY answers: the data a cutover moves. A CNAME at the name
needs no query of its own: an authoritative server puts it in the answer to either (RFC 1034 4.3.2)."""

ANSWERED_BY_ADDRESS_QUERIES = frozenset({"CNAME"})
"""Types the ``ALWAYS_READ`` queries already return at the name; never queried separately."""

IGNORED_TYPES = frozenset({"RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "DNSKEY", "CDS", "CDNSKEY", "TYPE0"})
"""DNSSEC bookkeeping that signers maintain themselves; never part of a change or a comparison."""

MAX_CNAME_CHAIN = 16

T = TypeVar("T")


# --- rrset text -----------------------------------------------------------------------------------


CACHED_RDATA_TEXT = 512
"""Longer record text (a TXT record's data can be near 64 KiB) is canonicalised afresh: the cache stays small."""


def canonical_rdata(rdtype: str, text: str) -> str:
    """RFC 1035 text of one record in canonical form: names lower-cased and absolute, numbers normalised.

    Comparing rrsets as text only works when both sides spell records the same way; the canonical wire
    form (RFC 4034 §6.2) lower-cases embedded names, so ``B-Project.Example.test.`` and
    ``b-project.example.test.`` compare equal, while TXT strings keep their case. Remembered for
    short records (a pure function of its arguments): every read and every poll canonicalises the
    same few records again.

    Raises:
        ValueError: when the text is not valid data for the type.
    """
    if len(text) > CACHED_RDATA_TEXT:
        return _canonical_rdata(rdtype, text)
    return _remembered_rdata(rdtype, text)


def _canonical_rdata(rdtype: str, text: str) -> str:
    try:
        rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=dns.name.root, relativize=False)
        wire = rdata.to_digestable(dns.name.root)
        return dns.rdata.from_wire(dns.rdataclass.IN, rdata.rdtype, wire, 0, len(wire)).to_text()
    except dns.exception.DNSException as exc:
        raise ValueError(f"{text!r} is not valid {rdtype} data ({exc})") from exc


_remembered_rdata = functools.lru_cache(maxsize=8192)(_canonical_rdata)


@functools.lru_cache(maxsize=8192)
def canonical_name(name: str) -> str:
    """Absolute, lower-case owner name with its trailing dot (remembered, as :func:`canonical_rdata`)."""
    return dns.name.from_text(name).to_text().lower()


def canonical_rrset(rrset: RRset) -> RRset:
    """The same rrset with canonical owner name and record text."""
    return RRset(
        name=canonical_name(rrset.name),
        type=rrset.type,
        ttl=rrset.ttl,
        rdatas=tuple(canonical_rdata(rrset.type, text) for text in rrset.rdatas),
    )


def rrset_from_dns(rrset: dns.rrset.RRset) -> RRset:
    """Convert a dnspython rrset (from an answer) into the model."""
    return RRset(
        name=rrset.name.to_text().lower(),
        type=dns.rdatatype.to_text(rrset.rdtype),
        ttl=rrset.ttl,
        rdatas=tuple(canonical_rdata(dns.rdatatype.to_text(rrset.rdtype), rd.to_text()) for rd in rrset),
    )


def sorted_rrsets(rrsets: Iterable[RRset]) -> tuple[RRset, ...]:
    """Rrsets in a stable order (by type), so that equal contents compare equal as tuples."""
    return tuple(sorted(rrsets, key=lambda r: (r.name, r.type)))


def only_types(rrsets: Iterable[RRset], types: Iterable[str]) -> tuple[RRset, ...]:
    """The rrsets whose type is in ``types``, sorted."""
    wanted = set(types)
    return sorted_rrsets(r for r in rrsets if r.type in wanted)


# --- servers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nameserver:
    """One address of one authoritative server; NS records carry no port, so tests inject one."""

    host: str
    """An IP address."""
    port: int = 53
    ns_name: str | None = None
    """The NS name (or configured host name) this address came from."""

    @property
    def label(self) -> str:
        """``ip:port`` (``[v6]:port``), as reports name the server."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Soa:
    """The parts of a zone's SOA that cutover uses."""

    serial: int
    ttl: int
    minimum: int

    @property
    def negative_ttl(self) -> int:
        """How long a NXDOMAIN/NODATA answer may be cached: min(SOA TTL, MINIMUM), RFC 2308 §3."""
        return min(self.ttl, self.minimum)


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key for signing messages; the secret lives only in the keyring, never in a message."""

    keyring: dict[dns.name.Name, dns.tsig.Key]
    name: dns.name.Name
    algorithm: dns.name.Name


def serial_at_least(serial: int | None, minimum: int | None) -> bool:
    """True when ``serial`` is ``minimum`` or newer in RFC 1982 serial arithmetic (wraps at 2**32)."""
    if minimum is None:
        return True
    if serial is None:
        return False
    return bool(dns.serial.Serial(serial) >= dns.serial.Serial(minimum))


# --- queries --------------------------------------------------------------------------------------


def _query(qname: str, rdtype: str, tsig: TsigKey | None) -> tuple[dns.message.Message, bytes]:
    """A non-recursive query and its wire, signed with ``tsig`` when given."""
    if tsig is None:
        return unsigned_query(qname, rdtype)
    query = dns.message.make_query(qname, rdtype)
    query.flags &= ~dns.flags.RD
    query.use_tsig(tsig.keyring, keyname=tsig.name, algorithm=tsig.algorithm)
    return query, query.to_wire()


def _checker(server: Nameserver, questions: Sequence[tuple[str, str]], require_aa: bool) -> Check:
    """The check of each answer: an error code, or no AA flag, fails the read."""

    def check(index: int, response: dns.message.Message) -> None:
        qname, rdtype = questions[index]
        rcode = response.rcode()
        if rcode == dns.rcode.SERVFAIL:
            raise DnsUnavailable(f"{server.label} answered SERVFAIL for {qname} {rdtype}")
        if rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH):
            raise DnsRefused(
                f"{server.label} answered {dns.rcode.to_text(rcode)} for {qname} {rdtype}: "
                "it does not serve this zone to cutover"
            )
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise DnsRefused(f"{server.label} answered {dns.rcode.to_text(rcode)} for {qname} {rdtype}")
        if require_aa and not response.flags & dns.flags.AA:
            raise DnsRefused(f"{server.label} is not authoritative for {qname} (answer without the AA flag)")

    return check


async def authoritative_queries(
    server: Nameserver,
    questions: Sequence[tuple[str, str]],
    *,
    timeout: float,
    tsig: TsigKey | None = None,
    require_aa: bool = True,
    session: Session | None = None,
) -> list[dns.message.Message]:
    """Non-recursive queries (RD=0) for each (name, type), sent together over UDP (TCP when truncated).

    The answers come back in the questions' order; the first failing one ends them all. ``session``:
    the socket of a read of several exchanges (:func:`read_name`); a socket of their own otherwise.

    Raises:
        DnsUnavailable: timeout, connection refused, SERVFAIL (retryable).
        DnsRefused: REFUSED/NOTAUTH, another error code, or an answer without AA (not authoritative).
        DnsAuthError: the server rejected the TSIG signature or key.
    """
    with contextlib.ExitStack() as stack:
        if session is None:
            session = stack.enter_context(Session(server.host, server.port))
        taken = set(session.used)
        queries: list[tuple[dns.message.Message, bytes]] = []
        for qname, rdtype in questions:
            query, wire = _query(qname, rdtype, tsig)
            while query.id in taken:  # an answer is matched to its query by ID, within the whole session
                query, wire = _query(qname, rdtype, tsig)
            taken.add(query.id)
            queries.append((query, wire))
        return await _asked(session, server, questions, queries, timeout, tsig, require_aa)


async def _asked(
    session: Session,
    server: Nameserver,
    questions: Sequence[tuple[str, str]],
    queries: list[tuple[dns.message.Message, bytes]],
    timeout: float,
    tsig: TsigKey | None,
    require_aa: bool,
) -> list[dns.message.Message]:
    """The exchange of :func:`authoritative_queries`, its failures mapped to cutover's errors."""
    check = _checker(server, questions, require_aa)
    try:
        return await session.exchange(queries, timeout, check)
    except QueryFailed as failed:
        qname, rdtype = questions[failed.index]
        exc = failed.cause
        if isinstance(exc, dns.tsig.PeerError):
            raise DnsAuthError(f"{server.label} rejected the TSIG key {tsig.name if tsig else ''} ({exc})") from exc
        if isinstance(exc, dns.exception.Timeout):
            raise DnsUnavailable(
                f"{server.label} did not answer a {rdtype} query for {qname} within {timeout:g}s"
            ) from exc
        if isinstance(exc, OSError):
            raise DnsUnavailable(f"{server.label} is unreachable ({exc.strerror or exc})") from exc
        raise DnsUnavailable(f"{server.label} sent an unusable answer to a {rdtype} query for {qname} ({exc})") from exc


async def authoritative_query(
    server: Nameserver,
    qname: str,
    rdtype: str,
    *,
    timeout: float,
    tsig: TsigKey | None = None,
    require_aa: bool = True,
) -> dns.message.Message:
    """One non-recursive query; raises as :func:`authoritative_queries`."""
    (response,) = await authoritative_queries(
        server, [(qname, rdtype)], timeout=timeout, tsig=tsig, require_aa=require_aa
    )
    return response


def owned_rrsets(response: dns.message.Message, owner: dns.name.Name) -> list[RRset]:
    """The answer rrsets owned by ``owner`` itself (CNAME targets a server chases are left out)."""
    found = []
    for rrset in response.answer:
        if rrset.name == owner and rrset.rdclass == dns.rdataclass.IN:
            if dns.rdatatype.to_text(rrset.rdtype) not in IGNORED_TYPES:
                found.append(rrset_from_dns(rrset))
    return found


async def read_soa(
    server: Nameserver, zone: str, *, timeout: float, tsig: TsigKey | None = None, session: Session | None = None
) -> Soa:
    """The zone's SOA as this server answers it (``session`` as :func:`authoritative_queries`).

    Raises:
        DnsRefused: the server answers but has no SOA for the zone (it does not serve it).
    """
    (response,) = await authoritative_queries(server, [(zone, "SOA")], timeout=timeout, tsig=tsig, session=session)
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.SOA and rrset.name == dns.name.from_text(zone):
            soa: Any = rrset[0]
            return Soa(serial=int(soa.serial), ttl=rrset.ttl, minimum=int(soa.minimum))
    raise DnsRefused(f"{server.label} has no SOA for {zone}: it does not serve the zone")


async def all_or_nothing(coroutines: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Await ``coroutines`` together; the first failure cancels the rest and is raised as itself.

    ``asyncio.gather`` would leave the others running after a failure (still hitting the server);
    a task group cancels them, and unwrapping its ExceptionGroup keeps the typed error callers catch.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks: list[asyncio.Task[T]] = [group.create_task(coroutine) for coroutine in coroutines]
    except BaseExceptionGroup as failed:
        first = failed.exceptions[0]
        raise first from first.__cause__
    return [task.result() for task in tasks]


MAX_REVEALED_TYPES = 32
"""Types an ANY answer may add to a read of one name (each is one more query, sent at once)."""


def asked_types(types: Iterable[str]) -> list[str]:
    """The types :func:`read_name` queries one by one for ``types`` (besides ANY and those ANY reveals)."""
    return [
        t for t in dict.fromkeys([*ALWAYS_READ, *(t.upper() for t in types)]) if t not in ANSWERED_BY_ADDRESS_QUERIES
    ]


async def read_name(
    server: Nameserver,
    zone: str,
    name: str,
    *,
    timeout: float,
    tsig: TsigKey | None = None,
    attempts: int = 3,
    types: Iterable[str] = (),
) -> tuple[int, tuple[RRset, ...]]:
    """Every rrset at ``name`` on one server, with the zone serial they belong to.

    ``types`` are queried besides A, AAAA (whose answers carry a CNAME) and those an ANY answer reveals: the ones the
    caller compares, so that a minimal ANY answer can't hide them.

    Raises:
        DnsUnavailable: the zone kept changing during ``attempts`` reads and no two reads in a row agreed, or the
            server failed.
        DnsRefused, DnsAuthError: as :func:`authoritative_query`.
    """
    owner = dns.name.from_text(name)
    asked = asked_types(types)
    previous: tuple[int, tuple[RRset, ...]] | None = None
    with Session(server.host, server.port) as session:
        for _ in range(attempts):
            before = await read_soa(server, zone, timeout=timeout, tsig=tsig, session=session)
            hint, *responses = await authoritative_queries(
                server, [(name, rdtype) for rdtype in ["ANY", *asked]], timeout=timeout, tsig=tsig, session=session
            )
            revealed = [
                r.type
                for r in owned_rrsets(hint, owner)
                if r.type not in asked and r.type not in ANSWERED_BY_ADDRESS_QUERIES
            ]
            if len(revealed) > MAX_REVEALED_TYPES:
                raise DnsRefused(
                    f"{server.label} answers ANY at {name} with {len(revealed)} more types; "
                    f"cutover reads at most {MAX_REVEALED_TYPES} at one name"
                )
            if revealed:
                responses += await authoritative_queries(
                    server, [(name, rdtype) for rdtype in revealed], timeout=timeout, tsig=tsig, session=session
                )
            found: dict[str, RRset] = {}
            for response in responses:
                for rrset in owned_rrsets(response, owner):
                    found[rrset.type] = rrset
            after = await read_soa(server, zone, timeout=timeout, tsig=tsig, session=session)
            rrsets = sorted_rrsets(found.values())
            if before.serial == after.serial:
                return after.serial, rrsets
            if previous is not None and previous[1] == rrsets:
                # A busy zone (a campaign's other records changing) moves the serial during every read, while
                # this name stays put: two reads in a row found the same content, served at the first one's
                # opening serial or newer. That serial is a lower bound, which is what "at least as new as"
                # comparisons (a propagation proof's min_serial) need.
                return previous[0], rrsets
            previous = (before.serial, rrsets)
    raise DnsUnavailable(f"{server.label}: zone {zone} kept changing while reading {name}; try again")


async def nameserver_view(
    server: Nameserver,
    zone: str,
    name: str,
    *,
    timeout: float,
    tsig: TsigKey | None = None,
    types: Iterable[str] = (),
) -> NameserverState:
    """What one server answers at ``name`` (``types`` as :func:`read_name`); a failure is recorded, not raised."""
    try:
        serial, rrsets = await read_name(server, zone, name, timeout=timeout, tsig=tsig, types=types)
    except DnsError as exc:
        return NameserverState(server=server.label, ns_name=server.ns_name, error=str(exc))
    return NameserverState(
        server=server.label, ns_name=server.ns_name, serial=serial, authoritative=True, rrsets=rrsets
    )


async def nameserver_views(
    servers: Sequence[Nameserver], zone: str, name: str, *, timeout: float, types: Iterable[str] = ()
) -> tuple[NameserverState, ...]:
    """Every server's view, asked in parallel (``types`` as :func:`read_name`)."""
    wanted = tuple(types)
    views = await all_or_nothing(nameserver_view(s, zone, name, timeout=timeout, types=wanted) for s in servers)
    return tuple(views)
