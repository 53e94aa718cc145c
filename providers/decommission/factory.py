"""Build the decommissioner a plan's ``decommission`` section names."""

from __future__ import annotations

import google.auth.credentials
import httpx

from models.plan import Decommission, GcpProjectDecommission, NoDecommission, WebhookDecommission
from providers.decommission.base import Decommissioner, ProgressCallback, ProjectRules, ignore_progress
from providers.decommission.gcp_project import GcpProjectDecommissioner
from providers.decommission.none import LeaveInPlace
from providers.decommission.webhook import DeletionContext, WebhookDecommissioner
from providers.secrets import EnvSecrets


def build_decommissioner(
    section: Decommission,
    *,
    workflow_id: str,
    context: DeletionContext | None = None,
    rules: ProjectRules | None = None,
    dns_project: str | None = None,
    secrets: EnvSecrets | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    credentials: google.auth.credentials.Credentials | None = None,
    on_progress: ProgressCallback = ignore_progress,
) -> Decommissioner:
    """The decommissioner for ``section``.

    Args:
        section: the plan's decommission section.
        workflow_id: the run's workflow id.
        context: what a webhook is told (run id, plan digest, record, target, A's addresses); default: the
            workflow id alone.
        rules: which projects the worker policy lets a gcp-project decommission delete.
        dns_project: the Cloud DNS project, never deleted.
        secrets: where header and credential variables are read (default: the worker's environment).
        transport: httpx transport (tests).
        credentials: Google credentials (default: ``credentials_env`` key file or ADC).
        on_progress: told about long waits (heartbeats).

    Raises:
        ConfigError: no usable Google credentials for a gcp-project section.
    """
    if isinstance(section, GcpProjectDecommission):
        return GcpProjectDecommissioner(
            section,
            dns_project=dns_project,
            credentials=credentials,
            secrets=secrets,
            transport=transport,
            on_progress=on_progress,
            rules=rules,
        )
    if isinstance(section, WebhookDecommission):
        return WebhookDecommissioner(
            section, context or DeletionContext(workflow_id=workflow_id), secrets=secrets, transport=transport
        )
    if isinstance(section, NoDecommission):
        return LeaveInPlace(section)
    raise TypeError(f"unknown decommission kind {type(section).__name__}")
