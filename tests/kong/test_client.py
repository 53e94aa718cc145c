"""KongAdminClient and the inspect/repoint/restore operations against the emulator, over real loopback HTTP.

Every Admin API exchange of these tests goes through the ``recorder`` transport (the real network
transport, recording), and is checked against Kong's published OpenAPI spec at teardown.
"""

from __future__ import annotations

import httpx
import pytest

from models.plan import KongDnsOverrides
from providers.errors import (
    ConfigError,
    GatewayAuthError,
    GatewayConflict,
    GatewayNotFound,
    GatewayReadOnly,
    GatewayRejected,
    GatewayUnavailable,
    GatewayUnsupported,
)
from providers.gateway.kong_admin import KongAdminClient
from providers.gateway.kong_dns_settings import dns_settings_from_configuration
from providers.gateway.kong_entities import changed_fields
from providers.gateway.kong_inspect import inspect_service
from providers.gateway.kong_service import repoint_service, restore_service
from providers.secrets import EnvSecrets
from sandbox.kong import running_emulator
from tests.kong.fixtures import sandbox_config, section
from tests.kong.openapi import RecordingTransport

NO_SECRETS = EnvSecrets({})
RECORD = "a-project.example.test."
ALIAS = "origin-api.example.test."
TARGET = "b-project.example.test."

UPSTREAM_CONFIG = {
    "_format_version": "3.0",
    "services": [
        {
            "name": "orders-api",
            "protocol": "https",
            "host": "orders.upstream",
            "port": 443,
            "tls_verify": True,
            "routes": [
                {"name": "orders", "paths": ["/orders/v1"]},
                {"name": "orders-vhost", "hosts": ["api.example.com"], "preserve_host": True},
            ],
        }
    ],
    "upstreams": [
        {
            "name": "orders.upstream",
            "targets": [
                {"target": "a-project.example.test:8443", "weight": 100},
                {"target": "b-project.example.test:8443", "weight": 0},
            ],
        }
    ],
}


def client_for(emulator, transport: httpx.AsyncBaseTransport, secrets: EnvSecrets = NO_SECRETS, **overrides):
    return KongAdminClient(section(emulator, **overrides), secrets=secrets, transport=transport, retry_backoff=0.01)


async def test_inspect_reads_service_routes_mode_dns_and_kongs_host(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443), dns_settings={"dns_stale_ttl": 120}) as kong:
        async with client_for(kong, recorder) as client:
            inspection = await inspect_service(client, strategy="cname", record=RECORD, target=TARGET)
    assert (inspection.mode, inspection.writable, inspection.version) == ("traditional", True, "3.9.1")
    service = inspection.service
    assert (service.name, service.host, service.port, service.protocol, service.path) == (
        "orders-api",
        "a-project.example.test",
        8443,
        "https",
        "/orders/v1",
    )
    assert service.entity["tls_verify"] is True and service.updated_at is not None
    assert [(r.name, r.paths, r.preserve_host) for r in inspection.routes] == [("orders", ("/orders/v1",), False)]
    assert inspection.upstream is None
    dns = inspection.dns
    assert (dns.client, dns.valid_ttl, dns.stale_ttl, dns.not_found_ttl, dns.error_ttl) == ("legacy", None, 120, 30, 1)
    assert dns.order == ("LAST", "SRV", "A", "CNAME") and "GET / on" in dns.source
    shape = inspection.shape_after
    assert (shape.host_header, shape.sni, shape.port, shape.tls_verify) == (
        "a-project.example.test:8443",
        "a-project.example.test",
        8443,
        True,
    )
    assert not [w for w in inspection.warnings if "not the plan's record" in w]


async def test_alias_strategy_shape_is_the_alias_and_warns_both_sides(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(443)) as kong:
        async with client_for(kong, recorder) as client:
            inspection = await inspect_service(client, strategy="alias", record=ALIAS, target=TARGET)
    assert inspection.shape_after.host_header == "origin-api.example.test"  # port 443 is https's default
    assert inspection.shape_after.sni == "origin-api.example.test"
    assert any("both must accept" in w for w in inspection.warnings)


async def test_cname_strategy_warns_when_kong_does_not_use_the_record(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        async with client_for(kong, recorder) as client:
            inspection = await inspect_service(client, strategy="cname", record=ALIAS, target=TARGET)
    assert any(
        "a-project.example.test, not the plan's record origin-api.example.test" in w for w in inspection.warnings
    )


async def test_inspect_warns_when_kong_already_uses_the_target(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443, host="b-project.example.test")) as kong:
        async with client_for(kong, recorder) as client:
            inspection = await inspect_service(client, strategy="cname", record=RECORD, target=TARGET)
    assert any("already the target b-project.example.test" in w for w in inspection.warnings)


