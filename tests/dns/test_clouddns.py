"""Cloud DNS provider against the local fake (loopback HTTP + DNS), every exchange checked against dns.v1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import dns.asyncresolver
import google.oauth2.credentials
import pytest

from models.dns import DnsChange, RRset
from providers.dns.base import DnsProvider
from providers.dns.factory import build_dns_provider
from providers.errors import (
    DnsAuthError,
    DnsRefused,
    DnsUnavailable,
    InvalidChange,
    NotInZone,
    PreconditionFailed,
    PropagationTimeout,
)
from providers.secrets import EnvSecrets
from tests.dns.conftest import A_PROJECT, ALIAS, B_PROJECT, ZONE, cloud_section, rr
from tests.fakes.clouddns import FakeCloudDns
from tests.kong.fixtures import header_echoing_server

A_300 = rr(A_PROJECT, "A", 300, "127.0.0.2")
A_30 = rr(A_PROJECT, "A", 30, "127.0.0.2")
A_TO_B = rr(A_PROJECT, "CNAME", 30, B_PROJECT)
NEW = "new.example.test."


def credentials(token: str = "test-token") -> google.oauth2.credentials.Credentials:
    return google.oauth2.credentials.Credentials(token=token)


def change(expected: tuple[RRset, ...], desired: tuple[RRset, ...], name: str = A_PROJECT) -> DnsChange:
    return DnsChange(name=name, expected=expected, desired=desired, reason="test")


def api(rrset: RRset) -> dict[str, object]:
    return {
        "kind": "dns#resourceRecordSet",
        "name": rrset.name,
        "type": rrset.type,
        "ttl": rrset.ttl,
        "rrdatas": list(rrset.rdatas),
    }


def build(fake: FakeCloudDns, token: str = "test-token", **overrides) -> DnsProvider:
    return build_dns_provider(cloud_section(fake, **overrides), secrets=EnvSecrets({}), credentials=credentials(token))


@pytest.fixture
async def cloud(clouddns: FakeCloudDns) -> AsyncIterator[DnsProvider]:
    async with build(clouddns) as provider:
        yield provider


def resolver_at(fake: FakeCloudDns) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = fake.dns_port
    resolver.lifetime = 2
    return resolver


async def test_lower_flip_restore_and_flip_again(clouddns: FakeCloudDns, cloud: DnsProvider):
    lowered = await cloud.apply(change((A_300,), (A_30,)))
    assert clouddns.rrsets_at(A_PROJECT) == [api(A_30)]
    assert clouddns.changes()[-1]["deletions"] == [api(A_300)] and clouddns.changes()[-1]["additions"] == [api(A_30)]
    assert lowered.outcome == "applied" and lowered.change_id == "1" and lowered.serial_before is None

    await cloud.apply(change((A_30,), (A_TO_B,)))
    assert clouddns.rrsets_at(A_PROJECT) == [api(A_TO_B)]

    restored = await cloud.apply(change((A_TO_B,), (A_300,)))
    assert clouddns.rrsets_at(A_PROJECT) == [api(A_300)] and restored.readback == (A_300,)

    await cloud.apply(change((A_300,), (A_TO_B,)))
    assert clouddns.rrsets_at(A_PROJECT) == [api(A_TO_B)]
    operation_ids = [r.query["clientOperationId"] for r in clouddns.requests_for("dns.changes.create")]
    assert len(operation_ids) == len(set(operation_ids)) == 4


async def test_alias_cname_flip(clouddns: FakeCloudDns, cloud: DnsProvider):
    await cloud.apply(change((rr(ALIAS, "CNAME", 300, A_PROJECT),), (rr(ALIAS, "CNAME", 60, B_PROJECT),), ALIAS))

    assert clouddns.rrsets_at(ALIAS) == [api(rr(ALIAS, "CNAME", 60, B_PROJECT))]


async def test_reapplying_sends_no_second_change(clouddns: FakeCloudDns, cloud: DnsProvider):
    first = await cloud.apply(change((A_300,), (A_TO_B,)))
    again = await cloud.apply(change((A_300,), (A_TO_B,)))

    assert (first.outcome, again.outcome) == ("applied", "already-applied")
    assert len(clouddns.requests_for("dns.changes.create")) == 1 and len(clouddns.changes()) == 1


async def test_pending_change_is_polled_at_a_growing_interval_until_done(clouddns: FakeCloudDns, cloud: DnsProvider):
    clouddns.pending_polls = 2

    result = await cloud.apply(change((A_300,), (A_30,)))

    polls = clouddns.requests_for("dns.changes.get")
    created = clouddns.requests_for("dns.changes.create")[0]
    assert len(polls) == 3 and all(p.path.endswith(f"/changes/{result.change_id}") for p in polls)
    gaps = [b.at - a.at for a, b in zip([created, *polls], polls, strict=False)]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39
    assert clouddns.changes()[0]["status"] == "done"


async def test_change_still_pending_at_the_deadline_is_retryable_and_the_retry_finds_it(clouddns: FakeCloudDns):
    clouddns.pending_polls = 10_000
    async with build(clouddns, provider={**cloud_section(clouddns).provider.model_dump(), "poll_timeout": "1s"}) as p:
        started = time.monotonic()
        with pytest.raises(DnsUnavailable, match="still pending after 1s") as caught:
            await p.apply(change((A_300,), (A_TO_B,)))
        elapsed = time.monotonic() - started
        retried = await p.apply(change((A_300,), (A_TO_B,)))

    assert caught.value.retryable
    assert 1.0 <= elapsed < 2.0
    assert len(clouddns.requests_for("dns.changes.get")) <= 6  # 0.1, 0.2, 0.4, 0.3 s: no busy loop
    assert retried.outcome == "already-applied" and len(clouddns.changes()) == 1


async def test_412_when_someone_edits_between_read_and_change(clouddns: FakeCloudDns, cloud: DnsProvider):
    clouddns.before_change = lambda body: clouddns.edit(A_PROJECT, "A", 300, ["127.0.0.9"])

    with pytest.raises(PreconditionFailed, match=r"found a-project\.example\.test\. 300 A 127\.0\.0\.9"):
        await cloud.apply(change((A_300,), (A_TO_B,)))

    assert [r.status for r in clouddns.requests_for("dns.changes.create")] == [412]
    assert clouddns.rrsets_at(A_PROJECT) == [api(rr(A_PROJECT, "A", 300, "127.0.0.9"))]
    assert clouddns.changes() == []


async def test_412_on_a_ttl_only_edit(clouddns: FakeCloudDns, cloud: DnsProvider):
    clouddns.before_change = lambda body: clouddns.edit(A_PROJECT, "A", 120, ["127.0.0.2"])

    with pytest.raises(PreconditionFailed):
        await cloud.apply(change((A_300,), (A_30,)))

    assert clouddns.rrsets_at(A_PROJECT) == [api(rr(A_PROJECT, "A", 120, "127.0.0.2"))]


async def test_409_when_someone_else_created_the_rrset(clouddns: FakeCloudDns, cloud: DnsProvider):
    clouddns.before_change = lambda body: clouddns.edit(NEW, "TXT", 60, ['"theirs"'])

    with pytest.raises(PreconditionFailed, match="theirs"):
        await cloud.apply(change((), (rr(NEW, "TXT", 60, '"ours"'),), NEW))

    assert [r.status for r in clouddns.requests_for("dns.changes.create")] == [409]
    assert clouddns.rrsets_at(NEW) == [api(rr(NEW, "TXT", 60, '"theirs"'))]


async def test_409_for_exactly_our_data_counts_as_already_applied(clouddns: FakeCloudDns, cloud: DnsProvider):
    clouddns.before_change = lambda body: clouddns.edit(NEW, "TXT", 60, ['"ours"'])

    result = await cloud.apply(change((), (rr(NEW, "TXT", 60, '"ours"'),), NEW))

    assert result.outcome == "already-applied"
    assert [r.status for r in clouddns.requests_for("dns.changes.create")] == [409]


async def test_rrset_deleted_meanwhile_is_a_failed_precondition(clouddns: FakeCloudDns, cloud: DnsProvider):
    clouddns.before_change = lambda body: clouddns.remove(A_PROJECT, "A")

    with pytest.raises(PreconditionFailed, match=r"found \(nothing\)"):
        await cloud.apply(change((A_300,), (A_TO_B,)))

    assert [r.status for r in clouddns.requests_for("dns.changes.create")] == [404]
    assert clouddns.rrsets_at(A_PROJECT) == []


async def test_cname_beside_other_data_is_refused_before_sending(clouddns: FakeCloudDns, cloud: DnsProvider):
    with pytest.raises(InvalidChange, match="CNAME beside"):
        await cloud.apply(change((), (rr(B_PROJECT, "CNAME", 60, A_PROJECT),), B_PROJECT))
    with pytest.raises(InvalidChange, match="apex"):
        await cloud.apply(change((), (rr(ZONE, "CNAME", 60, B_PROJECT),), ZONE))

    assert clouddns.requests_for("dns.changes.create") == []
    assert clouddns.rrsets_at(B_PROJECT) == [api(rr(B_PROJECT, "A", 300, "127.0.0.3"))]


async def test_cloud_dns_400_for_a_cname_conflict_appearing_meanwhile(clouddns: FakeCloudDns, cloud: DnsProvider):
    clouddns.before_change = lambda body: clouddns.edit(NEW, "A", 60, ["127.0.0.7"])

    with pytest.raises(InvalidChange, match="cannot coexist"):
        await cloud.apply(change((), (rr(NEW, "CNAME", 60, B_PROJECT),), NEW))

    assert clouddns.rrsets_at(NEW) == [api(rr(NEW, "A", 60, "127.0.0.7"))]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(401, DnsAuthError), (403, DnsRefused), (429, DnsUnavailable), (500, DnsUnavailable), (503, DnsUnavailable)],
)
async def test_api_failures_are_typed(clouddns: FakeCloudDns, cloud: DnsProvider, status, error_type):
    clouddns.fail_requests(status)

    with pytest.raises(error_type) as caught:
        await cloud.apply(change((A_300,), (A_TO_B,)))

    assert caught.value.retryable is (error_type is DnsUnavailable)
    assert f"HTTP {status}" in str(caught.value)
    clouddns.fail_requests(None)
    assert clouddns.rrsets_at(A_PROJECT) == [api(A_300)]


async def test_a_wrong_token_is_an_auth_error_without_the_token_in_it(clouddns: FakeCloudDns):
    async with build(clouddns, token="ya29.not-the-right-token") as provider:
        with pytest.raises(DnsAuthError) as caught:
            await provider.snapshot(A_PROJECT)

    assert "ya29" not in str(caught.value) and "authError" in str(caught.value)


async def test_unreachable_api_is_retryable(clouddns: FakeCloudDns):
    async with build(clouddns) as provider:
        await clouddns.stop()
        with pytest.raises(DnsUnavailable, match="unreachable"):
            await provider.apply(change((A_300,), (A_TO_B,)))


async def test_unknown_managed_zone_and_wrong_dns_name_are_not_in_zone(clouddns: FakeCloudDns):
    section = cloud_section(clouddns)
    unknown = {**section.provider.model_dump(), "managed_zone": "no-such-zone"}
    async with build(clouddns, provider=unknown) as provider:
        with pytest.raises(NotInZone, match="no-such-zone"):
            await provider.snapshot(A_PROJECT)

    other = {**section.provider.model_dump(), "zone": "other.test."}
    async with build(clouddns, provider=other, record="a.other.test.", target="b.other.test.") as provider:
        with pytest.raises(NotInZone, match=r"serves example\.test\., not other\.test\."):
            await provider.snapshot("a.other.test.")


async def test_rrsets_are_read_across_pages(clouddns: FakeCloudDns, cloud: DnsProvider):
    clouddns.page_size = 1
    clouddns.seed(NEW, "TXT", 60, ['"a"'])
    clouddns.seed(NEW, "MX", 60, ["10 mail.example.test."])
    clouddns.seed(NEW, "AAAA", 60, ["::1"])

    snapshot = await cloud.snapshot(NEW)

    assert [r.type for r in snapshot.rrsets] == ["AAAA", "MX", "TXT"]
    assert snapshot.nameservers[0].rrsets == snapshot.rrsets
    pages = [r for r in clouddns.requests_for("dns.resourceRecordSets.list") if r.query.get("name") == NEW]
    assert [r.query.get("pageToken") for r in pages] == [None, "1", "2"]


async def test_snapshot_and_propagation_through_the_zone_nameserver(clouddns: FakeCloudDns, cloud: DnsProvider):
    snapshot = await cloud.snapshot(A_PROJECT)
    assert snapshot.rrsets == (A_300,) and snapshot.serial is None
    assert [(s.server, s.serial, s.rrsets) for s in snapshot.nameservers] == [(clouddns.nameserver, 1, (A_300,))]
    assert snapshot.negative_ttl == 300  # min(SOA TTL 21600, MINIMUM 300)
    assert snapshot.max_ttl == 300

    clouddns.hold_nameserver()
    await cloud.apply(change((A_300,), (A_TO_B,)))
    with pytest.raises(
        PropagationTimeout,
        match=rf"{clouddns.nameserver} at serial 1, want 2 and answers a-project.* 300 A 127\.0\.0\.2",
    ):
        await cloud.prove_propagation(A_PROJECT, (A_TO_B,), min_serial=2, timeout=0.3)
    clouddns.release_nameserver()
    report = await cloud.prove_propagation(A_PROJECT, (A_TO_B,), min_serial=2, timeout=2)

    assert report.in_sync and [(s.serial, s.rrsets) for s in report.servers] == [(2, (A_TO_B,))]


async def test_nameservers_come_from_the_managed_zone_when_not_configured():
    fake = FakeCloudDns(name_servers=["ns-a.example.test.", "ns-b.example.test."])
    fake.seed("ns-a.example.test.", "A", 300, ["127.0.0.11"])
    fake.seed("ns-b.example.test.", "A", 300, ["127.0.0.12"])
    async with fake:
        section = cloud_section(fake, nameservers=None)
        async with build_dns_provider(
            section, secrets=EnvSecrets({}), credentials=credentials(), resolver=resolver_at(fake)
        ) as provider:
            servers = await provider.nameservers()
    fake.assert_valid()

    assert [(s.label, s.ns_name) for s in servers] == [
        ("127.0.0.11:53", "ns-a.example.test."),
        ("127.0.0.12:53", "ns-b.example.test."),
    ]


async def test_resolve_follows_a_cname_out_of_the_zone_through_the_resolver(clouddns: FakeCloudDns):
    elsewhere = FakeCloudDns(managed_zone="example-net", dns_name="example.net.")
    elsewhere.seed("app.example.net.", "A", 60, ["192.0.2.10"])
    clouddns.seed("api.example.test.", "CNAME", 60, ["app.example.net."])
    async with elsewhere:
        async with build_dns_provider(
            cloud_section(clouddns), secrets=EnvSecrets({}), credentials=credentials(), resolver=resolver_at(elsewhere)
        ) as provider:
            resolved = await provider.resolve(["api.example.test.", ALIAS])

    assert resolved.addresses == {"api.example.test.": ("192.0.2.10",), ALIAS: ("127.0.0.2",)}
    assert resolved.chains == {"api.example.test.": ("app.example.net.",), ALIAS: (A_PROJECT,)}


async def test_the_fake_rejects_traffic_that_does_not_match_the_discovery_document(clouddns: FakeCloudDns):
    """The fake's own guard: a wrong body, parameter or path is answered 500 and fails the test."""
    import httpx

    headers = {"Authorization": "Bearer test-token"}
    zone = f"/dns/v1/projects/{clouddns.project}/managedZones/{clouddns.managed_zone}"
    async with httpx.AsyncClient(base_url=clouddns.url, headers=headers) as client:
        bad_body = await client.post(zone + "/changes", json={"additionz": []})
        bad_param = await client.get(zone + "/rrsets", params={"nam": A_PROJECT})
        bad_path = await client.get(zone + "/recordsets")
        good = await client.get(zone + "/rrsets", params={"name": A_PROJECT, "type": "A"})

    assert [bad_body.status_code, bad_param.status_code, bad_path.status_code, good.status_code] == [500, 500, 500, 200]
    assert len(clouddns.problems) == 3
    with pytest.raises(AssertionError, match="invalid traffic"):
        clouddns.assert_valid()
    clouddns.problems.clear()


