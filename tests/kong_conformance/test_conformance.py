"""Kong's own DNS client code is the referee: the emulator must answer what Kong answers, when Kong does.

Each scenario ran against Kong's legacy and new client (nginx + ``../shared/kong-lua``) and against
``sandbox/kong/dns.py`` with the same settings on the same BIND. The first test holds the emulator
to Kong's timeline (same answers in the same order, switches within ``TOLERANCE``); the others
state what Kong itself did, in terms of the settings, so a change of Kong's behaviour shows up too.
"""

from __future__ import annotations

import pytest

from tests.kong_conformance.runner import ConformanceRun, ScenarioRun
from tests.kong_conformance.scenarios import (
    IDLE_FIRST,
    NEW,
    NF,
    OLD,
    POLL,
    TOLERANCE,
    V6,
    Client,
    S,
    T,
    V,
    scenarios,
)
from tests.kong_conformance.timelines import describe, disagreements, segments, switch_time, window

pytestmark = pytest.mark.e2e
Q = 0.6
"""The refresh query itself and the poll that notices it: a switch lands up to this long after its bound."""


def kong(result: ScenarioRun, client: Client) -> list[str]:
    return [s.label for s in segments(result.of("kong", client))]


def changed(result: ScenarioRun, step: int) -> float:
    """When the scenario's ``step``-th change was made (seconds from t0)."""
    return sorted(result.events)[step][0]


@pytest.mark.parametrize("scenario_id", [s.id for s in scenarios()])
async def test_the_emulator_follows_kongs_timeline(conformance: ConformanceRun, scenario_id: str) -> None:
    result = conformance.runs[scenario_id]
    for client in result.scenario.clients:
        problems = disagreements(result.of("kong", client), result.of("emu", client), TOLERANCE)
        assert not problems, f"{scenario_id}, {client} client: {problems}"
        assert not [p for p in result.of("kong", client) if p.label.startswith("POLL-FAIL")]


async def test_a_record_becoming_a_cname_keeps_the_legacy_client_on_a_until_ttl_plus_stale_ttl(
    conformance: ConformanceRun,
) -> None:
    result = conformance.runs["a-to-cname"]
    assert kong(result, "legacy") == kong(result, "new") == [OLD, NEW]
    legacy = switch_time(result.of("kong", "legacy"), NEW)
    new = switch_time(result.of("kong", "new"), NEW)
    assert legacy is not None and S <= legacy <= T + S + Q, describe(result.of("kong", "legacy"))
    assert new is not None and new <= T + Q, describe(result.of("kong", "new"))


async def test_a_straight_rollback_gives_the_legacy_client_503s_until_its_negative_entry_expires(
    conformance: ConformanceRun,
) -> None:
    result = conformance.runs["rollback-early"]
    assert kong(result, "legacy") == [OLD, NEW, "503 empty", OLD]
    errors = window(result.of("kong", "legacy"), "503 empty")
    assert errors is not None
    flipped = next(p.t for p in result.of("kong", "legacy") if p.label == NEW)
    rollback = changed(result, 1)
    assert rollback + S - POLL <= errors[0] <= rollback + T + S + Q  # the stale CNAME is followed first
    assert errors[1] <= flipped + NF + Q  # until the "empty A" cached at the switch expires
    assert kong(result, "new") == [OLD, NEW, OLD]  # no errors: the new client never serves errors stale


async def test_the_projects_two_step_rollback_has_no_error_and_deleting_the_temporary_name_early_has(
    conformance: ConformanceRun,
) -> None:
    proper, early = conformance.runs["two-step"], conformance.runs["two-step-early-delete"]
    for client in ("legacy", "new"):
        assert kong(proper, client) == [OLD, NEW, OLD]
        retarget = changed(proper, 1)
        back = switch_time(proper.of("kong", client), OLD, after=retarget)
        assert back is not None and back <= retarget + T + Q
    # Deleted 1 s after the restore, while the legacy client still follows its stale CNAME to the
    # temporary name: NXDOMAIN for it, 503s for up to T + S (the manual step must wait it out).
    assert kong(early, "legacy") == [OLD, NEW, OLD, "503 nxdomain", OLD]
    errors = window(early.of("kong", "legacy"), "503 nxdomain")
    deleted = changed(early, 3)
    assert errors is not None and deleted <= errors[0] and errors[1] - errors[0] <= T + S
    assert kong(early, "new") == [OLD, NEW, OLD]


@pytest.mark.parametrize("scenario_id", ["alias-flip", "ip-change"])
async def test_a_cname_or_address_change_is_seen_within_the_record_ttl(
    conformance: ConformanceRun, scenario_id: str
) -> None:
    result = conformance.runs[scenario_id]
    for client in ("legacy", "new"):
        assert kong(result, client) == [OLD, NEW]
        seen = switch_time(result.of("kong", client), NEW)
        assert seen is not None and seen <= T + Q


