"""``WORKFLOWS``: every workflow a cutover worker registers.

Kept out of ``workflows/__init__.py`` on purpose: the sandbox re-imports a workflow's module (and its
package) for every workflow instance it creates, so a package that imported all workflows would make
each lock instance re-import the cutover and the campaign too (≈2× the instance's CPU).
"""

from __future__ import annotations

from typing import Any

from workflows.campaign import CampaignWorkflow
from workflows.cutover import CutoverWorkflow
from workflows.lock import CutoverLock

WORKFLOWS: list[type[Any]] = [CutoverWorkflow, CutoverLock, CampaignWorkflow]
