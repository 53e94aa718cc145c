"""Short timings, and one lane (record, Kong Service, route) per cutover of the end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from models.plan import CutoverPlan
from sandbox.topology import RUNTIME_ADDRESSES, ZONE, Timings, Topology

E2E_TIMINGS = Timings(
    record_ttl=3,
    kong_dns_stale_ttl=1,
    kong_dns_not_found_ttl=3,  # Kong's negative cache, which the two-step rollback of a flip waits out
    cutover_ttl=1,
    final_ttl=7,
    wait_margin="1s",
    readiness_interval="500ms",
    readiness_successes=2,
    monitor_window="4s",
    poll_interval="500ms",
    min_requests=20,
    quiet_period="2s",
    drain_timeout="30s",
    approval_timeout="10m",
)
"""Short enough for a whole cutover in about 15 s, every phase still real: the zone's records hold
TTL 3, lowered to 1 and raised to 7 at the end; Kong keeps stale answers 1 s; a 4 s monitoring window
sees ~80 requests at the load's rate, so ``min_requests`` 20 is comfortably met."""
LOAD_RATE = 20.0
"""Requests per second through Kong (the issue asks for at least 20)."""
ZONE_ORIGIN = ZONE + "."
B_TARGET = "b-project.example.test."
A_ADDRESS = RUNTIME_ADDRESSES["A"]
E2E_BY = "e2e"


@dataclass(frozen=True)
class Lane:
    """What one cutover owns on a topology: its record, its Kong Service and the route the load uses.

    Several lanes share one topology without touching each other: each has its own record in the zone
    (``api-NN``), its own Kong Service (``svc-NN``, whose host is that record) and its own route, so the
    file-log lines the monitor reads are told apart by service.
    """

    name: str
    """Plan name; the workflow id is ``cutover-<name>``."""
    record: str
    """The record the plan changes (absolute)."""
    service: str
    path: str
    """Route path prefix at Kong's proxy."""
    service_host: str
    """The Kong Service host before the cutover."""

    @property
    def workflow_id(self) -> str:
        """``cutover-<name>``."""
        return f"cutover-{self.name}"

    def load_url(self, topo: Topology) -> str:
        """Where the load sends its requests (through Kong's proxy)."""
        return f"{topo.kong_proxy_url}{self.path}/orders"

    def plan(
        self,
        topo: Topology,
        strategy: Literal["cname", "alias"] = "cname",
        *,
        replace: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> CutoverPlan:
        """The sandbox plan for this lane; ``overrides`` merge per section, ``replace`` swaps whole sections.

        ``Topology.render_plan`` merges mappings, so a section of another kind (``decommission:
        {kind: none}`` instead of the template's webhook) has to be replaced after rendering.
        """
        dns = {"record": self.record, **overrides.pop("dns", {})}
        kong = {"service": self.service, **overrides.pop("kong", {})}
        data = topo.render_plan(strategy, name=self.name, dns=dns, kong=kong, **overrides)
        data.update(replace or {})
        return CutoverPlan.model_validate(data)


def plan_keeping_a(topo: Topology, lane: Lane, **overrides: Any) -> CutoverPlan:
    """A cname plan that leaves A in place and opens no decommission gate.

    Runs on the shared topology use it: A serves every lane, so only the fresh topologies of the clean
    cutover tests let a decommission really stop it.
    """
    approvals = {"decommission": False, **overrides.pop("approvals", {})}
    return lane.plan(topo, approvals=approvals, replace={"decommission": {"kind": "none"}}, **overrides)


def sandbox_lane(strategy: Literal["cname", "alias"]) -> Lane:
    """The sandbox's own cutover (sandbox/plans/*.yaml): Service orders-api in front of a-project."""
    record = "a-project.example.test." if strategy == "cname" else "origin-api.example.test."
    return Lane(
        name="orders-api",
        record=record,
        service="orders-api",
        path="/orders/v1",
        service_host="a-project.example.test",
    )


def lane_records(count: int, ttl: int) -> str:
    """Zone lines for ``count`` lanes: ``api-NN <ttl> A <A's address>``."""
    return "".join(f"api-{index:02d} {ttl} A {A_ADDRESS}\n" for index in range(1, count + 1))


def lane_hosts(count: int) -> list[str]:
    """The names Kong sends for the lanes' records: both runtimes must serve them."""
    return [f"api-{index:02d}.{ZONE}" for index in range(1, count + 1)]


def numbered_lane(index: int) -> Lane:
    """Lane ``index`` of a shared topology started with :func:`lane_records`/:func:`lane_hosts`."""
    host = f"api-{index:02d}.{ZONE}"
    return Lane(
        name=f"e2e-{index:02d}",
        record=host + ".",
        service=f"svc-{index:02d}",
        path=f"/svc-{index:02d}",
        service_host=host,
    )


async def create_kong_service(topo: Topology, lane: Lane) -> None:
    """Create the lane's Service and route through Kong's Admin API (as an operator would)."""
    service = {
        "name": lane.service,
        "protocol": "https",
        "host": lane.service_host,
        "port": topo.ports.runtime,
        "path": "/orders/v1",
        "tls_verify": True,
    }
    route = {"name": f"{lane.service}-route", "paths": [lane.path], "strip_path": True}
    async with aiohttp.ClientSession() as session:
        for url, body in (
            (f"{topo.kong_admin_url}/services", service),
            (f"{topo.kong_admin_url}/services/{lane.service}/routes", route),
        ):
            async with session.post(url, json=body) as response:
                assert response.status == 201, f"POST {url}: {response.status} {await response.text()}"


async def kong_service_host(topo: Topology, service: str) -> str:
    """The Service's host as Kong's Admin API shows it now."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{topo.kong_admin_url}/services/{service}") as response:
            response.raise_for_status()
            return str((await response.json())["host"])
