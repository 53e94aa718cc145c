"""RFC 2136 provider against a real BIND 9 primary + secondary: every change read back from BIND directly."""

from __future__ import annotations

import dns.query
import dns.rcode
import pytest

from models.dns import DnsChange
from providers.dns.base import DnsProvider
from providers.dns.factory import build_dns_provider
from providers.dns.nameservers import Nameserver, read_name
from providers.dns.rfc2136 import Rfc2136DnsProvider, update_rcode_error
from providers.errors import (
    ConfigError,
    DnsAuthError,
    DnsRefused,
    DnsUnavailable,
    InvalidChange,
    NotInZone,
    PreconditionFailed,
)
from sandbox.bind import BindPair
from tests.dns.conftest import (
    A_PROJECT,
    ALIAS,
    B_PROJECT,
    ZONE,
    count_queries,
    external_update,
    rr,
    secrets_for,
    section_for,
    update_log_lines,
    world,
)

A_300 = rr(A_PROJECT, "A", 300, "127.0.0.2")
A_30 = rr(A_PROJECT, "A", 30, "127.0.0.2")
A_TO_B = rr(A_PROJECT, "CNAME", 30, B_PROJECT)


def change(expected, desired, reason="test", name=A_PROJECT) -> DnsChange:
    return DnsChange(name=name, expected=tuple(expected), desired=tuple(desired), reason=reason)


async def test_lower_ttl_rewrites_the_rrset_and_bumps_the_serial_once(bind: BindPair, provider: DnsProvider):
    result = await provider.apply(change([A_300], [A_30], "lower TTL to 30 s"))

    assert world(bind.primary, A_PROJECT) == {"A": (30, ("127.0.0.2",))}
    assert bind.serial() == 2
    assert result.outcome == "applied"
    assert (result.serial_before, result.serial_after) == (1, 2)
    assert result.readback == (A_30,)


async def test_flip_a_record_to_cname_in_one_atomic_update(bind: BindPair, provider: DnsProvider):
    await provider.apply(change([A_300], [A_30]))
    result = await provider.apply(change([A_30], [A_TO_B], "flip to B"))

    assert world(bind.primary, A_PROJECT) == {"CNAME": (30, (B_PROJECT,))}
    assert bind.serial() == 3
    assert result.outcome == "applied" and result.readback == (A_TO_B,)


async def test_bind_answers_a_cname_to_the_address_queries_a_read_sends(bind: BindPair, provider: DnsProvider):
    """A read asks no CNAME query (RFC 1034 4.3.2): BIND's answers to A and AAAA must carry it."""
    await provider.apply(change([A_300], [A_TO_B]))
    report = await provider.prove_propagation(A_PROJECT, [A_TO_B], timeout=10)
    assert report.in_sync and [view.rrsets for view in report.servers] == [(A_TO_B,), (A_TO_B,)]
    _, unasked = await read_name(Nameserver("127.0.0.1", bind.primary.port), ZONE, A_PROJECT, timeout=2)
    assert unasked == (A_TO_B,)


async def test_an_answer_too_big_for_udp_is_read_again_over_tcp(bind: BindPair):
    """40 addresses do not fit in 512 bytes: BIND sets TC, and the read asks again over TCP."""
    addresses = [f"127.0.1.{i}" for i in range(1, 41)]
    external_update(bind, ("replace", B_PROJECT, 300, "A", *addresses))
    primary = Nameserver("127.0.0.1", bind.primary.port)
    _, rrsets = await read_name(primary, ZONE, B_PROJECT, timeout=2)
    assert [(r.type, sorted(r.rdatas)) for r in rrsets] == [("A", sorted(addresses))]


async def test_flip_alias_cname_to_another_cname(bind: BindPair, provider: DnsProvider):
    old = rr(ALIAS, "CNAME", 300, A_PROJECT)
    new = rr(ALIAS, "CNAME", 60, B_PROJECT)

    result = await provider.apply(change([old], [new], "flip alias", name=ALIAS))

    assert world(bind.primary, ALIAS) == {"CNAME": (60, (B_PROJECT,))}
    assert result.serial_after == 2


