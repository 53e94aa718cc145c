"""--register-search-attributes where the namespace may not be changed through its endpoint (Temporal Cloud).

Temporal Cloud answers OperatorService.AddSearchAttributes with PERMISSION_DENIED: attributes are
created in the Cloud UI or with tcld. A real gRPC server answering the same way stands in for it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest_asyncio
from temporalio.api.operatorservice.v1.request_response_pb2 import (
    AddSearchAttributesRequest,
    AddSearchAttributesResponse,
    ListSearchAttributesRequest,
    ListSearchAttributesResponse,
)
from temporalio.api.workflowservice.v1.request_response_pb2 import GetSystemInfoRequest, GetSystemInfoResponse
from temporalio.client import Client

from sandbox.free_ports import free_port
from tests.connection.helpers import arun
from worker import MissingSearchAttributes, ensure_search_attributes


class _CloudLike:
    """GetSystemInfo answers; AddSearchAttributes (and, when asked, ListSearchAttributes) is refused."""

    def __init__(self) -> None:
        self.list_denied = False

    async def system_info(self, request: GetSystemInfoRequest, context: Any) -> GetSystemInfoResponse:
        return GetSystemInfoResponse()

    async def list_attributes(self, request: ListSearchAttributesRequest, context: Any) -> ListSearchAttributesResponse:
        if self.list_denied:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "Request unauthorized.")
        return ListSearchAttributesResponse()

    async def add_attributes(self, request: AddSearchAttributesRequest, context: Any) -> AddSearchAttributesResponse:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "Request unauthorized.")
        return AddSearchAttributesResponse()

    def handlers(self) -> list[Any]:
        def unary(handler: Any, request: Any, response: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(
                handler, request_deserializer=request.FromString, response_serializer=response.SerializeToString
            )

        return [
            grpc.method_handlers_generic_handler(
                "temporal.api.workflowservice.v1.WorkflowService",
                {"GetSystemInfo": unary(self.system_info, GetSystemInfoRequest, GetSystemInfoResponse)},
            ),
            grpc.method_handlers_generic_handler(
                "temporal.api.operatorservice.v1.OperatorService",
                {
                    "ListSearchAttributes": unary(
                        self.list_attributes, ListSearchAttributesRequest, ListSearchAttributesResponse
                    ),
                    "AddSearchAttributes": unary(
                        self.add_attributes, AddSearchAttributesRequest, AddSearchAttributesResponse
                    ),
                },
            ),
        ]


@pytest_asyncio.fixture
async def cloud_like() -> AsyncIterator[tuple[str, _CloudLike]]:
    fake = _CloudLike()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(fake.handlers())
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    await server.start()
    yield address, fake
    await server.stop(None)


async def test_registration_refused_says_to_use_the_cloud_ui_or_tcld(cloud_like):
    address, _ = cloud_like
    client = await Client.connect(address, namespace="prod.a1b2c")
    try:
        await ensure_search_attributes(client, "prod.a1b2c", register=True)
        raise AssertionError("expected MissingSearchAttributes")
    except MissingSearchAttributes as exc:
        message = str(exc)
    assert "may not create them (PERMISSION_DENIED" in message
    assert "Temporal Cloud" in message and "tcld namespace search-attributes add" in message
    assert "--sa CutoverPhase=Keyword --sa CutoverRecord=Keyword" in message

    worker = await arun(
        "--register-search-attributes", env={"TEMPORAL_ADDRESS": address, "CUTOVER_POLICY": "dev"}, script="worker.py"
    )
    assert worker.returncode == 2 and "tcld namespace search-attributes add" in worker.stderr
    assert "Traceback" not in worker.stderr


async def test_a_namespace_that_hides_its_schema_is_warned_about_not_refused(cloud_like, caplog):
    address, operator = cloud_like
    operator.list_denied = True
    client = await Client.connect(address)
    with caplog.at_level(logging.WARNING, logger="cutover.worker"):
        await ensure_search_attributes(client, "default", register=False)
    assert "cannot list search attributes" in caplog.text and "CutoverPhase and CutoverRecord" in caplog.text
