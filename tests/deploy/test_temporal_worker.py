"""The temporal and worker services' own commands and healthchecks, run here on loopback ports with the
venv's temporal CLI (the version the compose image is pinned to)."""

from __future__ import annotations

import subprocess

from sandbox.free_ports import free_tcp_port
from settings import SEARCH_ATTRIBUTES
from tests.deploy.local import EXECUTABLES, LocalService


def test_the_dev_server_registers_the_search_attributes_and_the_worker_becomes_healthy(compose, tmp_path, secrets_dir):
    frontend, ui, metrics = free_tcp_port(), free_tcp_port(), free_tcp_port()
    temporal = LocalService(
        compose, "temporal", tmp_path, secrets_dir, {"0.0.0.0": "127.0.0.1", "7233": str(frontend), "8233": str(ui)}
    )
    worker = LocalService(
        compose,
        "worker",
        tmp_path,
        secrets_dir,
        {"temporal:7233": f"127.0.0.1:{frontend}", "0.0.0.0": "127.0.0.1", "9464": str(metrics)},
    )
    # The image's entrypoint is the temporal CLI; compose gives its arguments.
    with temporal.running(["temporal", *compose.command("temporal")]) as server:
        temporal.wait_healthy(server, timeout=30)
        listed = subprocess.run(
            [EXECUTABLES["temporal"], "operator", "search-attribute", "list", "--address", f"127.0.0.1:{frontend}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for name in SEARCH_ATTRIBUTES:
            assert any(line.split()[:2] == [name, "Keyword"] for line in listed.splitlines()), listed
        assert temporal.path("/home/temporal/cutover.db").exists(), "the dev server's state is on its volume"
        with worker.running() as process:
            worker.wait_healthy(process, timeout=30)
        assert process.returncode == 0, worker.log().read_text()
        assert "worker polling task queue cutover" in worker.log().read_text()
