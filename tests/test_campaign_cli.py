"""``starter.py campaign validate`` as operators run it: plan files next to the campaign, every problem, digests.

The other campaign commands need a worker and a world: tests/e2e/test_campaign.py runs them on the sandbox.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml

from models.campaign import Campaign
from tests.models.test_campaign import plan
from tests.test_starter import starter

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "campaign" / "fleet-1.yaml"


def test_the_documented_example_validates_and_its_digests_are_printed(tmp_path):
    result = starter("campaign", "validate", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    inlined = starter("campaign", "validate", str(EXAMPLE), "--json")
    assert inlined.returncode == 0, inlined.stderr
    campaign = Campaign.from_data(json.loads(inlined.stdout))
    assert campaign.name == "fleet-1" and [len(w) for w in campaign.waves] == [1, 2, 2, 3]
    assert campaign.plan("orders-api").ticket == "OPS-4711", "orders.yaml was read next to the campaign file"
    assert campaign.plan("reviews-api").dns.cutover_ttl == 60 and campaign.plan("users-api").dns.cutover_ttl == 30
    assert f"campaign digest {campaign.digest()}" in result.stdout
    for number in range(1, 5):
        assert f"wave {number}: " in result.stdout and campaign.wave_digest(number) in result.stdout

    # The same campaign elsewhere, as JSON with keys in another order: the same digests.
    shutil.copy(EXAMPLE.parent / "orders.yaml", tmp_path / "orders.yaml")
    data = yaml.safe_load(EXAMPLE.read_text())
    moved = tmp_path / "fleet.json"
    moved.write_text(json.dumps(dict(reversed(list(data.items())))))
    again = starter("campaign", "validate", str(moved))
    assert again.returncode == 0 and f"campaign digest {campaign.digest()}" in again.stdout, again.stderr


def test_validate_lists_every_problem_of_the_campaign_and_its_files_and_exits_2(tmp_path):
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "good.yaml").write_text(yaml.safe_dump(plan("good")))
    (tmp_path / "plans" / "broken.yaml").write_text("name: [unclosed\n")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.yaml"
    outside.write_text(yaml.safe_dump(plan("secret")))
    os.symlink(outside, tmp_path / "plans" / "link.yaml")
    bad = plan("bad")
    bad["dns"]["cutover_ttl"] = 900
    campaign = {
        "name": "fleet-x",
        "plans": ["plans/good.yaml", "plans/broken.yaml", "plans/link.yaml", "/etc/passwd.yaml", "../up.json", bad],
        "waves": [["good"], ["bad", "ghost"]],
        "approvals": {"per_wave": "sometimes"},
    }
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(campaign))
    result = starter("campaign", "validate", str(tmp_path / "fleet.yaml"))
    assert result.returncode == 2, result.stdout
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    text = "\n".join(problems)
    assert "plans/broken.yaml: " in text and "is not valid YAML" in text
    assert "plans/link.yaml: 'plans/link.yaml' leads outside the campaign file's directory" in text
    assert "/etc/passwd.yaml: '/etc/passwd.yaml': name plan files relative to the campaign file" in text
    assert "../up.json: '../up.json' is outside the campaign file's directory" in text
    assert "approvals.per_wave: Input should be 'flip', 'decommission', 'both' or 'none'" in text
    assert "plans.5: dns.cutover_ttl: cutover_ttl (900) must not exceed final_ttl (300)" in text
    assert "waves.1: 'ghost' is not the name of a plan of this campaign" in text
    assert len(problems) == 7, text


def test_the_documentation_shows_the_example_as_committed():
    doc = (ROOT / "docs" / "campaigns.md").read_text()
    assert EXAMPLE.read_text() in doc and (EXAMPLE.parent / "orders.yaml").read_text() in doc
