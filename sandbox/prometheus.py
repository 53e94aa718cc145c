"""A real Prometheus server on loopback, scraping given ``/metrics`` endpoints: for tests and the sandbox.

This is the outside world the ``promql`` telemetry source reads, not part of cutover: Debian's
``prometheus`` package (``apt-get install prometheus``; ``make setup`` installs it), started with a
temporary configuration and data directory, a short scrape interval, its own process group, and
stopped with the context manager. Prometheus sends its first scrape only after its discovery manager
publishes the targets (about 5 s after start): :meth:`PrometheusServer.wait_scraped` waits for it.

    with prometheus_server(["127.0.0.1:8001"], directory=tmp) as prom:
        prom.wait_scraped()
        prom.url  # http://127.0.0.1:PORT, the base of /api/v1/query
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.free_ports import free_port

PROMETHEUS_CANDIDATES = ("/usr/bin/prometheus", "/usr/sbin/prometheus")


def prometheus_binary() -> str:
    """Path of the prometheus binary, or a clear error saying how to install it."""
    found = shutil.which("prometheus") or next((p for p in PROMETHEUS_CANDIDATES if os.path.exists(p)), None)
    if not found:
        raise RuntimeError("Prometheus is not installed: run `apt-get install -y prometheus` (make setup does it)")
    return found


def config_text(
    targets: Sequence[str], scrape_interval: str, *, job: str = "kong", metrics_path: str = "/metrics"
) -> str:
    """A prometheus.yml scraping ``targets`` (``host:port``) every ``scrape_interval`` (e.g. ``500ms``)."""
    config = {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval},
        "scrape_configs": [
            {"job_name": job, "metrics_path": metrics_path, "static_configs": [{"targets": list(targets)}]}
        ],
    }
    return json.dumps(config, indent=1)  # JSON is YAML


@dataclass
class PrometheusServer:
    """One prometheus process, its configuration and data directory."""

    port: int
    directory: Path
    targets: tuple[str, ...]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the HTTP API (``/api/v1/query`` is under it)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start prometheus in its own session; logs go to ``prometheus.log`` in the directory."""
        with open(self.directory / "prometheus.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    prometheus_binary(),
                    f"--config.file={self.directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=2h",
                ],
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after 5 s."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def log(self) -> str:
        """Everything prometheus wrote, for failure messages."""
        path = self.directory / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result list (the test's own reading of Prometheus, not the product's)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Poll ``/-/ready`` until Prometheus serves queries, or raise with its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                break
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            time.sleep(0.1)
        raise RuntimeError(f"prometheus on port {self.port} did not become ready:\n{self.log()[-3000:]}")

    def wait_scraped(self, timeout: float = 30.0) -> None:
        """Wait until every target was scraped successfully at least twice (so ``increase`` has two samples)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, KeyError, ValueError):
                samples = self.query("count_over_time(up[1h]) and up == 1")
                if len(samples) == len(self.targets) and all(float(s["value"][1]) >= 2 for s in samples):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"prometheus did not scrape {list(self.targets)} in {timeout:.0f} s:\n{self.log()[-2000:]}")


@contextlib.contextmanager
def prometheus_server(
    targets: Sequence[str],
    *,
    scrape_interval: str = "500ms",
    directory: str | Path | None = None,
    metrics_path: str = "/metrics",
) -> Iterator[PrometheusServer]:
    """Run Prometheus scraping ``targets`` until the block exits; its data directory goes with it."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="prometheus-"))
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        (root / "prometheus.yml").write_text(config_text(targets, scrape_interval, metrics_path=metrics_path))
        server = PrometheusServer(port=free_port(), directory=root, targets=tuple(targets))
        server.start()
        stack.callback(server.stop)
        server.wait_ready()
        yield server
