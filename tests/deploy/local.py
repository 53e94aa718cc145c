"""Run a docker-compose service's own command on this machine, without Docker.

The translation is documented and deliberately narrow, so what runs is the compose file's command,
environment, env files, scripts and healthcheck, not a copy of them:

* paths: every mount of the service becomes a directory of the test (named volume ->
  ``<root>/volumes/<name>``, bind mount -> the repository file, tmpfs -> ``<root>/tmpfs/<service>/...``);
* executables: ``python`` -> this interpreter, ``temporal`` -> the venv's temporal CLI;
* addresses and ports: the replacements a test gives (``0.0.0.0`` -> ``127.0.0.1``, container
  ports -> free loopback ports, service names -> ``127.0.0.1``), applied as plain text in that order;
* shell scripts read ``VAR=${VAR:-/container/path}`` defaults: those paths are translated and passed in
  the environment, so a default that lies on no mount of the service fails the run.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.topology import venv_binary
from tests.deploy.compose import REPO, Compose

EXECUTABLES = {"python": sys.executable, "temporal": venv_binary("temporal")}
_SCRIPT_DEFAULT = re.compile(r"^\w+=\$\{(\w+):-(/[^}]*)\}$", re.MULTILINE)


def _literal(value: str) -> Callable[[re.Match[str]], str]:
    """A re.sub replacement that inserts ``value`` as is (no backslash or group processing)."""
    return lambda _match: value


def read_env_file(path: Path) -> dict[str, str]:
    """``VAR=value`` lines, as compose reads an env_file (no quoting, value to the end of the line)."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


@dataclass
class LocalService:
    """One compose service, translated to run here."""

    compose: Compose
    name: str
    root: Path
    secrets_dir: Path
    replacements: Mapping[str, str] = field(default_factory=dict)

    def _path_map(self) -> list[tuple[str, str]]:
        pairs = []
        for mount in self.compose.mounts(self.name):
            if mount.kind == "bind":
                local = mount.host_path
            else:
                local = self.root / "volumes" / mount.source
                local.mkdir(parents=True, exist_ok=True)
            pairs.append((mount.target.rstrip("/"), str(local)))
        tmpfs = self.compose.service(self.name).get("tmpfs", [])
        for target in [tmpfs] if isinstance(tmpfs, str) else tmpfs:
            local = self.root / "tmpfs" / self.name / target.strip("/")
            local.mkdir(parents=True, exist_ok=True)
            pairs.append((target.rstrip("/"), str(local)))
        return sorted(pairs, key=lambda pair: -len(pair[0]))

    def path(self, container_path: str) -> Path:
        """Where a container path of this service lives here."""
        for target, local in self._path_map():
            if container_path == target or container_path.startswith(target + "/"):
                return Path(local + container_path[len(target) :])
        raise LookupError(f"{container_path} is on no mount of {self.name}")

    def translate(self, text: str) -> str:
        """Container paths to local ones, then the address and port replacements."""
        for target, local in self._path_map():
            text = re.sub(re.escape(target) + r"(?![\w.-])", _literal(local), text)
        for old, new in self.replacements.items():
            text = text.replace(old, new)
        return text

    def argv(self, command: list[str]) -> list[str]:
        """A command of this service, translated."""
        return [self.translate(EXECUTABLES.get(part, part)) for part in command]

    def env(self, script: Path | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """PATH and friends, the service's env files and environment (translated), script defaults."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(("CUTOVER_", "TEMPORAL_"))}
        for env_file in self.compose.env_files(self.name):
            relative = Path(env_file).relative_to("deploy/secrets")
            env.update(read_env_file(self.secrets_dir / relative))
        if script is not None:
            for variable, default in _SCRIPT_DEFAULT.findall(script.read_text()):
                env[variable] = str(self.path(default))
        env.update({key: self.translate(value) for key, value in self.compose.environment(self.name).items()})
        env["PYTHON"] = sys.executable
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra or {})
        return env

    def run(self, command: list[str], timeout: float = 30, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run a translated command to completion in the repository (the image's WORKDIR)."""
        return subprocess.run(  # type: ignore[call-overload]
            self.argv(command), cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs
        )

    def healthcheck(self, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run the service's healthcheck once."""
        return self.run(self.compose.healthcheck(self.name), timeout=15, env=env or self.env())

    def log(self) -> Path:
        """Where :meth:`running` sends the service's output."""
        return self.root / "logs" / f"{self.name}.log"

    def wait_healthy(self, process: subprocess.Popen[bytes] | None = None, timeout: float = 20) -> None:
        """Run the healthcheck until it passes; fail with its output (and the service's) if it never does."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.healthcheck()
            if result.returncode == 0:
                return
            if process is not None and process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {process.returncode}:\n{self.log().read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}'s healthcheck never passed:\n{result.stdout}{result.stderr}\n{self.log().read_text()}"
                )
            time.sleep(0.1)

    @contextlib.contextmanager
    def running(
        self, command: list[str] | None = None, env: Mapping[str, str] | None = None
    ) -> Iterator[subprocess.Popen[bytes]]:
        """Run the service's command (or ``command``) in its own process group until the block exits."""
        self.log().parent.mkdir(parents=True, exist_ok=True)
        with open(self.log(), "wb") as log:
            process = subprocess.Popen(
                self.argv(command or self.compose.command(self.name)),
                cwd=REPO,
                env=env or self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            yield process
        finally:
            stop_group(process)


def stop_group(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM the process group we started, SIGKILL it if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def running(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_pid_file_group(pid_file: Path, timeout: float = 5) -> None:
    """Stop the process group whose leader's pid a file holds (a child that left our group with setsid)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    if not running(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if running(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
