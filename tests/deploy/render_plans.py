"""Write deploy/plans/*.yaml: the sandbox plan templates rendered with the compose network's addresses.

    .venv/bin/python -m tests.deploy.render_plans

Run it after changing sandbox/plans/*.yaml or an address in docker-compose.yml; the deploy tests
fail, with a diff, while the files are out of step.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

import yaml

from tests.deploy.compose import DEPLOY_PLANS, STRATEGIES, Compose, render_compose_plan

HEADER = """\
# Cutover plan for docker-compose.yml, {strategy} strategy: {record} -> {target}.
#
# Generated from sandbox/plans/{strategy}.yaml: the sandbox's plan with the compose network's
# addresses (DNS servers, Kong's Admin API, A's and B's URLs, the CA bundle and file-log paths as
# the worker container sees them, the decommission receiver); everything else, timings included,
# is the sandbox's. Regenerate with `.venv/bin/python -m tests.deploy.render_plans`; tests/deploy
# fails while this file and the template are out of step.
#
#   docker compose run --rm starter validate /etc/cutover/plans/{strategy}.yaml
#   docker compose run --rm starter start /etc/cutover/plans/{strategy}.yaml
"""


def plan_file_text(strategy: Literal["cname", "alias"], data: dict[str, Any]) -> str:
    """The header comment and the plan as YAML, keys in the template's order."""
    header = HEADER.format(
        strategy=strategy, record=data["dns"]["record"].rstrip("."), target=data["dns"]["target"].rstrip(".")
    )
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


def main() -> None:
    """Render both strategies into deploy/plans."""
    compose = Compose.load()
    with tempfile.TemporaryDirectory() as workdir:
        for strategy in STRATEGIES:
            data = render_compose_plan(strategy, compose, Path(workdir))
            path = DEPLOY_PLANS / f"{strategy}.yaml"
            path.write_text(plan_file_text(strategy, data))
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
