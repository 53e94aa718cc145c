"""Deterministic orchestration: CutoverWorkflow, its lock, CampaignWorkflow, and their pure helpers.

``WORKFLOWS`` is what a worker registers.
"""

from __future__ import annotations

from typing import Any

from workflows.campaign import CampaignWorkflow
from workflows.cutover import CutoverWorkflow
from workflows.lock import CutoverLock

WORKFLOWS: list[type[Any]] = [CutoverWorkflow, CutoverLock, CampaignWorkflow]
