"""The decommission receiver: auth, idempotency, and A really gone (a real runtime process is stopped)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from providers.decommission.webhook import sign
from sandbox.decommission_receiver import ReceiverState, build_app
from sandbox.topology import REPO_ROOT
from sandbox.topology.ports import free_runtime_port

AUTH = "Bearer sandbox-test-token"


@dataclass
class RuntimeA:
    process: subprocess.Popen
    port: int
    pid_file: Path


@pytest.fixture
def runtime_a(tmp_path) -> Iterator[RuntimeA]:
    """Runtime A as its own process on 127.0.0.2, as the topology runs it (plain HTTP here)."""
    port = free_runtime_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.runtime", "--name", "A", "--listen", f"127.0.0.2:{port}", "--hosts", "a"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    assert ready["event"] == "ready"
    pid_file = tmp_path / "runtime-A.pid"
    pid_file.write_text(f"{process.pid}\n")
    yield RuntimeA(process, port, pid_file)
    if process.poll() is None:
        process.kill()
    process.wait()
    process.stdout.close()


@pytest_asyncio.fixture
async def receiver(tmp_path, runtime_a) -> AsyncIterator[tuple[str, Path]]:
    state_file = tmp_path / "receiver.json"
    app = build_app(ReceiverState.load(state_file), runtime_a.pid_file, ("127.0.0.2", runtime_a.port), AUTH)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", state_file
    await runner.cleanup()


async def call(method: str, url: str, headers: dict[str, str] | None = None, body=None) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, headers=headers or {}, json=body) as response:
            return response.status, await response.json(), dict(response.headers)


async def a_answers(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.2:{port}/_runtime/stats") as response:
                return response.status == 200
    except aiohttp.ClientError:
        return False


async def test_refuses_without_auth_or_key_and_leaves_a_running(receiver, runtime_a):
    url, _ = receiver
    status, body, _ = await call("DELETE", f"{url}/projects/a-project", {"Idempotency-Key": "k1"})
    assert status == 401
    status, body, _ = await call(
        "DELETE", f"{url}/projects/a-project", {"Authorization": "Bearer wrong", "Idempotency-Key": "k1"}
    )
    assert status == 401
    status, body, _ = await call("DELETE", f"{url}/projects/a-project", {"Authorization": AUTH})
    assert status == 400 and "Idempotency-Key" in body["message"]
    status, body, _ = await call(
        "DELETE", f"{url}/projects/b-project", {"Authorization": AUTH, "Idempotency-Key": "k1"}
    )
    assert status == 404
    assert runtime_a.process.poll() is None
    assert await a_answers(runtime_a.port)
    _, state, _ = await call("GET", f"{url}/_receiver/state")
    assert [r["status"] for r in state["rejected"]] == [401, 401, 400, 404]
    assert state["deletions"] == {}


async def test_deletes_a_once_per_key_and_a_really_disappears(receiver, runtime_a):
    url, state_file = receiver
    headers = {"Authorization": AUTH, "Idempotency-Key": "cutover-orders-api"}
    assert await a_answers(runtime_a.port)
    status, first, first_headers = await call("DELETE", f"{url}/projects/a-project", headers)
    assert status == 200
    assert first["deleted"] is True and first["outcome"] == f"stopped process {runtime_a.process.pid}"
    assert "Idempotent-Replayed" not in first_headers
    runtime_a.process.wait(timeout=5)
    assert not await a_answers(runtime_a.port)

    status, again, again_headers = await call("DELETE", f"{url}/projects/a-project", headers)
    assert (status, again) == (200, first)
    assert again_headers["Idempotent-Replayed"] == "true"

    status, other, _ = await call("POST", f"{url}/projects/a-project", {**headers, "Idempotency-Key": "another-run"})
    assert status == 200 and other["outcome"] == "already deleted"

    saved = json.loads(state_file.read_text())
    assert saved["deletions"]["cutover-orders-api"]["replays"] == 1
    assert set(saved["deletions"]) == {"cutover-orders-api", "another-run"}
    reloaded = ReceiverState.load(state_file)
    assert reloaded.deletions["cutover-orders-api"]["response"] == first


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen]:
    """A process that is not a runtime: its pid may end up in a stale pid file."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


async def test_a_pid_that_is_not_a_runtime_is_never_signalled(receiver, runtime_a, bystander):
    url, _ = receiver
    runtime_a.pid_file.write_text(f"{bystander.pid}\n")
    runtime_a.process.kill()
    runtime_a.process.wait()
    status, body, _ = await call("DELETE", f"{url}/projects/a-project", {"Authorization": AUTH, "Idempotency-Key": "k"})
    assert status == 200 and body["outcome"] == "was not running"
    await asyncio.sleep(0.1)
    assert bystander.poll() is None


async def test_collects_notifications(receiver):
    url, _ = receiver
    status, _, _ = await call(
        "POST", f"{url}/notify", body={"text": "flipped\nmore", "event": "flipped", "workflow_id": "w"}
    )
    assert status == 200
    _, state, _ = await call("GET", f"{url}/_receiver/state")
    assert state["notifications"][0]["event"] == "flipped"
    assert state["notifications"][0]["text"] == "flipped\nmore"


async def test_a_signing_key_receiver_accepts_only_bodies_signed_with_it(tmp_path, runtime_a):
    key = "sandbox-signing-key"
    app = build_app(ReceiverState.load(None), runtime_a.pid_file, ("127.0.0.2", runtime_a.port), None, key)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/projects/a-project"
    body = b'{"action":"decommission"}'
    try:
        async with aiohttp.ClientSession() as session:
            for signature, status in (
                ("", 401),
                (sign(b"another key", body, int(time.time())), 401),
                (sign(key.encode(), body, int(time.time()) - 3600), 401),
                (sign(key.encode(), body + b" ", int(time.time())), 401),
            ):
                headers = {"Idempotency-Key": "k", "X-Cutover-Signature": signature}
                async with session.delete(url, headers=headers, data=body) as response:
                    assert response.status == status
            assert await a_answers(runtime_a.port), "a refused deletion leaves A running"
            headers = {"Idempotency-Key": "k", "X-Cutover-Signature": sign(key.encode(), body, int(time.time()))}
            async with session.delete(url, headers=headers, data=body) as response:
                assert response.status == 200
        assert not await a_answers(runtime_a.port)
    finally:
        await runner.cleanup()


def test_cli_refuses_an_unset_auth_variable():
    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_TEST_UNSET"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox.decommission_receiver",
            "--listen",
            "127.0.0.1:0",
            "--pid-file",
            "/nonexistent",
            "--runtime-address",
            "127.0.0.2:1",
            "--auth-env",
            "SANDBOX_TEST_UNSET",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=30,
    )
    assert result.returncode == 2
    assert "SANDBOX_TEST_UNSET is not set" in result.stderr
