"""Fixtures of the telemetry tests: a file-log with one old line, a real /metrics server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.telemetry.kong_lines import ago, kong_line
from tests.telemetry.metrics_server import MetricsServer


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "file-log.json"
    path.write_text(kong_line(at=ago(3600)))
    return path


@pytest.fixture
async def metrics() -> AsyncIterator[MetricsServer]:
    server = MetricsServer()
    await server.start()
    yield server
    await server.stop()
