"""A fresh time-skipping Temporal test server for each workflow test.

The Java test server stops skipping time while any workflow task or activity is scheduled and not
yet completed. A run's lock child (workflows/lock.py) takes one last workflow task after its release;
when a test's worker stops first, that task would stay scheduled and freeze time for every later test
on a shared server. A server per test (0.1-0.3 s to start) keeps the tests independent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from tests.temporal_env import time_skipping_env


@pytest_asyncio.fixture
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """One test server per test; each test also uses its own task queue and workflow ids."""
    async with time_skipping_env() as env:
        yield env
