"""``starter.py traffic PLAN --since 10m``: what the monitor would conclude now, without Temporal.

The same reading and the same pure verdict as the ``traffic_monitor`` activity, as a plain function
so the command line needs no activity module (and so no Temporal activity context).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx

from models.plan import CutoverPlan
from models.telemetry import evaluate
from providers.secrets import EnvSecrets
from providers.telemetry.base import HistoricalTelemetrySource, utc_now
from providers.telemetry.cloud_logging import LoggingClientFactory
from providers.telemetry.factory import build_telemetry_source
from providers.telemetry.records import normalise_addresses


async def traffic_report(
    plan: CutoverPlan,
    since: timedelta,
    *,
    secrets: EnvSecrets | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    logging_client_factory: LoggingClientFactory | None = None,
    a_addresses: Sequence[str] = (),
    b_addresses: Sequence[str] = (),
) -> dict[str, Any]:
    """The summary and verdict the monitor would compute now from the plan's source, as JSON-able data.

    Sources with history are read over the last ``since``; Prometheus, which keeps none, is scraped
    twice ``min(since, monitor.poll_interval)`` apart. Without B's addresses the traffic share is
    not checked (the verdict's reason says so).

    Raises:
        TelemetryError: the source can't be read (its message says why).
        ConfigError: a credential or file the plan names is missing.
    """
    service = plan.monitor_service
    a, b = normalise_addresses(a_addresses), normalise_addresses(b_addresses)
    source = build_telemetry_source(
        plan.monitor,
        service,
        secrets=secrets,
        transport=transport,
        logging_client_factory=logging_client_factory,
    )
    async with source:
        now = utc_now()
        if isinstance(source, HistoricalTelemetrySource):
            summary = await source.read_window(now - since, now)
        else:
            cursor = await source.open_cursor()
            await asyncio.sleep(min(since, plan.monitor.poll_interval).total_seconds())
            summary, _ = await source.poll(cursor)
    verdict = evaluate(summary, plan.monitor, a_addresses=a, b_addresses=b)
    return {
        "source": source.description,
        "service": service,
        "summary": summary.model_dump(mode="json"),
        "verdict": verdict.model_dump(mode="json", exclude={"summary", "share"}),
        "share": {**verdict.share.model_dump(mode="json"), "description": verdict.share.describe()},
    }
