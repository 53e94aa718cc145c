"""The emulated Prometheus plugin: what Kong 3.x's exporter counts per proxied request, served at ``/metrics``.

Modelled on ``kong/plugins/prometheus/exporter.lua`` (kong.md §4.3), as if the plugin were enabled
globally with ``status_code_metrics`` and ``latency_metrics`` on:

* ``kong_http_requests_total{service, route, code, source, workspace, consumer}``: ``code`` is the
  status sent to the client, ``source`` is ``service`` when the answer came from the upstream and
  ``kong`` otherwise; a request that matched no Service is not counted (the exporter returns early);
* ``kong_kong_latency_ms``, ``kong_upstream_latency_ms``, ``kong_request_latency_ms`` histograms
  ``{service, route, workspace}`` with the exporter's buckets;
* ``kong_nginx_requests_total`` and ``kong_node_info``.

Counters live in the process: a restarted emulator starts from zero, as a restarted Kong does.
Not emulated: ``kong_upstream_target_health`` (the emulator runs no health checks), bandwidth and
memory metrics.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

KONG_LATENCY_BUCKETS = (1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000)
UPSTREAM_LATENCY_BUCKETS = (25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Labels, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*labels, *extra]
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Histogram:
    def __init__(self, buckets: tuple[int, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1
        self.total += 1
        self.sum += value


class KongMetrics:
    """Counters and histograms of one emulated node; :meth:`observe` takes a file-log line."""

    def __init__(self, node_id: str, version: str) -> None:
        self.node_id = node_id
        self.version = version
        self._lock = threading.Lock()
        self._requests: dict[Labels, int] = {}
        self._latency: dict[str, dict[Labels, _Histogram]] = {"kong": {}, "upstream": {}, "request": {}}
        self._nginx_requests = 0

    def observe(self, line: Mapping[str, Any]) -> None:
        """Count one proxied request the way the exporter's ``log()`` does."""
        with self._lock:
            self._nginx_requests += 1
            service = line.get("service")
            if not isinstance(service, Mapping):
                return  # "do not record any stats if the service is not present"
            route = line.get("route") if isinstance(line.get("route"), Mapping) else {}
            assert isinstance(route, Mapping)
            service_name = str(service.get("name") or service.get("host") or "")
            route_name = str(route.get("name") or route.get("id") or "")
            workspace = str(line.get("workspace_name") or "default")
            status = str(line.get("response", {}).get("status", ""))
            origin = "service" if line.get("source") == "upstream" else "kong"
            key: Labels = (
                ("service", service_name),
                ("route", route_name),
                ("code", status),
                ("source", origin),
                ("workspace", workspace),
                ("consumer", ""),
            )
            self._requests[key] = self._requests.get(key, 0) + 1
            latency_key: Labels = (("service", service_name), ("route", route_name), ("workspace", workspace))
            latencies = line.get("latencies", {})
            for kind, field in (("request", "request"), ("upstream", "proxy"), ("kong", "kong")):
                value = latencies.get(field)
                if isinstance(value, int | float) and value >= 0:
                    buckets = KONG_LATENCY_BUCKETS if kind == "kong" else UPSTREAM_LATENCY_BUCKETS
                    histogram = self._latency[kind].setdefault(latency_key, _Histogram(buckets))
                    histogram.observe(float(value))

    def exposition(self) -> str:
        """The text exposition format, as ``GET /metrics`` serves it."""
        with self._lock:
            out = [
                "# HELP kong_node_info Kong Node metadata information",
                "# TYPE kong_node_info gauge",
                f'kong_node_info{{node_id="{self.node_id}",version="{self.version}"}} 1',
                "# HELP kong_nginx_requests_total Number of requests total",
                "# TYPE kong_nginx_requests_total gauge",
                f'kong_nginx_requests_total{{node_id="{self.node_id}",subsystem="http"}} {self._nginx_requests}',
                "# HELP kong_http_requests_total HTTP status codes per consumer/service/route in Kong",
                "# TYPE kong_http_requests_total counter",
            ]
            out += [f"kong_http_requests_total{_labels(key)} {count}" for key, count in sorted(self._requests.items())]
            helps = {
                "kong": "Latency added by Kong and enabled plugins for each service/route in Kong",
                "upstream": "Latency added by upstream response for each service/route in Kong",
                "request": "Total latency incurred during requests for each service/route in Kong",
            }
            for kind, histograms in self._latency.items():
                name = f"kong_{kind}_latency_ms"
                out += [f"# HELP {name} {helps[kind]}", f"# TYPE {name} histogram"]
                for key, histogram in sorted(histograms.items()):
                    width = len(str(max(histogram.buckets)))  # nginx-lua-prometheus pads bounds: le="00025.0"
                    for bound, count in zip(histogram.buckets, histogram.counts, strict=True):
                        out.append(f"{name}_bucket{_labels(key, [('le', f'{bound:0{width}d}.0')])} {count}")
                    out.append(f"{name}_bucket{_labels(key, [('le', '+Inf')])} {histogram.total}")
                    out.append(f"{name}_count{_labels(key)} {histogram.total}")
                    out.append(f"{name}_sum{_labels(key)} {_number(histogram.sum)}")
            return "\n".join(out) + "\n"