async def test_a_transport_error_quoting_the_bearer_token_is_reported_without_it(clouddns: FakeCloudDns):
    token = "ya29.cloud-dns-access-token-8d1f"
    async with header_echoing_server("Authorization") as url:
        provider_section = {**cloud_section(clouddns).provider.model_dump(), "api_endpoint": url}
        async with build(clouddns, token=token, provider=provider_section) as provider:
            with pytest.raises(DnsUnavailable) as failed:
                await provider.snapshot(A_PROJECT)
    assert token in str(failed.value.__cause__)
    assert token not in str(failed.value) and "RemoteProtocolError" in str(failed.value)


@pytest.mark.parametrize(
    ("method_id", "body", "error_type", "message"),
    [
        ("dns.resourceRecordSets.list", {"rrsets": [{"name": A_PROJECT}]}, DnsUnavailable, "without 'type'"),
        ("dns.resourceRecordSets.list", {"rrsets": "none"}, DnsUnavailable, "'rrsets' that is not a list"),
        ("dns.resourceRecordSets.list", {"rrsets": [42]}, DnsUnavailable, "not an object"),
        (
            "dns.resourceRecordSets.list",
            {"rrsets": [{"name": A_PROJECT, "type": "A", "ttl": "soon", "rrdatas": ["127.0.0.2"]}]},
            DnsUnavailable,
            "can't read",
        ),
        (
            "dns.resourceRecordSets.list",
            {"rrsets": [{"name": A_PROJECT, "type": "A", "ttl": 300, "rrdatas": ["not-an-address"]}]},
            InvalidChange,
            r"holds a-project\.example\.test\. A data cutover can't read",
        ),
        ("dns.managedZones.get", {"dnsName": "a..b."}, DnsUnavailable, "dnsName that is not a DNS name"),
        ("dns.resourceRecordSets.list", "<html>502 Bad Gateway</html>", DnsUnavailable, "not JSON"),
    ],
)
async def test_unexpected_answers_are_typed_errors(
    clouddns: FakeCloudDns, cloud: DnsProvider, method_id, body, error_type, message
):
    clouddns.answer_raw(method_id, body, content_type="text/html" if isinstance(body, str) else "application/json")

    with pytest.raises(error_type, match=message):
        await cloud.apply(change((A_300,), (A_TO_B,)))

    assert clouddns.changes() == [] and clouddns.rrsets_at(A_PROJECT) == [api(A_300)]


async def test_an_unexpected_change_list_is_a_typed_error(clouddns: FakeCloudDns, cloud: DnsProvider):
    clouddns.answer_raw("dns.changes.list", {"changes": ["1"]})

    with pytest.raises(DnsUnavailable, match="change that is not an object"):
        await cloud.apply(change((A_300,), (A_TO_B,)))

    assert clouddns.changes() == []
