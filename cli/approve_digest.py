"""Which digest ``starter.py approve --plan FILE`` sends: the plan's, as the run it approves computed it.

Runs started before the stable digest (``CutoverPlan.digest``, which leaves default values out)
show and expect the digest their worker computed then, every field included
(``CutoverPlan.legacy_digest``). Approving such a run from the same plan file must still work, so
the run's own digest is read first and the legacy one is sent when that is what the run shows.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError

from models.plan import CutoverPlan
from models.workflow import CutoverStatus


def digest_for_run(plan: CutoverPlan, run_digest: str | None) -> str:
    """The digest approving ``plan`` on a run whose status shows ``run_digest`` (None: unknown).

    Only the plan's own two digests are candidates: a plan file that is not this run's plan gets its
    stable digest, which the run then rejects, naming the digest it expects.
    """
    if run_digest is not None and run_digest != plan.digest() and run_digest == plan.legacy_digest():
        return run_digest
    return plan.digest()


async def run_digest(handle: WorkflowHandle[Any, Any]) -> str | None:
    """The digest the run shows in its status, or None when it can't be asked (no worker answers queries)."""
    try:
        status: CutoverStatus = await handle.query("status", result_type=CutoverStatus)
    except (RPCError, WorkflowQueryFailedError):
        return None
    return status.plan_digest
