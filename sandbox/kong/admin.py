"""The emulated Admin API (and Status API), plus the emulator-control endpoints under ``/_emulator/``.

Kong-shaped parts: ``GET /`` (node info with ``configuration``), ``/status``, ``/status/ready``,
``/status/dns``, and CRUD on services, routes, upstreams and targets with Kong's paths, defaults,
pagination (``size``/``offset``, ``{data, next, offset}``) and error bodies. DB-less nodes and data
planes answer writes with 405 ``{"code": 12, "name": "operation unsupported", ...}``.

``/_emulator/...`` is not part of Kong: it lets tests and the demo inject failures, change DNS
settings, reset and read DNS caches, and switch modes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.kong.errors import KongApiError

if TYPE_CHECKING:
    from sandbox.kong.emulator import KongEmulator

ADMIN_TOKEN_HEADER = "Kong-Admin-Token"
READ_ONLY_MODES = ("db-less", "data-plane")
WRITE_VERBS = {"POST": "create", "PATCH": "update", "PUT": "upsert", "DELETE": "delete"}

Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]


def kong_json(body: Any, status: int = 200) -> web.Response:
    """A JSON answer with the headers Kong's Admin API sends."""
    response = web.json_response(body, status=status, dumps=lambda o: json.dumps(o, separators=(",", ":")))
    response.headers["Server"] = "kong/3.9.1"
    response.headers["X-Kong-Admin-Latency"] = "0"
    return response


def error_response(exc: KongApiError) -> web.Response:
    """Kong's error answer."""
    return kong_json(exc.body, exc.status)


@dataclass
class FailureRule:
    """Answer the next ``count`` matching Admin API requests with ``status`` (after ``delay`` s)."""

    count: int
    status: int | None = 500
    delay: float = 0.0
    method: str | None = None
    path: str | None = None

    def matches(self, method: str, path: str) -> bool:
        """Method and path prefix filters."""
        return (self.method is None or self.method.upper() == method) and (
            self.path is None or path.startswith(self.path)
        )


def _encode_offset(index: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([index]).encode()).decode().rstrip("=")


