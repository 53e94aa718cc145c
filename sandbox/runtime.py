r"""A tiny backend runtime (project A or B) for tests and the demo: HTTPS, virtual hosts, failure knobs.

It stands in for the real backends behind Kong. What matters for a cutover is that it behaves like
a real platform's domain mapping: it answers only for the Host names it serves (``--hosts``; any
other Host gets 404, as Cloud Run or an ingress would), presents a certificate chosen by the test
(``--cert``/``--key``, see sandbox/pki.py) and can be told to fail, recover or flap.

Start it as a process::

    python -m sandbox.runtime --name B --listen 127.0.0.3:8443 --cert B.pem --key B.key \\
        --hosts a-project.example.test,origin-api.example.test,b-project.example.test

It prints one JSON line when it listens (port 0 picks a free port)::

    {"event": "ready", "name": "B", "url": "https://127.0.0.3:8443", "listen": "127.0.0.3:8443", ...}

Requests:
    ``GET <prefix>/health`` -> 200 ``{"status": "ok", "served_by": NAME}``;
    ``<any method> <prefix>/...`` -> 200 ``{"served_by": NAME, "host": <Host>, "path": ..., "sni": ...}``;
    a Host not in ``--hosts`` (port ignored) -> 404; other paths -> 404.

Control (never subject to the Host check; JSON bodies):
    ``POST /_runtime/fail {"status": 503, "count": N|null, "delay": seconds, "hosts": [...]|null}`` answer
    ``status`` (N times or until recovered), optionally after a delay, to every Host or only to those listed
    (one API of many failing on a shared B); ``POST /_runtime/recover``;
    ``POST /_runtime/flap {"pattern": [503, 200, ...], "repeat": false}`` answer the statuses in turn;
    ``GET /_runtime/stats`` request counts per Host, SNI, status; ``POST /_runtime/reset-stats``.

In tests, ``async with running_runtime(...) as rt`` runs the same server in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

DEFAULT_PREFIX = "/orders/v1"


@dataclass
class RuntimeState:
    """What the runtime serves and how it is told to misbehave; shared by the HTTP and Python APIs."""

    name: str
    hosts: frozenset[str]
    prefix: str = DEFAULT_PREFIX
    fail_status: int | None = None
    fail_remaining: int | None = None
    fail_hosts: frozenset[str] | None = None
    """Only requests for these Hosts fail (None: every Host)."""
    delay: float = 0.0
    flap: list[int] = field(default_factory=list)
    flap_repeat: bool = False
    flap_index: int = 0
    total: int = 0
    by_host: Counter[str] = field(default_factory=Counter)
    by_sni: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)

    def fail(
        self, status: int = 503, count: int | None = None, delay: float = 0.0, hosts: Sequence[str] | None = None
    ) -> None:
        """Answer ``status`` for the next ``count`` requests (None: until :meth:`recover`), for ``hosts`` or all."""
        self.fail_status, self.fail_remaining, self.delay = status, count, delay
        self.fail_hosts = frozenset(h.lower() for h in hosts) if hosts is not None else None
        self.flap = []

    def recover(self) -> None:
        """Serve normally again."""
        self.fail_status, self.fail_remaining, self.delay = None, None, 0.0
        self.fail_hosts = None
        self.flap, self.flap_index = [], 0

    def set_flap(self, pattern: Sequence[int], repeat: bool = False) -> None:
        """Answer the statuses of ``pattern`` in turn (200 means serve normally), then normally."""
        self.recover()
        self.flap, self.flap_repeat = list(pattern), repeat

    def next_injected_status(self, host: str = "") -> int | None:
        """The status a failure knob imposes on this request (for ``host``), or None to serve normally."""
        if self.flap:
            if self.flap_index >= len(self.flap):
                if not self.flap_repeat:
                    return None
                self.flap_index = 0
            status = self.flap[self.flap_index]
            self.flap_index += 1
            return None if status == 200 else status
        if self.fail_status is None or (self.fail_hosts is not None and host.lower() not in self.fail_hosts):
            return None
        if self.fail_remaining is not None:
            if self.fail_remaining <= 0:
                self.recover()
                return None
            self.fail_remaining -= 1
        return self.fail_status

    def stats(self) -> dict[str, Any]:
        """Request counts, for tests and the demo (which Host and SNI reached this runtime)."""
        return {
            "name": self.name,
            "total": self.total,
            "by_host": dict(self.by_host),
            "by_sni": dict(self.by_sni),
            "by_status": {str(k): v for k, v in self.by_status.items()},
        }

    def reset_stats(self) -> None:
        """Forget the counts."""
        self.total = 0
        self.by_host.clear()
        self.by_sni.clear()
        self.by_status.clear()


def _sni_of(request: web.Request) -> str | None:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    return getattr(ssl_object, "cutover_sni", None)


def build_app(state: RuntimeState) -> web.Application:
    """The aiohttp application: control endpoints, then the vhost check, then the served paths."""

    async def control(request: web.Request) -> web.Response:
        action = request.match_info["action"]
        body: dict[str, Any] = {}
        if request.can_read_body:
            try:
                body = await request.json()
            except json.JSONDecodeError:
                return web.json_response({"message": "body must be JSON"}, status=400)
        if request.method == "GET" and action == "stats":
            return web.json_response(state.stats())
        if request.method != "POST":
            return web.json_response({"message": "use POST"}, status=405)
        if action == "fail":
            hosts = body.get("hosts")
            state.fail(
                int(body.get("status", 503)),
                body.get("count"),
                float(body.get("delay", 0.0)),
                [str(h) for h in hosts] if isinstance(hosts, list) else None,
            )
        elif action == "recover":
            state.recover()
        elif action == "flap":
            state.set_flap([int(s) for s in body.get("pattern", [])], bool(body.get("repeat", False)))
        elif action == "reset-stats":
            state.reset_stats()
        else:
            return web.json_response({"message": f"unknown control {action!r}"}, status=404)
        return web.json_response({"ok": True, **state.stats()})

    async def serve(request: web.Request) -> web.Response:
        host_header = request.headers.get("Host", "")
        host = host_header.rsplit(":", 1)[0] if not host_header.startswith("[") else host_header
        sni = _sni_of(request)
        state.total += 1
        state.by_host[host_header] += 1
        state.by_sni[sni or "-"] += 1
        if host.lower() not in state.hosts:
            response = web.json_response(
                {"message": f"{state.name} does not serve host {host!r}", "served_by": state.name, "host": host_header},
                status=404,
            )
        elif not (request.path == state.prefix or request.path.startswith(state.prefix + "/")):
            response = web.json_response({"message": "not found", "served_by": state.name}, status=404)
        else:
            injected = state.next_injected_status(host)
            if state.delay and (state.fail_hosts is None or host.lower() in state.fail_hosts):
                await asyncio.sleep(state.delay)
            if injected is not None:
                response = web.json_response(
                    {"message": f"{state.name} injected failure", "served_by": state.name}, status=injected
                )
            elif request.path == state.prefix + "/health":
                response = web.json_response({"status": "ok", "served_by": state.name})
            else:
                response = web.json_response(
                    {"served_by": state.name, "host": host_header, "path": request.path_qs, "sni": sni}
                )
        state.by_status[response.status] += 1
        response.headers["X-Served-By"] = state.name
        return response

    app = web.Application()
    app.router.add_route("*", "/_runtime/{action}", control)
    app.router.add_route("*", "/{tail:.*}", serve)
    return app


def server_ssl_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """A server TLS context that also records the SNI each client sent (for stats and responses)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))

    def remember_sni(ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        ssl_object.cutover_sni = server_name  # type: ignore[attr-defined]

    context.sni_callback = remember_sni
    return context


@dataclass
class RunningRuntime:
    """A runtime serving in this process."""

    state: RuntimeState
    host: str
    port: int
    scheme: str

    @property
    def url(self) -> str:
        """Base URL, e.g. ``https://127.0.0.3:8443``."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def ready_line(self) -> dict[str, Any]:
        """The JSON object printed when the process listens."""
        return {
            "event": "ready",
            "name": self.state.name,
            "url": self.url,
            "listen": f"{self.host}:{self.port}",
            "hosts": sorted(self.state.hosts),
            "prefix": self.state.prefix,
        }


@contextlib.asynccontextmanager
async def running_runtime(
    name: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    hosts: Sequence[str],
    cert: str | Path | None = None,
    key: str | Path | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> AsyncIterator[RunningRuntime]:
    """Serve a runtime until the block exits; plain HTTP when no certificate is given."""
    state = RuntimeState(name=name, hosts=frozenset(h.lower() for h in hosts), prefix=prefix.rstrip("/"))
    context = server_ssl_context(cert, key) if cert and key else None
    runner = web.AppRunner(build_app(state), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=context)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        yield RunningRuntime(state=state, host=host, port=bound_port, scheme="https" if context else "http")
    finally:
        await runner.cleanup()


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected host:port")
    return host, int(port)


async def _serve_forever(args: argparse.Namespace) -> None:
    host, port = args.listen
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    async with running_runtime(
        args.name, host=host, port=port, hosts=hosts, cert=args.cert, key=args.key, prefix=args.prefix
    ) as runtime:
        print(json.dumps(runtime.ready_line()), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def main() -> None:
    """Parse the command line and serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="runtime name shown in responses (A, B)")
    parser.add_argument("--listen", required=True, type=_listen, help="host:port (port 0: any free port)")
    parser.add_argument("--cert", help="certificate chain PEM (omit with --key for plain HTTP)")
    parser.add_argument("--key", help="private key PEM")
    parser.add_argument("--hosts", required=True, help="comma-separated Host names this runtime serves")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="path prefix served (default /orders/v1)")
    args = parser.parse_args()
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    asyncio.run(_serve_forever(args))


if __name__ == "__main__":
    main()
