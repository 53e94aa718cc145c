"""Kong request records written by hand in the shape of Kong's PDK serializer (kong.md §4.2).

file-log writes ``cjson.encode(kong.log.serialize()) .. "\\n"``: one object per line with
``request``, ``upstream_uri``, ``upstream_status`` (a string, "502, 200" after a retry),
``response``, ``latencies``, ``tries[]`` (per-attempt ``ip``/``port``, ``state``/``code`` on failed
tries), ``route``, ``service``, ``client_ip``, ``started_at`` (ms epoch), ``workspace``, ``source``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

A_IP = "10.10.0.1"
B_IP = "10.20.0.2"
SERVICE = "orders-api"
SERVICE_ID = "5f0a6b6e-6c5e-4b1f-9b9e-2f1f7a0d9a11"


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def kong_record(
    *,
    at: datetime | None = None,
    status: int = 200,
    upstream_status: str | None = None,
    tries: list[tuple[str, int | None]] | None = None,
    service: str | None = SERVICE,
    port: int = 8443,
) -> dict[str, Any]:
    """One serializer object. ``tries`` is [(ip, failed code or None)], default one try to B."""
    started = at or datetime.now(UTC)
    tries = [(B_IP, None)] if tries is None else tries
    if upstream_status is None:
        upstream_status = ", ".join(str(code or status) for _, code in tries)
    record: dict[str, Any] = {
        "request": {
            "id": uuid.uuid4().hex,
            "uri": "/orders/v1/items",
            "url": "http://kong.example.test:8000/orders/v1/items",
            "querystring": {},
            "method": "GET",
            "headers": {"host": "kong.example.test", "user-agent": "curl/8.5.0", "authorization": "REDACTED"},
            "size": 112,
        },
        "upstream_uri": "/v1/items",
        "upstream_status": upstream_status,
        "response": {"status": status, "headers": {"content-type": "application/json"}, "size": 431},
        "latencies": {"kong": 1, "proxy": 12 if tries else -1, "request": 14, "receive": 0},
        "tries": [
            {
                "ip": ip,
                "port": port,
                "balancer_start": ms(started),
                "balancer_start_ns": ms(started) * 1_000_000,
                "balancer_latency": 0,
                "balancer_latency_ns": 2100,
                **({"state": "failed", "code": code} if code is not None else {}),
            }
            for ip, code in tries
        ],
        "route": {"id": "0c6fd1d0-7d0b-4a1f-8e0c-2e6c1d2c5e33", "name": "orders", "paths": ["/orders"]},
        "client_ip": "127.0.0.1",
        "started_at": ms(started),
        "workspace": "0a1b2c3d-0000-4000-8000-000000000000",
        "workspace_name": "default",
        "source": "upstream" if tries else "kong",
    }
    if service is not None:
        record["service"] = {
            "id": SERVICE_ID if service == SERVICE else str(uuid.uuid5(uuid.NAMESPACE_DNS, service)),
            "name": service,
            "host": "a-project.example.test",
            "port": port,
            "protocol": "https",
            "path": "/v1",
            "retries": 5,
            "connect_timeout": 60000,
            "read_timeout": 60000,
            "write_timeout": 60000,
        }
    return record


def kong_line(**kwargs: Any) -> str:
    """``kong_record`` as file-log writes it: compact JSON and a newline."""
    return json.dumps(kong_record(**kwargs), separators=(",", ":")) + "\n"


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)
