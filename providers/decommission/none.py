"""``kind: none``: cutover deletes nothing; the status tells the user A is theirs to delete."""

from __future__ import annotations

from typing import ClassVar

from models.decommission import DecommissionPreflight, DecommissionResult
from models.plan import NoDecommission
from providers.decommission.base import Decommissioner

LEFT_IN_PLACE = "left in place"


class LeaveInPlace(Decommissioner):
    """Record that A stays; nothing is called."""

    kind: ClassVar[str] = "none"

    def __init__(self, section: NoDecommission) -> None:
        self.section = section

    async def preflight(self) -> DecommissionPreflight:
        """Always fine: nothing will be deleted."""
        return DecommissionPreflight(
            ok=True,
            checks=("decommission kind none: A will be left in place, nothing is deleted",),
            reversible=True,
            description="leave A in place (you delete it yourself)",
        )

    async def delete(self) -> DecommissionResult:
        """Delete nothing, and say so."""
        return DecommissionResult(
            kind=self.kind,
            done=True,
            state=LEFT_IN_PLACE,
            detail=(
                "cutover did not delete A (decommission kind none): A and its resources are yours to delete "
                "once you are satisfied nothing reaches it any more"
            ),
        )

    async def undo(self) -> DecommissionResult:
        """Nothing was deleted, so nothing is undone."""
        return DecommissionResult(
            kind=self.kind, done=True, state=LEFT_IN_PLACE, detail="nothing was deleted: nothing to undo"
        )
