"""Fixtures for the Kong tests: the sandbox PKI, runtimes A/B, a recording transport checked against the spec."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sandbox.pki import SANDBOX_NAMES, Pki, issue
from sandbox.runtime import RunningRuntime
from tests.kong.fixtures import runtimes_ab
from tests.kong.openapi import RecordingTransport, assert_spec_valid


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The sandbox CA and certificates for A and B (plus B-narrow: only b-project)."""
    return issue(tmp_path_factory.mktemp("pki"), {**SANDBOX_NAMES, "B-narrow": ("b-project.example.test",)})


@pytest.fixture
async def runtimes(pki: Pki) -> AsyncIterator[tuple[RunningRuntime, RunningRuntime]]:
    """Runtimes A (127.0.0.2) and B (127.0.0.3) on one port."""
    async with runtimes_ab(pki) as pair:
        yield pair


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingTransport]:
    """A real transport that records exchanges; at teardown every exchange is checked against Kong's spec."""
    transport = RecordingTransport()
    yield transport
    await transport.shutdown()
    assert_spec_valid(transport.exchanges)
