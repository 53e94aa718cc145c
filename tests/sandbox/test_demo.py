"""The demo as a user runs it: a whole cutover under load, on loopback, then nothing left running.

The cleanup tests run the full topology (the demo has no smaller one) but stop it as soon as the run
has started, so each costs about the topology's start-up (a few seconds) plus its stop.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.topology import MARKER, REPO_ROOT, process_identity
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


def progress_lines(output: str) -> list[str]:
    """What the demo prints while it follows the run: from the run's start to its final status."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "started cutover-orders-api" in line)
    end = next(i for i, line in enumerate(lines) if "== final status" in line)
    return lines[start:end]


def stamp_seconds(line: str) -> int:
    minutes, seconds = line[1:6].split(":")
    return int(minutes) * 60 + int(seconds)


def wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    return log.read_text()


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
    # "starting" (taking the record's lock, before verifying) shows only when a poll falls in it
    seen = [p for p in re.findall(r"== phase: (\S+)", output) if p != "starting"]
    assert seen == PHASES_IN_ORDER, seen
    assert wall < 150, f"the demo took {wall:.0f} s"

    # Without a terminal: one line per event, a heartbeat at most every 10 s, each step once.
    progress = progress_lines(result.stdout)
    assert len(progress) < 120, "\n".join(progress)
    beats = [stamp_seconds(line) for line in progress if re.match(r"^\[\d\d:\d\d\]   [a-z-]+ \| ", line)]
    assert beats and all(later - earlier >= 10 for earlier, later in itertools.pairwise(beats)), beats
    steps = [line[8:] for line in progress if re.match(r"^\[\d\d:\d\d\]     (ok |ERR) ", line)]
    assert len(steps) == len(set(steps)) and len(steps) >= 15, steps

    chart = workdir / "load.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    load = json.loads((workdir / "load.json").read_text())
    assert load["failed"] == 0 and load["requests"] >= 20 * 50
    assert load["served_by"]["A"] > 0 and load["served_by"]["B"] > 0
    first, last = load["buckets"][0], load["buckets"][-1]
    assert first["served"] == {"A": first["requests"]}
    assert last["served"] == {"B": last["requests"]}
    assert [phase for _, phase in load["phases"] if phase != "starting"] == PHASES_IN_ORDER
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
        (signal.SIGHUP, 129, "hung up (SIGHUP: terminal closed): every process the demo started is stopped"),
    ],
    ids=["ctrl-c", "sigterm", "sighup-to-the-process-group"],
)
def test_ctrl_c_sigterm_and_a_closed_terminal_stop_everything_the_demo_started(tmp_path, sig, code, message):
    workdir = tmp_path / "demo"
    log = tmp_path / "demo.out"
    with open(log, "w") as out:
        demo = subprocess.Popen(
            demo_command(workdir), cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        pids = started_pids(wait_for_line(log, "started cutover-orders-api", demo))
        assert len(pids) == 8 and all(alive(pid) for pid in pids)
        if sig == signal.SIGHUP:
            os.killpg(demo.pid, sig)  # what a closed terminal or a dropped SSH session sends
        else:
            demo.send_signal(sig)
        assert demo.wait(timeout=60) == code, log.read_text()[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert message in log.read_text()
    assert not any(alive(pid) for pid in pids)
    assert processes_in(workdir) == []


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_closing_the_demos_stdout_stops_everything_it_started(tmp_path):
    workdir = tmp_path / "demo"
    with open(tmp_path / "demo.err", "w") as err:
        demo = subprocess.Popen(
            demo_command(workdir), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=err, start_new_session=True, text=True
        )
    try:
        assert demo.stdout is not None
        seen = []
        for line in demo.stdout:  # as `make demo | head -40` reads it
            seen.append(line)
            if "started cutover-orders-api" in line:
                break
        pids = started_pids("".join(seen))
        assert len(pids) == 8 and all(alive(pid) for pid in pids), "".join(seen)
        demo.stdout.close()  # the reader goes away; the demo prints nothing for a while now
        assert demo.wait(timeout=60) == 141, (tmp_path / "demo.err").read_text()[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert not any(alive(pid) for pid in pids)
    assert processes_in(workdir) == []
    assert "Traceback" not in (tmp_path / "demo.err").read_text()


@pytest.mark.e2e
@pytest.mark.timeout(150)
def test_a_demo_killed_with_sigkill_has_its_leftovers_stopped_by_the_next_demo(tmp_path):
    workdir = tmp_path / "demo"
    first_log, second_log = tmp_path / "first.out", tmp_path / "second.out"
    with open(first_log, "w") as out:
        first = subprocess.Popen(
            demo_command(workdir), cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    second = None
    try:
        pids = started_pids(wait_for_line(first_log, "started cutover-orders-api", first))
        identities = {pid: process_identity(pid) for pid in pids}
        first.kill()  # SIGKILL: no handler, no atexit, no cleanup
        first.wait()
        time.sleep(0.5)
        assert all(alive(pid) for pid in pids), "the components should outlive a demo killed with SIGKILL"

        with open(second_log, "w") as out:
            second = subprocess.Popen(
                demo_command(workdir), cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        output = wait_for_line(second_log, "sandbox up", second)
        assert re.search(r"stopped 8 process\(es\) a crashed run left in", output), output
        survivors = [pid for pid in pids if alive(pid) and process_identity(pid) == identities[pid]]
        assert survivors == [], f"children of the killed demo still run: {survivors}"
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 143, second_log.read_text()[-3000:]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert processes_in(workdir) == []
