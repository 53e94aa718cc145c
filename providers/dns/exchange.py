"""DNS messages on the wire: queries rendered once, sent together over one UDP socket, answers parsed lean.

A read of a name asks one server several questions (an SOA; then ANY, A, AAAA... together; then
an SOA again). They go over *one* connected UDP socket and the answers of each exchange are matched
to its queries by ID and question as they arrive, instead of a socket, a task and an event-loop
registration per question: that setup was most of a query's CPU after parsing (bench.cost). Each
answer is checked the moment it arrives (``check``), so a refusal ends the exchange at once instead
of waiting for the slowest answer. A truncated answer is asked again over TCP. The socket is
connected, so the kernel delivers only the server's datagrams; an answer to nothing outstanding (a
late duplicate) is dropped, up to ``MAX_STRAYS`` of them; an answer with an outstanding ID but
another question is an error, as it was with one socket per query.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Callable, Sequence

import dns.asyncquery
import dns.entropy
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rrset

_SECTION_COUNTS = slice(8, 12)
"""Where a DNS header holds its authority and additional record counts (RFC 1035 §4.1.1)."""

MAX_DATAGRAM = 65535
MAX_STRAYS = 16
"""Datagrams answering nothing outstanding that one exchange drops before it calls the server unusable."""


class QueryFailed(Exception):
    """The exchange failed at its ``index``-th query (``cause``: a dnspython error, a timeout, OSError)."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.index = index
        self.cause = cause


@functools.lru_cache(maxsize=4096)
def _query_template(qname: str, rdtype: str) -> tuple[bytes, dns.flags.Flag, list[dns.rrset.RRset]]:
    """An unsigned non-recursive query for ``qname``/``rdtype``, rendered once: wire, flags and question."""
    query = dns.message.make_query(qname, rdtype)
    query.flags &= ~dns.flags.RD
    return query.to_wire(), query.flags, query.question


def unsigned_query(qname: str, rdtype: str) -> tuple[dns.message.Message, bytes]:
    """A fresh query (a new random ID) and its wire, without building and rendering the message again.

    Only the ID differs between two queries for the same name and type; rendering the message was a
    fifth of a query's CPU (bench.cost).
    """
    wire, flags, question = _query_template(qname, rdtype)
    query = dns.message.Message(id=dns.entropy.random_16())
    query.flags = flags
    query.question = question  # shared, never changed: a message is rendered from it, never into it
    return query, query.id.to_bytes(2, "big") + wire[2:]


def parse_response(data: bytes, query: dns.message.Message) -> dns.message.Message:
    """The response's header, question and answer; its authority and additional sections are skipped.

    Nothing here reads those two sections, yet an authoritative server that isn't configured for
    minimal responses fills them on every answer to a non-recursive query (the zone's NS records and
    their addresses), and parsing them was most of a read's CPU (bench.cost). A signed response is
    parsed whole: its TSIG record sits in the additional section and must be verified. The queries
    carry no EDNS, so no OPT record (extended RCODE) can be skipped either (RFC 6891 §7).
    """
    if query.keyring is not None or len(data) < 12:
        return dns.message.from_wire(data, keyring=query.keyring, request_mac=query.mac, raise_on_truncation=True)
    trimmed = data[: _SECTION_COUNTS.start] + bytes(4) + data[_SECTION_COUNTS.stop :]
    return dns.message.from_wire(trimmed, raise_on_truncation=True, ignore_trailing=True)


Check = Callable[[int, dns.message.Message], None]
"""Called with each answer as it arrives (its query's index); raising ends the exchange with that error."""


class Session:
    """One connected UDP socket to one server, for the exchanges of one read (opened at the first).

    Use as a context manager; the socket is closed on exit. No two queries of a session share an ID
    (``used``), so a late answer to an earlier exchange can never be taken for an answer to a later one.
    One exchange at a time: two waiting on the socket at once would take each other's answers.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.used: set[int] = set()
        """The IDs of every query sent on this session so far."""
        self._sock: socket.socket | None = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.connect((self.host, self.port))
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    async def exchange(
        self,
        queries: Sequence[tuple[dns.message.Message, bytes]],
        timeout: float,
        check: Check,
    ) -> list[dns.message.Message]:
        """Send every query (message, wire) together; their answers, in the queries' order.

        The queries' IDs must differ from each other and from the session's earlier ones (``used``):
        an answer is matched to its query by ID.

        Raises:
            QueryFailed: no answer to a query within ``timeout`` (cause ``dns.exception.Timeout``), an
                answer that does not parse or answers another question, more than ``MAX_STRAYS``
                datagrams answering nothing outstanding, the server unreachable or hanging up
                (``OSError``, ``EOFError``), with the index of the query concerned.
            Whatever ``check`` raises, as itself.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        answers: list[dns.message.Message | None] = [None] * len(queries)
        truncated: list[int] = []
        waiting = {query.id: index for index, (query, _) in enumerate(queries)}
        if len(waiting) != len(queries) or not self.used.isdisjoint(waiting):
            raise ValueError("two queries of one session share an ID")
        self.used.update(waiting)
        current = strays = 0
        try:
            async with asyncio.timeout_at(deadline):
                sock = self._socket()
                for _, wire in queries:
                    await loop.sock_sendall(sock, wire)
                while waiting:
                    current = min(waiting.values())
                    data = await loop.sock_recv(sock, MAX_DATAGRAM)
                    index = waiting.pop(int.from_bytes(data[:2], "big"), None) if len(data) >= 2 else None
                    if index is None:
                        # An answer to nothing outstanding (a late duplicate) is dropped. A server that
                        # keeps sending them must not hold the read, nor the loop: ``sock_recv`` returns
                        # without yielding while datagrams are queued, so the deadline alone never fires.
                        strays += 1
                        if strays > MAX_STRAYS:
                            raise dns.query.BadResponse(f"more than {MAX_STRAYS} answers to no query")  # type: ignore[no-untyped-call]
                        await asyncio.sleep(0)
                        continue
                    current = index
                    query = queries[index][0]
                    try:
                        response = parse_response(data, query)
                    except dns.message.Truncated:
                        truncated.append(index)
                        continue
                    if not query.is_response(response):
                        raise dns.query.BadResponse("the answer does not match the query")  # type: ignore[no-untyped-call]
                    check(index, response)
                    answers[index] = response
            for index in truncated:  # rare (an answer over 512 bytes): one after the other, within the deadline
                current = index
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError
                response = await dns.asyncquery.tcp(queries[index][0], self.host, port=self.port, timeout=remaining)
                check(index, response)
                answers[index] = response
        except TimeoutError as exc:
            raise QueryFailed(current, dns.exception.Timeout(timeout=timeout)) from exc  # type: ignore[no-untyped-call]
        except (OSError, EOFError, dns.exception.DNSException) as exc:
            # EOFError: dnspython's TCP read of a server that hung up mid-answer.
            raise QueryFailed(current, exc) from exc
        return [answer for answer in answers if answer is not None]
