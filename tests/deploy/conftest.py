"""Fixtures of the deploy tests: the parsed compose file, freshly made secrets, free loopback ports."""

from __future__ import annotations

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
