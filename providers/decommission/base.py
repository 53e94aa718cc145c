"""The contract of a way to decommission project A: check first, delete, and undo where possible.

Implementations never decide whether A is drained: ``decommission_delete`` (activities) checks the
drain proof before calling :meth:`Decommissioner.delete`, and the workflow checks it too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from models.decommission import DecommissionPreflight, DecommissionResult
from providers.resources import AsyncResource

ProgressCallback = Callable[[str], None]
"""Told about long waits (the activity turns it into heartbeats)."""


def ignore_progress(message: str) -> None:
    """The default progress callback: providers run outside Temporal too (CLI, tests)."""
    del message


@dataclass(frozen=True)
class ProjectRules:
    """Which projects the worker policy lets a ``gcp-project`` decommission delete (checked on the project itself).

    ``deletable`` None means no policy: only the protections apply (tests, library use).
    """

    protected: tuple[str, ...] = ()
    """Never deleted: the policy's and the plan's protected projects, the Cloud DNS and logs projects."""
    deletable: tuple[str, ...] | None = None
    required_label: str | None = None
    """``key=value``: a project not in ``deletable`` may be deleted when it carries this label."""


class Decommissioner(AsyncResource, ABC):
    """One way of deleting A."""

    kind: ClassVar[str]
    """The plan's ``decommission.kind``."""

    @abstractmethod
    async def preflight(self) -> DecommissionPreflight:
        """Check, without changing anything, that :meth:`delete` can succeed; list every problem.

        Raises:
            DecommissionUnavailable: the checks themselves could not run (5xx, timeout).
        """

    @abstractmethod
    async def delete(self) -> DecommissionResult:
        """Delete A, idempotently: a second call after success changes nothing and reports the same state.

        Raises:
            DecommissionRefused: protected target, missing permission, rejected request.
            DecommissionUnavailable: transient failure; retrying is safe.
        """

    @abstractmethod
    async def undo(self) -> DecommissionResult:
        """Reverse :meth:`delete` (the compensation), idempotently.

        Raises:
            DecommissionRefused: this kind can't be undone, or no longer can.
            DecommissionUnavailable: transient failure; retrying is safe.
        """
