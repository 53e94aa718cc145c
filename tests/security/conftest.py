"""Fixtures of the security tests: a time-skipping Temporal server, and the real world of the workflow tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from tests.temporal_env import time_skipping_env
from tests.workflows.test_real_world import world  # noqa: F401 (the BIND pair, Kong emulator and runtimes A/B)


@pytest_asyncio.fixture
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """A test server per test (see tests/workflows/conftest.py: a shared one can stop skipping time)."""
    async with time_skipping_env() as env:
        yield env
