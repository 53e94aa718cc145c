"""How each process of the topology is started: argv, environment, log, readiness check."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

from sandbox.topology.config import (
    DECOMMISSION_AUTH_ENV,
    LOOPBACK,
    REPO_ROOT,
    RUNTIME_ADDRESSES,
    RUNTIME_HOSTS,
    SANDBOX_POLICY,
    SEARCH_ATTRIBUTES,
    SERVICES_YAML,
)
from sandbox.topology.layout import Layout
from sandbox.topology.ports import tcp_open
from sandbox.topology.process import Component, printed_ready_line, venv_binary, worker_ready

if TYPE_CHECKING:
    from sandbox.topology.core import Topology


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the sandbox's Python processes: the caller's, without its Cutover/Temporal settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUTOVER_", "TEMPORAL_"))}
    # No Temporal profile file either: an operator's default profile (a Cloud namespace, an API key)
    # must not redirect the sandbox's worker and commands away from its own dev server.
    env["TEMPORAL_CONFIG_FILE"] = os.devnull
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def define_components(topo: Topology) -> dict[str, Component]:
    """Every component of ``topo`` but BIND, in start order (not started)."""
    components: dict[str, Component] = {}
    p, logs, py = topo.ports, topo.workdir / "logs", sys.executable
    assert topo.pki is not None
    components["temporal"] = Component(
        name="temporal",
        argv=[
            venv_binary("temporal"),
            "server",
            "start-dev",
            "--ip",
            LOOPBACK,
            "--port",
            str(p.temporal),
            "--ui-port",
            str(p.temporal_ui),
            "--db-filename",
            str(topo.temporal_db),
            *(arg for name in SEARCH_ATTRIBUTES for arg in ("--search-attribute", f"{name}=Keyword")),
            "--log-level",
            "warn",
        ],
        log=logs / "temporal.log",
        cwd=topo.workdir,
        env=python_env(),
        ready=lambda component: temporal_ready(topo, component),
        address=f"{topo.temporal_address}, UI {topo.ui_url}",
        description=f"Temporal dev server, state in {topo.temporal_db.name}",
        stop_timeout=10.0,
    )
    extra = len(topo.runtime_hosts["A"]) - len(RUNTIME_HOSTS["A"])
    more_hosts = f" and {extra} more" if extra else ""
    for runtime, address in RUNTIME_ADDRESSES.items():
        cert = topo.pki.certs[runtime]
        components[f"runtime-{runtime}"] = Component(
            name=f"runtime-{runtime}",
            argv=[
                py,
                "-m",
                "sandbox.runtime",
                "--name",
                runtime,
                "--listen",
                f"{address}:{p.runtime}",
                "--cert",
                str(cert.cert),
                "--key",
                str(cert.key),
                "--hosts",
                ",".join(topo.runtime_hosts[runtime]),
            ],
            log=logs / f"runtime-{runtime}.log",
            cwd=topo.workdir,
            env=python_env(),
            ready=printed_ready_line,
            address=topo.runtime_url(runtime),
            description=f"project {runtime}, serves {', '.join(RUNTIME_HOSTS[runtime])}{more_hosts}",
        )
    components["receiver"] = Component(
        name="receiver",
        argv=[
            py,
            "-m",
            "sandbox.decommission_receiver",
            "--listen",
            f"{LOOPBACK}:{p.receiver}",
            "--pid-file",
            str(topo.runtime_pid_file("A")),
            "--runtime-address",
            f"{RUNTIME_ADDRESSES['A']}:{p.runtime}",
            "--signing-secret-env",
            DECOMMISSION_AUTH_ENV,
            "--state",
            str(topo.workdir / "run" / "receiver-state.json"),
        ],
        log=logs / "receiver.log",
        cwd=topo.workdir,
        env=python_env({DECOMMISSION_AUTH_ENV: topo.decommission_auth}),
        ready=printed_ready_line,
        address=topo.receiver_url,
        description="decommission webhook (stops runtime A) and notification sink",
    )
    components["kong"] = Component(
        name="kong",
        argv=[
            py,
            "-m",
            "sandbox.kong",
            "--admin",
            f"{LOOPBACK}:{p.kong_admin}",
            "--proxy",
            f"{LOOPBACK}:{p.kong_proxy}",
            # Kong resolves through the secondary, as a data plane's resolver would reach any
            # authoritative server: it sees a change only once the secondary has it, and an outage
            # of the primary (where cutover sends its UPDATEs) doesn't take the data plane down.
            "--dns",
            f"{LOOPBACK}:{p.bind_secondary}",
            "--config",
            str(kong_config(topo)),
            "--log",
            str(topo.file_log),
            "--upstream-ca",
            str(topo.pki.ca),
            "--workers",
            str(topo.kong_workers),
            "--dns-stale-ttl",
            str(topo.timings.kong_dns_stale_ttl),
            "--dns-not-found-ttl",
            str(topo.timings.kong_dns_not_found_ttl),
        ],
        log=logs / "kong.log",
        cwd=topo.workdir,
        env=python_env(),
        ready=printed_ready_line,
        address=f"admin {topo.kong_admin_url}, proxy {topo.kong_proxy_url}",
        description=(
            f"Kong emulator (DNS via the secondary), dns_stale_ttl {topo.timings.kong_dns_stale_ttl} s, "
            f"dns_not_found_ttl {topo.timings.kong_dns_not_found_ttl} s, file-log {topo.file_log}"
        ),
    )
    components["worker"] = Component(
        name="worker",
        argv=[
            py,
            str(REPO_ROOT / "worker.py"),
            "--policy",
            str(SANDBOX_POLICY),
            "--log-level",
            "info",
            "--cloud-logging",
            "off",
        ],
        log=logs / "worker.log",
        cwd=topo.workdir,
        env=python_env(topo.worker_env()),
        ready=worker_ready,
        address=f"task queue cutover on {topo.temporal_address}",
        description="cutover worker (holds the TSIG secret and the webhook credentials)",
    )
    return components


def kong_config(layout: Layout) -> Path:
    """sandbox/services.yaml with the runtimes' actual port."""
    config = yaml.safe_load(SERVICES_YAML.read_text())
    for service in config.get("services", []):
        service["port"] = layout.ports.runtime
    path = layout.workdir / "kong" / "services.yaml"
    path.write_text(
        f"# rendered from {SERVICES_YAML} with the runtimes' port {layout.ports.runtime}\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    return path


async def temporal_ready(layout: Layout, component: Component) -> bool:
    """Temporal answers, has the search attributes registered, and its web UI listens."""
    if not await tcp_open(LOOPBACK, layout.ports.temporal):
        return False
    try:
        client = await asyncio.wait_for(layout.temporal_client(), 3)
        response = await asyncio.wait_for(
            client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace="default")), 3
        )
    except Exception:  # not up yet: connection refused, namespace not registered, RPC errors
        return False
    registered = all(name in response.custom_attributes for name in SEARCH_ATTRIBUTES)
    return registered and await tcp_open(LOOPBACK, layout.ports.temporal_ui)
