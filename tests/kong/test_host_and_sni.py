"""The pure helpers that decide what Kong sends as Host and SNI: IP literals versus host names."""

from __future__ import annotations

import pytest

from models.kong import host_header_for
from models.names import is_ip
from providers.dns.discovery import configured_nameservers


@pytest.mark.parametrize("text", ["127.0.0.1", "::1", "[::1]", "2001:db8::5", " 10.0.0.1 "])
def test_addresses_are_ips(text: str) -> None:
    assert is_ip(text)


@pytest.mark.parametrize("text", ["a-project.example.test", "localhost", "", "[a-project]", "127.0.0.1:8443", "1.2.3"])
def test_names_and_host_port_pairs_are_not(text: str) -> None:
    assert not is_ip(text)


async def test_a_configured_nameserver_given_as_an_address_is_not_resolved() -> None:
    servers = await configured_nameservers(["127.0.0.1:5353", "[::1]:53"], resolver=None)
    assert [(s.host, s.port, s.ns_name) for s in servers] == [("127.0.0.1", 5353, None), ("::1", 53, None)]


@pytest.mark.parametrize(
    ("hostname", "port", "scheme", "host_header"),
    [
        ("origin-api.example.test", 443, "https", "origin-api.example.test"),
        ("origin-api.example.test", 8443, "https", "origin-api.example.test:8443"),
        ("origin-api.example.test", 80, "http", "origin-api.example.test"),
        ("origin-api.example.test", 443, "http", "origin-api.example.test:443"),
        ("127.0.0.3", 8443, "https", "127.0.0.3:8443"),
        ("[::1]", 8443, "https", "[::1]:8443"),
        ("orders.internal:9000", 8443, "https", "orders.internal:9000"),
    ],
)
def test_host_header_appends_the_port_unless_it_is_the_schemes_default(
    hostname: str, port: int, scheme: str, host_header: str
) -> None:
    assert host_header_for(hostname, port, scheme) == host_header
