"""``python starter.py watch`` as an operator sees it, in an 80x50 pseudo-terminal rebuilt with pyte.

A real run (the real workflow on the dev server, the scripted outside world of fake_world.py) waits at
its flip gate; ``watch`` runs as a separate process on a pty, and what it draws is fed into pyte's
terminal emulator: the test reads the screen a human would see, not the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pyte
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import starter
from cli.live import approve_command
from cli.watch import EXIT_COMPLETED, EXIT_ERROR, EXIT_ROLLED_BACK, exit_code
from models.plan import CutoverPlan
from models.workflow import ApproveRequest, CutoverStatus
from settings import TemporalSettings
from tests.conftest import base_plan_data
from tests.temporal_env import local_env
from tests.workflows.fake_world import ALIAS, FakeWorld
from tests.workflows.helpers import activities_for
from workflows.registry import WORKFLOWS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLUMNS, ROWS = 80, 50


class Terminal:
    """A process on a pseudo-terminal of COLUMNS x ROWS, its output kept as a pyte screen."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.lock = threading.Lock()
        self.raw = bytearray()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the process closed its side
                return
            if not data:
                return
            with self.lock:
                self.raw += data
                self.stream.feed(data)

    def text(self) -> str:
        """The screen as it is now, one string per row."""
        with self.lock:
            return "\n".join(self.screen.display)

    async def until(self, predicate: Callable[[str], bool], what: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.text()
            if predicate(screen):
                return screen
            await asyncio.sleep(0.1)
        raise AssertionError(f"never on screen: {what}\n{self.text()}")

    async def wait(self, timeout: float = 60) -> int:
        code = await asyncio.to_thread(self.process.wait, timeout)
        self.reader.join(timeout=5)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            os.close(self.master)


def squeezed(text: str) -> str:
    """Text without any whitespace: a command folded over several rows still reads as one."""
    return re.sub(r"\s+", "", text)


@pytest_asyncio.fixture(scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    async with local_env() as env:
        yield env


def gated_plan() -> CutoverPlan:
    data = base_plan_data()
    data["strategy"] = "alias"
    data["dns"].update(record=ALIAS, cutover_ttl=1, final_ttl=5, wait_margin="0s")
    data["approvals"] = {"flip": True, "decommission": False, "timeout": "1h"}
    return CutoverPlan.model_validate(data)


def cli_env(env: WorkflowEnvironment, queue: str) -> dict[str, str]:
    address = env.client.service_client.config.target_host
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "CUTOVER_"))}
    return {**keep, "TEMPORAL_ADDRESS": address, "CUTOVER_TASK_QUEUE": queue, "TERM": "xterm-256color"}


@pytest.mark.timeout(120)
async def test_watch_on_a_terminal_keeps_the_approve_command_in_view_until_the_gate_closes(
    dev_server: WorkflowEnvironment,
) -> None:
    env = dev_server
    world = FakeWorld()
    for name in world.records:
        world.records[name] = tuple(r.with_ttl(1) for r in world.records[name])
    plan = gated_plan()
    queue = f"cutover-{uuid.uuid4().hex[:8]}"
    workflow_id = f"cutover-watch-{uuid.uuid4().hex[:8]}"
    settings = TemporalSettings(address=env.client.service_client.config.target_host, task_queue=queue)
    async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=activities_for(env, world)):
        await starter.start(env.client, settings, plan, workflow_id=workflow_id)
        terminal = Terminal([sys.executable, "starter.py", "watch", workflow_id], cli_env(env, queue))
        try:
            command = approve_command(workflow_id, "flip", plan.digest())
            screen = await terminal.until(lambda s: squeezed(command) in squeezed(s), "the approve command")
            handle = env.client.get_workflow_handle(workflow_id)
            status: CutoverStatus = await handle.query("status", result_type=CutoverStatus)
            assert status.gates_awaited == ("flip",), status.phase
            assert "waiting for your approval of the flip gate" in screen
            abort = f"python starter.py abort {workflow_id} --reason '<why>' --by <you>"
            assert squeezed(abort) in squeezed(screen)

            # Pinned: seconds later, with the panel redrawn many times, it is still on the last screen.
            await asyncio.sleep(3)
            assert squeezed(command) in squeezed(terminal.text())

            request = ApproveRequest(gate="flip", by="alice", digest=plan.digest())
            await handle.execute_update("approve", request, result_type=str)
            code = await terminal.wait()
            final = terminal.text()
        finally:
            terminal.close()
    assert code == EXIT_COMPLETED, final
    assert f"{workflow_id} ended completed" in final
    assert "approved flip by alice via update" in final
    assert squeezed(command) not in squeezed(final), "the commands stayed pinned after the gate closed"
    # Each finished step is printed once (above the panel), never redrawn into the scrollback.
    text = terminal.raw.decode(errors="replace")
    assert text.count("ok  Flip") == 1, text


async def test_watch_without_a_terminal_prints_each_event_once_and_exits_with_the_outcome(
    dev_server: WorkflowEnvironment,
) -> None:
    env = dev_server
    world = FakeWorld()
    plan = gated_plan().model_copy(update={"dry_run": True})
    queue = f"cutover-{uuid.uuid4().hex[:8]}"
    workflow_id = f"cutover-dry-{uuid.uuid4().hex[:8]}"
    settings = TemporalSettings(address=env.client.service_client.config.target_host, task_queue=queue)

    def watch(run_id: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "starter.py", "watch", run_id, "--interval", "0.3"],
            cwd=REPO,
            env=cli_env(env, queue),
            capture_output=True,
            text=True,
            timeout=60,
        )

    async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=activities_for(env, world)):
        await starter.start(env.client, settings, plan, workflow_id=workflow_id)
        result = await asyncio.to_thread(watch, workflow_id)
    lines = result.stdout.splitlines()
    assert result.returncode == EXIT_COMPLETED, result.stdout + result.stderr
    assert f"{workflow_id} ended planned" in result.stdout
    assert "\x1b[" not in result.stdout  # no escape codes in a log
    assert all(re.match(r"^\[\d\d:\d\d\] ", line) for line in lines), lines
    events = [line[8:] for line in lines]
    assert len(events) == len(set(events)), "an event was printed twice"
    assert events[0] == "== phase: verifying"

    missing = await asyncio.to_thread(watch, "cutover-no-such-run")
    assert missing.returncode == EXIT_ERROR and "no run cutover-no-such-run" in missing.stdout
    assert [exit_code(p) for p in ("completed", "planned", "rolled-back", "failed")] == [0, 0, EXIT_ROLLED_BACK, 4]
