"""Where the worker and the starter find Temporal, from the environment (or flags that override it).

``TEMPORAL_ADDRESS`` (default ``localhost:7233``), ``TEMPORAL_NAMESPACE`` (``default``),
``CUTOVER_TASK_QUEUE`` (``cutover``), ``TEMPORAL_UI_URL`` (default: the dev server's UI, port + 1000).
Both sides use the pydantic data converter, so plans travel as plain JSON.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from models.campaign_status import CAMPAIGN_NAME_ATTRIBUTE, CAMPAIGN_WAVE_ATTRIBUTE
from models.workflow import PHASE_ATTRIBUTE, RECORD_ATTRIBUTE, TASK_QUEUE

SEARCH_ATTRIBUTES = (PHASE_ATTRIBUTE, RECORD_ATTRIBUTE, CAMPAIGN_NAME_ATTRIBUTE, CAMPAIGN_WAVE_ATTRIBUTE)
"""Keyword attributes: a run's phase and record; a campaign's name and wave (on the campaign and its cutovers)."""


@dataclass(frozen=True)
class TemporalSettings:
    """How to reach Temporal."""

    address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = TASK_QUEUE
    ui_url: str | None = None

    @classmethod
    def from_env(cls) -> TemporalSettings:
        """Read the settings from the environment."""
        return cls(
            address=os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"),
            namespace=os.environ.get("TEMPORAL_NAMESPACE", "default"),
            task_queue=os.environ.get("CUTOVER_TASK_QUEUE", TASK_QUEUE),
            ui_url=os.environ.get("TEMPORAL_UI_URL"),
        )

    def workflow_url(self, workflow_id: str) -> str:
        """Link to the workflow in the Temporal web UI."""
        base = self.ui_url
        if not base:
            host, _, port = self.address.rpartition(":")
            base = f"http://{host or 'localhost'}:{int(port) + 1000}" if port.isdigit() else "http://localhost:8233"
        return f"{base.rstrip('/')}/namespaces/{self.namespace}/workflows/{workflow_id}"

    async def connect(self) -> Client:
        """A client with the pydantic data converter."""
        return await Client.connect(self.address, namespace=self.namespace, data_converter=pydantic_data_converter)


def search_attribute_commands() -> str:
    """What to run when the search attributes are missing, for the dev server and for a cluster."""
    flags = " ".join(f"--search-attribute {name}=Keyword" for name in SEARCH_ATTRIBUTES)
    names = " ".join(f"--name {name}" for name in SEARCH_ATTRIBUTES)
    return (
        f"  dev server: temporal server start-dev {flags}\n"
        f"  cluster:    temporal operator search-attribute create {names} --type Keyword\n"
        "  or run the worker once with --register-search-attributes"
    )
