"""The topology: every component a real process, fail-fast ports, clean work directory, failure knobs, no orphans."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import dns.message
import dns.query
import dns.rdatatype
import pytest
from temporalio.client import WorkflowExecutionStatus

import starter
from models.plan import CutoverPlan
from models.workflow import CutoverStatus
from sandbox.topology import (
    MARKER,
    REPO_ROOT,
    TSIG_ENV,
    Component,
    PortBusyError,
    Ports,
    Topology,
    TopologyError,
    kill_leftovers,
    process_identity,
    zone_records,
)
from settings import TemporalSettings
from tests.sandbox.helpers import alive, processes_in


async def test_a_busy_port_fails_fast_naming_it(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        topo = Topology(tmp_path / "work", ports=dataclasses.replace(Ports.auto(), kong_admin=port))
        with pytest.raises(PortBusyError, match=rf"port {port} \(Kong Admin API\) on 127.0.0.1 is in use"):
            await topo.start()
    assert all(c.process is None for c in topo.components.values())
    assert processes_in(tmp_path / "work") == []


async def test_refuses_to_wipe_a_directory_that_is_not_a_work_directory(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    with pytest.raises(TopologyError, match="refusing to wipe"):
        await Topology(tmp_path, ports="auto").start()
    assert precious.read_text() == "keep me"


@pytest.fixture
def sleepers(tmp_path) -> Iterator[tuple[subprocess.Popen, subprocess.Popen]]:
    """Two idle processes: one working in the work directory (a leftover), one outside it."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / MARKER).write_text("")
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    inside = subprocess.Popen(sleep, cwd=workdir, start_new_session=True)
    outside = subprocess.Popen(sleep, cwd=tmp_path, start_new_session=True)
    yield inside, outside
    for process in (inside, outside):
        process.kill()
        process.wait()


def test_leftovers_of_a_killed_run_are_stopped_and_nothing_else(tmp_path, sleepers):
    inside, outside = sleepers
    dead_owner = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = {"owner": int(dead_owner.stdout), "processes": {"kong": inside.pid, "worker": outside.pid}}
    (tmp_path / "work" / "pids.json").write_text(json.dumps(record))
    assert kill_leftovers(tmp_path / "work") == [inside.pid]
    assert inside.wait(timeout=5) == -signal.SIGKILL
    assert outside.poll() is None


def test_a_recycled_pid_is_never_killed_whatever_its_working_directory(tmp_path, sleepers):
    inside, outside = sleepers
    dead_owner = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    identity = process_identity(inside.pid)
    assert identity is not None
    recycled = {**identity, "start": identity["start"] - 1}
    record = {
        "owner": int(dead_owner.stdout),
        "processes": {"kong": inside.pid, "worker": outside.pid},
        # The crashed run's kong had this pid but started earlier: the pid now belongs to another program.
        "identities": {str(inside.pid): recycled, str(outside.pid): process_identity(outside.pid)},
    }
    (tmp_path / "work" / "pids.json").write_text(json.dumps(record))
    assert kill_leftovers(tmp_path / "work") == [outside.pid]  # the identity matches: killed wherever it runs
    assert inside.poll() is None
    assert outside.wait(timeout=5) == -signal.SIGKILL


async def test_a_running_sandboxs_directory_is_neither_touched_nor_wiped(tmp_path, sleepers):
    inside, _ = sleepers
    workdir = tmp_path / "work"
    record = {"owner": inside.pid, "processes": {"kong": inside.pid}}  # the owner is alive
    (workdir / "pids.json").write_text(json.dumps(record))
    (workdir / "load.png").write_text("results of the running demo")
    with pytest.raises(TopologyError, match=rf"in use by a running sandbox \(process {inside.pid}\)"):
        await Topology(workdir, ports="auto").start()
    assert inside.poll() is None
    assert (workdir / "load.png").read_text() == "results of the running demo"
    assert json.loads((workdir / "pids.json").read_text()) == record


async def test_a_refused_start_wipes_nothing(tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / MARKER).write_text("")
    (workdir / "load.png").write_text("results of the last demo")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = dataclasses.replace(Ports.auto(), receiver=holder.getsockname()[1])
        with pytest.raises(PortBusyError):
            await Topology(workdir, ports=busy).start()
    assert (workdir / "load.png").read_text() == "results of the last demo"


def test_zone_records_use_the_given_ttl():
    records = zone_records(20)
    assert "a-project   20  A 127.0.0.2" in records
    assert "origin-api  20  CNAME a-project" in records


def answers(port: int, name: str) -> list[str]:
    query = dns.message.make_query(name, dns.rdatatype.A)
    response = dns.query.udp(query, "127.0.0.1", port=port, timeout=2)
    return sorted(rr.to_text() for rrset in response.answer for rr in rrset)


async def dry_run(topo: Topology, workflow_id: str) -> CutoverStatus:
    plan = CutoverPlan.model_validate(topo.render_plan("cname", dry_run=True))
    client = await topo.temporal_client()
    settings = TemporalSettings(address=topo.temporal_address, ui_url=topo.ui_url)
    await starter.start(client, settings, plan, workflow_id=workflow_id)
    handle = client.get_workflow_handle(workflow_id, result_type=CutoverStatus)
    return await asyncio.wait_for(handle.result(), 60)