async def test_a_name_created_after_it_was_queried_waits_for_dns_not_found_ttl_in_the_legacy_client(
    conformance: ConformanceRun,
) -> None:
    result = conformance.runs["created-late"]
    first_query = result.scenario.poll[0] if result.scenario.poll else 0
    legacy = switch_time(result.of("kong", "legacy"), OLD)
    new = switch_time(result.of("kong", "new"), OLD)
    assert kong(result, "legacy") == kong(result, "new") == ["503 nxdomain", OLD]
    assert legacy is not None and first_query + NF <= legacy <= first_query + NF + T + Q
    assert new is not None and new <= 1 + Q  # resolver_error_ttl 1 s


async def test_ttl_zero_answers_are_re_asked_by_the_legacy_client_and_kept_forever_by_the_new_one(
    conformance: ConformanceRun,
) -> None:
    result = conformance.runs["ttl-zero"]
    assert kong(result, "legacy") == [OLD, NEW]
    seen = switch_time(result.of("kong", "legacy"), NEW)
    assert seen is not None and seen <= changed(result, 0) + 2 * POLL  # each request gets the previous refresh
    assert kong(result, "new") == [OLD]  # mlcache's TTL 0 means "never expires"


async def test_no_aaaa_unless_dns_order_or_resolver_family_asks_for_it(conformance: ConformanceRun) -> None:
    default, enabled = conformance.runs["ipv6-default"], conformance.runs["ipv6-enabled"]
    for client in ("legacy", "new"):
        assert kong(default, client) == ["503 empty"]
        assert kong(enabled, client) == [V6]


async def test_valid_ttl_replaces_the_record_ttl(conformance: ConformanceRun) -> None:
    result = conformance.runs["valid-ttl"]
    for client in ("legacy", "new"):
        assert kong(result, client) == [OLD, NEW]
        seen = switch_time(result.of("kong", client), NEW)
        assert seen is not None and V - 1 <= seen <= V + Q  # refreshed ~0.4 s before the change


async def test_a_failing_refresh_serves_the_old_address_up_to_ttl_plus_stale_ttl_then_500s(
    conformance: ConformanceRun,
) -> None:
    result = conformance.runs["outage"]
    for client in ("legacy", "new"):
        assert kong(result, client) == [OLD, "500 error", NEW]
        errors = window(result.of("kong", client), "500 error")
        assert errors is not None and S - POLL <= errors[0] <= T + S + Q and errors[1] < changed(result, 1) + Q
    short = conformance.runs["outage-short"]
    # TTL 8 fetched at the first poll: stale 8 s later, server back inside the stale window. The legacy
    # client retries on every stale hit; the new client cached the stale answer until its stale end.
    fetched = short.of("kong", "new")[0].t
    legacy = switch_time(short.of("kong", "legacy"), NEW)
    new = switch_time(short.of("kong", "new"), NEW)
    assert legacy is not None and changed(result, 1) <= legacy <= changed(result, 1) + Q
    assert new is not None and fetched + 8 + S <= new <= fetched + 8 + S + Q


@pytest.mark.parametrize("kind", ["alias", "ip", "cname"])
async def test_an_idle_legacy_worker_sends_its_next_request_to_the_old_address_until_ttl_plus_stale_ttl(
    conformance: ConformanceRun, kind: str
) -> None:
    inside, past = conformance.runs[f"idle-{kind}-d4"], conformance.runs[f"idle-{kind}-d8"]
    assert IDLE_FIRST + 4 < T + S + IDLE_FIRST < IDLE_FIRST + 8
    assert [p.label for p in inside.of("kong", "legacy")] == [OLD, OLD, NEW if kind != "cname" else OLD]
    assert [p.label for p in past.of("kong", "legacy")] == [OLD, NEW, NEW]
    # On a node that resolves other names, the new client's shared cache has freed the idle entry.
    assert [p.label for p in inside.of("kong", "new")] == [OLD, NEW, NEW]


async def test_on_a_quiet_node_the_new_client_also_serves_the_idle_entry_stale(conformance: ConformanceRun) -> None:
    inside, past = conformance.runs["quiet-alias-d4"], conformance.runs["quiet-alias-d8"]
    assert [p.label for p in inside.of("kong", "new")] == [OLD, OLD, NEW]
    assert [p.label for p in past.of("kong", "new")] == [OLD, NEW, NEW]


def test_every_issue_scenario_is_covered() -> None:
    ids = {s.id for s in scenarios()}
    assert {"a-to-cname", "rollback-early", "two-step", "alias-flip", "ip-change", "created-late"} <= ids
    assert {"idle-alias-d4", "idle-ip-d4", "idle-cname-d4", "outage", "valid-ttl", "ttl-zero"} <= ids
    assert {"ipv6-default", "ipv6-enabled"} <= ids
