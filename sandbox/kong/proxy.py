"""The emulated proxy data plane: route, resolve through Kong's DNS cache, forward, write file-log JSON.

Per request (kong.md §1.4, §4.2, §5):

1. match a Route by ``hosts``, ``paths`` (prefix, longest wins) and ``methods``;
2. pick the backend: the Service host, or a target of the Upstream it names (weighted round robin;
   a target's addresses are the worker's balancer list, renewed at their expiry by a timer:
   ``sandbox/kong/balancer.py``);
   resolve it through this worker's DNS cache (legacy: per worker; new client: shared). Like nginx,
   each client connection is served by one worker for its whole life (connections are spread over
   the workers in turn), so a test can keep one worker busy and another idle;
3. send ``Host`` = ``$upstream_host`` (Service host / Upstream ``host_header`` / target name,
   ``:port`` unless default; the client's Host with ``preserve_host``) and the same name as SNI,
   verifying the certificate only when the Service has ``tls_verify=true``;
4. a failed lookup answers 503 "name resolution failed" for NXDOMAIN and empty answers and 500
   for any other DNS failure (kong/runloop/balancer/init.lua:383-391);
5. retry connection failures up to the Service's ``retries`` (``tries[]``, ``upstream_status``
   like ``"502, 200"``); answer 502/503/504 with Kong's error bodies when nothing worked;
6. append one JSON line in the shape of the file-log plugin.

Not emulated: plugins, TLS on the proxy listener, regex path priorities beyond "longest prefix",
``path_handling`` v1, streaming bodies (they are buffered), health checks, keepalive tuning.
"""

from __future__ import annotations

import itertools
import json
import re
import ssl
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import httpx
from aiohttp import web
from multidict import CIMultiDict

from sandbox.kong.dns import Resolution, is_ip
from sandbox.kong.schema import split_target

if TYPE_CHECKING:
    from sandbox.kong.emulator import KongEmulator

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
DEFAULT_PORTS = {"http": 80, "grpc": 80, "ws": 80, "https": 443, "grpcs": 443, "wss": 443}
PINNED_CONNECTIONS = 10000
"""Connections remembered for worker pinning (the oldest are forgotten first)."""
MATCHES_CACHED = 4096
"""Router answers kept per configuration (method, host, path); the cache starts over when full."""
ERROR_BODIES = {
    404: "no Route matched with those values",
    426: "Please use HTTPS protocol",
    500: "An unexpected error occurred",
    502: "An invalid response was received from the upstream server",
    503: "The upstream server is currently unavailable",
    504: "The upstream server is timing out",
}


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def host_matches(pattern: str, host: str) -> int:
    """2 for an exact match, 1 for a wildcard match (``*.example.test``/``example.*``), 0 otherwise."""
    pattern, host = pattern.lower(), host.lower()
    if pattern == host:
        return 2
    if pattern.startswith("*.") and host.endswith(pattern[1:]):
        return 1
    if pattern.endswith(".*") and host.startswith(pattern[:-1]):
        return 1
    return 0


def path_match(pattern: str, path: str) -> int:
    """Length of the matched prefix (regex paths ``~...``: length of the match), or -1."""
    if pattern.startswith("~"):
        found = re.match(pattern[1:], path)
        return len(found.group(0)) if found else -1
    return len(pattern) if path.startswith(pattern) else -1


def upstream_path(service_path: str | None, route_prefix: str, path: str, strip: bool) -> str:
    """Kong's ``path_handling`` v0 join of the Service path and the (stripped) request path."""
    remainder = path[len(route_prefix) :] if strip and route_prefix else path
    if not service_path:
        return remainder if remainder.startswith("/") else "/" + remainder
    if not remainder:
        return service_path
    if service_path.endswith("/") and remainder.startswith("/"):
        return service_path + remainder[1:]
    if not service_path.endswith("/") and not remainder.startswith("/"):
        return service_path + "/" + remainder
    return service_path + remainder


@dataclass
class Pick:
    """One balancer decision."""

    hostname: str
    """The name resolved, and the Host/SNI base (target name or Service host)."""
    port: int
    host_header_base: str
    target: bool = False
    """An Upstream target: its addresses come from the worker's balancer (renewed by its timer)."""


