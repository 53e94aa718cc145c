"""Providers are async resources: ``async with`` hands back the provider and closes it even on failure."""

from __future__ import annotations

import pytest

from models.plan import NoDecommission
from providers.decommission.none import LeaveInPlace
from providers.errors import GatewayNotFound
from providers.gateway.kong_admin import KongAdminClient
from providers.secrets import EnvSecrets
from sandbox.kong import running_emulator
from tests.kong.fixtures import sandbox_config, section
from tests.kong.openapi import RecordingTransport


async def test_a_kong_client_is_closed_when_its_block_fails(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        client = KongAdminClient(section(kong), secrets=EnvSecrets({}), transport=recorder)
        with pytest.raises(GatewayNotFound):
            async with client as entered:
                assert entered is client
                await client.get_service("no-such-service")
        with pytest.raises(RuntimeError, match="client has been closed"):
            await client.node()


async def test_a_provider_without_connections_is_still_a_context_manager() -> None:
    provider = LeaveInPlace(NoDecommission(kind="none"))
    async with provider as entered:
        result = await entered.delete()
    assert entered is provider and result.done
