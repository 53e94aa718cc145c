"""The queries of one read share one UDP socket; answers are matched to them by ID, in any order.

Against a loopback server that answers like the fake Cloud DNS zone's nameserver but can reorder
its answers, repeat them, answer another question, or stay silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import dns.entropy
import dns.flags
import dns.message
import dns.rdatatype
import dns.rrset
import pytest

from providers.dns import exchange, nameservers
from providers.dns.nameservers import Nameserver, authoritative_query, read_name
from providers.errors import DnsRefused, DnsUnavailable
from tests.dns.conftest import A_PROJECT, rr
from tests.fakes.clouddns import FakeCloudDns

ZONE = "example.test."
Answer = Callable[[dns.message.Message], list[dns.message.Message]]
"""What the server sends back for one query (nothing, one answer, several)."""


class _Server(asyncio.DatagramProtocol):
    """Answers each query with ``answer(query)``; the queries arriving within ``hold`` s are answered in reverse."""

    def __init__(self, answer: Answer, hold: float) -> None:
        self.answer = answer
        self.hold = hold
        self.held: list[tuple[dns.message.Message, Any]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.held and self.hold:
            asyncio.get_running_loop().call_later(self.hold, self._flush)
        self.held.append((dns.message.from_wire(data), addr))
        if not self.hold:
            self._flush()

    def _flush(self) -> None:
        held, self.held = self.held, []
        assert self.transport is not None
        for query, addr in reversed(held):
            for response in self.answer(query):
                self.transport.sendto(response.to_wire(), addr)


@contextlib.asynccontextmanager
async def serving(answer: Answer, hold: float = 0.0) -> AsyncIterator[Nameserver]:
    """A loopback server answering with ``answer`` (see ``_Server``), closed on exit."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Server(answer, hold), local_addr=("127.0.0.1", 0))
    try:
        yield Nameserver("127.0.0.1", transport.get_extra_info("sockname")[1])
    finally:
        transport.close()


async def test_a_read_asks_all_its_questions_over_one_socket(
    clouddns: FakeCloudDns, sockets: list[socket.socket]
) -> None:
    serial, rrsets = await read_name(Nameserver("127.0.0.1", clouddns.dns_port), ZONE, A_PROJECT, timeout=2)
    assert rrsets == (rr(A_PROJECT, "A", 300, "127.0.0.2"),) and serial == 1
    assert dict(clouddns.dns_queries) == {"SOA": 2, "ANY": 1, "A": 1, "AAAA": 1}
    assert len(sockets) == 1 and sockets[0].fileno() == -1  # one socket, closed after the read


async def test_answers_in_reverse_order_are_matched_to_their_queries(clouddns: FakeCloudDns) -> None:
    clouddns.seed(A_PROJECT, "AAAA", 300, ["::2"])
    async with serving(lambda query: [clouddns.dns_answer(query)], hold=0.05) as server:
        _, rrsets = await read_name(server, ZONE, A_PROJECT, timeout=2)
    assert rrsets == (rr(A_PROJECT, "A", 300, "127.0.0.2"), rr(A_PROJECT, "AAAA", 300, "::2"))


async def test_a_repeated_answer_is_dropped(clouddns: FakeCloudDns) -> None:
    """The second copy of each answer arrives while the read waits for the next ones: it answers nothing."""
    async with serving(lambda query: [clouddns.dns_answer(query)] * 2) as server:
        _, rrsets = await read_name(server, ZONE, A_PROJECT, timeout=2)
    assert rrsets == (rr(A_PROJECT, "A", 300, "127.0.0.2"),)


async def test_an_answer_to_another_question_under_the_query_id_is_not_used(clouddns: FakeCloudDns) -> None:
    def swapped(query: dns.message.Message) -> list[dns.message.Message]:
        if query.question[0].rdtype != dns.rdatatype.A:
            return [clouddns.dns_answer(query)]
        other = dns.message.make_query(A_PROJECT, "AAAA")
        other.id = query.id
        return [clouddns.dns_answer(other)]

    async with serving(swapped) as server:
        with pytest.raises(DnsUnavailable, match=r"unusable answer to a A query .*does not match"):
            await read_name(server, ZONE, A_PROJECT, timeout=2)


async def test_the_question_left_unanswered_is_named(clouddns: FakeCloudDns) -> None:
    def no_aaaa(query: dns.message.Message) -> list[dns.message.Message]:
        return [] if query.question[0].rdtype == dns.rdatatype.AAAA else [clouddns.dns_answer(query)]

    async with serving(no_aaaa) as server:
        with pytest.raises(DnsUnavailable, match=r"did not answer a AAAA query for a-project\.example\.test\. within"):
            await read_name(server, ZONE, A_PROJECT, timeout=0.5)
        soa = await authoritative_query(server, ZONE, "SOA", timeout=0.5)  # the server itself still answers
    assert soa.answer


