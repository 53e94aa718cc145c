"""Worker and starter over TLS and mTLS to a secured frontend (the dev server behind a TLS proxy).

The proxy (sandbox/tls_proxy.py) offers ALPN h2 with a trustme certificate and, for mTLS, requires a
client certificate from another CA: the same handshake a self-hosted TLS cluster or a Temporal Cloud
mTLS namespace makes. Misconfigurations end with our one-line error, exit 2, no traceback.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio
import trustme

from sandbox.tls_proxy import SERVER_NAME, TlsProxy
from settings import TemporalSettings
from tests.connection.helpers import ROOT, arun, full_cutover
from tests.temporal_env import local_env


@pytest_asyncio.fixture(scope="module")
async def dev_server():
    async with local_env() as env:
        yield env


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Server CA, client CA, an unrelated CA, and a client certificate, as PEM files."""
    directory = tmp_path_factory.mktemp("pki")
    cas = {"server": trustme.CA(), "client": trustme.CA(), "other": trustme.CA()}
    for name, ca in cas.items():
        (directory / f"{name}-ca.pem").write_bytes(ca.cert_pem.bytes())
    cert = cas["client"].issue_cert("worker@cutover.test")
    (directory / "client.pem").write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    (directory / "client.key").write_bytes(cert.private_key_pem.bytes())
    return directory, cas


def tls_env(proxy: TlsProxy, directory: Path, *, ca: str = "server", client_cert: bool = False) -> dict[str, str]:
    env = {
        "TEMPORAL_ADDRESS": proxy.address,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(directory / f"{ca}-ca.pem"),
        "TEMPORAL_TLS_SERVER_NAME": SERVER_NAME,
        "CUTOVER_POLICY": "dev",  # a worker started here reaches loopback only
    }
    if client_cert:
        env["TEMPORAL_TLS_CLIENT_CERT_PATH"] = str(directory / "client.pem")
        env["TEMPORAL_TLS_CLIENT_KEY_PATH"] = str(directory / "client.key")
    return env


def upstream(dev_server) -> tuple[str, int]:
    host, port = dev_server.client.service_client.config.target_host.rsplit(":", 1)
    return host, int(port)


@pytest.mark.parametrize("mode", ["tls", "mtls"])
async def test_a_cutover_runs_through_the_secured_frontend(dev_server, pki, mode, tmp_path):
    directory, cas = pki
    client_ca = cas["client"] if mode == "mtls" else None
    with TlsProxy(upstream(dev_server), cas["server"], client_ca) as proxy:
        env = tls_env(proxy, directory, client_cert=mode == "mtls")
        settings = TemporalSettings.from_env(env)
        assert ("mTLS" if mode == "mtls" else "TLS with its own CA") in settings.describe()
        client = await settings.connect()
        workflow_id, status = await full_cutover(client, env, tmp_path)
        assert status.phase == "completed"
        assert [(a.gate, a.by) for a in status.approvals] == [("flip", "alice"), ("decommission", "bob")]
        assert proxy.handshake_failures == []
    gc.collect()  # a connection handler the proxy left behind would show here, not in a later test
    # The run really went through the proxy: the dev server holds it.
    described = await dev_server.client.get_workflow_handle(workflow_id).describe()
    assert described.status is not None and described.status.name == "COMPLETED"


async def test_the_worker_process_over_mtls_and_misconfigurations_named(dev_server, pki):
    directory, cas = pki
    with TlsProxy(upstream(dev_server), cas["server"], cas["client"]) as proxy:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "CUTOVER_"))}
        process = subprocess.Popen(
            [sys.executable, "worker.py"],
            cwd=ROOT,
            env={**clean, **tls_env(proxy, directory, client_cert=True)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = ""
            while "worker polling" not in line and process.poll() is None:
                line = await asyncio.to_thread(process.stdout.readline)
            assert "worker polling task queue cutover" in line and "mTLS" in line, line
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.communicate, timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0

        wrong_ca = await arun("list", env=tls_env(proxy, directory, ca="other", client_cert=True))
        assert wrong_ca.returncode == 2, wrong_ca.stderr
        assert "not signed by a CA this client trusts" in wrong_ca.stderr
        assert "TEMPORAL_TLS_SERVER_CA_CERT_PATH" in wrong_ca.stderr and "Traceback" not in wrong_ca.stderr

        no_cert = await arun(env=tls_env(proxy, directory), script="worker.py")
        assert no_cert.returncode == 2, no_cert.stderr
        assert "requires a client certificate (mTLS)" in no_cert.stderr and "Traceback" not in no_cert.stderr
    assert any("did not return a certificate" in failure for failure in proxy.handshake_failures)
    gc.collect()  # a connection handler the proxy left behind would show here, not in a later test
