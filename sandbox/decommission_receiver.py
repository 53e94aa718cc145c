r"""The sandbox's stand-in for "delete project A": a loopback webhook that really stops runtime A.

A plan's ``decommission: {kind: webhook, url: <receiver>/projects/a-project}`` calls it once the
drain is proven. Like a real decommission system it:

* requires a valid ``X-Cutover-Signature`` (``t=<unix time>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>``)
  made with the key it was given (``--signing-secret-env`` names the variable), at most 5 minutes
  old; and/or ``Authorization`` equal to the secret named by ``--auth-env``; anything else is 401,
  which cutover reports as a refusal. The signing key never travels, so plain http on a private
  network reveals no credential (the plan carries ``signature_secret_env``);
* requires ``Idempotency-Key`` (400 without): the first request with a key does the deletion, a
  repeated one (Temporal retrying after a timeout or a worker crash) gets the same answer again
  with ``Idempotent-Replayed: true`` and deletes nothing twice; a new key after A is gone answers
  200 "already deleted";
* deletes for real: it sends SIGTERM to runtime A's process group (pid from ``--pid-file``,
  checked to be a ``sandbox.runtime`` process), SIGKILL after 5 s, and answers only once A's
  address refuses connections, so a request reaching A afterwards fails.

It also collects notifications (``POST /notify``, the plan's ``notify.webhook_env`` URL) and shows
everything at ``GET /_receiver/state``. The state is kept in ``--state`` (JSON), so a restarted
receiver still knows which keys it served.

    python -m sandbox.decommission_receiver --listen 127.0.0.1:8088 --pid-file run/runtime-A.pid \\
        --runtime-address 127.0.0.2:8443 --signing-secret-env CUTOVER_DECOMMISSION_AUTH --state run/receiver.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

PROJECTS = frozenset({"a-project"})
"""Projects this receiver can delete: only A (B is never deletable here)."""
STOP_GRACE = 5.0
SIGNATURE_TOLERANCE = 300
"""Seconds a signature's time may differ from the receiver's clock (replays are idempotent anyway)."""


def signature_problem(header: str, body: bytes, key: bytes, now: float) -> str | None:
    """Why ``X-Cutover-Signature: header`` does not sign ``body`` with ``key``, or None when it does."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    stamp, mac = fields.get("t", ""), fields.get("v1", "")
    if not stamp.isdigit() or not mac:
        return "missing or malformed X-Cutover-Signature"
    if abs(now - int(stamp)) > SIGNATURE_TOLERANCE:
        return "X-Cutover-Signature is too old (or from the future)"
    expected = hmac.new(key, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac):
        return "X-Cutover-Signature does not match the body"
    return None


