"""What the workflow sandbox re-imports for each instance it creates (the worker's CPU per instance).

The sandbox runs a workflow's module, and its package's ``__init__``, afresh for every instance. A lock
instance (two per cutover, more when an evicted run is replayed) must not drag in the cutover's and the
campaign's modules: that doubled its cost (bench/RESULTS.md, cost per cutover).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def loaded_workflow_modules(module: str) -> set[str]:
    """The ``workflows.*`` modules a fresh interpreter holds after importing ``module``."""
    code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('workflows')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_a_lock_instance_does_not_import_the_cutover_or_the_campaign() -> None:
    loaded = loaded_workflow_modules("workflows.lock")
    assert "workflows.lock" in loaded
    assert not {m for m in loaded if m.startswith(("workflows.cutover", "workflows.campaign", "workflows.phases"))}


def test_a_cutover_instance_does_not_import_the_campaign() -> None:
    loaded = loaded_workflow_modules("workflows.cutover")
    assert "workflows.cutover" in loaded
    assert not {m for m in loaded if m.startswith("workflows.campaign")}


def test_the_registry_still_lists_every_workflow() -> None:
    from workflows.campaign import CampaignWorkflow
    from workflows.cutover import CutoverWorkflow
    from workflows.lock import CutoverLock
    from workflows.registry import WORKFLOWS

    assert set(WORKFLOWS) == {CutoverWorkflow, CutoverLock, CampaignWorkflow}