class ProxyDataPlane:
    """The proxy listener's request handling."""

    def __init__(self, emulator: KongEmulator, log_path: Path | None, upstream_ca: Path | None) -> None:
        self.emulator = emulator
        self.log_path = log_path
        self.upstream_ca = upstream_ca
        self._log: TextIO | None = None
        self._turn = itertools.count()
        self._pinned: dict[tuple[Any, ...], int] = {}
        self._clients: dict[tuple[str | None, bool], httpx.AsyncClient] = {}
        self._wrr: dict[tuple[int, str], dict[str, int]] = {}
        self._matches: dict[tuple[str, str, str], tuple[dict[str, Any], dict[str, Any], str] | None] = {}
        self._router_version: tuple[int, int, int, int] = (-1, -1, -1, -1)
        self.workspace_id = str(uuid.uuid4())

    def app(self) -> web.Application:
        """The proxy application."""
        application = web.Application(client_max_size=64 * 1024 * 1024)
        application.router.add_route("*", "/{tail:.*}", self.handle)
        return application

    async def close(self) -> None:
        """Close upstream connection pools and the log file."""
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- pools keyed like Kong's keepalive pools: by SNI and verification, never shared across names --

    def _client(self, sni: str | None, verify: bool) -> httpx.AsyncClient:
        key = (sni, verify)
        client = self._clients.get(key)
        if client is None:
            tls: ssl.SSLContext | bool = False
            if verify:
                tls = ssl.create_default_context(cafile=str(self.upstream_ca) if self.upstream_ca else None)
            client = httpx.AsyncClient(verify=tls, follow_redirects=False, trust_env=False)
            self._clients[key] = client
        return client

    # -- routing --

    def match(self, method: str, host: str, path: str) -> tuple[dict[str, Any], dict[str, Any], str] | None:
        """The best (route, service, matched path prefix) for a request, or None.

        Like Kong's router, built once per configuration: answers are cached until a Service or
        Route changes (scanning 200 routes per request was an eighth of the emulator's CPU).
        """
        store = self.emulator.store
        version = (id(store), store.routing_version, len(store.routes), len(store.services))
        if version != self._router_version:
            self._matches.clear()
            self._router_version = version
        key = (method, host, path)
        if key in self._matches:
            return self._matches[key]
        if len(self._matches) >= MATCHES_CACHED:
            self._matches.clear()
        found = self._match(method, host, path)
        self._matches[key] = found
        return found

    def _match(self, method: str, host: str, path: str) -> tuple[dict[str, Any], dict[str, Any], str] | None:
        store = self.emulator.store
        best: tuple[tuple[int, int, int, float], dict[str, Any], dict[str, Any], str] | None = None
        for route in store.routes.values():
            service = store.services.get((route.get("service") or {}).get("id", ""))
            if service is None or not service.get("enabled", True):
                continue
            protocols = route.get("protocols") or ["http", "https"]
            if not {"http", "https"} & set(protocols):
                continue
            if route.get("methods") and method not in route["methods"]:
                continue
            host_score = 0
            if route.get("hosts"):
                host_score = max(host_matches(p, host) for p in route["hosts"])
                if host_score == 0:
                    continue
            prefix, length = "", 0
            if route.get("paths"):
                scored = [(path_match(p, path), p) for p in route["paths"]]
                length, prefix = max(scored)
                if length < 0:
                    continue
                if prefix.startswith("~"):
                    found = re.match(prefix[1:], path)
                    prefix = found.group(0) if found else ""
            score = (host_score, length, int(bool(route.get("methods"))), -float(route.get("created_at", 0)))
            if best is None or score > best[0]:
                best = (score, route, service, prefix)
        return None if best is None else (best[1], best[2], best[3])

    def _pick(self, worker: int, service: dict[str, Any]) -> Pick | None:
        """Service host, or the next target of its Upstream (smooth weighted round robin per worker)."""
        store = self.emulator.store
        upstream = store.upstream_by_name(str(service["host"]))
        if upstream is None:
            return Pick(str(service["host"]), int(service["port"]), str(service["host"]))
        targets = [t for t in store.targets_of(upstream["id"]) if int(t.get("weight", 100)) > 0]
        if not targets:
            return None
        weights = self._wrr.setdefault((worker, upstream["id"]), {})
        total = 0
        chosen = targets[0]
        for target in targets:
            weight = int(target["weight"])
            weights[target["target"]] = weights.get(target["target"], 0) + weight
            total += weight
            if weights[target["target"]] > weights[chosen["target"]]:
                chosen = target
        weights[chosen["target"]] -= total
        host, port = split_target(str(chosen["target"]))
        return Pick(host, port or 8000, upstream.get("host_header") or host, target=True)

    # -- the request --

    def pinned(self) -> dict[str, int]:
        """Client connection (``host:port`` as the client sees its own end) -> the worker serving it."""
        return {f"{key[0]}:{key[1]}": worker for key, worker in self._pinned.items()}

    def worker_for(self, request: web.Request) -> int:
        """The worker serving this request: the one its connection was handed to (nginx ``accept``)."""
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if not peer:
            return next(self._turn) % self.emulator.workers
        key = tuple(peer)
        worker = self._pinned.get(key)
        if worker is None:
            worker = next(self._turn) % self.emulator.workers
            if len(self._pinned) >= PINNED_CONNECTIONS:
                self._pinned.pop(next(iter(self._pinned)))
            self._pinned[key] = worker
        return worker

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Proxy one request and log it."""
        started = time.time()
        worker = self.worker_for(request)
        client_host = request.headers.get("Host", "")
        host_only = client_host.rsplit(":", 1)[0] if not client_host.startswith("[") else client_host
        body = await request.read()
        matched = self.match(request.method, host_only, request.path)
        entry: dict[str, Any] = {"tries": [], "upstream_status": "", "source": "kong"}
        if matched is None:
            return self._finish(request, started, entry, 404, None, None, body, None)
        route, service, prefix = matched
        if "http" not in (route.get("protocols") or ["http"]):
            return self._finish(request, started, entry, 426, route, service, body, None)
        uri = upstream_path(service.get("path"), prefix, request.path, bool(route.get("strip_path", True)))
        if request.query_string:
            uri += "?" + request.query_string
        entry["upstream_uri"] = uri
        resolver = self.emulator.dns.for_worker(worker)
        scheme = str(service.get("protocol") or "http")
        statuses: list[str] = []
        response: httpx.Response | None = None
        payload = b""
        failure_status = 502
        proxy_started = 0.0
        for attempt in range(int(service.get("retries", 5)) + 1):
            balancer_start = time.time()
            pick = self._pick(worker, service)
            if pick is None:
                failure_status = 503
                break
            if is_ip(pick.hostname) or resolver is None:
                resolution = Resolution((pick.hostname.strip("[]"),))
            elif pick.target:
                resolution = await self.emulator.targets.resolve(worker, pick.hostname)
            else:
                resolution = await resolver.resolve(pick.hostname)
            if not resolution.addresses:
                if attempt == 0:
                    entry["dns_error"] = resolution.error
                    status = resolution.status or 500
                    message = "name resolution failed" if status == 503 else None
                    return self._finish(request, started, entry, status, route, service, body, message)
                break
            ip = resolution.addresses[0]
            port = resolution.port or pick.port
            latency = time.time() - balancer_start
            attempt_record: dict[str, Any] = {
                "ip": ip,
                "port": port,
                "balancer_start": _ms(balancer_start),
                "balancer_start_ns": int(balancer_start * 1e9),
                "balancer_latency": _ms(latency),
                "balancer_latency_ns": int(latency * 1e9),
            }
            entry["tries"].append(attempt_record)
            if route.get("preserve_host"):
                host_header = client_host
            else:
                default = DEFAULT_PORTS.get(scheme) == port
                host_header = pick.host_header_base if default else f"{pick.host_header_base}:{port}"
            sni = host_header.rsplit(":", 1)[0] if scheme in ("https", "grpcs", "wss") else None
            headers = self._upstream_headers(request, host_header)
            target_host = f"[{ip}]" if ":" in ip else ip
            url = f"{'https' if scheme in ('https', 'grpcs', 'wss') else 'http'}://{target_host}:{port}{uri}"
            client = self._client(sni, service.get("tls_verify") is True)
            timeout = httpx.Timeout(
                connect=int(service.get("connect_timeout", 60000)) / 1000,
                read=int(service.get("read_timeout", 60000)) / 1000,
                write=int(service.get("write_timeout", 60000)) / 1000,
                pool=int(service.get("connect_timeout", 60000)) / 1000,
            )
            upstream_request = client.build_request(
                request.method,
                url,
                headers=headers,
                content=body,
                timeout=timeout,
                extensions={"sni_hostname": sni} if sni and not is_ip(sni) else {},
            )
            proxy_started = time.time()
            try:
                response = await client.send(upstream_request, stream=True)
                try:
                    payload = b"".join([chunk async for chunk in response.aiter_raw()])
                finally:
                    await response.aclose()
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                code = 504 if isinstance(exc, httpx.ConnectTimeout) else 502
                attempt_record.update(state="failed", code=code)
                statuses.append(str(code))
                failure_status = code
                response = None
                continue
            except httpx.TimeoutException:
                attempt_record.update(state="failed", code=504)
                statuses.append("504")
                failure_status = 504
                response = None
                break
            statuses.append(str(response.status_code))
            break
        entry["upstream_status"] = ", ".join(statuses)
        if response is None:
            return self._finish(request, started, entry, failure_status, route, service, body, None)
        entry["source"] = "upstream"
        entry["proxy_latency_ms"] = _ms(time.time() - proxy_started)
        out = web.Response(status=response.status_code, body=payload)
        for name, value in response.headers.multi_items():
            if name.lower() not in HOP_BY_HOP:
                out.headers.add(name, value)
        out.headers["Via"] = "1.1 kong/3.9.1"
        out.headers["X-Kong-Upstream-Latency"] = str(entry["proxy_latency_ms"])
        out.headers["X-Kong-Proxy-Latency"] = str(max(0, _ms(proxy_started - started)))
        return self._finish(request, started, entry, response.status_code, route, service, body, None, out)

    def _upstream_headers(self, request: web.Request, host_header: str) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in request.headers.items():
            if name.lower() not in HOP_BY_HOP:
                headers.add(name, value)
        remote = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For")
        headers["Host"] = host_header
        headers["X-Forwarded-For"] = f"{forwarded}, {remote}" if forwarded else remote
        headers["X-Forwarded-Proto"] = request.scheme
        headers["X-Forwarded-Host"] = request.headers.get("Host", "").rsplit(":", 1)[0]
        headers["X-Forwarded-Port"] = str(self.emulator.proxy_port or "")
        headers["X-Forwarded-Path"] = request.path
        headers["X-Real-IP"] = remote
        return headers

    def _finish(
        self,
        request: web.Request,
        started: float,
        entry: dict[str, Any],
        status: int,
        route: dict[str, Any] | None,
        service: dict[str, Any] | None,
        body: bytes,
        message: str | None,
        response: web.Response | None = None,
    ) -> web.Response:
        """Build Kong's own error answer when needed, then write the file-log line."""
        if response is None:
            response = web.json_response(
                {"message": message or ERROR_BODIES.get(status, "An unexpected error occurred")}, status=status
            )
            response.headers["Server"] = "kong/3.9.1"
            response.headers["X-Kong-Response-Latency"] = str(_ms(time.time() - started))
        request_id = uuid.uuid4().hex
        response.headers["X-Kong-Request-Id"] = request_id
        total = time.time() - started
        proxy_ms = entry.pop("proxy_latency_ms", -1)
        entry.pop("dns_error", None)
        size = len(response.body) if isinstance(response.body, bytes) else 0
        line: dict[str, Any] = {
            "request": {
                "id": request_id,
                "uri": request.path_qs,
                "url": f"{request.scheme}://{request.host}{request.path_qs}",
                "querystring": {k: v for k, v in request.query.items()},
                "method": request.method,
                "headers": self._log_headers(request.headers.items()),
                "size": len(body),
            },
            "upstream_uri": entry.pop("upstream_uri", ""),
            "upstream_status": entry["upstream_status"],
            "response": {
                "status": status,
                "size": size,
                "headers": self._log_headers(response.headers.items()),
            },
            "latencies": {
                "kong": max(0, _ms(total) - max(proxy_ms, 0)),
                "proxy": proxy_ms,
                "request": _ms(total),
                "receive": 0,
            },
            "tries": entry["tries"],
            "client_ip": request.remote,
            "started_at": _ms(started),
            "source": entry["source"],
            "workspace": self.workspace_id,
            "workspace_name": "default",
        }
        if service is not None:
            line["service"] = service
        if route is not None:
            line["route"] = route
        self.emulator.metrics.observe(line)
        self._write(line)
        return response

    @staticmethod
    def _log_headers(items: Any) -> dict[str, Any]:
        headers: dict[str, Any] = {}
        for name, value in items:
            key = name.lower()
            value = "REDACTED" if key == "authorization" else value
            if key in headers:
                existing = headers[key]
                headers[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
            else:
                headers[key] = value
        return headers

    def _write(self, line: dict[str, Any]) -> None:
        if self.log_path is None:
            return
        if self._log is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "a", encoding="utf-8")  # kept open, like file-log's fd
        self._log.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._log.flush()
