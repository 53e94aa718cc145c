"""Helpers shared by the Kong and readiness tests: sandbox config, ports on 127.0.0.2/.3, sections."""

from __future__ import annotations

import contextlib
import copy
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from models.plan import KongSection
from sandbox.kong import KongEmulator
from sandbox.pki import Pki
from sandbox.runtime import RunningRuntime, running_runtime

ROOT = Path(__file__).resolve().parents[2]
SERVICES_YAML = ROOT / "sandbox" / "services.yaml"
A_IP, B_IP = "127.0.0.2", "127.0.0.3"
A_HOSTS = ("a-project.example.test", "origin-api.example.test")
B_HOSTS = ("b-project.example.test", "a-project.example.test", "origin-api.example.test")


def sandbox_config(port: int | None = None, **service: Any) -> dict[str, Any]:
    """sandbox/services.yaml as data, with the runtimes' port and Service overrides."""
    data = yaml.safe_load(SERVICES_YAML.read_text())
    data = copy.deepcopy(data)
    if port is not None:
        data["services"][0]["port"] = port
    data["services"][0].update(service)
    return dict(data)


def port_free_on(addresses: Sequence[str]) -> int:
    """A TCP port that is free on every address (A and B listen on the same port, like in the sandbox)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        with contextlib.ExitStack() as stack:
            try:
                for address in addresses:
                    sock = stack.enter_context(socket.socket())
                    sock.bind((address, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no common free port")


@contextlib.asynccontextmanager
async def runtimes_ab(
    pki: Pki, *, a_hosts: Sequence[str] = A_HOSTS, b_hosts: Sequence[str] = B_HOSTS, b_cert: str = "B"
) -> AsyncIterator[tuple[RunningRuntime, RunningRuntime]]:
    """Runtime A on 127.0.0.2 and B on 127.0.0.3, same port, HTTPS with the sandbox certificates."""
    for attempt in range(5):
        port = port_free_on([A_IP, B_IP])
        try:
            async with (
                running_runtime(
                    "A", host=A_IP, port=port, hosts=a_hosts, cert=pki.certs["A"].cert, key=pki.certs["A"].key
                ) as a,
                running_runtime(
                    "B", host=B_IP, port=port, hosts=b_hosts, cert=pki.certs[b_cert].cert, key=pki.certs[b_cert].key
                ) as b,
            ):
                yield a, b
                return
        except OSError:
            if attempt == 4:
                raise


def section(emulator: KongEmulator, **overrides: Any) -> KongSection:
    """The plan's kong section for an emulator."""
    data: dict[str, Any] = {"admin_url": emulator.admin_url, "service": "orders-api", "timeout": "2s"}
    data.update(overrides)
    return KongSection.model_validate(data)