async def test_restore_puts_back_the_exact_snapshot(bind: BindPair, provider: DnsProvider):
    before = await provider.snapshot(A_PROJECT)
    await provider.apply(change([A_300], [A_30]))
    await provider.apply(change([A_30], [A_TO_B]))

    result = await provider.apply(change([A_TO_B], before.rrsets, "roll back"))

    assert world(bind.primary, A_PROJECT) == {"A": (300, ("127.0.0.2",))}
    assert result.readback == before.rrsets
    assert bind.serial() == 4


async def test_reapplying_the_same_change_sends_nothing(bind: BindPair, provider: DnsProvider):
    first = await provider.apply(change([A_300], [A_TO_B]))
    updates_after_first = len(update_log_lines(bind))

    again = await provider.apply(change([A_300], [A_TO_B]))

    assert first.outcome == "applied" and again.outcome == "already-applied"
    assert bind.serial() == 2 == again.serial_after == again.serial_before
    assert len(update_log_lines(bind)) == updates_after_first
    assert world(bind.primary, A_PROJECT) == {"CNAME": (30, (B_PROJECT,))}


async def test_concurrent_external_edit_is_detected_and_left_alone(bind: BindPair, provider: DnsProvider):
    external_update(bind, ("replace", A_PROJECT, 300, "A", "127.0.0.9"))
    serial = bind.serial()

    with pytest.raises(PreconditionFailed) as caught:
        await provider.apply(change([A_300], [A_TO_B]))

    assert "127.0.0.9" in str(caught.value) and "127.0.0.2" in str(caught.value)
    assert world(bind.primary, A_PROJECT) == {"A": (300, ("127.0.0.9",))}
    assert bind.serial() == serial


async def test_ttl_only_external_edit_is_detected_although_prerequisites_ignore_ttl(
    bind: BindPair, provider: DnsProvider
):
    external_update(bind, ("replace", A_PROJECT, 120, "A", "127.0.0.2"))

    with pytest.raises(PreconditionFailed, match="120"):
        await provider.apply(change([A_300], [A_30]))

    assert world(bind.primary, A_PROJECT) == {"A": (120, ("127.0.0.2",))}
    assert bind.serial() == 2


async def test_the_update_message_itself_guards_against_an_edit_after_the_read(bind: BindPair):
    """The window between cutover's read and its UPDATE: BIND must refuse the stale message."""
    built = Rfc2136DnsProvider(section_for(bind).provider, tsig_secret=bind.secret)  # type: ignore[arg-type]
    update = built.build_update(change([A_300], [A_TO_B]))
    external_update(bind, ("replace", A_PROJECT, 300, "A", "127.0.0.9"))

    response = dns.query.tcp(update, "127.0.0.1", port=bind.primary.port, timeout=3)

    assert response.rcode() == dns.rcode.NXRRSET
    assert world(bind.primary, A_PROJECT) == {"A": (300, ("127.0.0.9",))}


async def test_cname_update_also_fails_when_other_data_appeared_after_the_read(bind: BindPair):
    """Without the absent-prerequisites BIND would delete the A and silently drop the CNAME."""
    built = Rfc2136DnsProvider(section_for(bind).provider, tsig_secret=bind.secret)  # type: ignore[arg-type]
    update = built.build_update(change([A_300], [A_TO_B]))
    external_update(bind, ("add", A_PROJECT, 300, "TXT", '"owner=someone-else"'))
    serial = bind.serial()

    response = dns.query.tcp(update, "127.0.0.1", port=bind.primary.port, timeout=3)

    assert response.rcode() == dns.rcode.YXRRSET
    assert world(bind.primary, A_PROJECT) == {"A": (300, ("127.0.0.2",)), "TXT": (300, ('"owner=someone-else"',))}
    assert bind.serial() == serial