async def test_inspect_reads_upstream_targets_host_header_and_preserve_host(recorder: RecordingTransport) -> None:
    async with running_emulator(config=UPSTREAM_CONFIG) as kong:
        async with client_for(kong, recorder) as client:
            inspection = await inspect_service(client, strategy="cname", record=RECORD, target=TARGET)
            assert inspection.upstream is not None
            assert inspection.upstream.name == "orders.upstream" and inspection.upstream.host_header is None
            assert [(t.target, t.weight) for t in inspection.upstream.targets] == [
                ("a-project.example.test:8443", 100),
                ("b-project.example.test:8443", 0),
            ]
            assert inspection.shape_after.host_header == "a-project.example.test:8443"
            assert inspection.shape_after.preserve_host_hosts == ("api.example.com",)
            await recorder_patch_upstream(kong, recorder, {"host_header": "orders.internal"})
            with_header = await inspect_service(client, strategy="cname", record=RECORD, target=TARGET)
            missing = await inspect_service(client, strategy="cname", record="c.example.test.", target=TARGET)
    assert with_header.shape_after.host_header == "orders.internal:8443"
    assert with_header.shape_after.sni == "orders.internal"
    assert any("none of which is the plan's record c.example.test" in w for w in missing.warnings)


async def recorder_patch_upstream(kong, transport: RecordingTransport, body: dict) -> None:
    async with httpx.AsyncClient(transport=transport) as http:
        response = await http.patch(f"{kong.admin_url}/upstreams/orders.upstream", json=body)
        assert response.status_code == 200


