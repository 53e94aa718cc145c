"""A fresh time-skipping Temporal test server for each workflow test.

The Java test server stops skipping time while anything holds its time lock, and some things hold it
for good: a task scheduled that no worker polls any more (a test's worker stopped first), or a child
workflow that ended after its parent closed or continued as new (the child's report to its parent
keeps the lock, and a closed parent never takes the report). A server per test (0.1-0.3 s to start)
keeps a test that leaves time stuck from freezing every later one; tests/workflows/stalls.py turns a
stall into a quick failure that lists what is still open.
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