@dataclass
class ReceiverState:
    """Deletions by idempotency key, and notifications, persisted to a JSON file."""

    path: Path | None = None
    deletions: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | None) -> ReceiverState:
        """The saved state, or an empty one."""
        state = cls(path=path)
        if path is not None and path.exists():
            data = json.loads(path.read_text())
            state.deletions = dict(data.get("deletions", {}))
            state.notifications = list(data.get("notifications", []))
            state.rejected = list(data.get("rejected", []))
        return state

    def snapshot(self) -> dict[str, Any]:
        """JSON-able view (``GET /_receiver/state``)."""
        return {"deletions": self.deletions, "notifications": self.notifications, "rejected": self.rejected}

    def save(self) -> None:
        """Write the state atomically (rename), so a crash never leaves half a file."""
        if self.path is None:
            return
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.snapshot(), indent=1))
        temporary.replace(self.path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _is_runtime_process(pid: int) -> bool:
    """True when ``pid`` is a live ``sandbox.runtime`` process (a zombie counts as gone)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and b"sandbox.runtime" in cmdline


async def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` every 50 ms; False when ``timeout`` passed first."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)


async def _accepts_connections(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 0.5)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def stop_runtime(pid_file: Path, address: tuple[str, int]) -> str:
    """Stop the runtime whose pid the file holds and wait until its address refuses connections."""
    try:
        pid = int((await asyncio.to_thread(pid_file.read_text)).strip())
    except (OSError, ValueError):
        pid = 0
    outcome = "was not running"
    if pid and _is_runtime_process(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        if not await _wait_until(lambda: not _is_runtime_process(pid), STOP_GRACE):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        outcome = f"stopped process {pid}"
    deadline = time.monotonic() + STOP_GRACE
    while await _accepts_connections(*address):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{address[0]}:{address[1]} still accepts connections after stopping A")
        await asyncio.sleep(0.05)
    return outcome


def build_app(
    state: ReceiverState,
    pid_file: Path,
    runtime_address: tuple[str, int],
    auth: str | None,
    signing_key: str | None = None,
) -> web.Application:
    """Routes: ``DELETE|POST /projects/{project}``, ``POST /notify``, ``GET /_receiver/state``."""
    lock = asyncio.Lock()

    def reject(request: web.Request, status: int, message: str) -> web.Response:
        state.rejected.append({"at": _now(), "path": request.path, "status": status, "message": message})
        state.save()
        return web.json_response({"message": message}, status=status)

    async def delete_project(request: web.Request) -> web.Response:
        project = request.match_info["project"]
        if auth is not None and not hmac.compare_digest(request.headers.get("Authorization", ""), auth):
            return reject(request, 401, "missing or wrong Authorization")
        if signing_key is not None:
            body = await request.read()
            problem = signature_problem(
                request.headers.get("X-Cutover-Signature", ""), body, signing_key.encode(), time.time()
            )
            if problem:
                return reject(request, 401, problem)
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return reject(request, 400, "Idempotency-Key header is required")
        if project not in PROJECTS:
            return reject(request, 404, f"unknown project {project!r}")
        async with lock:
            if key in state.deletions:
                done = state.deletions[key]
                done["replays"] = int(done.get("replays", 0)) + 1
                state.save()
                return web.json_response(done["response"], headers={"Idempotent-Replayed": "true"})
            already = any(d["project"] == project for d in state.deletions.values())
            try:
                outcome = "already deleted" if already else await stop_runtime(pid_file, runtime_address)
            except RuntimeError as exc:
                return web.json_response({"message": str(exc)}, status=503)
            response = {"project": project, "deleted": True, "outcome": outcome, "idempotency_key": key}
            state.deletions[key] = {
                "project": project,
                "at": _now(),
                "method": request.method,
                "outcome": outcome,
                "replays": 0,
                "response": response,
            }
            state.save()
            print(json.dumps({"event": "deleted", "project": project, "key": key, "outcome": outcome}), flush=True)
            return web.json_response(response)

    async def notify(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return reject(request, 400, "body must be JSON")
        state.notifications.append({"at": _now(), **(body if isinstance(body, dict) else {"body": body})})
        state.save()
        return web.json_response({"ok": True})

    async def show(_: web.Request) -> web.Response:
        return web.json_response(state.snapshot())

    app = web.Application()
    app.router.add_route("DELETE", "/projects/{project}", delete_project)
    app.router.add_route("POST", "/projects/{project}", delete_project)
    app.router.add_post("/notify", notify)
    app.router.add_get("/_receiver/state", show)
    return app


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected host:port")
    return host, int(port)


async def serve(args: argparse.Namespace) -> int:
    """Listen, print the ready line, serve until SIGTERM/SIGINT."""
    auth = signing_key = None
    if args.auth_env:
        auth = os.environ.get(args.auth_env)
        if not auth:
            print(f"error: --auth-env {args.auth_env} is not set", file=sys.stderr)
            return 2
    if args.signing_secret_env:
        signing_key = os.environ.get(args.signing_secret_env)
        if not signing_key:
            print(f"error: --signing-secret-env {args.signing_secret_env} is not set", file=sys.stderr)
            return 2
    state = ReceiverState.load(Path(args.state) if args.state else None)
    runner = web.AppRunner(
        build_app(state, Path(args.pid_file), args.runtime_address, auth, signing_key),
        access_log=None,
        shutdown_timeout=0.5,
    )
    await runner.setup()
    host, port = args.listen
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = int(runner.addresses[0][1])
    print(json.dumps({"event": "ready", "url": f"http://{host}:{bound}", "pid": os.getpid()}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def main() -> int:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", type=_address, required=True, help="host:port (port 0: any free port)")
    parser.add_argument("--pid-file", required=True, help="file holding runtime A's current pid")
    parser.add_argument("--runtime-address", type=_address, required=True, help="A's host:port, to see it gone")
    parser.add_argument("--auth-env", help="variable holding the Authorization value callers must send")
    parser.add_argument(
        "--signing-secret-env", help="variable holding the HMAC key X-Cutover-Signature must be made with"
    )
    parser.add_argument("--state", help="JSON file keeping deletions and notifications across restarts")
    return asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
