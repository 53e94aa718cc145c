"""Build the telemetry source a plan's ``monitor.source`` names."""

from __future__ import annotations

from datetime import timedelta

import httpx

from models.plan import CloudLoggingSource, KongFileLogSource, MonitorSection, PrometheusSource, PromqlSource
from providers.secrets import EnvSecrets
from providers.telemetry.base import TelemetrySource
from providers.telemetry.cloud_logging import INGESTION_ALLOWANCE, CloudLogging, LoggingClientFactory
from providers.telemetry.file_log import KongFileLog
from providers.telemetry.prometheus import KongPrometheus
from providers.telemetry.promql import PromqlTelemetry


def build_telemetry_source(
    monitor: MonitorSection,
    service: str | None,
    *,
    secrets: EnvSecrets | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    logging_client_factory: LoggingClientFactory | None = None,
    ingestion_allowance: timedelta = INGESTION_ALLOWANCE,
) -> TelemetrySource:
    """The source for ``monitor.source``, scoped to the Kong service ``service``.

    Args:
        monitor: the plan's monitor section.
        service: the Kong service whose requests count (``plan.monitor_service``); None for every service.
        secrets: where credential variables are read (default: the worker's environment).
        transport: httpx transport for the Prometheus scrape and PromQL queries (tests).
        logging_client_factory: builds the Cloud Logging client (tests point it at a local fake).
        ingestion_allowance: how far behind now Cloud Logging is followed (tests shorten it).
    """
    source = monitor.source
    if isinstance(source, KongFileLogSource):
        return KongFileLog(source, service)
    if isinstance(source, CloudLoggingSource):
        return CloudLogging(
            source,
            service,
            client_factory=logging_client_factory,
            secrets=secrets,
            ingestion_allowance=ingestion_allowance,
        )
    if isinstance(source, PrometheusSource):
        return KongPrometheus(source, service, transport=transport, guard=secrets.guard if secrets else None)
    if isinstance(source, PromqlSource):
        return PromqlTelemetry(source, service, secrets=secrets, transport=transport)
    raise TypeError(f"unknown telemetry source {type(source).__name__}")
