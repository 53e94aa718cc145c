"""Plan templates rendered for a topology: valid plans, the topology's addresses, no secret, overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from models.plan import CutoverPlan, KongFileLogSource, Rfc2136Provider, WebhookDecommission
from sandbox.topology import PLANS_DIR, REPO_ROOT, Ports, Timings, Topology


@pytest.fixture
def topo(tmp_path) -> Topology:
    """A topology that is never started: rendering needs only its ports and work directory."""
    return Topology(tmp_path / "work", ports="auto")


@pytest.mark.parametrize("strategy", ["cname", "alias"])
def test_rendered_plan_is_valid_and_uses_the_topology(topo, strategy):
    data = topo.render_plan(strategy)
    plan = CutoverPlan.model_validate(data)
    assert plan.strategy == strategy
    assert plan.workflow_id == "cutover-orders-api"
    assert isinstance(plan.dns.provider, Rfc2136Provider)
    assert plan.dns.provider.server == topo.nameservers[0]
    assert plan.dns.nameservers == topo.nameservers
    assert plan.kong.admin_url == topo.kong_admin_url
    assert plan.readiness.url == f"{topo.runtime_url('B')}/orders/v1/health"
    assert plan.readiness.ca_bundle == str(topo.ca_path)
    assert isinstance(plan.monitor.source, KongFileLogSource)
    assert plan.monitor.source.path == str(topo.file_log)
    assert isinstance(plan.decommission, WebhookDecommission)
    assert plan.decommission.url == topo.decommission_url
    assert plan.dns.cutover_ttl == topo.timings.cutover_ttl
    assert plan.dns.record == ("a-project.example.test." if strategy == "cname" else "origin-api.example.test.")


@pytest.mark.parametrize("strategy", ["cname", "alias"])
def test_written_plan_validates_with_the_starter_cli_and_holds_no_secret(topo, strategy):
    path = topo.write_plan(strategy)
    text = path.read_text()
    assert "${" not in text
    assert topo.tsig_secret not in text and topo.decommission_auth not in text
    assert "#" in text  # the template's comments are kept for the reader
    # Without a policy (the rules that need none), and under the sandbox worker's own policy.
    for policy in ([], ["--policy", str(REPO_ROOT / "sandbox" / "policy.yaml")]):
        result = subprocess.run(
            [sys.executable, str(REPO_ROOT / "starter.py"), "validate", str(path), *policy],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "valid (" in result.stdout and "plan digest" in result.stdout


def test_overrides_merge_per_section(topo):
    data = topo.render_plan("cname", name="orders-2", monitor={"window": "30s"}, approvals={"flip": False})
    plan = CutoverPlan.model_validate(data)
    assert plan.name == "orders-2"
    assert plan.monitor.window.total_seconds() == 30
    assert plan.monitor.source.kind == "kong-file-log"  # the rest of the section is kept
    assert plan.approvals.flip is False and plan.approvals.decommission is True
    written = topo.write_plan("cname", name="orders-3")
    assert yaml.safe_load(written.read_text())["name"] == "orders-3"


def test_timings_fill_the_template(tmp_path):
    topo = Topology(tmp_path, ports=Ports(), timings=Timings(cutover_ttl=7, monitor_window="45s", min_requests=3))
    plan = CutoverPlan.model_validate(topo.render_plan("alias"))
    assert plan.dns.cutover_ttl == 7
    assert plan.monitor.window.total_seconds() == 45
    assert plan.monitor.min_requests == 3
    assert plan.kong.admin_url == "http://127.0.0.1:8001"
    assert plan.readiness.url == "https://127.0.0.3:8443/orders/v1/health"


def test_unknown_strategy(topo):
    with pytest.raises(ValueError, match="no plan template"):
        topo.render_plan("weighted")


def test_templates_use_only_known_placeholders(topo):
    names = set(topo.plan_values())
    for template in Path(PLANS_DIR).glob("*.yaml"):
        text = template.read_text().replace("$${", "")
        used = {part.split("}", 1)[0] for part in text.split("${")[1:]}
        assert used <= names, (template, used - names)
