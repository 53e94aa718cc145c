"""Deleting project A: the preflight that must pass first, and what the deletion did."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from models.plan import Decommission, MonitorSection
from models.telemetry import DrainProof


class _Model(BaseModel):
    # Unknown fields are ignored, not refused: during a rolling deploy a newer activity may return a
    # field an older workflow doesn't know, and a decode error would fail the run without rollback.
    model_config = ConfigDict(extra="ignore", frozen=True)


class DecommissionInput(_Model):
    """Which A to delete, what the decommission system is told, and where A's drain is proven from."""

    decommission: Decommission
    workflow_id: str
    dns_project: str | None = None
    """The Cloud DNS project, which is never deleted."""
    monitor: MonitorSection | None = None
    """The plan's traffic source: ``decommission_delete`` proves A drained from it itself, counting requests to
    ``a_addresses`` through every Kong service, just before deleting. Given, it supersedes ``drain_proof``."""
    a_addresses: tuple[str, ...] = ()
    """A's addresses (resolved before the flip): what must receive nothing; also told to a webhook."""
    b_addresses: tuple[str, ...] = ()
    plan_digest: str = ""
    """The approved plan's digest: part of a webhook's idempotency key and body."""
    record: str = ""
    target: str = ""
    drain_proof: DrainProof | None = None
    """A proof computed elsewhere (workflows before the policy work). Accepted only for a kind the worker
    policy does not call destructive, and only when ``monitor`` is not given."""


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
    drain_proof: DrainProof | None = None
    """The proof the delete activity computed itself before deleting (every Kong service counted)."""


class NotifyInput(_Model):
    """A notice for humans: gate opened, rollback, end of run."""

    webhook_env: str
    event: str
    text: str
    workflow_id: str
