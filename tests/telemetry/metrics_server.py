"""A loopback ``/metrics`` endpoint serving Kong's Prometheus exposition text, set by the test."""

from __future__ import annotations

import asyncio
import ssl

from aiohttp import web

from tests.telemetry.kong_lines import SERVICE

HEADER = """# HELP kong_http_requests_total HTTP status codes per consumer/service/route in Kong
# TYPE kong_http_requests_total counter
"""


def exposition(counts: dict[tuple[str, str], float], *, service: str = SERVICE, extra: str = "") -> str:
    """Kong's request counters: (code, source) -> value, plus unrelated lines Kong also serves."""
    lines = [HEADER.rstrip("\n")]
    for (code, origin), value in counts.items():
        lines.append(
            f'kong_http_requests_total{{service="{service}",route="orders",code="{code}",'
            f'source="{origin}",workspace="default",consumer=""}} {value}'
        )
    lines += [
        'kong_http_requests_total{service="billing-api",route="billing",code="500",source="service",'
        'workspace="default",consumer=""} 999',
        "# HELP kong_nginx_connections_total Number of connections by subsystem",
        "# TYPE kong_nginx_connections_total gauge",
        'kong_nginx_connections_total{node_id="8c4f",subsystem="http",state="active"} 3',
        f'kong_bandwidth_bytes{{service="{SERVICE}",route="orders",direction="egress",workspace="default",'
        'consumer=""} 123456',
    ]
    return "\n".join(lines) + "\n" + extra


class MetricsServer:
    """A loopback /metrics endpoint whose body and status the test sets."""

    def __init__(self) -> None:
        self.body = exposition({})
        self.status = 200
        self.scrapes = 0
        self.first_scrape = asyncio.Event()
        """Set once the endpoint was scraped (a cursor was opened)."""
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        self.first_scrape.set()
        return web.Response(text=self.body, status=self.status, content_type="text/plain")

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        """Listen on 127.0.0.1 (HTTPS with ``ssl_context``)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self._runner.addresses[0][1]}/metrics"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
