"""How a name is read from an authoritative server: few queries, ANY only adds types, a failure cancels the rest.

Against the fake Cloud DNS zone's nameserver (real UDP on loopback), which counts the queries it gets
and can answer ANY minimally (RFC 8482), refuse a type, or drop one.
"""

from __future__ import annotations

import asyncio
import socket
import time

import google.oauth2.credentials
import pytest

from providers.dns.factory import build_dns_provider
from providers.dns.nameservers import Nameserver, read_name
from providers.errors import DnsRefused
from providers.secrets import EnvSecrets
from tests.dns.conftest import A_PROJECT, cloud_section, rr
from tests.fakes.clouddns import FakeCloudDns

ZONE = "example.test."
MIXED = "mixed.example.test."


def server(fake: FakeCloudDns) -> Nameserver:
    return Nameserver("127.0.0.1", fake.dns_port)


async def test_a_read_sends_a_handful_of_queries_not_one_per_known_type(clouddns: FakeCloudDns) -> None:
    serial, rrsets = await read_name(server(clouddns), ZONE, A_PROJECT, timeout=2)
    assert rrsets == (rr(A_PROJECT, "A", 300, "127.0.0.2"),) and serial == 1
    assert dict(clouddns.dns_queries) == {"SOA": 2, "ANY": 1, "A": 1, "AAAA": 1}


async def test_a_cname_comes_back_in_the_address_answers_without_a_query_of_its_own(clouddns: FakeCloudDns) -> None:
    clouddns.minimal_any = True  # ANY can't be trusted to show it either
    clouddns.seed(MIXED, "CNAME", 60, [A_PROJECT])
    _, rrsets = await read_name(server(clouddns), ZONE, MIXED, timeout=2, types=["CNAME"])
    assert rrsets == (rr(MIXED, "CNAME", 60, A_PROJECT),)
    assert "CNAME" not in clouddns.dns_queries


async def test_types_an_any_answer_reveals_are_added(clouddns: FakeCloudDns) -> None:
    clouddns.seed(MIXED, "A", 60, ["127.0.0.7"])
    clouddns.seed(MIXED, "TXT", 60, ['"owner=team-a"'])
    clouddns.seed(MIXED, "MX", 60, ["10 mail.example.test."])
    _, rrsets = await read_name(server(clouddns), ZONE, MIXED, timeout=2)
    assert [r.type for r in rrsets] == ["A", "MX", "TXT"]
    assert clouddns.dns_queries["TXT"] == clouddns.dns_queries["MX"] == 1


async def test_a_minimal_any_answer_hides_nothing_the_caller_compares(clouddns: FakeCloudDns) -> None:
    clouddns.minimal_any = True
    clouddns.seed(MIXED, "A", 60, ["127.0.0.7"])
    clouddns.seed(MIXED, "TXT", 60, ['"owner=team-a"'])
    _, unasked = await read_name(server(clouddns), ZONE, MIXED, timeout=2)
    _, asked = await read_name(server(clouddns), ZONE, MIXED, timeout=2, types=["TXT"])
    assert [r.type for r in unasked] == ["A"]  # ANY said only HINFO "RFC8482": it can't be trusted to list
    assert [r.type for r in asked] == ["A", "TXT"]


async def test_propagation_and_snapshot_ask_for_the_types_they_compare(clouddns: FakeCloudDns) -> None:
    clouddns.minimal_any = True
    clouddns.seed(MIXED, "A", 60, ["127.0.0.7"])
    clouddns.seed(MIXED, "TXT", 60, ['"owner=team-a"'])
    whole = (rr(MIXED, "A", 60, "127.0.0.7"), rr(MIXED, "TXT", 60, '"owner=team-a"'))
    credentials = google.oauth2.credentials.Credentials(token="test-token")
    async with build_dns_provider(cloud_section(clouddns), secrets=EnvSecrets({}), credentials=credentials) as cloud:
        report = await cloud.prove_propagation(MIXED, whole, timeout=2)
        snapshot = await cloud.snapshot(MIXED)
    assert report.in_sync and report.servers[0].rrsets == whole
    assert snapshot.nameservers[0].rrsets == snapshot.rrsets == whole


async def test_a_failing_answer_ends_the_read_at_once(clouddns: FakeCloudDns, sockets: list[socket.socket]) -> None:
    clouddns.silent_types = {"A", "CNAME"}  # these would wait for the whole timeout
    clouddns.refused_types = {"AAAA"}
    started = time.monotonic()
    with pytest.raises(DnsRefused, match=r"REFUSED for a-project\.example\.test\. AAAA"):
        await read_name(server(clouddns), ZONE, A_PROJECT, timeout=5)
    assert time.monotonic() - started < 1
    assert sockets and all(sock.fileno() == -1 for sock in sockets)  # nothing left waiting on the server


async def busy_zone(fake: FakeCloudDns) -> None:
    """Another record of the zone changing at every turn of the event loop: a campaign's busy zone."""
    turn = 0
    while True:
        turn += 1
        fake.edit("other.example.test.", "TXT", 60, [f'"turn {turn}"'])
        await asyncio.sleep(0)


async def test_a_name_that_stays_put_in_a_zone_that_keeps_changing_is_read(clouddns: FakeCloudDns) -> None:
    first = clouddns.serial
    changing = asyncio.ensure_future(busy_zone(clouddns))
    try:
        serial, rrsets = await read_name(server(clouddns), ZONE, A_PROJECT, timeout=2)
        clouddns.edit(A_PROJECT, "A", 300, ["127.0.0.9"])
        _, moved = await read_name(server(clouddns), ZONE, A_PROJECT, timeout=2)
    finally:
        changing.cancel()
    assert rrsets == (rr(A_PROJECT, "A", 300, "127.0.0.2"),)
    assert moved == (rr(A_PROJECT, "A", 300, "127.0.0.9"),)
    # The serial moved during each read: the answer carries the first read's opening serial, a lower bound.
    assert first < serial < clouddns.serial