async def test_no_two_queries_of_a_read_share_an_id(clouddns: FakeCloudDns, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the random source repeats itself: a late answer could otherwise pass for a later query's."""
    ids = iter([7, 7, 7, 7, 8, 8, 9, *range(10, 100)])
    monkeypatch.setattr(dns.entropy, "random_16", lambda: next(ids))
    seen: list[int] = []

    def recorded(query: dns.message.Message) -> list[dns.message.Message]:
        seen.append(query.id)
        return [clouddns.dns_answer(query)]

    async with serving(recorded) as server:
        _, rrsets = await read_name(server, ZONE, A_PROJECT, timeout=2)
    assert rrsets == (rr(A_PROJECT, "A", 300, "127.0.0.2"),)
    assert len(seen) == 5 and len(set(seen)) == 5


async def test_a_session_refuses_an_id_it_already_used() -> None:
    query, wire = exchange.unsigned_query(A_PROJECT, "A")
    with exchange.Session("127.0.0.1", 9) as session:
        session.used.add(query.id)
        with pytest.raises(ValueError, match="share an ID"):
            await session.exchange([(query, wire)], 0.1, lambda index, response: None)


async def test_a_flood_of_answers_to_nothing_ends_the_read_without_holding_the_loop(
    clouddns: FakeCloudDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queued datagram is read without yielding to the loop: dropped ones must not spin it until the deadline."""
    ids = iter(range(1, 1000))
    monkeypatch.setattr(dns.entropy, "random_16", lambda: next(ids))

    def flood(query: dns.message.Message) -> list[dns.message.Message]:
        strays = []
        for stray_id in range(40000, 40100):
            stray = clouddns.dns_answer(query)
            stray.id = stray_id
            strays.append(stray)
        return strays  # and never the answer itself

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async with serving(flood) as server:
        running = asyncio.ensure_future(ticker())
        started = asyncio.get_running_loop().time()
        try:
            with pytest.raises(
                DnsUnavailable, match=r"unusable answer to a SOA query .*more than 16 answers to no query"
            ):
                await read_name(server, ZONE, A_PROJECT, timeout=30)
        finally:
            running.cancel()
    assert asyncio.get_running_loop().time() - started < 2
    assert ticks >= 16  # the loop ran other tasks between the dropped datagrams


async def test_a_server_hanging_up_on_the_tcp_retry_is_unavailable(clouddns: FakeCloudDns) -> None:
    """A truncated answer is asked again over TCP; a server closing that connection fails the read like any other."""

    def truncated(query: dns.message.Message) -> list[dns.message.Message]:
        response = clouddns.dns_answer(query)
        if query.question[0].rdtype == dns.rdatatype.A:
            response.flags |= dns.flags.TC
        return [response]

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with serving(truncated) as server:
        tcp = await asyncio.start_server(hang_up, "127.0.0.1", server.port)
        try:
            with pytest.raises(DnsUnavailable, match=r"unusable answer to a A query for a-project\.example\.test\."):
                await read_name(server, ZONE, A_PROJECT, timeout=2)
        finally:
            tcp.close()


async def test_an_any_answer_revealing_too_many_types_is_refused(clouddns: FakeCloudDns) -> None:
    def many(query: dns.message.Message) -> list[dns.message.Message]:
        response = clouddns.dns_answer(query)
        if query.question[0].rdtype == dns.rdatatype.ANY:
            for number in range(40):
                response.answer.append(dns.rrset.from_text(A_PROJECT, 60, "IN", f"TYPE{65280 + number}", r"\# 0"))
        return [response]

    async with serving(many) as server:
        with pytest.raises(DnsRefused, match=r"with 40 more types; cutover reads at most 32 at one name"):
            await read_name(server, ZONE, A_PROJECT, timeout=2)


def test_long_record_text_is_canonicalised_but_not_kept() -> None:
    short = nameservers.canonical_rdata("CNAME", "B-Project.Example.TEST.")
    kept = nameservers._remembered_rdata.cache_info().currsize
    long_text = '"' + "x" * 250 + '" "' + "y" * 250 + '" "' + "z" * 100 + '"'
    assert nameservers.canonical_rdata("TXT", long_text) == long_text
    assert short == "b-project.example.test."
    assert nameservers._remembered_rdata.cache_info().currsize == kept
