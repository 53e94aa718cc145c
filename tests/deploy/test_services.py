"""The compose services built from the project's image, run here with their own commands, environment,
scripts and healthchecks (tests/deploy/local.py says what is translated): init, runtime-a (with its
decommission receiver), runtime-b, traffic, and Kong's seed script."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import time
from pathlib import Path

import httpx
import pytest

from providers.decommission.webhook import sign
from sandbox import pki
from sandbox.free_ports import free_tcp_port
from sandbox.runtime import running_runtime
from sandbox.topology import SERVICES_YAML
from tests.deploy.compose import DEPLOY, REPO
from tests.deploy.local import LocalService, read_env_file, stop_pid_file_group


def run_init(compose, root: Path, secrets_dir: Path) -> LocalService:
    init = LocalService(compose, "init", root, secrets_dir)
    command = compose.command("init")
    result = init.run(command, env=init.env(script=init.path(command[1])))
    assert result.returncode == 0, result.stdout + result.stderr
    return init


def test_init_issues_the_runtime_certificates_the_ca_and_kongs_log_directory(compose, tmp_path, secrets_dir):
    init = run_init(compose, tmp_path, secrets_dir)
    ca = init.path("/etc/cutover/ca/" + pki.CA_CERT)
    for name in ("A", "B"):
        cert, key = init.path(f"/etc/cutover/pki/{name}.pem"), init.path(f"/etc/cutover/pki/{name}.key")
        assert key.stat().st_mode & 0o077 == 0
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(cert), str(key))  # the key matches the certificate
    # Only init sees the CA's key; the runtimes' and Kong's volumes hold no CA key.
    assert (init.path("/var/lib/cutover/pki") / pki.CA_KEY).exists()
    for container_dir in ("/etc/cutover/pki", "/etc/cutover/ca"):
        assert not (init.path(container_dir) / pki.CA_KEY).exists()
    assert init.path("/var/log/kong").stat().st_mode & 0o7777 == 0o1777
    # A second run (every `docker compose up`) keeps the CA: Kong's trust stays valid.
    before = ca.read_bytes()
    run_init(compose, tmp_path, secrets_dir)
    assert ca.read_bytes() == before


def https_get(url: str, ca: Path, name: str, **headers: str) -> httpx.Response:
    """GET with the Host and SNI Kong sends for ``name``, verified against the sandbox CA."""
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=5) as client:
        request = client.build_request("GET", url, headers={"Host": name, **headers}, extensions={"sni_hostname": name})
        return client.send(request)


def test_runtimes_answer_kongs_names_and_a_decommission_really_stops_a(compose, tmp_path, secrets_dir):
    init = run_init(compose, tmp_path, secrets_dir)
    ca = init.path("/etc/cutover/ca/" + pki.CA_CERT)
    port_a, port_b, receiver_port = free_tcp_port(), free_tcp_port(), free_tcp_port()
    runtime_a = LocalService(
        compose,
        "runtime-a",
        tmp_path,
        secrets_dir,
        {"0.0.0.0": "127.0.0.1", "8443": str(port_a), "8088": str(receiver_port)},
    )
    runtime_b = LocalService(compose, "runtime-b", tmp_path, secrets_dir, {"0.0.0.0": "127.0.0.1", "8443": str(port_b)})
    script = runtime_a.path(compose.command("runtime-a")[1])
    pid_file = runtime_a.path(compose.environment("runtime-a")["CUTOVER_RUNTIME_PID_FILE"])
    with runtime_a.running(env=runtime_a.env(script=script)) as process_a, runtime_b.running() as process_b:
        try:
            runtime_a.wait_healthy(process_a)
            runtime_b.wait_healthy(process_b)
            # Before the flip Kong sends a-project (cname) or origin-api (alias) to A; afterwards the same to B.
            for port, served_by in ((port_a, "A"), (port_b, "B")):
                for name in ("a-project.example.test", "origin-api.example.test"):
                    response = https_get(f"https://127.0.0.1:{port}/orders/v1/health", ca, name)
                    assert response.status_code == 200 and response.json()["served_by"] == served_by
            assert (
                https_get(f"https://127.0.0.1:{port_b}/orders/v1/health", ca, "b-project.example.test").status_code
                == 200
            )

            receiver = f"http://127.0.0.1:{receiver_port}"
            auth = read_env_file(secrets_dir / "decommission.env")["CUTOVER_DECOMMISSION_AUTH"]
            refused = httpx.delete(f"{receiver}/projects/a-project", headers={"Idempotency-Key": "k1"}, timeout=10)
            assert refused.status_code == 401
            assert runtime_a.healthcheck().returncode == 0, "a refused deletion must leave A running"
            signature = sign(auth.encode(), b"", int(time.time()))
            deleted = httpx.delete(
                f"{receiver}/projects/a-project",
                headers={"X-Cutover-Signature": signature, "Idempotency-Key": "k1"},
                timeout=15,
            )
            assert deleted.status_code == 200 and deleted.json()["deleted"] is True, deleted.text
            assert runtime_a.healthcheck().returncode != 0, "A still answers after its deletion"
            assert process_a.poll() is None, "the receiver (the container's main process) keeps running"
            state = httpx.get(f"{receiver}/_receiver/state", timeout=5).json()
            assert list(state["deletions"]) == ["k1"]
            assert runtime_b.healthcheck().returncode == 0
        finally:
            stop_pid_file_group(pid_file)


def test_runtime_a_refuses_to_start_without_the_decommission_secret(compose, tmp_path, secrets_dir):
    runtime_a = LocalService(compose, "runtime-a", tmp_path, secrets_dir)
    script = runtime_a.path(compose.command("runtime-a")[1])
    env = runtime_a.env(script=script, extra={"CUTOVER_DECOMMISSION_AUTH": ""})
    result = runtime_a.run(compose.command("runtime-a"), env=env)
    assert result.returncode == 2 and "make-secrets.sh" in result.stderr


async def test_traffic_reports_who_served_the_requests(compose, tmp_path, secrets_dir):
    traffic = LocalService(compose, "traffic", tmp_path, secrets_dir)
    async with running_runtime("B", hosts=["127.0.0.1"]) as runtime:
        command = compose.command("traffic")
        command[command.index("--url") + 1] = f"{runtime.url}/orders/v1/orders"
        process = await asyncio.create_subprocess_exec(
            *traffic.argv(command), "--report", "0.3", cwd=REPO, env=traffic.env(), stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        try:
            report = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0
    assert "status {'200': " in report and "served by {'B': " in report, report
    assert runtime.state.by_status[200] >= 1


KONG_STAND_IN = """#!/bin/sh
# Stands in for the kong CLI (not installable here): records its arguments and answers
# `kong migrations list` with the exit code Kong gives for the database state under test.
echo "$*" >> "$KONG_CALLS"
if [ "$1 $2" = "migrations list" ]; then exit "$KONG_LIST_STATE"; fi
if [ "$1 $2" = "config db_import" ] && [ "$3" = "${KONG_FAIL_IMPORT:-}" ]; then exit 1; fi
exit 0
"""


@pytest.mark.parametrize(
    ("state", "expected_calls", "exit_code"),
    [
        (
            3,
            [
                "migrations list",
                "migrations bootstrap",
                "prepare",
                "config db_import {services}",
                "config db_import {file_log}",
            ],
            0,
        ),
        (0, ["migrations list"], 0),
        (4, ["migrations list", "migrations finish"], 0),
        (5, ["migrations list", "migrations up", "migrations finish"], 0),
        (1, ["migrations list"], 1),
    ],
)
def test_kong_seed_imports_the_seed_only_into_a_fresh_database(
    compose, tmp_path, secrets_dir, state, expected_calls, exit_code
):
    """Kong's `migrations list` exit codes: 3 empty, 0 current, 4 pending, 5 new (kong/cmd/migrations.lua)."""
    stand_in = tmp_path / "bin" / "kong"
    stand_in.parent.mkdir()
    stand_in.write_text(KONG_STAND_IN)
    stand_in.chmod(0o755)
    calls = tmp_path / "calls"
    service = LocalService(compose, "kong-migrations", tmp_path, secrets_dir)
    env = service.env(
        extra={
            "PATH": f"{stand_in.parent}:{os.environ['PATH']}",
            "KONG_CALLS": str(calls),
            "KONG_LIST_STATE": str(state),
        }
    )
    result = service.run(compose.command("kong-migrations"), env=env)
    assert result.returncode == exit_code, result.stdout + result.stderr
    files = {"services": str(SERVICES_YAML), "file_log": str(DEPLOY / "kong" / "file-log.yaml")}
    assert calls.read_text().splitlines() == [call.format(**files) for call in expected_calls]


def test_kong_seed_says_how_to_start_over_when_an_import_fails(compose, tmp_path, secrets_dir):
    stand_in = tmp_path / "bin" / "kong"
    stand_in.parent.mkdir()
    stand_in.write_text(KONG_STAND_IN)
    stand_in.chmod(0o755)
    service = LocalService(compose, "kong-migrations", tmp_path, secrets_dir)
    env = service.env(
        extra={
            "PATH": f"{stand_in.parent}:{os.environ['PATH']}",
            "KONG_CALLS": str(tmp_path / "calls"),
            "KONG_LIST_STATE": "3",
            "KONG_FAIL_IMPORT": str(SERVICES_YAML),
        }
    )
    result = service.run(compose.command("kong-migrations"), env=env)
    assert result.returncode == 1 and "docker compose down -v" in result.stderr
