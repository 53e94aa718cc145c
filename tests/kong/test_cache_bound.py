"""compute_cache_bound against the table of shared/reference/kong.md §1.5 (q = QUERY_ALLOWANCE).

| case | bound |
|---|---|
| Service host, record TTL only | T + q |
| with dns_valid_ttl V | T_auth + V + q (lowering the TTL does not shorten Kong's own cache: warn) |
| legacy client, A -> CNAME | up to T + dns_stale_ttl (the stale A record is never replaced) |
| new client | T + q, no A -> CNAME hazard; Upstream target: T + min(S, 60) + timer lag |
"""

from __future__ import annotations

from models.kong import QUERY_ALLOWANCE, TARGET_TIMER_LAG, KongDnsSettings, compute_cache_bound

q = QUERY_ALLOWANCE


def legacy(valid: int | None = None, stale: int = 3600) -> KongDnsSettings:
    return KongDnsSettings(
        client="legacy", valid_ttl=valid, stale_ttl=stale, not_found_ttl=30, error_ttl=1, source="test"
    )


def new(valid: int | None = None, stale: int = 3600) -> KongDnsSettings:
    return KongDnsSettings(client="new", valid_ttl=valid, stale_ttl=stale, not_found_ttl=1, error_ttl=1, source="test")


def test_record_ttl_only_is_the_ttl_plus_the_refresh_query() -> None:
    bound = compute_cache_bound(legacy(), record_ttl=30, flip="cname-to-cname")
    assert bound.seconds == 30 + q
    assert bound.hazards == ()
    assert any("record TTL: 30 s" in line for line in bound.reasoning)
    assert not any("dns_valid_ttl" in w for w in bound.warnings)
    assert any("TTL + dns_stale_ttl = 3630 s" in w for w in bound.warnings)  # if the refresh fails


def test_dns_valid_ttl_replaces_the_record_ttl_and_warns_that_lowering_it_does_not_help() -> None:
    high = compute_cache_bound(legacy(valid=600), record_ttl=300, flip="cname-to-cname")
    low = compute_cache_bound(legacy(valid=600), record_ttl=30, flip="cname-to-cname")
    assert (high.seconds, low.seconds) == (300 + 600 + q, 30 + 600 + q)
    assert low.seconds > 600  # Kong's own cache stays 600 s however low the record TTL goes
    assert any("dns_valid_ttl=600" in w and "lowering the TTL does not shorten" in w for w in low.warnings)
    assert compute_cache_bound(new(valid=120), record_ttl=30, flip="cname-to-cname").seconds == 30 + 120 + q


def test_legacy_a_to_cname_keeps_the_old_address_until_ttl_plus_stale_ttl() -> None:
    bound = compute_cache_bound(legacy(), record_ttl=30, flip="a-to-cname")
    assert bound.seconds == 30 + 3600 + q
    assert bound.hazards and "empty answers never replace stale data" in bound.hazards[0]
    assert any("alias strategy" in w and "new_dns_client" in w for w in bound.warnings)
    small_stale = compute_cache_bound(legacy(stale=4), record_ttl=30, flip="a-to-cname")
    assert small_stale.seconds == 30 + 4 + q  # Kong < 3.6 default, or a lowered dns_stale_ttl
    # With dns_valid_ttl, a resolver may hand out the old A record for the record TTL and Kong then
    # keeps it valid_ttl + stale_ttl (the same reasoning as the dns_valid_ttl row of §1.5).
    with_valid = compute_cache_bound(legacy(valid=60, stale=100), record_ttl=30, flip="a-to-cname")
    assert with_valid.seconds == 30 + 60 + 100 + q


def test_new_dns_client_has_no_a_to_cname_hazard() -> None:
    bound = compute_cache_bound(new(), record_ttl=30, flip="a-to-cname")
    assert bound.seconds == 30 + q and bound.hazards == ()
    assert any("resolver_stale_ttl" in w for w in bound.warnings)


def test_upstream_targets_add_the_balancer_timer() -> None:
    assert compute_cache_bound(legacy(), record_ttl=30, flip="cname-to-cname", via_upstream_target=True).seconds == (
        30 + TARGET_TIMER_LAG + q
    )
    assert compute_cache_bound(
        new(stale=3600), record_ttl=30, flip="cname-to-cname", via_upstream_target=True
    ).seconds == (30 + 60 + TARGET_TIMER_LAG + q)
    assert compute_cache_bound(
        new(stale=10), record_ttl=30, flip="cname-to-cname", via_upstream_target=True
    ).seconds == (30 + 10 + TARGET_TIMER_LAG + q)
