"""The queries of one read share one UDP socket; answers are matched to them by ID, in any order.

Against a loopback server that answers like the fake Cloud DNS zone's nameserver but can reorder
its answers, repeat them, answer another question, or stay silent.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any, cast

import dns.entropy
import dns.message
import dns.rdatatype
import pytest

from providers.dns import exchange
from providers.dns.nameservers import Nameserver, authoritative_query, read_name
from providers.errors import DnsUnavailable
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


async def serve(answer: Answer, hold: float = 0.0) -> tuple[asyncio.DatagramTransport, Nameserver]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Server(answer, hold), local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    return transport, Nameserver("127.0.0.1", port)


@pytest.fixture
async def sockets(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[socket.socket]]:
    """The UDP sockets the exchange opens from now on."""
    opened: list[socket.socket] = []

    def counted(*args: Any) -> socket.socket:
        sock = socket.socket(*args)
        opened.append(sock)
        return sock

    shim = SimpleNamespace(
        socket=counted, AF_INET=socket.AF_INET, AF_INET6=socket.AF_INET6, SOCK_DGRAM=socket.SOCK_DGRAM
    )
    monkeypatch.setattr(exchange, "socket", shim)
    yield opened


async def test_a_read_asks_all_its_questions_over_one_socket(
    clouddns: FakeCloudDns, sockets: list[socket.socket]
) -> None:
    serial, rrsets = await read_name(Nameserver("127.0.0.1", clouddns.dns_port), ZONE, A_PROJECT, timeout=2)
    assert rrsets == (rr(A_PROJECT, "A", 300, "127.0.0.2"),) and serial == 1
    assert dict(clouddns.dns_queries) == {"SOA": 2, "ANY": 1, "A": 1, "AAAA": 1}
    assert len(sockets) == 1 and sockets[0].fileno() == -1  # one socket, closed after the read


async def test_answers_in_reverse_order_are_matched_to_their_queries(clouddns: FakeCloudDns) -> None:
    clouddns.seed(A_PROJECT, "AAAA", 300, ["::2"])
    transport, server = await serve(lambda query: [clouddns.dns_answer(query)], hold=0.05)
    try:
        _, rrsets = await read_name(server, ZONE, A_PROJECT, timeout=2)
    finally:
        transport.close()
    assert rrsets == (rr(A_PROJECT, "A", 300, "127.0.0.2"), rr(A_PROJECT, "AAAA", 300, "::2"))


async def test_a_repeated_answer_is_dropped(clouddns: FakeCloudDns) -> None:
    """The second copy of each answer arrives while the read waits for the next ones: it answers nothing."""
    transport, server = await serve(lambda query: [clouddns.dns_answer(query)] * 2)
    try:
        _, rrsets = await read_name(server, ZONE, A_PROJECT, timeout=2)
    finally:
        transport.close()
    assert rrsets == (rr(A_PROJECT, "A", 300, "127.0.0.2"),)


async def test_an_answer_to_another_question_under_the_query_id_is_not_used(clouddns: FakeCloudDns) -> None:
    def swapped(query: dns.message.Message) -> list[dns.message.Message]:
        if query.question[0].rdtype != dns.rdatatype.A:
            return [clouddns.dns_answer(query)]
        other = dns.message.make_query(A_PROJECT, "AAAA")
        other.id = query.id
        return [clouddns.dns_answer(other)]

    transport, server = await serve(swapped)
    try:
        with pytest.raises(DnsUnavailable, match=r"unusable answer to a A query .*does not match"):
            await read_name(server, ZONE, A_PROJECT, timeout=2)
    finally:
        transport.close()


async def test_the_question_left_unanswered_is_named(clouddns: FakeCloudDns) -> None:
    def no_aaaa(query: dns.message.Message) -> list[dns.message.Message]:
        return [] if query.question[0].rdtype == dns.rdatatype.AAAA else [clouddns.dns_answer(query)]

    transport, server = await serve(no_aaaa)
    try:
        with pytest.raises(DnsUnavailable, match=r"did not answer a AAAA query for a-project\.example\.test\. within"):
            await read_name(server, ZONE, A_PROJECT, timeout=0.5)
        soa = await authoritative_query(server, ZONE, "SOA", timeout=0.5)  # the server itself still answers
    finally:
        transport.close()
    assert soa.answer


async def test_no_two_queries_of_a_read_share_an_id(clouddns: FakeCloudDns, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the random source repeats itself: a late answer could otherwise pass for a later query's."""
    ids = iter([7, 7, 7, 7, 8, 8, 9, *range(10, 100)])
    monkeypatch.setattr(dns.entropy, "random_16", lambda: next(ids))
    seen: list[int] = []

    def recorded(query: dns.message.Message) -> list[dns.message.Message]:
        seen.append(query.id)
        return [clouddns.dns_answer(query)]

    transport, server = await serve(recorded)
    try:
        _, rrsets = await read_name(server, ZONE, A_PROJECT, timeout=2)
    finally:
        transport.close()
    assert rrsets == (rr(A_PROJECT, "A", 300, "127.0.0.2"),)
    assert len(seen) == 5 and len(set(seen)) == 5


async def test_a_session_refuses_an_id_it_already_used() -> None:
    query, wire = exchange.unsigned_query(A_PROJECT, "A")
    with exchange.Session("127.0.0.1", 9) as session:
        session.used.add(query.id)
        with pytest.raises(ValueError, match="share an ID"):
            await session.exchange([(query, wire)], 0.1, lambda index, response: None)
