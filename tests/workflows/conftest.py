"""One time-skipping Temporal test server for the workflow tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from tests.temporal_env import time_skipping_env


@pytest_asyncio.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """Shared by the session: each test uses its own task queue and workflow id."""
    async with time_skipping_env() as env:
        yield env
