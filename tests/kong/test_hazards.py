"""Kong facts from reading Kong's code (issue 12 §2-3): what the planner refuses, warns and waits for."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.dns import DnsSnapshot, NameserverState, RRset
from models.kong import KongDnsSettings, KongInspection, compute_cache_bound
from models.kong_hazards import earliest_decommission, ipv6_only_refusal, kong_risks
from models.plan import CutoverPlan
from providers.gateway.kong_dns_settings import dns_settings_from_configuration
from providers.gateway.kong_inspect import inspect_service
from providers.secrets import EnvSecrets
from sandbox.kong import running_emulator
from sandbox.kong.schema import HEALTHCHECK_DEFAULTS
from tests.conftest import base_plan_data
from tests.kong.openapi import RecordingTransport
from tests.kong.test_client import RECORD, TARGET, UPSTREAM_CONFIG, client_for
from workflows import planning


def legacy(stale: int = 3600, valid: int | None = None) -> KongDnsSettings:
    return KongDnsSettings(
        client="legacy",
        valid_ttl=valid,
        stale_ttl=stale,
        not_found_ttl=30,
        error_ttl=1,
        order=("LAST", "SRV", "A", "CNAME"),
        source="test",
    )


def new(stale: int = 3600) -> KongDnsSettings:
    return KongDnsSettings(
        client="new", valid_ttl=None, stale_ttl=stale, not_found_ttl=1, error_ttl=1, order=("A", "SRV"), source="test"
    )


def test_fractional_ttl_settings_are_rounded_up_not_truncated() -> None:
    read = dns_settings_from_configuration(
        {"dns_stale_ttl": 2.5, "dns_valid_ttl": 0.2, "dns_not_found_ttl": "29.1"}, version="3.9.1", source="t"
    )
    assert (read.stale_ttl, read.valid_ttl, read.not_found_ttl) == (3, 1, 30)


def test_ipv6_only_b_is_refused_with_the_setting_to_change() -> None:
    v6 = ["2001:db8::3"]
    legacy_refusal = ipv6_only_refusal(legacy(), v6)
    new_refusal = ipv6_only_refusal(new(), v6)
    assert legacy_refusal is not None and "dns_order" in legacy_refusal and "AAAA" in legacy_refusal
    assert new_refusal is not None and "resolver_family = A,AAAA,SRV" in new_refusal
    assert ipv6_only_refusal(legacy(), ["2001:db8::3", "127.0.0.3"]) is None  # an A record is enough
    with_aaaa = legacy().model_copy(update={"order": ("LAST", "SRV", "A", "AAAA", "CNAME")})
    assert ipv6_only_refusal(with_aaaa, v6) is None


def test_applying_a_service_change_takes_both_update_intervals() -> None:
    plan = CutoverPlan.model_validate(base_plan_data())
    wait, reason = planning.kong_apply_wait(plan)
    assert wait == timedelta(seconds=10) + plan.dns.wait_margin
    assert "db_update_frequency 5 s" in reason and "worker_state_update_frequency 5 s" in reason


def test_a_cname_upstream_target_adds_the_ttl_of_the_addresses_it_leads_to() -> None:
    without = compute_cache_bound(legacy(), record_ttl=30, flip="cname-to-cname", via_upstream_target=True)
    with_ttl = compute_cache_bound(
        legacy(), record_ttl=30, flip="cname-to-cname", via_upstream_target=True, target_address_ttl=300
    )
    assert with_ttl.seconds == without.seconds + 300
    assert any("renews it when the addresses it dereferenced expire" in line for line in with_ttl.reasoning)
    assert any("could not be read" in w for w in without.warnings)


def bound_for(settings: KongDnsSettings, flip: str = "cname-to-cname", upstream: bool = False):
    return compute_cache_bound(settings, record_ttl=30, flip=flip, via_upstream_target=upstream)  # type: ignore[arg-type]


def test_an_idle_worker_keeps_a_until_ttl_plus_stale_ttl_after_the_flip() -> None:
    timing = earliest_decommission(legacy(), bound_for(legacy()), record_ttl=30, margin_seconds=5)
    assert timing.seconds_after_flip == 30 + 3600 + 2 + 5 and not timing.shortened
    assert any("idle since before the flip" in line for line in timing.reasoning)
    assert any("lower dns_stale_ttl in Kong" in line for line in timing.reasoning)
    lowered = earliest_decommission(legacy(stale=20), bound_for(legacy(stale=20)), record_ttl=30, margin_seconds=5)
    assert lowered.seconds_after_flip == 30 + 20 + 2 + 5
    valid = earliest_decommission(legacy(valid=60), bound_for(legacy(valid=60)), record_ttl=30, margin_seconds=5)
    assert valid.seconds_after_flip == 30 + 60 + 3600 + 2 + 5
    hazard = bound_for(legacy(), flip="a-to-cname")
    a_to_cname = earliest_decommission(legacy(), hazard, record_ttl=30, margin_seconds=5)
    assert a_to_cname.seconds_after_flip == max(30 + 3600 + 2, hazard.seconds) + 5
    assert any("legacy A->CNAME term is the same" in line for line in a_to_cname.reasoning)


def test_a_confirmed_restart_shortens_the_wait_and_a_reload_only_helps_the_legacy_client() -> None:
    restart = earliest_decommission(
        new(), bound_for(new()), record_ttl=30, margin_seconds=5, caches_cleared="restart", confirmed=True
    )
    assert restart.shortened and restart.seconds_after_flip == 30 + 2 + 5
    unconfirmed = earliest_decommission(
        legacy(), bound_for(legacy()), record_ttl=30, margin_seconds=5, caches_cleared="reload"
    )
    assert not unconfirmed.shortened and unconfirmed.seconds_after_flip == 30 + 3600 + 2 + 5
    assert any("once the decommission approval confirms" in line for line in unconfirmed.reasoning)
    reload_legacy = earliest_decommission(
        legacy(), bound_for(legacy()), record_ttl=30, margin_seconds=5, caches_cleared="reload", confirmed=True
    )
    assert reload_legacy.shortened and reload_legacy.seconds_after_flip == 37
    reload_new = earliest_decommission(
        new(), bound_for(new()), record_ttl=30, margin_seconds=5, caches_cleared="reload", confirmed=True
    )
    assert not reload_new.shortened and reload_new.seconds_after_flip == 30 + 3600 + 2 + 5
    assert any("a reload keeps the new client's shared cache" in line for line in reload_new.reasoning)


def test_upstream_targets_follow_the_balancer_timer_not_idle_workers() -> None:
    bound = bound_for(legacy(), upstream=True)
    timing = earliest_decommission(legacy(), bound, record_ttl=30, margin_seconds=5, via_upstream_target=True)
    assert timing.seconds_after_flip == 30 + bound.seconds + 5


def inspection(settings: KongDnsSettings, **upstream: object) -> KongInspection:
    data: dict[str, object] = {
        "mode": "traditional",
        "writable": True,
        "service": {
            "id": "s",
            "name": "orders-api",
            "host": "a-project.example.test",
            "port": 443,
            "protocol": "https",
            "entity": {},
        },
        "dns": settings,
        "shape_after": {"scheme": "https", "host_header": "a-project.example.test", "sni": None, "port": 443},
    }
    if upstream:
        data["upstream"] = {"id": "u", "name": "orders.upstream", **upstream}
    return KongInspection.model_validate(data)


def test_new_client_and_cname_strategy_warn_about_non_recursive_resolvers() -> None:
    assert any("non-recursive" in r for r in kong_risks("cname", inspection(new())))
    assert not any("non-recursive" in r for r in kong_risks("cname", inspection(legacy())))
    assert not any("non-recursive" in r for r in kong_risks("alias", inspection(new())))


def test_the_dry_run_estimates_show_the_earliest_decommission() -> None:
    data = base_plan_data(decommission={"kind": "webhook", "url": "https://decom.example.test/a"})
    plan = CutoverPlan.model_validate(data)
    kong = inspection(legacy(stale=20))
    rrsets = (RRset(name=RECORD, type="A", ttl=300, rdatas=("127.0.0.2",)),)
    server = NameserverState(server="127.0.0.1:53", authoritative=True, rrsets=rrsets)
    snapshot = DnsSnapshot(
        name=RECORD,
        zone="example.test.",
        rrsets=rrsets,
        serial=1,
        nameservers=(server,),
        max_ttl=300,
        negative_ttl=60,
        taken_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    reality, problems = planning.assess_reality(plan, snapshot, kong)
    assert reality is not None, problems
    bound = planning.cache_bound_for(plan, kong, reality)
    waits = planning.estimated_waits(plan, snapshot, reality, bound, kong)
    earliest = [w for w in waits if "after the flip" in w.reason]
    assert [w.seconds for w in earliest] == [30 + 20 + 2 + 5]
    assert not [w for w in planning.estimated_waits(plan, snapshot, reality, bound) if "after the flip" in w.reason]


async def test_inspect_reads_the_upstreams_health_checks_and_the_plan_warns(recorder: RecordingTransport) -> None:
    checks = copy.deepcopy(HEALTHCHECK_DEFAULTS)
    checks["passive"]["unhealthy"] |= {"http_failures": 3, "timeouts": 2}
    config: dict[str, Any] = copy.deepcopy(UPSTREAM_CONFIG)
    config["upstreams"][0]["healthchecks"] = checks
    async with running_emulator(config=config) as kong:
        async with client_for(kong, recorder) as client:
            found = await inspect_service(client, strategy="cname", record=RECORD, target=TARGET)
        async with running_emulator(config=UPSTREAM_CONFIG) as quiet, client_for(quiet, recorder) as client:
            defaults = await inspect_service(client, strategy="cname", record=RECORD, target=TARGET)
    assert found.upstream is not None and found.upstream.passive_unhealthy == {"http_failures": 3, "timeouts": 2}
    assert defaults.upstream is not None and defaults.upstream.passive_unhealthy == {}
    risks = kong_risks("cname", found)
    assert any("failure to get a peer from the ring-balancer" in r and "http_failures 3" in r for r in risks)
    assert not any("health checks" in r for r in kong_risks("cname", defaults))


async def test_the_rbac_token_header_is_configurable(recorder: RecordingTransport) -> None:
    token = "token-for-a-custom-header"
    secrets = EnvSecrets({"KONG_TOKEN": token})
    async with running_emulator(config=UPSTREAM_CONFIG, admin_token=token, admin_token_header="X-Rbac-Token") as kong:
        async with client_for(kong, recorder, secrets, token_env="KONG_TOKEN", token_header="X-Rbac-Token") as client:
            assert (await client.get_service())["name"] == "orders-api"
    sent = recorder.exchanges[-1].request_headers
    assert sent["x-rbac-token"] == token and "kong-admin-token" not in sent
    with pytest.raises(ValueError, match="not an HTTP header name"):
        CutoverPlan.model_validate(
            base_plan_data(kong={"admin_url": "http://k:8001", "service": "s", "token_header": "Kong Admin Token"})
        )
