"""Fixtures for the DNS layer: the outside world read with plain dnspython, not through cutover's code."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from models.dns import RRset
from models.plan import CutoverPlan, DnsSection
from providers.dns import exchange, nameservers
from providers.dns.base import DnsProvider
from providers.dns.factory import build_dns_provider
from providers.dns.nameservers import Nameserver
from providers.secrets import EnvSecrets
from sandbox.bind import BindPair, NamedServer
from tests.conftest import TSIG_ENV, base_plan_data, plan_for_bind
from tests.fakes.clouddns import FakeCloudDns

ZONE = "example.test."
A_PROJECT = "a-project.example.test."
B_PROJECT = "b-project.example.test."
ALIAS = "origin-api.example.test."
WORLD_TYPES = ("A", "AAAA", "CNAME", "TXT", "MX")


def rr(name: str, rdtype: str, ttl: int, *rdatas: str) -> RRset:
    """An rrset, tersely."""
    return RRset(name=name, type=rdtype, ttl=ttl, rdatas=rdatas)


def world(server: NamedServer, name: str) -> dict[str, tuple[int, tuple[str, ...]]]:
    """What a BIND server holds at ``name``: type -> (ttl, sorted rdata), asked with plain dnspython."""
    found: dict[str, tuple[int, tuple[str, ...]]] = {}
    for rdtype in WORLD_TYPES:
        query = dns.message.make_query(name, rdtype)
        query.flags &= ~dns.flags.RD
        response = dns.query.udp(query, "127.0.0.1", port=server.port, timeout=2)
        assert response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
        for rrset in response.answer:
            if rrset.name.to_text() == name:
                found[dns.rdatatype.to_text(rrset.rdtype)] = (rrset.ttl, tuple(sorted(rd.to_text() for rd in rrset)))
    return found


def external_update(pair: BindPair, *operations: tuple[Any, ...]) -> None:
    """Someone else's change: a signed UPDATE sent with plain dnspython, e.g. ``("replace", name, ttl, "A", ip)``."""
    keyring = dns.tsigkeyring.from_text({pair.key_name: pair.secret})
    update = dns.update.UpdateMessage(pair.zone + ".", keyring=keyring, keyname=dns.name.from_text(pair.key_name))
    for operation, *args in operations:
        getattr(update, operation)(*args)
    response = dns.query.tcp(update, "127.0.0.1", port=pair.primary.port, timeout=3)
    assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())


def update_log_lines(pair: BindPair) -> list[str]:
    """Lines the primary logged for UPDATE messages it received (applied or not)."""
    return [line for line in pair.primary.log().splitlines() if "client @" in line and "update" in line]


def section_for(pair: BindPair, **dns_overrides: Any) -> DnsSection:
    """The plan's dns section pointed at a BIND pair."""
    data = plan_for_bind(pair)
    data["dns"].update(dns_overrides)
    return CutoverPlan.model_validate(data).dns


def count_queries(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, str]]:
    """From now on, the authoritative queries cutover sends, counted by (server, qtype)."""
    asked: Counter[tuple[str, str]] = Counter()
    queries = nameservers.authoritative_queries

    async def counted(server: Nameserver, questions: Sequence[tuple[str, str]], **options: Any) -> Any:
        for _, rdtype in questions:
            asked[(server.label, rdtype)] += 1
        return await queries(server, questions, **options)

    monkeypatch.setattr(nameservers, "authoritative_queries", counted)
    return asked


def secrets_for(pair: BindPair, secret: str | None = None) -> EnvSecrets:
    """The worker's environment holding the pair's TSIG secret (or another one)."""
    return EnvSecrets({TSIG_ENV: secret if secret is not None else pair.secret})


@pytest.fixture
async def provider(bind: BindPair) -> AsyncIterator[DnsProvider]:
    """The RFC 2136 provider for the test's BIND pair, built the way the worker builds it."""
    async with build_dns_provider(section_for(bind), secrets=secrets_for(bind)) as built:
        yield built


def cloud_plan_data(fake: FakeCloudDns, **dns_overrides: Any) -> dict[str, Any]:
    """A full plan whose DNS lives in the fake Cloud DNS."""
    data = base_plan_data()
    data["dns"]["provider"] = {
        "kind": "clouddns",
        "project": fake.project,
        "managed_zone": fake.managed_zone,
        "zone": fake.dns_name,
        "api_endpoint": fake.url,
        "poll_timeout": "5s",
    }
    data["dns"]["nameservers"] = [fake.nameserver]
    data["dns"].update(dns_overrides)
    return data


def cloud_section(fake: FakeCloudDns, **dns_overrides: Any) -> DnsSection:
    """The dns section of :func:`cloud_plan_data`."""
    return CutoverPlan.model_validate(cloud_plan_data(fake, **dns_overrides)).dns


@pytest.fixture
async def clouddns() -> AsyncIterator[FakeCloudDns]:
    """A fake Cloud DNS zone ``example.test.`` seeded like the sandbox; fails the test on invalid traffic."""
    fake = FakeCloudDns()
    fake.seed(A_PROJECT, "A", 300, ["127.0.0.2"])
    fake.seed(B_PROJECT, "A", 300, ["127.0.0.3"])
    fake.seed(ALIAS, "CNAME", 300, [A_PROJECT])
    async with fake:
        yield fake
    fake.assert_valid()


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
