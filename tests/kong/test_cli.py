"""The emulator, runtime and PKI as processes, started exactly as the demo and docker-compose will."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.kong.fixtures import ROOT, SERVICES_YAML


async def start(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=15)
    if not line:
        assert process.stderr is not None
        raise AssertionError((await process.stderr.read()).decode())
    return process, json.loads(line)


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), timeout=10)


async def test_emulator_starts_with_the_documented_command_line(tmp_path: Path) -> None:
    shutil.copy(SERVICES_YAML, tmp_path / "services.yaml")
    process, ready = await start(
        [
            "-m",
            "sandbox.kong",
            "--admin",
            "127.0.0.1:0",
            "--proxy",
            "127.0.0.1:0",
            "--dns",
            "127.0.0.1:5353",
            "--config",
            "services.yaml",
            "--log",
            "file-log.json",
        ],
        cwd=tmp_path,
    )
    try:
        assert ready["event"] == "ready" and ready["mode"] == "traditional" and ready["dns"] == "127.0.0.1:5353"
        async with httpx.AsyncClient() as http:
            service = (await http.get(f"{ready['admin']}/services/orders-api")).json()
            unmatched = await http.get(f"{ready['proxy']}/nothing")
    finally:
        assert await stop(process) == 0
    assert (service["host"], service["port"], service["tls_verify"]) == ("a-project.example.test", 8443, True)
    assert unmatched.status_code == 404
    line = json.loads((tmp_path / "file-log.json").read_text().splitlines()[0])
    assert line["response"]["status"] == 404 and line["source"] == "kong"


async def test_emulator_refuses_a_bad_config_and_a_missing_token_variable(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text('_format_version: "3.0"\nservices:\n  - name: x\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox.kong",
        "--admin",
        "127.0.0.1:0",
        "--proxy",
        "off",
        "--config",
        "bad.yaml",
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 2 and b"host: required field missing" in err
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox.kong",
        "--admin",
        "127.0.0.1:0",
        "--admin-token-env",
        "CUTOVER_NO_SUCH_VAR",
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 2 and b"CUTOVER_NO_SUCH_VAR" in err


async def test_pki_and_runtime_processes(tmp_path: Path) -> None:
    pki = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox.pki", "--dir", str(tmp_path / "pki"), cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await pki.communicate()
    paths = json.loads(out)
    assert set(paths["certs"]) == {"A", "B"}
    process, ready = await start(
        [
            "-m",
            "sandbox.runtime",
            "--name",
            "B",
            "--listen",
            "127.0.0.3:0",
            "--cert",
            paths["certs"]["B"]["cert"],
            "--key",
            paths["certs"]["B"]["key"],
            "--hosts",
            "a-project.example.test,b-project.example.test",
        ],
        cwd=ROOT,
    )
    trust = ssl.create_default_context(cafile=paths["ca"])
    base = ready["url"]

    async def get(path: str, name: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(verify=trust) as http:  # one connection per SNI, like Kong's pools
            request = http.build_request(
                method, f"{base}{path}", headers={"Host": name}, extensions={"sni_hostname": name}, **kwargs
            )
            return await http.send(request)

    try:
        assert ready["event"] == "ready" and base.startswith("https://127.0.0.3:")
        health = await get("/orders/v1/health", "a-project.example.test")
        await get("/_runtime/fail", "b-project.example.test", "POST", json={"status": 503, "count": 1})
        failed = await get("/orders/v1/x", "b-project.example.test")
        stats = (await get("/_runtime/stats", "b-project.example.test")).json()
    finally:
        assert await stop(process) == 0
    assert health.status_code == 200 and health.json()["served_by"] == "B"
    assert failed.status_code == 503
    assert stats["by_host"] == {"a-project.example.test": 1, "b-project.example.test": 1}
    assert stats["by_sni"] == {"a-project.example.test": 1, "b-project.example.test": 1}
