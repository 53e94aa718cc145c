"""The read-back memo: recent, complete enough, bounded; and only a change's read-back is in it."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from models.dns import DnsChange
from providers.dns import nameservers
from providers.dns.factory import build_dns_provider
from providers.dns.nameservers import Nameserver
from providers.dns.recent_reads import RecentReads
from sandbox.bind import BindPair
from tests.dns.conftest import A_PROJECT, B_PROJECT, rr, secrets_for, section_for

A_300 = rr(A_PROJECT, "A", 300, "127.0.0.2")
A_TO_B = rr(A_PROJECT, "CNAME", 30, B_PROJECT)
KEY = ("127.0.0.1", 53, "example.test.", A_PROJECT, None)


def test_a_read_is_recalled_while_recent_and_only_for_types_it_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    reads = RecentReads(keep_seconds=60, max_kept=2)
    reads.remember(KEY, 7, (A_TO_B,), ["A", "AAAA"])
    recalled = reads.recall(KEY, ["A"])
    assert recalled is not None and (recalled.serial, recalled.rrsets) == (7, (A_TO_B,))
    assert reads.recall(KEY, ["A", "TXT"]) is None  # TXT was not asked: it could hide there
    clock[0] += 61
    assert reads.recall(KEY, ["A"]) is None
    reads.remember(KEY, 8, (A_300,), ["A"])
    reads.remember(("127.0.0.2", 53, *KEY[2:]), 1, (), ["A"])
    reads.remember(("127.0.0.3", 53, *KEY[2:]), 1, (), ["A"])
    assert reads.recall(KEY, ["A"]) is None  # the oldest of three went


async def test_a_snapshot_before_the_change_is_never_the_proof_of_it(
    bind: BindPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the read-back is remembered: the secondary, read by the snapshot, is read again by the proof."""
    asked: Counter[tuple[str, str]] = Counter()
    query = nameservers.authoritative_query

    async def counted(server: Nameserver, qname: str, rdtype: str, **options: Any) -> Any:
        asked[(server.label, rdtype)] += 1
        return await query(server, qname, rdtype, **options)

    async with build_dns_provider(section_for(bind), secrets=secrets_for(bind)) as provider:
        await provider.snapshot(A_PROJECT)
        result = await provider.apply(DnsChange(name=A_PROJECT, expected=(A_300,), desired=(A_TO_B,), reason="flip"))
        monkeypatch.setattr(nameservers, "authoritative_query", counted)
        report = await provider.prove_propagation(A_PROJECT, (A_TO_B,), min_serial=result.serial_after, timeout=10)
    assert report.in_sync
    assert asked[(bind.primary.address, "ANY")] == 0
    assert asked[(bind.secondary.address, "ANY")] >= 1