async def test_bad_tsig_secret_is_an_auth_error_and_changes_nothing(bind: BindPair):
    wrong = "c2VjcmV0LXRoYXQtYmluZC1kb2VzLW5vdC1rbm93LTEyMzQ="
    async with build_dns_provider(section_for(bind), secrets=secrets_for(bind, wrong)) as provider:
        with pytest.raises(DnsAuthError) as caught:
            await provider.apply(change([A_300], [A_TO_B]))

    assert "BADSIG" in str(caught.value) and "CUTOVER_TSIG_SECRET" in str(caught.value)
    assert wrong not in str(caught.value) and bind.secret not in str(caught.value)
    assert not DnsAuthError.retryable
    assert world(bind.primary, A_PROJECT) == {"A": (300, ("127.0.0.2",))}
    assert bind.serial() == 1


async def test_unknown_tsig_key_is_an_auth_error_and_changes_nothing(bind: BindPair):
    section = section_for(bind)
    data = section.model_dump()
    data["provider"]["tsig_key_name"] = "no-such-key"
    other = type(section).model_validate(data)
    async with build_dns_provider(other, secrets=secrets_for(bind)) as provider:
        with pytest.raises(DnsAuthError, match="BADKEY"):
            await provider.apply(change([A_300], [A_TO_B]))

    assert world(bind.primary, A_PROJECT) == {"A": (300, ("127.0.0.2",))}
    assert bind.serial() == 1


async def test_secret_that_is_not_base64_is_a_config_error_naming_only_the_variable(bind: BindPair):
    with pytest.raises(ConfigError) as caught:
        build_dns_provider(section_for(bind), secrets=secrets_for(bind, "not base64 at all!"))

    assert "CUTOVER_TSIG_SECRET" in str(caught.value) and "not base64 at all" not in str(caught.value)


async def test_name_outside_the_zone_is_refused_before_anything_is_sent(bind: BindPair, provider: DnsProvider):
    outside = rr("api.other.test.", "A", 60, "127.0.0.5")

    with pytest.raises(NotInZone, match=r"other\.test"):
        await provider.apply(change([], [outside], name="api.other.test."))

    assert bind.serial() == 1 and update_log_lines(bind) == []


async def test_cname_at_the_apex_is_refused_and_changes_nothing(bind: BindPair, provider: DnsProvider):
    with pytest.raises(InvalidChange, match="apex"):
        await provider.apply(change([], [rr(ZONE, "CNAME", 60, B_PROJECT)], name=ZONE))

    assert bind.serial() == 1 and update_log_lines(bind) == []


async def test_cname_beside_other_data_is_refused_and_changes_nothing(bind: BindPair, provider: DnsProvider):
    with pytest.raises(InvalidChange, match=r"CNAME beside b-project\.example\.test\. 300 A 127\.0\.0\.3"):
        await provider.apply(change([], [rr(B_PROJECT, "CNAME", 60, A_PROJECT)], name=B_PROJECT))
    with pytest.raises(InvalidChange, match="CNAME beside"):
        await provider.apply(change([], [rr(ALIAS, "TXT", 60, '"x"')], name=ALIAS))

    assert world(bind.primary, B_PROJECT) == {"A": (300, ("127.0.0.3",))}
    assert world(bind.primary, ALIAS)["CNAME"] == (300, (A_PROJECT,))
    assert bind.serial() == 1 and update_log_lines(bind) == []


async def test_invalid_changes_list_every_problem(provider: DnsProvider):
    bad = change(
        [rr(A_PROJECT, "A", 300, "127.0.0.2"), rr(A_PROJECT, "A", 300, "127.0.0.3")],
        [rr(A_PROJECT, "CNAME", 30, B_PROJECT, ALIAS), rr(A_PROJECT, "TXT", 30, '"x"'), rr(ZONE, "NS", 30, B_PROJECT)],
    )

    with pytest.raises(InvalidChange) as caught:
        await provider.apply(bad)

    message = str(caught.value)
    for part in ("more than once", "does not change NS", "cannot share", "exactly one target", "is not at"):
        assert part in message


async def test_primary_down_is_unavailable_and_retryable(bind: BindPair, provider: DnsProvider):
    bind.primary.stop()

    with pytest.raises(DnsUnavailable, match=bind.primary.address) as caught:
        await provider.apply(change([A_300], [A_30]))

    assert caught.value.retryable