async def test_repoint_patches_only_the_host_and_restore_puts_it_back(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        async with client_for(kong, recorder) as client:
            original = (await inspect_service(client, strategy="alias", record=ALIAS, target=TARGET)).service
            repointed = await repoint_service(client, original, ALIAS)
            stored = kong.store.service("orders-api")
            assert stored["host"] == repointed.host == "origin-api.example.test"
            assert changed_fields(original.entity, stored) in (["host"], ["host", "updated_at"])
            patches = [e for e in recorder.exchanges if e.method == "PATCH"]
            assert [e.request_body for e in patches] == [{"host": "origin-api.example.test"}]

            again = await repoint_service(client, original, ALIAS)  # an activity retry after success
            assert again.host == "origin-api.example.test"
            assert recorder.count("PATCH") == 1

            restored = await restore_service(client, original, ALIAS)
            assert kong.store.service("orders-api")["host"] == restored.host == "a-project.example.test"
            assert changed_fields(original.entity, kong.store.service("orders-api"), ignore={"updated_at"}) == []
            await restore_service(client, original, ALIAS)  # no-op the second time
            assert recorder.count("PATCH") == 2


async def test_repoint_refuses_when_the_service_changed_since_it_was_read(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        async with client_for(kong, recorder) as client:
            original = (await inspect_service(client, strategy="alias", record=ALIAS, target=TARGET)).service
            async with httpx.AsyncClient(transport=recorder) as someone_else:
                response = await someone_else.patch(f"{kong.admin_url}/services/orders-api", json={"port": 9443})
                assert response.status_code == 200
            with pytest.raises(GatewayConflict) as refused:
                await repoint_service(client, original, ALIAS)
    assert "port: 8443 -> 9443" in str(refused.value) and "nothing was written" in str(refused.value)
    assert kong.store.service("orders-api")["host"] == "a-project.example.test"
    assert recorder.count("PATCH") == 1  # only the other party's


async def test_a_retry_whose_first_answer_was_lost_sees_its_own_repoint_despite_another_edit(
    recorder: RecordingTransport,
) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        async with client_for(kong, recorder) as client:
            original = (await inspect_service(client, strategy="alias", record=ALIAS, target=TARGET)).service
            await repoint_service(client, original, ALIAS)  # applied; its answer lost on the way back
            async with httpx.AsyncClient(transport=recorder) as someone_else:
                response = await someone_else.patch(f"{kong.admin_url}/services/orders-api", json={"port": 9443})
                assert response.status_code == 200
            retried = await repoint_service(client, original, ALIAS)  # the activity's retry
    assert retried.host == "origin-api.example.test", "applied by cutover, not 'changed outside, nothing written'"
    assert kong.store.service("orders-api")["port"] == 9443, "the other party's edit is kept"
    assert recorder.count("PATCH") == 2  # cutover's one write and the other party's


async def test_restore_refuses_when_someone_changed_the_service_after_the_repoint(
    recorder: RecordingTransport,
) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        async with client_for(kong, recorder) as client:
            original = (await inspect_service(client, strategy="alias", record=ALIAS, target=TARGET)).service
            await repoint_service(client, original, ALIAS)
            async with httpx.AsyncClient(transport=recorder) as someone_else:
                await someone_else.patch(f"{kong.admin_url}/services/orders-api", json={"host": "c.example.test"})
            with pytest.raises(GatewayConflict) as refused:
                await restore_service(client, original, ALIAS)
    assert "host: 'a-project.example.test' -> 'c.example.test'" in str(refused.value)
    assert "Restore it by hand" in str(refused.value)
    assert kong.store.service("orders-api")["host"] == "c.example.test"


async def test_restore_of_a_deleted_service_is_not_found(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        async with client_for(kong, recorder) as client:
            original = (await inspect_service(client, strategy="alias", record=ALIAS, target=TARGET)).service
            kong.store.routes.clear()
            kong.store.delete_service("orders-api")
            with pytest.raises(GatewayNotFound, match="404"):
                await restore_service(client, original, ALIAS)


@pytest.mark.parametrize("mode", ["db-less", "data-plane"])
async def test_read_only_nodes_explain_that_changes_go_to_the_control_plane(
    recorder: RecordingTransport, mode: str
) -> None:
    async with running_emulator(config=sandbox_config(8443), mode=mode) as kong:
        async with client_for(kong, recorder) as client:
            inspection = await inspect_service(client, strategy="alias", record=ALIAS, target=TARGET)
            assert not inspection.writable
            assert inspection.mode == ("db-less" if mode == "db-less" else "hybrid-data-plane")
            assert any("read-only" in w for w in inspection.warnings)
            with pytest.raises(GatewayReadOnly, match="Control Plane"):
                await repoint_service(client, inspection.service, ALIAS)
            with pytest.raises(GatewayReadOnly) as direct:  # the raw 405 code 12 maps the same way
                await client.patch_service(inspection.service.id, {"host": "origin-api.example.test"})
    assert "405" in str(direct.value) and "cannot update 'services' entities" in str(direct.value)
    assert kong.store.service("orders-api")["host"] == "a-project.example.test"


async def test_token_missing_wrong_and_right(recorder: RecordingTransport) -> None:
    token = "kong-admin-token-for-tests-only"
    async with running_emulator(config=sandbox_config(8443), admin_token=token) as kong:
        async with client_for(kong, recorder) as client:
            with pytest.raises(GatewayAuthError) as missing:
                await client.get_service()
        wrong = EnvSecrets({"KONG_TOKEN": "not-the-token"})
        async with client_for(kong, recorder, wrong, token_env="KONG_TOKEN") as client:
            with pytest.raises(GatewayAuthError) as forbidden:
                await client.get_service()
        right = EnvSecrets({"KONG_TOKEN": token})
        async with client_for(kong, recorder, right, token_env="KONG_TOKEN") as client:
            assert (await client.get_service())["name"] == "orders-api"
        with pytest.raises(ConfigError, match="KONG_TOKEN"):
            client_for(kong, recorder, NO_SECRETS, token_env="KONG_TOKEN")
    assert "401" in str(missing.value) and "set kong.token_env" in str(missing.value)
    assert "403" in str(forbidden.value) and "RBAC" in str(forbidden.value)
    assert not GatewayAuthError.retryable
    for error in (missing.value, forbidden.value):
        assert token not in str(error) and "not-the-token" not in str(error)
    assert recorder.exchanges[-1].request_headers["kong-admin-token"] == token


async def test_5xx_on_reads_is_retried_and_then_unavailable(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        kong.admin_api.failures.append(_rule(count=2, status=503, method="GET", path="/services"))
        async with client_for(kong, recorder) as client:
            assert (await client.get_service())["name"] == "orders-api"
            assert recorder.count("GET", "/services/orders-api") == 3
            kong.admin_api.failures.append(_rule(count=5, status=500, method="GET"))
            with pytest.raises(GatewayUnavailable, match="500") as unavailable:
                await client.get_service()
    assert unavailable.value.retryable
    assert recorder.count("GET", "/services/orders-api") == 6


async def test_writes_are_not_retried_blindly(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        async with client_for(kong, recorder) as client:
            original = (await inspect_service(client, strategy="alias", record=ALIAS, target=TARGET)).service
            kong.admin_api.failures.append(_rule(count=1, status=502, method="PATCH"))
            with pytest.raises(GatewayUnavailable):
                await repoint_service(client, original, ALIAS)
            assert recorder.count("PATCH") == 1
            assert kong.store.service("orders-api")["host"] == "a-project.example.test"
            assert (await repoint_service(client, original, ALIAS)).host == "origin-api.example.test"


async def test_timeouts_and_refused_connections_are_unavailable(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        kong.admin_api.failures.append(_rule(count=3, status=None, delay=0.6, method="GET"))
        async with client_for(kong, recorder, timeout="0.2s") as client:
            with pytest.raises(GatewayUnavailable, match="did not answer"):
                await client.get_service()
        closed_url = kong.admin_url
    async with running_emulator(config=sandbox_config(8443)) as other:
        pass
    with pytest.raises(GatewayUnavailable, match="cannot connect"):
        async with client_for(other, recorder, admin_url=closed_url) as client:
            await client.get_service()


async def test_konnect_is_refused_with_a_clear_message(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        with pytest.raises(GatewayUnsupported, match="Konnect"):
            client_for(kong, recorder, admin_url="https://us.api.konghq.com/v2/control-planes/abc")


async def test_workspace_prefix_and_unknown_workspace(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        async with client_for(kong, recorder, workspace="default") as client:
            inspection = await inspect_service(client, strategy="cname", record=RECORD, target=TARGET)
            assert inspection.service.name == "orders-api"
        assert any(e.path == "/default/services/orders-api" for e in recorder.exchanges)
        async with client_for(kong, recorder, workspace="team-x") as client:
            with pytest.raises(GatewayNotFound, match="workspace team-x"):
                await client.get_service()


async def test_bad_patch_is_rejected_with_kongs_fields(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        async with client_for(kong, recorder) as client:
            service = await client.get_service()
            with pytest.raises(GatewayRejected) as rejected:
                await client.patch_service(service["id"], {"host": "not a host name"})
    assert "schema violation" in str(rejected.value) and "'host'" in str(rejected.value)


async def test_hybrid_control_plane_reads_dns_settings_from_the_data_planes(recorder: RecordingTransport) -> None:
    dp_settings = {"dns_valid_ttl": 10, "dns_stale_ttl": 30}
    async with (
        running_emulator(config=sandbox_config(8443), mode="control-plane") as cp,
        running_emulator(
            config=sandbox_config(8443), mode="data-plane", status=("127.0.0.1", 0), dns_settings=dp_settings
        ) as dp,
        running_emulator(
            config=sandbox_config(8443), mode="data-plane", status=("127.0.0.1", 0), dns_settings={"dns_stale_ttl": 60}
        ) as dp2,
    ):
        urls = [dp.admin_url, f"{dp2.status_url}/status"]
        async with client_for(cp, recorder, status_urls=urls) as client:
            inspection = await inspect_service(client, strategy="cname", record=RECORD, target=TARGET)
        async with client_for(cp, recorder) as client:
            cp_only = await inspect_service(client, strategy="cname", record=RECORD, target=TARGET)
        async with client_for(cp, recorder, dns_overrides={"dns_stale_ttl": 5}) as client:
            overridden = await inspect_service(client, strategy="cname", record=RECORD, target=TARGET)
    assert (inspection.mode, inspection.writable) == ("hybrid-control-plane", True)
    assert (inspection.dns.valid_ttl, inspection.dns.stale_ttl) == (10, 30)
    assert "data plane" in inspection.dns.source
    assert inspection.config_hashes == {
        dp.admin_url: dp.store.configuration_hash(),
        f"{dp2.status_url}/status": dp2.store.configuration_hash(),
    }
    assert any("exposes no GET /" in w and "legacy" in w for w in inspection.warnings)
    assert "Control Plane" in cp_only.dns.source and any("status_urls" in w for w in cp_only.warnings)
    assert overridden.dns.stale_ttl == 5 and "dns_overrides" in overridden.dns.source


def test_dns_settings_parsing_follows_kongs_defaults_and_the_new_client() -> None:
    legacy = dns_settings_from_configuration({}, version="3.5.0", source="test")
    assert (legacy.client, legacy.valid_ttl, legacy.stale_ttl) == ("legacy", None, 4)
    assert dns_settings_from_configuration({}, version="3.9.1", source="t").stale_ttl == 3600
    new = dns_settings_from_configuration(
        {"new_dns_client": True, "resolver_stale_ttl": 90, "resolver_error_ttl": 2, "dns_valid_ttl": 5},
        version="3.9.1",
        source="t",
    )
    assert (new.client, new.valid_ttl, new.stale_ttl, new.error_ttl) == ("new", None, 90, 2)
    order = dns_settings_from_configuration({"dns_order": "A,CNAME"}, version=None, source="t")
    assert order.order == ("A", "CNAME")
    assert KongDnsOverrides().model_dump(exclude_none=True) == {}


def _rule(**kwargs):
    from sandbox.kong.admin import FailureRule

    return FailureRule(**kwargs)
