"""The campaign file: every problem at once, waves from sizes or lists, templates, digests, file references."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from models.campaign import Campaign, CampaignInvalid, fill_template, inline_files, reference_problem
from models.plan import CutoverPlan
from models.policy_rules import check_plan
from tests.conftest import base_plan_data


def plan(name: str, **sections: Any) -> dict[str, Any]:
    data = base_plan_data(name=name, **sections)
    data["dns"]["record"] = f"{name}.example.test."
    data["kong"]["service"] = f"svc-{name}"
    return data


def campaign(count: int = 4, **settings: Any) -> dict[str, Any]:
    return {"name": "fleet-1", "plans": [plan(f"api-{i}") for i in range(1, count + 1)], "waves": ["rest"], **settings}


def problems_of(data: Any) -> list[str]:
    with pytest.raises(CampaignInvalid) as info:
        Campaign.from_data(data)
    return info.value.problems


def test_every_problem_of_a_campaign_at_once():
    data = campaign(3, name="Fleet!", max_in_flight=0, stop_on={}, pause_between_waves="soon", extra=1)
    data["plans"][1]["dns"]["record"] = "api-1.example.test."
    data["plans"][2]["dns"]["target"] = "not a name"
    data["plans"].append({**plan("api-4"), "dry_run": True})
    problems = problems_of(data)
    text = "\n".join(problems)
    assert "max_in_flight: Input should be greater than or equal to 1" in text
    assert "pause_between_waves" in text and "extra: Extra inputs are not permitted" in text
    assert "name: must be 1-63 characters" in text
    assert "plans.2: dns.target" in text
    assert "plans.3: dry_run is not allowed in a campaign" in text
    # Settings problems don't hide plan problems, and each problem says where it is.
    assert all(p.split(":")[0] for p in problems)
    data = campaign(3, stop_on={})
    data["plans"][1]["dns"]["record"] = "api-1.example.test."
    data["plans"][2]["name"] = "api-1"
    text = "\n".join(problems_of(data))
    assert "stop_on: give at least one of rollbacks, failures, error_budget" in text
    assert "the record api-1.example.test. is also cut over by api-1: a record moves once per campaign" in text
    assert "api-1: 2 plans have this name (workflow id cutover-api-1)" in text


@pytest.mark.parametrize(
    ("waves", "sizes"),
    [
        ([1, 5, "25%", "rest"], [1, 5, 5, 9]),
        ([2, "10%", "rest"], [2, 2, 16]),
        (["100%"], [20]),
        ([1, 30], [1, 19]),
        ([1, 19, "rest"], [1, 19]),
    ],
)
def test_waves_by_size_take_the_plans_in_order(waves, sizes):
    result = Campaign.from_data(campaign(20, waves=waves))
    assert [len(w) for w in result.waves] == sizes
    assert [n for w in result.waves for n in w] == [f"api-{i}" for i in range(1, 21)]


@pytest.mark.parametrize(
    ("waves", "problem"),
    [
        (["rest", 1], "waves.0: rest takes every plan left, so it must be the last wave"),
        ([1, 2], "waves: 1 plan(s) are in no wave (api-4...): end with rest"),
        ([4, 1], "waves.1 (1) gets no plan: the waves before it take all 4"),
        ([0, "rest"], "waves.0: 0 is not a size"),
        (["150%"], "waves.0: '150%' is not a size"),
        ([["api-1"], 3], "waves: either every wave is a list of plan names, or every wave is a size"),
        ([["api-1", "api-9"], ["api-2", "api-1"], []], "waves.0: 'api-9' is not the name of a plan"),
        ([["api-1", "api-9"], ["api-2", "api-1"], []], "waves.1: api-1 is already in wave 1"),
        ([["api-1", "api-9"], ["api-2", "api-1"], []], "waves.2: an empty wave"),
        ([["api-1", "api-9"], ["api-2", "api-1"], []], "waves: api-3, api-4 are in no wave"),
        ([], "waves: List should have at least 1 item"),
    ],
)
def test_bad_waves_are_refused_with_where(waves, problem):
    assert any(p.startswith(problem) for p in problems_of(campaign(4, waves=waves))), problems_of(
        campaign(4, waves=waves)
    )


def test_explicit_waves_and_shared_kong_services():
    data = campaign(4, waves=[["api-3"], ["api-1", "api-2", "api-4"]])
    data["plans"][1]["kong"]["service"] = "svc-api-1"
    result = Campaign.from_data(data)
    assert result.waves == (("api-3",), ("api-1", "api-2", "api-4"))
    assert result.notes == ("api-1, api-2 share Kong Service svc-api-1: they run one after another",)
    assert result.resources("api-1")[1] == result.resources("api-2")[1] != result.resources("api-3")[1]


def test_a_template_and_a_table_of_per_api_values():
    template = plan("template")
    data = {
        "name": "fleet-2",
        "template": template,
        "table": [
            {"name": "orders", "dns.record": "orders.example.test.", "kong.service": "orders"},
            {"name": "users", "dns": {"record": "users.example.test."}, "kong.service": "users", "ticket": "OPS-2"},
        ],
        "waves": [1, "rest"],
        "approvals": {"per_wave": "flip"},
    }
    result = Campaign.from_data(data)
    orders, users = result.plans
    assert (orders.dns.record, orders.kong.service, orders.ticket) == ("orders.example.test.", "orders", None)
    assert (users.dns.record, users.dns.target, users.ticket) == (
        "users.example.test.",
        template["dns"]["target"],
        "OPS-2",
    )
    assert users.dns.cutover_ttl == template["dns"]["cutover_ttl"], "a nested row merges into the template"
    assert template["name"] == "template", "the template itself is untouched"
    bad = copy.deepcopy(data)
    bad["table"] = [{"dns.record": "x.example.test."}, {"name": "x", "name.first": 1}, {"name": "y", "kong.sevice": 1}]
    text = "\n".join(problems_of(bad))
    assert "table.0: each row is a mapping that sets at least 'name'" in text
    assert "table.1 (x): 'name.first': the template's 'name' is not a mapping" in text
    assert "table.2 (y): kong.sevice: Extra inputs are not permitted" in text
    assert fill_template({"a": {"b": 1}}, {"name": "n", "a.c": 2}) == ({"a": {"b": 1, "c": 2}, "name": "n"}, None)


@pytest.mark.parametrize(
    ("per_wave", "flip", "decommission"),
    [("both", True, True), ("flip", True, False), ("decommission", False, True), ("none", False, False)],
)
def test_the_campaign_owns_the_gates_of_its_cutovers(per_wave, flip, decommission):
    data = campaign(1, approvals={"per_wave": per_wave})
    data["plans"][0]["approvals"] = {"flip": not flip, "decommission": not decommission, "timeout": "3h"}
    effective = Campaign.from_data(data).plans[0]
    assert (effective.approvals.flip, effective.approvals.decommission) == (flip, decommission)
    assert effective.approvals.timeout.total_seconds() == 3 * 3600, "the plan's timeout is kept"


@pytest.mark.parametrize("per_wave", ["both", "flip", "decommission", "none"])
def test_a_campaign_never_removes_the_gates_of_a_project_deletion(per_wave):
    data = campaign(2, approvals={"per_wave": per_wave})
    data["plans"][1]["decommission"] = {"kind": "gcp-project", "project_id": "api-a-prod"}
    kept, other = Campaign.from_data(data).plans[1], Campaign.from_data(data).plans[0]
    assert (kept.approvals.flip, kept.approvals.decommission) == (True, True)
    assert check_plan(kept, None).violations == (), "the forced gates of a deletion hold"
    assert (other.approvals.flip, other.approvals.decommission) == (
        per_wave in ("flip", "both"),
        per_wave in ("decommission", "both"),
    )


def test_digests_bind_approvals_to_what_was_reviewed():
    data = campaign(4, waves=[2, "rest"])
    result = Campaign.from_data(data)
    as_yaml = Campaign.from_data(yaml.safe_load(yaml.safe_dump(json.loads(json.dumps(data)), sort_keys=True)))
    assert as_yaml.digest() == result.digest() and as_yaml.wave_digest(1) == result.wave_digest(1)
    effective = result.plans[0]
    child = CutoverPlan.model_validate(effective.model_dump(mode="json"))
    assert child.digest() == result.plan_digests()["api-1"], "a child computes the digest the campaign approves with"

    changed = copy.deepcopy(data)
    changed["plans"][3]["dns"]["final_ttl"] = 600
    other = Campaign.from_data(changed)
    assert other.wave_digest(1) == result.wave_digest(1)
    assert other.wave_digest(2) != result.wave_digest(2) and other.digest() != result.digest()
    faster = Campaign.from_data({**data, "max_in_flight": 3})
    assert faster.digest() != result.digest() and faster.wave_digest(2) == result.wave_digest(2)


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("orders.yaml", None),
        ("plans/payments.json", None),
        ("./plans/../users.yml", None),
        ("/etc/cutover/orders.yaml", "name plan files relative to the campaign file"),
        ("~/orders.yaml", "name plan files relative to the campaign file"),
        ("../other/orders.yaml", "is outside the campaign file's directory"),
        ("plans/../../orders.yaml", "is outside the campaign file's directory"),
        ("orders.txt", "a plan file ends in .yaml, .yml, .json"),
    ],
)
def test_plan_files_are_named_relative_to_the_campaign_and_below_it(reference, problem):
    found = reference_problem(reference)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_file_references_are_inlined_and_unread_ones_refused():
    data = {"name": "f", "plans": ["a.yaml", plan("api-2")], "waves": ["rest"]}
    assert inline_files(data, {"a.yaml": plan("api-1")})["plans"][0]["name"] == "api-1"
    with pytest.raises(CampaignInvalid) as info:
        Campaign.from_data(data, sources={0: "a.yaml"})
    assert info.value.problems[0].startswith("plans.0 (a.yaml): 'a.yaml' was not read")
