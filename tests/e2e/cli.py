"""The command line (``starter.py``, ``temporal``) run against a topology, as a user would."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from dataclasses import dataclass
from typing import Any

from sandbox.topology import REPO_ROOT, Topology, venv_binary


@dataclass(frozen=True)
class CliResult:
    """Exit code and output of one command."""

    code: int
    output: str


async def run_cli(topo: Topology, *argv: str, timeout: float = 30) -> CliResult:
    """Run a command as an operator would, against this topology (``topo.cli_env()``: no secrets)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=REPO_ROOT,
        env=topo.cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return CliResult(process.returncode, output.decode(errors="replace"))


async def temporal_cli(topo: Topology, *arguments: str) -> CliResult:
    """``temporal ...`` (the binary installed in the venv)."""
    return await run_cli(topo, venv_binary("temporal"), *arguments)


async def starter_cli(topo: Topology, *arguments: str) -> CliResult:
    """``python starter.py ...``."""
    return await run_cli(topo, sys.executable, "starter.py", *arguments)


def json_arg(value: dict[str, Any]) -> str:
    """A payload for ``--input``."""
    return json.dumps(value)


def tcp_refused(address: str, port: int) -> bool:
    """True when nothing accepts connections at ``address:port`` (A after its decommission)."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((address, port)) != 0