def _decode_offset(text: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return int(value[0])
    except (ValueError, TypeError, IndexError) as exc:
        raise KongApiError(
            400, {"code": 7, "name": "invalid offset", "message": f"'{text}' is not a valid offset: bad base64"}
        ) from exc


def paginate(request: web.Request, items: list[dict[str, Any]], path: str) -> dict[str, Any]:
    """Kong's list answer: ``{"data": [...], "next": null}`` or with ``offset`` and ``next`` for more."""
    try:
        size = int(request.query.get("size", "100"))
    except ValueError as exc:
        raise KongApiError(400, {"code": 9, "name": "invalid size", "message": "size must be a number"}) from exc
    if not 1 <= size <= 1000:
        raise KongApiError(
            400, {"code": 9, "name": "invalid size", "message": "size must be an integer between 1 and 1000"}
        )
    start = _decode_offset(request.query["offset"]) if "offset" in request.query else 0
    page = items[start : start + size]
    body: dict[str, Any] = {"data": page, "next": None}
    if start + size < len(items):
        offset = _encode_offset(start + size)
        body["offset"] = offset
        body["next"] = f"{path}?offset={offset}" + (f"&size={size}" if "size" in request.query else "")
    return body


class AdminApi:
    """Routing, auth, failure injection and read-only enforcement around the entity store."""

    def __init__(self, emulator: KongEmulator) -> None:
        self.emulator = emulator
        self.failures: list[FailureRule] = []
        self.requests = 0
        self.routes: list[tuple[re.Pattern[str], str, dict[str, Handler]]] = []
        self._register()

    # -- routing table --

    def _add(self, pattern: str, entity: str, handlers: dict[str, Handler]) -> None:
        self.routes.append((re.compile("^" + pattern + "$"), entity, handlers))

    def _register(self) -> None:
        seg = "(?P<{}>[^/]+)"
        s, r, u, t = seg.format("s"), seg.format("r"), seg.format("u"), seg.format("t")
        self._add("/", "", {"GET": self.info})
        self._add("/status", "", {"GET": self.status})
        self._add("/status/ready", "", {"GET": self.ready})
        self._add("/status/dns", "", {"GET": self.dns_status})
        self._add("/services", "services", {"GET": self.list_services, "POST": self.create_service})
        self._add(
            f"/services/{s}",
            "services",
            {"GET": self.get_service, "PATCH": self.patch_service, "PUT": self.put_service, "DELETE": self.del_service},
        )
        self._add(f"/services/{s}/routes", "routes", {"GET": self.service_routes, "POST": self.create_service_route})
        self._add(f"/services/{s}/routes/{r}", "routes", {"GET": self.get_service_route})
        self._add("/routes", "routes", {"GET": self.list_routes, "POST": self.create_route})
        self._add(
            f"/routes/{r}",
            "routes",
            {"GET": self.get_route, "PATCH": self.patch_route, "PUT": self.put_route, "DELETE": self.del_route},
        )
        self._add("/upstreams", "upstreams", {"GET": self.list_upstreams, "POST": self.create_upstream})
        self._add(
            f"/upstreams/{u}",
            "upstreams",
            {
                "GET": self.get_upstream,
                "PATCH": self.patch_upstream,
                "PUT": self.put_upstream,
                "DELETE": self.del_upstream,
            },
        )
        self._add(f"/upstreams/{u}/targets", "targets", {"GET": self.list_targets, "POST": self.create_target})
        self._add(f"/upstreams/{u}/targets/all", "targets", {"GET": self.list_targets})
        self._add(
            f"/upstreams/{u}/targets/{t}",
            "targets",
            {"GET": self.get_target, "PATCH": self.patch_target, "PUT": self.put_target, "DELETE": self.del_target},
        )

    # -- the aiohttp entry points --

    def app(self) -> web.Application:
        """The Admin API application (Kong paths + ``/_emulator``)."""
        application = web.Application()
        application.router.add_route("*", "/_emulator/{action:.*}", self.control)
        application.router.add_get("/metrics", self.metrics)
        application.router.add_route("*", "/{tail:.*}", self.dispatch)
        return application

    def status_app(self) -> web.Application:
        """The Status API (``status_listen``): read-only node status and upstream target reads (kong.md §2.8)."""
        application = web.Application()
        application.router.add_get("/metrics", self.metrics)
        application.router.add_route("*", "/{tail:.*}", self.dispatch_status)
        return application

    async def metrics(self, request: web.Request) -> web.Response:
        """``GET /metrics`` (Admin and Status API): the Prometheus plugin's exposition (sandbox/kong/metrics.py)."""
        body = self.emulator.metrics.exposition()
        return web.Response(text=body, content_type="text/plain", charset="utf-8")

    async def dispatch_status(self, request: web.Request) -> web.StreamResponse:
        """Status API: only GETs of status and upstream targets exist there."""
        path = request.path.rstrip("/") or "/"
        allowed = path.startswith("/status") or re.match(r"^/upstreams/[^/]+/targets", path)
        if request.method != "GET" or not allowed or path == "/":
            return kong_json({"message": "Not found"}, 404)
        return await self._route(request, path)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Auth, injected failures, workspace prefix, then the route."""
        self.requests += 1
        token = self.emulator.admin_token
        if token is not None:
            sent = request.headers.get(self.emulator.admin_token_header)
            if not sent:
                return kong_json(
                    {"message": "Invalid credentials. Token or User credentials required", "status": 401}, 401
                )
            if sent != token:
                return kong_json(
                    {"message": "You do not have permissions to access this resource (invalid token)", "status": 403},
                    403,
                )
        path = request.path
        for workspace in self.emulator.workspaces:
            prefix = f"/{workspace}"
            if path == prefix or path.startswith(prefix + "/"):
                path = path[len(prefix) :] or "/"
                break
        path = path.rstrip("/") or "/"
        for rule in self.failures:
            if rule.count > 0 and rule.matches(request.method, path):
                rule.count -= 1
                if rule.delay:
                    await asyncio.sleep(rule.delay)
                if rule.status is not None:
                    return kong_json({"message": "An unexpected error occurred"}, rule.status)
                break
        self.failures = [rule for rule in self.failures if rule.count > 0]
        return await self._route(request, path)

    async def _route(self, request: web.Request, path: str) -> web.StreamResponse:
        for pattern, entity, handlers in self.routes:
            match = pattern.match(path)
            if not match:
                continue
            handler = handlers.get(request.method)
            if handler is None:
                return kong_json({"message": "Method not allowed"}, 405)
            if request.method in WRITE_VERBS and entity and self.emulator.mode in READ_ONLY_MODES:
                return kong_json(
                    {
                        "code": 12,
                        "name": "operation unsupported",
                        "message": f"cannot {WRITE_VERBS[request.method]} '{entity}' entities when not using a "
                        "database",
                    },
                    405,
                )
            try:
                return await handler(request, match.groupdict())
            except KongApiError as exc:
                return error_response(exc)
        return kong_json({"message": "Not found"}, 404)

    @staticmethod
    async def body(request: web.Request) -> dict[str, Any]:
        """The request's JSON (or form) body; Kong answers 400 for one it cannot parse."""
        if not request.can_read_body:
            return {}
        if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            return {key: str(value) for key, value in form.items()}
        try:
            data = await request.json()
        except json.JSONDecodeError as exc:
            raise KongApiError(400, {"message": "Cannot parse JSON body"}) from exc
        if not isinstance(data, dict):
            raise KongApiError(400, {"message": "Cannot parse JSON body"})
        return data

    # -- node --

    async def info(self, request: web.Request, _: dict[str, str]) -> web.Response:
        """``GET /``."""
        return kong_json(self.emulator.node_info())

    async def status(self, request: web.Request, _: dict[str, str]) -> web.Response:
        """``GET /status``."""
        return kong_json(self.emulator.node_status())

    async def ready(self, request: web.Request, _: dict[str, str]) -> web.Response:
        """``GET /status/ready``."""
        return kong_json({"message": "ready"})

    async def dns_status(self, request: web.Request, _: dict[str, str]) -> web.Response:
        """``GET /status/dns``: 501 with the legacy client (kong.md §1.3)."""
        if not self.emulator.dns_settings.new_dns_client:
            return kong_json({"message": "not implemented with the legacy DNS client"}, 501)
        state = self.emulator.dns.state().get("shared", {}).get("entries", {})
        stats = {
            key.replace(":", "|"): {"runs": 1, "query": 1, "query_succ": int(entry["kind"] == "records")}
            for key, entry in state.items()
        }
        return kong_json({"worker": {"id": 0, "count": self.emulator.workers}, "stats": stats})

    # -- services --

    async def list_services(self, request: web.Request, _: dict[str, str]) -> web.Response:
        """``GET /services``."""
        return kong_json(paginate(request, list(self.emulator.store.services.values()), "/services"))

    async def create_service(self, request: web.Request, _: dict[str, str]) -> web.Response:
        """``POST /services`` -> 201."""
        return kong_json(self.emulator.store.create_service(await self.body(request)), 201)

    async def get_service(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``GET /services/{id or name}``."""
        return kong_json(self.emulator.store.service(m["s"]))

    async def patch_service(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``PATCH /services/{id or name}``."""
        return kong_json(self.emulator.store.update_service(m["s"], await self.body(request)))

    async def put_service(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``PUT /services/{id or name}``."""
        return kong_json(self.emulator.store.upsert_service(m["s"], await self.body(request)))

    async def del_service(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``DELETE /services/{id or name}`` -> 204."""
        self.emulator.store.delete_service(m["s"])
        return web.Response(status=204, headers={"Server": "kong/3.9.1"})

    async def service_routes(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``GET /services/{s}/routes``."""
        service = self.emulator.store.service(m["s"])
        items = self.emulator.store.routes_of(service["id"])
        return kong_json(paginate(request, items, f"/services/{m['s']}/routes"))

    async def create_service_route(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``POST /services/{s}/routes`` -> 201."""
        service = self.emulator.store.service(m["s"])
        data = await self.body(request)
        data["service"] = {"id": service["id"]}
        return kong_json(self.emulator.store.create_route(data), 201)

    async def get_service_route(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``GET /services/{s}/routes/{r}``."""
        service = self.emulator.store.service(m["s"])
        route = self.emulator.store.route(m["r"])
        if (route.get("service") or {}).get("id") != service["id"]:
            raise KongApiError(404, {"message": "Not found"})
        return kong_json(route)

    # -- routes --

    async def list_routes(self, request: web.Request, _: dict[str, str]) -> web.Response:
        """``GET /routes``."""
        return kong_json(paginate(request, list(self.emulator.store.routes.values()), "/routes"))

    async def create_route(self, request: web.Request, _: dict[str, str]) -> web.Response:
        """``POST /routes`` -> 201."""
        return kong_json(self.emulator.store.create_route(await self.body(request)), 201)

    async def get_route(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``GET /routes/{id or name}``."""
        return kong_json(self.emulator.store.route(m["r"]))

    async def patch_route(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``PATCH /routes/{id or name}``."""
        return kong_json(self.emulator.store.update_route(m["r"], await self.body(request)))

    async def put_route(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``PUT /routes/{id or name}``."""
        return kong_json(self.emulator.store.upsert_route(m["r"], await self.body(request)))

    async def del_route(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``DELETE /routes/{id or name}`` -> 204."""
        self.emulator.store.delete_route(m["r"])
        return web.Response(status=204, headers={"Server": "kong/3.9.1"})

    # -- upstreams --

    async def list_upstreams(self, request: web.Request, _: dict[str, str]) -> web.Response:
        """``GET /upstreams``."""
        return kong_json(paginate(request, list(self.emulator.store.upstreams.values()), "/upstreams"))

    async def create_upstream(self, request: web.Request, _: dict[str, str]) -> web.Response:
        """``POST /upstreams`` -> 201."""
        return kong_json(self.emulator.store.create_upstream(await self.body(request)), 201)

    async def get_upstream(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``GET /upstreams/{id or name}``."""
        return kong_json(self.emulator.store.upstream(m["u"]))

    async def patch_upstream(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``PATCH /upstreams/{id or name}``."""
        return kong_json(self.emulator.store.update_upstream(m["u"], await self.body(request)))

    async def put_upstream(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``PUT /upstreams/{id or name}``."""
        return kong_json(self.emulator.store.upsert_upstream(m["u"], await self.body(request)))

    async def del_upstream(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``DELETE /upstreams/{id or name}`` -> 204."""
        self.emulator.store.delete_upstream(m["u"])
        return web.Response(status=204, headers={"Server": "kong/3.9.1"})

    # -- targets --

    async def list_targets(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``GET /upstreams/{u}/targets`` (and ``/targets/all``)."""
        upstream = self.emulator.store.upstream(m["u"])
        items = self.emulator.store.targets_of(upstream["id"])
        return kong_json(paginate(request, items, f"/upstreams/{m['u']}/targets"))

    async def create_target(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``POST /upstreams/{u}/targets`` -> 201 (409 for a duplicate)."""
        return kong_json(self.emulator.store.create_target(m["u"], await self.body(request)), 201)

    async def get_target(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``GET /upstreams/{u}/targets/{id or host:port}``."""
        upstream = self.emulator.store.upstream(m["u"])
        return kong_json(self.emulator.store.target(upstream["id"], m["t"]))

    async def patch_target(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``PATCH /upstreams/{u}/targets/{t}``."""
        data = await self.body(request)
        return kong_json(self.emulator.store.update_target(m["u"], m["t"], data, replace=False))

    async def put_target(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``PUT /upstreams/{u}/targets/{t}``."""
        data = await self.body(request)
        return kong_json(self.emulator.store.update_target(m["u"], m["t"], data, replace=True))

    async def del_target(self, request: web.Request, m: dict[str, str]) -> web.Response:
        """``DELETE /upstreams/{u}/targets/{t}`` -> 204."""
        self.emulator.store.delete_target(m["u"], m["t"])
        return web.Response(status=204, headers={"Server": "kong/3.9.1"})

    # -- emulator control (not Kong) --

    async def control(self, request: web.Request) -> web.Response:
        """``/_emulator/...``: knobs for tests and the demo; never part of Kong's API."""
        action = request.match_info["action"].rstrip("/")
        emulator = self.emulator
        try:
            body = await self.body(request) if request.method == "POST" else {}
        except KongApiError as exc:
            return error_response(exc)
        if request.method == "GET" and action == "state":
            return web.json_response(emulator.state())
        if request.method == "GET" and action == "dns-cache":
            return web.json_response(emulator.dns.state())
        if request.method == "GET" and action == "fail":
            return web.json_response({"pending": [rule.__dict__ for rule in self.failures]})
        if request.method != "POST":
            return web.json_response({"message": f"unknown emulator control {request.method} {action!r}"}, status=404)
        if action == "fail":
            try:
                rule = FailureRule(
                    count=int(body.get("count", 1)),
                    status=None if body.get("status", 500) is None else int(body.get("status", 500)),
                    delay=float(body.get("delay", 0.0)),
                    method=body.get("method"),
                    path=body.get("path"),
                )
            except (TypeError, ValueError) as exc:
                return web.json_response({"message": f"bad failure rule: {exc}"}, status=400)
            self.failures.append(rule)
            return web.json_response({"pending": [r.__dict__ for r in self.failures]})
        if action == "fail/clear":
            self.failures.clear()
            return web.json_response({"pending": []})
        if action == "dns-settings":
            try:
                emulator.update_dns_settings(body)
            except ValueError as exc:
                return web.json_response({"message": str(exc)}, status=400)
            return web.json_response(emulator.dns_configuration())
        if action == "dns-cache/reset":
            emulator.dns.reset()
            emulator.targets.reset()
            return web.json_response(emulator.dns.state())
        if action == "mode":
            try:
                emulator.set_mode(str(body.get("mode")))
            except ValueError as exc:
                return web.json_response({"message": str(exc)}, status=400)
            return web.json_response(emulator.state())
        return web.json_response({"message": f"unknown emulator control {action!r}"}, status=404)
