"""The demo as a user runs it: a whole cutover under load, on loopback, then nothing left running."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.topology import MARKER, REPO_ROOT
from tests.sandbox.helpers import alive, processes_in

PHASES_IN_ORDER = [
    "verifying",
    "lowering-ttl",
    "awaiting-flip-approval",
    "flipping",
    "draining",
    "monitoring",
    "awaiting-decommission-approval",
    "decommissioning",
    "restoring-ttl",
    "completed",
]


def demo_command(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sandbox.demo",
        "--auto-approve",
        "--ports",
        "auto",
        "--workdir",
        str(workdir),
        *extra,
    ]


def started_pids(output: str) -> list[int]:
    """The pids of the component table the demo prints."""
    table = re.findall(r"^  (?:bind-\w+|temporal|runtime-[AB]|receiver|kong|worker)\s.*?\s(\d+)\s+\S+$", output, re.M)
    return [int(pid) for pid in table]


@pytest.mark.e2e
@pytest.mark.timeout(170)
def test_demo_runs_a_whole_cutover_under_load_with_zero_failures(tmp_path):
    workdir = tmp_path / "demo"
    # Debris of an earlier run: a second run must start clean (a stale database would break Temporal,
    # stale file-log lines of A would fail the drain proof).
    workdir.mkdir()
    (workdir / MARKER).write_text("")
    (workdir / "temporal.db").write_text("not a database")
    (workdir / "file-log.json").write_text('{"stale": true}\n')
    begin = time.monotonic()
    result = subprocess.run(
        demo_command(workdir, "--exit-when-done", "--rate", "20"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=160,
    )
    wall = time.monotonic() - begin
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "RESULT: OK: completed with zero failed requests" in output
    assert "cutover-orders-api: completed" in output
    assert "failures by status: none" in output
    assert re.search(r"succeeded \d+, failed 0", output)
    assert "runtime A is gone (decommissioned)" in output
    assert ">>> --auto-approve: approving the flip gate" in output
    assert ">>> --auto-approve: approving the decommission gate" in output
    seen = re.findall(r"== phase: (\S+)", output)
    assert seen == PHASES_IN_ORDER, seen
    assert wall < 150, f"the demo took {wall:.0f} s"

    chart = workdir / "load.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    load = json.loads((workdir / "load.json").read_text())
    assert load["failed"] == 0 and load["requests"] >= 20 * 50
    assert load["served_by"]["A"] > 0 and load["served_by"]["B"] > 0
    first, last = load["buckets"][0], load["buckets"][-1]
    assert first["served"] == {"A": first["requests"]}
    assert last["served"] == {"B": last["requests"]}
    assert [phase for _, phase in load["phases"]] == PHASES_IN_ORDER
    status = json.loads((workdir / "status.json").read_text())
    assert status["phase"] == "completed" and status["decommission"]["done"] is True
    receiver = json.loads((workdir / "run" / "receiver-state.json").read_text())
    (key,) = receiver["deletions"]  # one deletion, keyed by sha256(run id : plan digest), signed (else 401)
    assert re.fullmatch(r"[0-9a-f]{64}", key) and receiver["rejected"] == []
    assert [n["event"] for n in receiver["notifications"]] == ["gate-flip", "flipped", "gate-decommission", "completed"]

    pids = started_pids(result.stdout)
    assert len(pids) == 8, result.stdout[:3000]
    assert not any(alive(pid) for pid in pids)
    assert processes_in(workdir) == []


@pytest.mark.e2e
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("sig", "code", "message"),
    [
        (signal.SIGINT, 130, "interrupted (Ctrl-C): every process the demo started is stopped"),
        (signal.SIGTERM, 143, "terminated (SIGTERM): every process the demo started is stopped"),
    ],
    ids=["ctrl-c", "sigterm"],
)
def test_ctrl_c_and_sigterm_stop_everything_the_demo_started(tmp_path, sig, code, message):
    workdir = tmp_path / "demo"
    log = tmp_path / "demo.out"
    with open(log, "w") as out:
        demo = subprocess.Popen(demo_command(workdir), cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "started cutover-orders-api" not in log.read_text():
            assert demo.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        pids = started_pids(log.read_text())
        assert len(pids) == 8 and all(alive(pid) for pid in pids)
        demo.send_signal(sig)
        assert demo.wait(timeout=60) == code, log.read_text()[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert message in log.read_text()
    assert not any(alive(pid) for pid in pids)
    assert processes_in(workdir) == []
