"""Many APIs on one sandbox, for campaigns (the campaign demo and bench.campaign).

Each API ``api-NN`` has its own record (``api-NN.example.test``, an A record for runtime A), its own
Kong Service in front of it (host ``api-NN.example.test``) and its own route (``/api-NN``), so a
campaign's cutovers never touch each other and the load and the monitor tell them apart. A serves
every API, so the plans leave A in place (``decommission: none``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from sandbox.load import require_loopback
from sandbox.topology import RUNTIME_ADDRESSES, ZONE, Topology


def api_names(count: int, prefix: str = "api") -> list[str]:
    """``api-01`` ... (three digits past 99): record, Kong Service, route and plan name alike."""
    width = 3 if count > 99 else 2
    return [f"{prefix}-{index:0{width}d}" for index in range(1, count + 1)]


def zone_lines(names: Sequence[str], ttl: int) -> str:
    """The zone lines for the APIs' records (Topology ``extra_records``)."""
    return "".join(f"{name} {ttl} A {RUNTIME_ADDRESSES['A']}\n" for name in names)


def hosts(names: Sequence[str]) -> list[str]:
    """The Host names Kong sends for the APIs: both runtimes serve them (Topology ``extra_hosts``)."""
    return [f"{name}.{ZONE}" for name in names]


def route_url(topo: Topology, name: str) -> str:
    """Where clients of API ``name`` send their requests: its route at Kong's proxy."""
    return f"{topo.kong_proxy_url}/{name}/orders"


class AdminApiError(RuntimeError):
    """Kong's Admin API refused to create a Service or a route."""


async def create_services(
    topo: Topology,
    names: Sequence[str],
    *,
    service_fields: Mapping[str, Any] | None = None,
    route_fields: Mapping[str, Any] | None = None,
) -> None:
    """One Kong Service and one route per API, through Kong's Admin API as an operator would.

    ``service_fields`` and ``route_fields`` add to (or replace) the fields of each Service and route,
    e.g. a benchmark's shorter timeouts.
    """
    admin = require_loopback(topo.kong_admin_url)
    semaphore = asyncio.Semaphore(20)
    async with aiohttp.ClientSession() as session:

        async def create(name: str) -> None:
            service = {
                "name": name,
                "protocol": "https",
                "host": f"{name}.{ZONE}",
                "port": topo.ports.runtime,
                "path": "/orders/v1",
                "tls_verify": True,
                **(service_fields or {}),
            }
            route = {"name": name, "paths": [f"/{name}"], "strip_path": True, **(route_fields or {})}
            async with semaphore:
                for url, body in ((f"{admin}/services", service), (f"{admin}/services/{name}/routes", route)):
                    async with session.post(url, json=body) as response:
                        if response.status != 201:
                            text = await response.text()
                            raise AdminApiError(f"Kong Admin API: POST {url} -> {response.status}: {text}")

        await asyncio.gather(*(create(name) for name in names))


def plan_data(topo: Topology, name: str, **overrides: Any) -> dict[str, Any]:
    """The sandbox cname plan for one API, leaving A in place (it serves every API)."""
    data = topo.render_plan("cname", name=name, dns={"record": f"{name}.{ZONE}."}, kong={"service": name}, **overrides)
    data["decommission"] = {"kind": "none"}
    return data


def write_campaign(
    topo: Topology, directory: Path, names: Sequence[str], settings: dict[str, Any], **plan_overrides: Any
) -> Path:
    """A campaign file and one plan file per API next to it; ``settings`` are the campaign's own keys."""
    (directory / "plans").mkdir(parents=True, exist_ok=True)
    files = []
    for name in names:
        path = directory / "plans" / f"{name}.yaml"
        path.write_text(yaml.safe_dump(plan_data(topo, name, **plan_overrides), sort_keys=False))
        files.append(f"plans/{path.name}")
    campaign = {**settings, "plans": files}
    path = directory / "campaign.yaml"
    path.write_text(yaml.safe_dump(campaign, sort_keys=False))
    return path
