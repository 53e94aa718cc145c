"""Deleting project A: the preflight that must pass first, and what the deletion did."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from models.plan import Decommission
from models.telemetry import DrainProof


class _Model(BaseModel):
    # Unknown fields are ignored, not refused: during a rolling deploy a newer activity may return a
    # field an older workflow doesn't know, and a decode error would fail the run without rollback.
    model_config = ConfigDict(extra="ignore", frozen=True)


class DecommissionInput(_Model):
    """Which A to delete, and the idempotency key (the workflow id)."""

    decommission: Decommission
    workflow_id: str
    dns_project: str | None = None
    """The Cloud DNS project, which is never deleted."""
    drain_proof: DrainProof | None = None
    """The proof that A is drained; ``decommission_delete`` refuses without it unless ``require_drained`` is off."""


class DecommissionPreflight(_Model):
    """Checks run before the first change, so a doomed deletion is known up front."""

    ok: bool
    checks: tuple[str, ...]
    problems: tuple[str, ...] = ()
    reversible: bool
    """True when the deletion can be undone (GCP undelete within 30 days)."""
    description: str


class DecommissionResult(_Model):
    """What happened to A."""

    kind: str
    done: bool
    state: str
    """e.g. DELETE_REQUESTED, ACTIVE (undeleted), "left in place", "webhook 202"."""
    detail: str
    operation: str | None = None
    reversible_until: datetime | None = None


class NotifyInput(_Model):
    """A notice for humans: gate opened, rollback, end of run."""

    webhook_env: str
    event: str
    text: str
    workflow_id: str
