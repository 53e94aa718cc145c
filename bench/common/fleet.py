"""Many Kong Services and a recording decommission webhook, for runs of many cutovers."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web

from bench.common.output import BenchError
from sandbox.fleet import AdminApiError, create_services
from sandbox.topology import Topology

BENCH_SERVICE_FIELDS = {"retries": 5, "connect_timeout": 5000, "read_timeout": 10000, "write_timeout": 10000}
"""Kong Service timeouts of the benchmarks: a dead upstream fails a request in seconds, not a minute."""


async def seed_kong_services(topo: Topology, names: Sequence[str]) -> None:
    """Create one Kong Service (host ``<name>.example.test``) and one route (``/<name>``) per name.

    Shaped like sandbox/services.yaml's orders-api, through Kong's Admin API as an operator would.
    """
    try:
        await create_services(topo, names, service_fields=BENCH_SERVICE_FIELDS, route_fields={"preserve_host": False})
    except AdminApiError as exc:
        raise BenchError(str(exc)) from exc


@dataclass
class DecommissionSink:
    """A loopback webhook that accepts "delete project <name>" and only records it.

    The sandbox's receiver really stops runtime A, which serves every benchmark record: deleting it
    after the first of many cutovers would break the others. This sink keeps A running while each
    cutover still proves A drained for its own Service and calls its webhook.
    """

    calls: dict[str, int] = field(default_factory=dict)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> DecommissionSink:
        app = web.Application()
        app.router.add_route("DELETE", "/projects/{project}", self._delete)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _delete(self, request: web.Request) -> web.Response:
        project = request.match_info["project"]
        self.calls[project] = self.calls.get(project, 0) + 1
        return web.json_response({"project": project, "deleted": True})
