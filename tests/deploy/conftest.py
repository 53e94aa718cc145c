"""Fixtures of the deploy tests: the parsed compose file, freshly made secrets, free loopback ports."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.deploy.compose import DEPLOY, Compose


@pytest.fixture(scope="session")
def compose() -> Compose:
    """docker-compose.yml, parsed."""
    return Compose.load()


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    """What `sh deploy/make-secrets.sh` writes, made here for this test (never the repository's)."""
    directory = tmp_path / "secrets"
    subprocess.run(["sh", str(DEPLOY / "make-secrets.sh"), str(directory)], check=True, capture_output=True)
    return directory


def free_tcp_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