@pytest.mark.e2e
async def test_topology_runs_every_component_and_every_failure_knob(tmp_path):
    workdir = tmp_path / "work"
    topo = Topology(workdir, ports="auto", extra_records="api-001 20 A 127.0.0.2", extra_hosts=["api-001.example.test"])
    async with topo:
        pids = topo.pids()
        assert len(pids) == 8  # temporal, 2 named, A, B, receiver, kong, worker
        assert all(alive(pid) and os.getpgid(pid) == pid for pid in pids)
        assert {row.name for row in topo.component_table()} == {
            "bind-primary",
            "bind-secondary",
            "temporal",
            "runtime-A",
            "runtime-B",
            "receiver",
            "kong",
            "worker",
        }
        record = json.loads((workdir / "pids.json").read_text())
        assert record["owner"] == os.getpid()
        assert record["processes"]["worker"] == topo.components["worker"].pid
        assert set(record["processes"].values()) == set(pids)

        # Only the worker holds the secrets.
        worker_env = Path(f"/proc/{topo.components['worker'].pid}/environ").read_bytes()
        assert f"{TSIG_ENV}={topo.tsig_secret}".encode() in worker_env
        for other in ("kong", "runtime-A", "receiver", "temporal"):
            assert topo.tsig_secret.encode() not in Path(f"/proc/{topo.components[other].pid}/environ").read_bytes()
        assert TSIG_ENV not in os.environ

        # Kong proxies to A by name through BIND, and writes the file-log the monitor reads.
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{topo.kong_proxy_url}/orders/v1/orders/1") as response:
                assert response.status == 200
                assert (await response.json())["served_by"] == "A"
        entry = json.loads(topo.file_log.read_text().splitlines()[-1])
        assert entry["tries"][-1]["ip"] == "127.0.0.2"
        assert answers(topo.ports.bind_secondary, "a-project.example.test.") == ["127.0.0.2"]
        assert answers(topo.ports.bind_secondary, "api-001.example.test.") == ["127.0.0.2"]
        assert topo.pki is not None and "api-001.example.test" in topo.pki.certs["B"].names

        # Make B fail, then recover.
        await topo.runtime_control("B", "fail", {"status": 503})
        stats = await topo.runtime_control("B", "recover")
        assert stats["ok"] is True
        assert (await topo.runtime_control("B", "stats"))["name"] == "B"

        # BIND primary down and up: the secondary answers throughout, the primary comes back with its zone.
        assert topo.bind is not None
        await topo.stop_bind_primary()
        assert topo.bind.serial() is None
        assert answers(topo.ports.bind_secondary, "a-project.example.test.") == ["127.0.0.2"]
        await topo.start_bind_primary()
        assert topo.bind.serial() == 1

        # A dry run through the real worker, Temporal restarted on the same SQLite file, the worker
        # killed -9 and restarted: the history survives and the next run completes.
        first = await dry_run(topo, "dry-run-1")
        assert first.phase == "planned"
        old_worker = topo.components["worker"].pid
        topo.kill_worker()
        assert not topo.components["worker"].running
        await topo.restart_temporal()
        await topo.start_worker()
        assert topo.components["worker"].pid != old_worker
        client = await topo.temporal_client()
        described = await client.get_workflow_handle("dry-run-1").describe()
        assert described.status == WorkflowExecutionStatus.COMPLETED
        second = await dry_run(topo, "dry-run-2")
        assert second.phase == "planned"

        # The CLI reaches this topology with cli_env() (no secret in it).
        env = topo.cli_env()
        assert topo.tsig_secret not in env.values()
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "starter.py", "list", cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE
        )
        listing, _ = await cli.communicate()
        assert cli.returncode == 0
        assert {line.split()[0] for line in listing.decode().splitlines()} == {"dry-run-1", "dry-run-2"}

        # Runtime A stopped and started again (what a test does after a decommission).
        await topo.stop_runtime("A")
        assert not topo.runtime_running("A")
        await topo.start_runtime("A")
        assert topo.runtime_running("A")
        assert topo.runtime_pid_file("A").read_text().strip() == str(topo.components["runtime-A"].pid)
    assert not any(alive(pid) for pid in topo.pids())
    assert processes_in(workdir) == []
    assert json.loads((workdir / "pids.json").read_text())["processes"] == {}


async def never_ready(component) -> bool:
    return False


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import sys; print('boom: config broken', flush=True); sys.exit(3)", r"x exited \(code 3\)"),
        ("import time; print('still thinking', flush=True); time.sleep(30)", r"x was not ready after 1 s"),
    ],
    ids=["exits", "hangs"],
)
async def test_a_failed_start_quotes_the_components_log(tmp_path, code, expected):
    component = Component(
        name="x", argv=[sys.executable, "-c", code], log=tmp_path / "x.log", cwd=tmp_path, ready=never_ready
    )
    component.spawn()
    try:
        with pytest.raises(TopologyError, match=expected) as failure:
            await component.wait_ready(timeout=1)
        assert "boom: config broken" in str(failure.value) or "still thinking" in str(failure.value)
        assert str(tmp_path / "x.log") in str(failure.value)
    finally:
        await component.stop(timeout=1)
    assert not component.running
