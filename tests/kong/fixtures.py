"""Helpers shared by the Kong and readiness tests: sandbox config, ports on 127.0.0.2/.3, sections."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from models.plan import KongSection
from sandbox.free_ports import port_free_on
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


@contextlib.asynccontextmanager
async def runtimes_ab(
    pki: Pki,
    *,
    a_hosts: Sequence[str] = A_HOSTS,
    b_hosts: Sequence[str] = B_HOSTS,
    a_cert: str = "A",
    b_cert: str = "B",
) -> AsyncIterator[tuple[RunningRuntime, RunningRuntime]]:
    """Runtime A on 127.0.0.2 and B on 127.0.0.3, same port, HTTPS with the named sandbox certificates."""
    for attempt in range(5):
        port = port_free_on([A_IP, B_IP])
        try:
            async with (
                running_runtime(
                    "A", host=A_IP, port=port, hosts=a_hosts, cert=pki.certs[a_cert].cert, key=pki.certs[a_cert].key
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


@contextlib.asynccontextmanager
async def header_echoing_server(header: str) -> AsyncIterator[str]:
    """A broken proxy on 127.0.0.1: it answers with a malformed header line that repeats request header ``header``.

    httpx/h11 then fail with a protocol error whose text quotes that line, i.e. the header's value: the
    way a secret (an Admin API token, a bearer token, a webhook key) reaches an exception message.
    Yields the server's base URL.
    """

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            value = b""
            for line in head.split(b"\r\n")[1:]:
                name, _, rest = line.partition(b":")
                if name.strip().lower() == header.lower().encode():
                    value = rest.strip()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nEchoed " + value + b"\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()
