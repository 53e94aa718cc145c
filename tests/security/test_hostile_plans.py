"""Every hostile plan and policy of tests/security/cases.py refused with one clear error; allowed ones pass.

``starter.py validate`` runs in-process (the same ``main`` operators run; a few run as subprocesses
to prove there is no traceback), and the worker's ``policy_check`` activity in Temporal's
ActivityEnvironment. The refusals that must leave BIND and Kong untouched are in
test_nothing_changes.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.testing import ActivityEnvironment

import starter
from activities.policy import PolicyActivities
from models.plan import CutoverPlan
from models.policy import WorkerPolicy
from models.policy_rules import PolicyCheckInput, PolicyReport, check_plan
from providers.policy_file import load_policy
from providers.secrets import EnvSecrets
from tests.conftest import base_plan_data
from tests.security.cases import CASES, HOSTILE_POLICIES, SECRET_VALUES, Hostile, reference_policy

ROOT = Path(__file__).resolve().parents[2]


def validate(*argv: str) -> tuple[int, str]:
    """``python starter.py validate ...`` in this process: exit code and everything printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = starter.main(["validate", *argv])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue() + err.getvalue()


def write_plan(tmp_path: Path, case: Hostile) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(case.text if case.text is not None else yaml.safe_dump(case.plan_data()))
    return path


def policy_data(case: Hostile, *, allowing: bool = False) -> dict[str, Any]:
    data = reference_policy()
    if case.policy is not None:
        case.policy(data)
    if allowing:
        assert case.allow is not None
        case.allow(data)
    return data


def write_policy(tmp_path: Path, data: dict[str, Any], name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def assert_one_clear_error(code: int, output: str, case: Hostile) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    assert case.words in output, output
    for secret in SECRET_VALUES:
        assert secret not in output
    if case.layer == "plan":
        assert "1 problem(s)" in output, output
        assert f"  - {case.where}" in output, output
    elif case.layer == "file":
        assert output.count("\n") == 1 and output.startswith("error: "), output
    else:
        assert f"{case.where}: " in output and f"(rule {case.rules[0]})" in output, output


def test_there_are_at_least_30_hostile_plans_and_each_id_is_unique():
    ids = [case.id for case in CASES] + [case[0] for case in HOSTILE_POLICIES]
    assert len(ids) == len(set(ids)) and len(ids) >= 30


@pytest.mark.parametrize("case", [c for c in CASES if c.layer in ("file", "plan", "baseline")], ids=lambda c: c.id)
def test_refused_by_validate_without_a_policy(case: Hostile, tmp_path):
    code, output = validate(str(write_plan(tmp_path, case)))
    assert_one_clear_error(code, output, case)


@pytest.mark.parametrize("case", [c for c in CASES if c.layer in ("baseline", "policy")], ids=lambda c: c.id)
def test_refused_by_validate_under_the_reference_policy(case: Hostile, tmp_path):
    policy = write_policy(tmp_path, policy_data(case))
    code, output = validate(str(write_plan(tmp_path, case)), "--policy", str(policy))
    assert code == 2 and "Traceback" not in output, output
    assert f"{case.where}: " in output and case.words in output, output
    assert f"(rule {case.rules[0]})" in output


@pytest.mark.parametrize("case", [c for c in CASES if c.layer == "policy"], ids=lambda c: c.id)
def test_a_policy_case_passes_validate_without_a_policy(case: Hostile, tmp_path):
    """What only a policy forbids is not refused by the rules that need none: the policy is what decides."""
    code, output = validate(str(write_plan(tmp_path, case)))
    assert code == 0, output


@pytest.mark.parametrize("case", [c for c in CASES if c.allow is not None], ids=lambda c: c.id)
def test_the_same_plan_passes_under_a_policy_that_allows_it(case: Hostile, tmp_path):
    policy = write_policy(tmp_path, policy_data(case, allowing=True))
    code, output = validate(str(write_plan(tmp_path, case)), "--policy", str(policy))
    assert code == 0, output
    assert "valid (under the worker policy reference)" in output


@pytest.mark.parametrize("case", [c for c in CASES if c.layer in ("baseline", "policy")], ids=lambda c: c.id)
async def test_the_policy_check_activity_names_the_same_rule(case: Hostile):
    plan = CutoverPlan.model_validate(case.plan_data())
    policy = WorkerPolicy.model_validate(policy_data(case))
    activities = PolicyActivities(EnvSecrets({}, policy))
    report: PolicyReport = await ActivityEnvironment().run(activities.check, PolicyCheckInput(plan=plan))
    rules = [violation.rule for violation in report.violations]
    assert case.rules[0] in rules and set(rules) <= set(case.rules), report.describe()
    assert any(v.field == case.where and case.words in v.message for v in report.violations), report.describe()
    if case.allow is not None:
        allowing = WorkerPolicy.model_validate(policy_data(case, allowing=True))
        allowed = await ActivityEnvironment().run(
            PolicyActivities(EnvSecrets({}, allowing)).check, PolicyCheckInput(plan=plan)
        )
        assert allowed.ok, allowed.describe()


def test_forced_gates_are_in_the_effective_settings_whatever_the_policy_says_of_the_plan():
    data = base_plan_data()
    data["decommission"] = {"kind": "gcp-project", "project_id": "a-project-123"}
    effective = check_plan(CutoverPlan.model_validate(data), None).effective
    assert (effective.flip_gate, effective.decommission_gate, effective.require_drained, effective.destructive) == (
        True,
        True,
        True,
        True,
    )
    relaxed = WorkerPolicy.model_validate({**reference_policy(), "destructive": {"force_approvals": False}})
    data["approvals"] = {"flip": False, "decommission": False}
    report = check_plan(CutoverPlan.model_validate(data), relaxed)
    assert report.ok and not report.effective.flip_gate and report.effective.require_drained


@pytest.mark.parametrize(("name", "text", "words"), HOSTILE_POLICIES, ids=[p[0] for p in HOSTILE_POLICIES])
def test_a_hostile_policy_file_is_refused_with_one_problem(name, text, words, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(base_plan_data()))
    code, output = validate(str(plan), "--policy", str(policy))
    assert code == 2 and words in output and "Traceback" not in output, output
    assert "1 problem(s)" in output or output.count("\n") == 1, output


@pytest.mark.parametrize("path", ["sandbox/policy.yaml", "deploy/policy.compose.yaml", "deploy/policy.example.yaml"])
def test_the_policies_in_the_repository_load(path):
    policy = load_policy(str(ROOT / path))
    assert policy.name and not policy.dev_loopback_only


@pytest.mark.parametrize("case", [c for c in CASES if c.id in ("5000-deep-nesting", "alias-bomb")], ids=lambda c: c.id)
def test_as_a_process_the_worst_files_exit_2_without_a_traceback(case: Hostile, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), "validate", str(write_plan(tmp_path, case))],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
        cwd=ROOT,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and case.words in result.stderr
