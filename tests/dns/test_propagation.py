"""Propagation proof on a real BIND pair whose secondary only refreshes when the test sends NOTIFY."""

from __future__ import annotations

import itertools
import time

import pytest

from models.dns import DnsChange, PropagationReport
from providers.dns.factory import build_dns_provider
from providers.dns.nameservers import serial_at_least
from providers.errors import DnsUnavailable, PropagationTimeout
from sandbox.bind import BindPair
from tests.dns.conftest import A_PROJECT, B_PROJECT, count_queries, external_update, rr, secrets_for, section_for, world

A_300 = rr(A_PROJECT, "A", 300, "127.0.0.2")
A_TO_B = rr(A_PROJECT, "CNAME", 30, B_PROJECT)
FLIP = DnsChange(name=A_PROJECT, expected=(A_300,), desired=(A_TO_B,), reason="flip")


async def test_lagging_secondary_is_reported_until_it_catches_up(bind_lagging: BindPair):
    pair = bind_lagging
    reports: list[PropagationReport] = []

    def on_progress(report: PropagationReport) -> None:
        reports.append(report)
        if len(reports) == 3:
            assert pair.serial(pair.secondary) == 1  # still lagging, checked with a plain query
            pair.send_notify()

    async with build_dns_provider(section_for(pair), secrets=secrets_for(pair)) as provider:
        result = await provider.apply(FLIP)
        report = await provider.prove_propagation(
            A_PROJECT, (A_TO_B,), min_serial=result.serial_after, timeout=10, on_progress=on_progress
        )

    for lagging in reports[:3]:
        assert not lagging.in_sync
        assert lagging.lagging == (pair.secondary.address,)
        secondary = next(s for s in lagging.servers if s.server == pair.secondary.address)
        assert secondary.serial == 1 and secondary.rrsets == (A_300,)
    assert report.in_sync and report.lagging == ()
    assert [(s.server, s.serial, s.rrsets) for s in report.servers] == [
        (pair.primary.address, 2, (A_TO_B,)),
        (pair.secondary.address, 2, (A_TO_B,)),
    ]
    assert world(pair.secondary, A_PROJECT) == {"CNAME": (30, (B_PROJECT,))}


async def test_a_lagging_server_costs_one_soa_query_per_poll_and_a_proven_one_nothing(
    bind_lagging: BindPair, monkeypatch: pytest.MonkeyPatch
):
    """A secondary that lags for many polls is asked its SOA, not the whole name, until its serial moves."""
    pair = bind_lagging
    polls: list[PropagationReport] = []

    def on_progress(report: PropagationReport) -> None:
        polls.append(report)
        if len(polls) == 6:
            pair.send_notify()

    async with build_dns_provider(section_for(pair), secrets=secrets_for(pair)) as provider:
        result = await provider.apply(FLIP)
        asked = count_queries(monkeypatch)
        report = await provider.prove_propagation(
            A_PROJECT,
            (A_TO_B,),
            min_serial=result.serial_after,
            read_back=result.readback,
            timeout=20,
            on_progress=on_progress,
        )

    assert report.in_sync and len(polls) >= 7
    primary, secondary = pair.primary.address, pair.secondary.address
    # The primary still serves the serial the change was read back at: one SOA query keeps that read.
    assert asked[(primary, "ANY")] == 0 and asked[(primary, "SOA")] == 1
    # The secondary: read in full at the first poll, then one SOA per poll, and in full again once its serial moved.
    assert asked[(secondary, "ANY")] == 2
    assert asked[(secondary, "SOA")] == 2 + (len(polls) - 1) + 2
    assert [s.rrsets for s in report.servers] == [(A_TO_B,), (A_TO_B,)]


async def test_propagation_timeout_names_the_lagging_server_and_what_it_answers(bind_lagging: BindPair):
    pair = bind_lagging
    polls: list[float] = []
    async with build_dns_provider(section_for(pair), secrets=secrets_for(pair)) as provider:
        result = await provider.apply(FLIP)
        started = time.monotonic()
        with pytest.raises(PropagationTimeout) as caught:
            await provider.prove_propagation(
                A_PROJECT,
                (A_TO_B,),
                min_serial=result.serial_after,
                timeout=0.7,
                on_progress=lambda report: polls.append(time.monotonic()),
            )
        elapsed = time.monotonic() - started

    message = str(caught.value)
    assert f"{pair.secondary.address} at serial 1, want 2" in message
    assert pair.primary.address not in message
    assert 0.7 <= elapsed < 2.0
    # Polls at a growing interval (0.1 s, 0.2 s, 0.4 s ...): a handful, not a busy loop.
    assert 3 <= len(polls) <= 6
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert all(gap >= 0.09 for gap in gaps)


async def test_same_serial_but_different_data_still_lags(bind_lagging: BindPair):
    """Without min_serial the data decides: a lowered TTL the secondary hasn't got is a lag."""
    pair = bind_lagging
    async with build_dns_provider(section_for(pair), secrets=secrets_for(pair)) as provider:
        await provider.apply(DnsChange(name=A_PROJECT, expected=(A_300,), desired=(A_300.with_ttl(30),), reason="ttl"))
        with pytest.raises(PropagationTimeout, match=r"answers a-project\.example\.test\. 300 A 127\.0\.0\.2"):
            await provider.prove_propagation(A_PROJECT, (A_300.with_ttl(30),), timeout=0.3)


async def test_propagation_needs_at_least_one_server(bind: BindPair):
    async with build_dns_provider(section_for(bind, nameservers=[]), secrets=secrets_for(bind)) as provider:
        with pytest.raises(DnsUnavailable, match="no authoritative nameserver"):
            await provider.prove_propagation(A_PROJECT, (A_300,), timeout=1)


def test_serials_compare_with_rfc1982_arithmetic():
    assert serial_at_least(1, 2**32 - 1)  # wrapped: 1 is newer than 4294967295
    assert not serial_at_least(2**32 - 1, 1)
    assert serial_at_least(5, 5) and serial_at_least(6, 5) and not serial_at_least(4, 5)
    assert serial_at_least(None, None) and not serial_at_least(None, 3)


async def test_the_read_back_is_not_reused_once_the_primary_moved_on(
    bind_lagging: BindPair, monkeypatch: pytest.MonkeyPatch
):
    """Another change in the zone between the apply and the proof: the primary is read again in full."""
    pair = bind_lagging
    async with build_dns_provider(section_for(pair), secrets=secrets_for(pair)) as provider:
        result = await provider.apply(FLIP)
        external_update(pair, ("add", "elsewhere", 60, "TXT", '"moved"'))
        pair.send_notify()
        asked = count_queries(monkeypatch)
        report = await provider.prove_propagation(
            A_PROJECT, (A_TO_B,), min_serial=result.serial_after, read_back=result.readback, timeout=10
        )

    assert report.in_sync and [s.serial for s in report.servers] == [3, 3]
    assert asked[(pair.primary.address, "ANY")] == 1 and asked[(pair.primary.address, "SOA")] == 3


async def test_without_a_serial_to_compare_the_read_back_is_not_reused(bind: BindPair, monkeypatch: pytest.MonkeyPatch):
    """No min_serial (as for Cloud DNS): every server is read in full, as before."""
    async with build_dns_provider(section_for(bind), secrets=secrets_for(bind)) as provider:
        result = await provider.apply(FLIP)
        asked = count_queries(monkeypatch)
        report = await provider.prove_propagation(A_PROJECT, (A_TO_B,), read_back=result.readback, timeout=10)
    assert report.in_sync and asked[(bind.primary.address, "ANY")] == 1
