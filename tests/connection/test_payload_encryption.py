"""Payload encryption: history holds ciphertext; the key holders (worker, starter, codec server) read plaintext."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from connection.codec import EncryptionCodec, PayloadKeyError, encrypting_converter, parse_keys
from sandbox.free_ports import free_port
from settings import TemporalConfigError, TemporalSettings
from tests.connection.helpers import ROOT, full_cutover, run
from tests.temporal_env import local_env, venv_binary

OLD_KEY = base64.b64encode(b"\x11" * 32).decode()
NEW_KEY = base64.b64encode(b"\x22" * 32).decode()
UI_ORIGIN = "http://localhost:8233"
PLAINTEXT = ("b-project.example.test", "127.0.0.1:8001", "update-key", "tsig_key_name", "alice")
"""Plan and approval content that must not be readable in history without the key."""


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


async def test_keys_rotate_by_id_and_problems_are_named_without_key_material():
    old = EncryptionCodec(parse_keys(f"2026-06={OLD_KEY}"))
    sealed_old = (await old.encode([payload("plan")]))[0]
    assert sealed_old.metadata["encryption-key-id"] == b"2026-06" and b"plan" not in sealed_old.data
    rotated = EncryptionCodec(parse_keys(f"2026-12={NEW_KEY}, 2026-06={OLD_KEY}"))
    sealed_new = (await rotated.encode([payload("plan")]))[0]
    assert sealed_new.metadata["encryption-key-id"] == b"2026-12"
    assert [p.data for p in await rotated.decode([sealed_old, sealed_new, payload("plain")])] == [b'"plan"'] * 2 + [
        b'"plain"'
    ]
    with pytest.raises(PayloadKeyError, match="key '2026-12', which is not in CUTOVER_PAYLOAD_KEYS"):
        await old.decode([sealed_new])
    tampered = Payload()
    tampered.CopyFrom(sealed_old)
    tampered.data = sealed_old.data[:-1] + bytes([sealed_old.data[-1] ^ 1])
    with pytest.raises(PayloadKeyError, match="does not decrypt"):
        await rotated.decode([tampered])
    with pytest.raises(PayloadKeyError) as info:
        parse_keys(f"a={OLD_KEY[:-4]},b=notbase64!,={NEW_KEY},a={OLD_KEY}")
    message = str(info.value)
    assert "key 'a': 30 bytes" in message and "key 'b': not valid base64" in message and "entry 3" in message
    assert OLD_KEY[:10] not in message and NEW_KEY[:10] not in message
    with pytest.raises(TemporalConfigError, match="CUTOVER_PAYLOAD_KEYS"):
        TemporalSettings.from_env({"CUTOVER_PAYLOAD_KEYS": "k=short"})


async def test_failure_messages_are_encrypted_too():
    converter = encrypting_converter(EncryptionCodec(parse_keys(f"k={NEW_KEY}")))
    failure = Failure()
    await converter.encode_failure(ApplicationError("cannot reach b-project.example.test", type="X"), failure)
    assert failure.message == "Encoded failure" and b"b-project" not in failure.SerializeToString()
    decoded = await converter.decode_failure(failure)
    assert "cannot reach b-project.example.test" in str(decoded)


@pytest_asyncio.fixture(scope="module")
async def dev_server():
    async with local_env() as env:
        yield env


def show(address: str, workflow_id: str, *extra: str) -> dict[str, Any]:
    result = subprocess.run(
        [venv_binary("temporal"), "workflow", "show", "-w", workflow_id, "-o", "json", "--address", address, *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    history: dict[str, Any] = json.loads(result.stdout)
    return history


def without_patch_markers(history: dict[str, Any]) -> dict[str, Any]:
    """The history without ``workflow.patched`` markers: the SDK core writes their details (the patch id,
    e.g. ``{"id": "stable-digest"}``) itself, unencoded; they carry no plan or approval."""
    events = [
        e
        for e in history.get("events", [])
        if e.get("markerRecordedEventAttributes", {}).get("markerName") != "core_patch"
    ]
    return {**history, "events": events}


def readable(history: Any, skip: str = "") -> str:
    """The history's JSON with every payload's base64 ``data`` decoded: what anyone reading it could see.

    ``skip`` leaves out the subtrees under that key (search attributes, which Temporal never encrypts).
    """
    decoded: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == skip:
                    continue
                if key == "data" and isinstance(value, str):
                    decoded.append(base64.b64decode(value).decode(errors="replace"))
                elif key == "metadata" and isinstance(value, dict):
                    decoded.extend(base64.b64decode(v).decode(errors="replace") for v in value.values())
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(history)
    return json.dumps(history) + "\n".join(decoded)


def post(
    url: str, body: bytes | None, headers: dict[str, str], method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


async def test_an_encrypted_cutover_reads_only_through_the_codec(dev_server, tmp_path):
    address = dev_server.client.service_client.config.target_host
    env = {"TEMPORAL_ADDRESS": address, "CUTOVER_PAYLOAD_KEYS": f"2026-12={NEW_KEY},2026-06={OLD_KEY}"}
    settings = TemporalSettings.from_env(env)
    client = await settings.connect()
    workflow_id, status = await full_cutover(client, env, tmp_path)
    assert status.phase == "completed" and status.target == "b-project.example.test."

    history = show(address, workflow_id)
    raw = readable(history)
    assert "binary/encrypted" in raw, "payloads are binary/encrypted"
    plain = readable(without_patch_markers(history), skip="searchAttributes")
    assert "json/plain" not in plain, "only search attributes (and the SDK's patch markers) stay plain"
    leaked = [text for text in PLAINTEXT if text in raw]
    assert leaked == [], f"plaintext in history without the key: {leaked}"

    port = free_port()
    codec = subprocess.Popen(
        [sys.executable, "starter.py", "codec-server", "--port", str(port), "--ui-origin", UI_ORIGIN],
        cwd=ROOT,
        env={**env, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert codec.stdout is not None
        first = await asyncio.to_thread(codec.stdout.readline)
        assert f"codec server on http://127.0.0.1:{port}/" in first, first
        endpoint = f"http://127.0.0.1:{port}"
        decoded = readable(show(address, workflow_id, "--codec-endpoint", endpoint))
        assert [text for text in PLAINTEXT if text not in decoded] == [], "the CLI with the codec shows it all"

        # What the web UI does from the browser: a CORS preflight, then POST {endpoint}/decode?preserveStorageRefs.
        preflight_headers = {
            "Origin": UI_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        }
        code, headers, _ = post(f"{endpoint}/decode", None, preflight_headers, method="OPTIONS")
        assert code == 204 and headers["Access-Control-Allow-Origin"] == UI_ORIGIN
        assert {"content-type", "x-namespace"} <= {
            h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")
        }
        assert "POST" in headers["Access-Control-Allow-Methods"]
        refused, _, _ = post(f"{endpoint}/decode", None, {**preflight_headers, "Origin": "http://evil.test"}, "OPTIONS")
        assert refused == 403

        started = history["events"][0]["workflowExecutionStartedEventAttributes"]["input"]
        ui_headers = {"Origin": UI_ORIGIN, "Content-Type": "application/json", "X-Namespace": "default"}
        code, headers, body = post(
            f"{endpoint}/decode?preserveStorageRefs=true", json.dumps(started).encode(), ui_headers
        )
        assert code == 200 and headers["Access-Control-Allow-Origin"] == UI_ORIGIN
        plan = json.loads(base64.b64decode(json.loads(body)["payloads"][0]["data"]))
        assert (
            plan["dns"]["target"] == "b-project.example.test." and plan["kong"]["admin_url"] == "http://127.0.0.1:8001"
        )
    finally:
        codec.terminate()
        codec.communicate(timeout=10)


def test_the_codec_server_needs_keys_and_can_require_auth(tmp_path):
    missing = run("codec-server", "--port", str(free_port()), env={})
    assert missing.returncode == 2 and "set CUTOVER_PAYLOAD_KEYS" in missing.stderr

    from cli.codec_server import build_server

    server = build_server(EncryptionCodec(parse_keys(f"k={NEW_KEY}")), "127.0.0.1", 0, [UI_ORIGIN], "Bearer s3cret")
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/any/prefix/encode"
        body = json.dumps({"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "InBsYW4i"}]}).encode()
        assert post(url, body, {"Content-Type": "application/json"})[0] == 401
        code, _, sealed = post(url, body, {"Content-Type": "application/json", "Authorization": "Bearer s3cret"})
        assert code == 200 and b"cGxhbi" not in sealed
        assert post(url.replace("encode", "nope"), body, {"Authorization": "Bearer s3cret"})[0] == 404
        assert post(url, b"{not json", {"Authorization": "Bearer s3cret"})[0] == 400
    finally:
        server.shutdown()
        server.server_close()
