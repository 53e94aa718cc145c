"""Plan validation: one table row per rule, every problem in one error, a stable digest."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from models.durations import format_duration, parse_duration
from models.plan import CutoverPlan
from tests.conftest import base_plan_data


def problems_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        CutoverPlan.model_validate(data)
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in info.value.errors()]


def edited(path: str, value: Any) -> dict[str, Any]:
    data = base_plan_data()
    node = data
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()

RULES = [
    # (field path, bad value, where the problem is reported, words the message must contain)
    ("name", "Orders_API", "name", "a-z, 0-9 and '-'"),
    ("name", "-orders", "name", "not starting or ending"),
    ("name", "x" * 64, "name", "1-63"),
    ("strategy", "weighted", "strategy", "'cname' or 'alias'"),
    ("dns.record", "a project.example.test.", "dns.record", "not a valid DNS name"),
    ("dns.record", "a-project.other.test.", "dns.record", "not inside the zone example.test."),
    ("dns.record", "example.test.", "dns.record", "zone apex: a CNAME cannot live there"),
    ("dns.target", "a-project.example.test.", "dns.target", "target must differ from record"),
    ("dns.target", "b..example.test", "dns.target", "not a valid DNS name"),
    ("dns.cutover_ttl", 0, "dns.cutover_ttl", "greater than or equal to 1"),
    ("dns.final_ttl", 86401, "dns.final_ttl", "less than or equal to 86400"),
    ("dns.cutover_ttl", 600, "dns.cutover_ttl", "must not exceed final_ttl (300)"),
    ("dns.provider.server", "127.0.0.1:99999", "dns.provider.rfc2136.server", "port must be a number in 1..65535"),
    ("dns.provider.server", "127.0.0.1:", "dns.provider.rfc2136.server", "host"),
    ("dns.nameservers", ["[::1", "ns1.example.test:53"], "dns.nameservers.0", "missing ']'"),
    ("dns.provider.zone", "not a zone", "dns.provider.rfc2136.zone", "not a valid DNS name"),
    ("dns.provider.tsig_secret_env", None, "dns.provider", "go together"),
    ("dns.provider.tsig_secret_env", "my secret var", "dns.provider.rfc2136.tsig_secret_env", "not an environment"),
    ("dns.provider.kind", "route53", "dns.provider", "'rfc2136', 'clouddns'"),
    ("dns.bogus", 1, "dns.bogus", "Extra inputs are not permitted"),
    ("kong.admin_url", "ftp://kong:8001", "kong.admin_url", "not an http(s) URL"),
    ("kong.token", "abc", "kong.token", "Extra inputs are not permitted"),
    ("readiness.expect_status", [700], "readiness.expect_status.0", "less than or equal to 399"),
    ("readiness.expect_status", [500], "readiness.expect_status.0", "less than or equal to 399"),
    ("readiness.interval", "10 minutes", "readiness.interval", "is not a duration"),
    ("readiness.interval", "1h", "readiness.interval", "must not exceed timeout"),
    ("monitor.poll_interval", "0s", "monitor.poll_interval", "longer than zero"),
    ("monitor.max_error_ratio", 1.5, "monitor.max_error_ratio", "less than or equal to 1"),
    ("monitor.source", {"kind": "kong-file-log"}, "monitor.source.kong-file-log.path", "Field required"),
    ("approvals.on_timeout", "continue", "approvals.on_timeout", "'abort' or 'wait'"),
    (
        "decommission",
        {"kind": "gcp-project", "project_id": "b-proj-123", "protected_projects": ["b-proj-123"]},
        "decommission.project_id",
        "is protected",
    ),
    ("decommission", {"kind": "webhook"}, "decommission.webhook.url", "Field required"),
    ("kong", _DELETE, "kong", "Field required"),
    ("dns.retry_deadline", "0s", "dns.retry_deadline", "longer than zero"),
    ("approvals.timeout", 0, "approvals.timeout", "longer than zero"),
    ("monitor.window", "0s", "monitor.window", "longer than zero"),
    ("readiness.timeout", "99999d", "readiness.timeout", "longer than 366 days"),
]


@pytest.mark.parametrize(("path", "value", "where", "words"), RULES, ids=[f"{r[0]}={r[1]!r}"[:60] for r in RULES])
def test_each_rule(path, value, where, words):
    found = problems_of(edited(path, value))
    assert any(loc == where and words in msg for loc, msg in found), found


SECRETS = [
    ("dns.provider.tsig_key_name", "GnWTbplSquw/AX29Dp+isOysGi9valVxnGk6MsCIVQ4="),
    ("kong.workspace", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ("readiness.url", "https://admin:hunter2pass@b-project.example.test/health"),
    ("kong.service", "Bearer eyJhbGciOiJIUzI1NiJ9.payload.signature"),
    ("ticket", "0123456789abcdef0123456789abcdef0123"),
    ("monitor.source.path", "xoxb-1234567890-abcdefghij"),
    ("readiness.url", "https://b-project.example.test/health?access_token=ya29.a0AfH6SMBx"),
    ("readiness.url", "https://hooks.example.test/services/T0000/B0000/q8ZfJ2kLm4Np7Rs9Tv1Wx3Yz"),
]


@pytest.mark.parametrize(("path", "secret"), SECRETS)
def test_literal_secrets_are_rejected_and_never_echoed(path, secret):
    data = edited(path, secret)
    with pytest.raises(ValidationError) as info:
        CutoverPlan.model_validate(data)
    text = str(info.value)
    assert "never contain the secret" in text
    assert secret not in text and secret.split()[-1] not in text


def test_the_alias_strategy_needs_a_parity_url():
    data = edited("strategy", "alias")
    data["dns"]["record"] = "origin-api.example.test."
    del data["readiness"]["parity_url"]
    assert any(
        loc == "readiness.parity_url" and "A must be proven to accept it" in msg for loc, msg in problems_of(data)
    )


def test_every_problem_in_one_error():
    data = base_plan_data()
    data["name"] = "Bad Name"
    data["dns"]["record"] = "example.test."
    data["dns"]["cutover_ttl"] = 900
    data["dns"]["provider"]["tsig_secret_env"] = "GnWTbplSquw/AX29Dp+isOysGi9valVxnGk6MsCIVQ4="
    data["kong"]["admin_url"] = "kong:8001"
    data["monitor"]["window"] = "soon"
    data["surprise"] = True
    found = problems_of(data)
    where = {loc for loc, _ in found}
    assert {"name", "dns.record", "dns.cutover_ttl", "kong.admin_url", "monitor.window", "surprise"} <= where
    assert any("tsig_secret_env" in loc for loc in where)
    assert len(found) >= 7


def test_digest_is_stable_across_yaml_json_and_key_order():
    data = base_plan_data()
    as_yaml = yaml.safe_dump(data, sort_keys=False)
    reordered = json.dumps(dict(reversed(list(data.items()))))
    spelled_out = copy.deepcopy(data)
    spelled_out["monitor"]["window"] = 600  # "10m" written as seconds
    spelled_out["dns"]["wait_margin"] = "5s"  # the default, written out
    digests = {
        CutoverPlan.model_validate(yaml.safe_load(as_yaml)).digest(),
        CutoverPlan.model_validate(json.loads(reordered)).digest(),
        CutoverPlan.model_validate(spelled_out).digest(),
        CutoverPlan.model_validate({**data, "dry_run": True}).digest(),
    }
    assert len(digests) == 1
    changed = copy.deepcopy(data)
    changed["dns"]["cutover_ttl"] = 31
    assert CutoverPlan.model_validate(changed).digest() not in digests


def test_names_are_normalised_and_workflow_id_follows_the_name():
    data = base_plan_data()
    data["dns"]["record"] = "A-Project.Example.Test"
    plan = CutoverPlan.model_validate(data)
    assert plan.dns.record == "a-project.example.test."
    assert plan.workflow_id == "cutover-orders-api"
    assert plan.monitor_service == "orders-api"


@pytest.mark.parametrize(
    ("text", "seconds", "shortest"),
    [
        ("30s", 30, "30s"),
        ("10m", 600, "10m"),
        ("1h30m", 5400, "1h30m"),
        (90, 90, "1m30s"),
        ("PT5M", 300, "5m"),
        ("250ms", 0.25, "250ms"),
        ("2d", 172800, "2d"),
    ],
)
def test_durations_round_trip(text, seconds, shortest):
    value = parse_duration(text)
    assert value.total_seconds() == seconds
    assert format_duration(value) == shortest
    assert parse_duration(format_duration(value)) == value


# --- property: random invalid plans never raise anything but the validation error ----------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
PATHS = [
    "name",
    "strategy",
    "dns",
    "dns.record",
    "dns.target",
    "dns.cutover_ttl",
    "dns.final_ttl",
    "dns.provider",
    "dns.provider.kind",
    "dns.provider.server",
    "dns.provider.zone",
    "dns.nameservers",
    "kong",
    "kong.admin_url",
    "kong.dns_overrides",
    "readiness.url",
    "readiness.interval",
    "monitor.source",
    "monitor.window",
    "approvals.timeout",
    "decommission",
    "notify",
    "surprise",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.sampled_from(PATHS), json_values), min_size=1, max_size=4))
def test_random_plans_fail_only_with_validation_errors(edits):
    data = base_plan_data()
    for path, value in edits:
        node = data
        *parents, last = path.split(".")
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[last] = value
    try:
        plan = CutoverPlan.model_validate(data)
    except ValidationError as exc:
        assert exc.error_count() >= 1
        str(exc)  # rendering the message never fails either
        return
    assert len(plan.digest()) == 64


@settings(max_examples=100, deadline=None)
@given(st.one_of(json_values, st.text()))
def test_any_top_level_value_fails_cleanly(value):
    with pytest.raises(ValidationError):
        CutoverPlan.model_validate(value)