async def test_zone_not_served_by_the_server_is_refused(bind: BindPair):
    section = section_for(bind)
    data = section.model_dump()
    data["provider"]["zone"] = "other.test."
    data["record"], data["target"] = "a.other.test.", "b.other.test."
    async with build_dns_provider(type(section).model_validate(data), secrets=secrets_for(bind)) as provider:
        with pytest.raises(DnsRefused, match="REFUSED"):
            await provider.apply(change([], [rr("a.other.test.", "A", 60, "127.0.0.5")], name="a.other.test."))


def test_update_answer_codes_map_to_typed_errors():
    expected = {
        dns.rcode.NXRRSET: PreconditionFailed,
        dns.rcode.YXRRSET: PreconditionFailed,
        dns.rcode.NXDOMAIN: PreconditionFailed,
        dns.rcode.YXDOMAIN: PreconditionFailed,
        dns.rcode.REFUSED: DnsRefused,
        dns.rcode.NOTAUTH: DnsRefused,
        dns.rcode.NOTZONE: NotInZone,
        dns.rcode.FORMERR: InvalidChange,
        dns.rcode.SERVFAIL: DnsUnavailable,
        dns.rcode.NOTIMP: DnsRefused,
    }
    for rcode, error_type in expected.items():
        error = update_rcode_error(rcode, server="127.0.0.1:53", zone=ZONE, key_name="update-key")
        assert type(error) is error_type, dns.rcode.to_text(rcode)
        assert error.retryable is (error_type is DnsUnavailable)
    assert update_rcode_error(dns.rcode.NOERROR, server="x", zone=ZONE, key_name=None) is None


async def test_snapshot_reads_every_nameserver(bind: BindPair, provider: DnsProvider, monkeypatch: pytest.MonkeyPatch):
    asked = count_queries(monkeypatch)
    snapshot = await provider.snapshot(ALIAS)
    # The provider's read of the primary is the primary's view too: each server's name is read once.
    assert [asked[(server, "ANY")] for server in bind.nameservers] == [1, 1]

    assert snapshot.rrsets == (rr(ALIAS, "CNAME", 300, A_PROJECT),)
    assert snapshot.serial == 1
    assert [s.server for s in snapshot.nameservers] == bind.nameservers
    assert all(s.authoritative and s.serial == 1 and s.rrsets == snapshot.rrsets for s in snapshot.nameservers)
    assert snapshot.max_ttl == 300
    assert snapshot.negative_ttl == 60  # min(SOA TTL 300, MINIMUM 60)


async def test_snapshot_records_an_unreachable_nameserver_instead_of_failing(bind: BindPair, provider: DnsProvider):
    bind.secondary.stop()

    snapshot = await provider.snapshot(A_PROJECT)

    primary, secondary = snapshot.nameservers
    assert primary.error is None and primary.rrsets == (A_300,)
    assert secondary.server == bind.secondary.address and "unreachable" in (secondary.error or "")


async def test_nameservers_are_discovered_from_the_zone_ns_set_when_not_configured(bind: BindPair):
    data = section_for(bind).model_dump()
    data["nameservers"] = None
    section = type(section_for(bind)).model_validate(data)
    async with build_dns_provider(section, secrets=secrets_for(bind)) as provider:
        servers = await provider.nameservers()

    # The sandbox zone: ns1 and ns2 both have A 127.0.0.1 (in-zone glue read from the primary); NS carry no port.
    assert [(s.label, s.ns_name) for s in servers] == [("127.0.0.1:53", "ns1.example.test.")]


async def test_resolve_follows_cnames_through_the_authoritative_servers(bind: BindPair, provider: DnsProvider):
    before = await provider.resolve([ALIAS, B_PROJECT, "nosuch.example.test."])
    await provider.apply(change([A_300], [A_TO_B]))
    after = await provider.resolve([ALIAS])

    assert before.addresses == {ALIAS: ("127.0.0.2",), B_PROJECT: ("127.0.0.3",), "nosuch.example.test.": ()}
    assert before.chains[ALIAS] == (A_PROJECT,)
    assert after.addresses[ALIAS] == ("127.0.0.3",)
    assert after.chains[ALIAS] == (A_PROJECT, B_PROJECT)
