"""Queries rendered once per name and type; answers parsed up to their answer section (signed ones whole)."""

from __future__ import annotations

from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import pytest

from providers.dns.exchange import parse_response, unsigned_query
from providers.dns.nameservers import Nameserver, read_name
from sandbox.bind import BindPair
from tests.dns.conftest import external_update

NAME = "a-project.example.test."


def response_to(query: dns.message.Message, rcode: dns.rcode.Rcode = dns.rcode.NOERROR) -> dns.message.Message:
    """What BIND answers a non-recursive query without minimal-responses: NS records and their addresses too."""
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    response.set_rcode(rcode)
    if rcode == dns.rcode.NOERROR:
        response.answer.append(dns.rrset.from_text(NAME, 30, "IN", "CNAME", "b-project.example.test."))
        response.answer.append(dns.rrset.from_text("b-project.example.test.", 300, "IN", "A", "127.0.0.3"))
    response.authority.append(
        dns.rrset.from_text("example.test.", 3600, "IN", "NS", "ns1.example.test.", "ns2.example.test.")
    )
    response.additional.append(dns.rrset.from_text("ns1.example.test.", 3600, "IN", "A", "127.0.0.1"))
    response.additional.append(dns.rrset.from_text("ns2.example.test.", 3600, "IN", "AAAA", "::1"))
    return response


@pytest.mark.parametrize("rcode", [dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED])
def test_the_answer_flags_and_rcode_are_those_of_the_whole_message(rcode: dns.rcode.Rcode) -> None:
    query = dns.message.make_query(NAME, "A")
    wire = response_to(query, rcode).to_wire()
    whole = dns.message.from_wire(wire)
    parsed = parse_response(wire, query)
    assert query.is_response(parsed)
    assert parsed.answer == whole.answer and parsed.flags == whole.flags and parsed.rcode() == whole.rcode()
    assert whole.authority and whole.additional and not parsed.authority and not parsed.additional


def test_a_truncated_answer_still_says_so() -> None:
    query = dns.message.make_query(NAME, "A")
    response = response_to(query)
    response.flags |= dns.flags.TC
    with pytest.raises(dns.message.Truncated):
        parse_response(response.to_wire(), query)


def test_a_signed_answer_is_parsed_whole_and_its_signature_checked() -> None:
    """Verified against the query's own MAC, as RFC 8945 §5.3 says (dnspython's query functions do the same)."""
    keyring = dns.tsigkeyring.from_text({"cutover-key.": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"})
    query = dns.message.make_query(NAME, "A")
    query.use_tsig(keyring, keyname="cutover-key.")
    query.to_wire()  # signs it: the response's MAC covers the request's
    response = response_to(query)
    response.use_tsig(keyring, keyname="cutover-key.")
    parsed = parse_response(response.to_wire(), query)
    assert parsed.had_tsig and parsed.authority
    forged = dns.tsigkeyring.from_text({"cutover-key.": "b3RoZXJvdGhlcm90aGVyb3RoZXJvdGhlcm90aGVy"})
    response.use_tsig(forged, keyname="cutover-key.")
    with pytest.raises(dns.tsig.BadSignature):
        parse_response(response.to_wire(), query)


def test_a_prepared_query_is_the_rendered_query_with_a_fresh_id() -> None:
    made = dns.message.make_query(NAME, "AAAA")
    made.flags &= ~dns.flags.RD
    first, first_wire = unsigned_query(NAME, "AAAA")
    _, second_wire = unsigned_query(NAME, "AAAA")
    assert first_wire[2:] == made.to_wire()[2:] == second_wire[2:]
    assert first_wire[:2] == first.id.to_bytes(2, "big") and first.to_wire() == first_wire
    ids = {unsigned_query(NAME, "AAAA")[0].id for _ in range(50)}
    assert len(ids) > 45  # random, as make_query's
    assert not first.flags & dns.flags.RD and first.question == made.question


async def test_an_answer_too_large_for_udp_is_read_again_over_tcp(
    bind: BindPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No EDNS: answers over 512 bytes come back truncated, and the prepared query is sent again over TCP."""
    over_tcp: list[str] = []
    tcp = dns.asyncquery.tcp

    async def counted(query: dns.message.Message, *args: Any, **kwargs: Any) -> dns.message.Message:
        over_tcp.append(dns.rdatatype.to_text(query.question[0].rdtype))
        return await tcp(query, *args, **kwargs)

    monkeypatch.setattr(dns.asyncquery, "tcp", counted)
    texts = [f'"{index:02d}{"x" * 90}"' for index in range(12)]
    external_update(bind, ("add", "big", 60, "TXT", *texts))
    server = Nameserver("127.0.0.1", bind.primary.port)
    serial, rrsets = await read_name(server, "example.test.", "big.example.test.", timeout=3, types=["TXT"])
    assert serial == bind.serial() and [(r.type, len(r.rdatas)) for r in rrsets] == [("TXT", 12)]
    assert "TXT" in over_tcp
