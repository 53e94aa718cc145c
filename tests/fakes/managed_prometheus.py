"""Google Managed Prometheus's Prometheus-compatible query API, on loopback, in front of a real Prometheus.

The paths are checked against the ``monitoring.v1`` discovery document (methods
``monitoring.projects.location.prometheus.api.v1.query`` and ``.query_range``: path template,
``location`` "global", and every parameter a property of ``QueryInstantRequest`` /
``QueryRangeRequest``). The bundled discovery document declares these methods as POST with a JSON
body, while Google's current reference documents GET with the same names as query parameters
(https://cloud.google.com/monitoring/api/ref_v3/rest/v1/projects.location.prometheus.api.v1/query),
which is also what every Prometheus accepts: the fake takes GET. Requests need ``Authorization:
Bearer <a token the test's token endpoint issued>``, otherwise 401 with Google's error shape. The
query itself is answered by a real Prometheus server, so PromQL is evaluated for real.

Usage::

    async with ManagedPrometheusFake(prometheus_url, tokens=lambda t: t.startswith("token-")) as fake:
        fake.base_url     # http://127.0.0.1:PORT/v1/projects/test-project/location/global/prometheus
        fake.calls        # method ids in order
        fake.problems     # shape mismatches (raised by __aexit__)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.discovery import discovery

DOCUMENT = "monitoring.v1"
METHODS = {
    "query": ("monitoring.projects.location.prometheus.api.v1.query", "QueryInstantRequest"),
    "query_range": ("monitoring.projects.location.prometheus.api.v1.query_range", "QueryRangeRequest"),
}


class ManagedPrometheusFake:
    """The query endpoints of one project's Managed Prometheus, backed by a real Prometheus."""

    def __init__(
        self, prometheus_url: str, *, project: str = "test-project", tokens: Callable[[str], bool] | None = None
    ) -> None:
        self.prometheus_url = prometheus_url
        self.project = project
        self.tokens = tokens or (lambda token: token.startswith("token-"))
        self.calls: list[str] = []
        self.authorizations: list[str] = []
        self.problems: list[str] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        document = discovery(DOCUMENT)
        endpoint = request.match_info["endpoint"]
        if endpoint not in METHODS:
            return self._error(404, "NOT_FOUND", f"unknown endpoint {endpoint}")
        method_id, schema = METHODS[endpoint]
        method = document.method(method_id)
        if not method.path_regex().match(request.path):
            self.problems.append(f"{request.path} does not fit {method.path}")
        if request.match_info["location"] != "global":
            self.problems.append(f"location {request.match_info['location']!r}: the API accepts only 'global'")
        properties = set(document.doc["schemas"][schema]["properties"])
        unknown = set(request.query) - properties
        if unknown or "query" not in request.query:
            self.problems.append(f"{method_id}: parameters {sorted(request.query)} (documented: {sorted(properties)})")
            return self._error(400, "INVALID_ARGUMENT", "bad parameters")
        authorization = request.headers.get("Authorization", "")
        self.authorizations.append(authorization)
        if not authorization.startswith("Bearer ") or not self.tokens(authorization.removeprefix("Bearer ")):
            return self._error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            )
        if request.match_info["project"] != self.project:
            return self._error(403, "PERMISSION_DENIED", "Permission monitoring.timeSeries.list denied")
        self.calls.append(method_id)
        assert self._session is not None
        async with self._session.get(f"{self.prometheus_url}/api/v1/{endpoint}", params=dict(request.query)) as answer:
            body = await answer.read()
            return web.Response(body=body, status=answer.status, content_type="application/json")

    @staticmethod
    def _error(code: int, status: str, message: str) -> web.Response:
        return web.json_response({"error": {"code": code, "message": message, "status": status}}, status=code)

    async def __aenter__(self) -> ManagedPrometheusFake:
        app = web.Application()
        app.router.add_get("/v1/projects/{project}/location/{location}/prometheus/api/v1/{endpoint}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._session = aiohttp.ClientSession()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1/projects/{self.project}/location/global/prometheus"
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()
        assert not self.problems, self.problems
