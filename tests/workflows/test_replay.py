"""Replay the committed golden histories through the replay check: a non-deterministic change fails here.

Running cutovers live for hours or days; a worker deployed mid-run replays their history with the new
code. The check is the one operators run before a deploy (``worker.py --replay-check``,
cli/replay_check.py), with the worker's own Replayer (workflows, data converter, sandbox). Record new
histories with ``python -m tests.workflows.record_histories``; never re-record an existing one (it
stands for open runs of the code that wrote it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from cli.replay_check import history_files, replay
from worker import build_replayer
from workflows.lock import CutoverLock

DIRECTORY = Path(__file__).parent / "histories"
ROOT = Path(__file__).resolve().parents[2]


def test_every_path_has_a_golden_history():
    names = {path.stem for path in DIRECTORY.glob("*.json")}
    assert {
        "completed-cname",
        "completed-alias-gates",
        "rolled-back-abort-alias",
        "rolled-back-unhealthy",
        "cancelled-before-point-of-no-return",
        "completed-hybrid-data-planes",
        "completed-gate-timeout-wait",
        "failed-undo-kong-restore",
        "failed-after-point-of-no-return",
        "failed-gcp-delete-undeleted",
        "rolled-back-malformed-signals",
        "refused-record-locked",
        "lock-released",
        "completed-locks-awaited",
    } <= names


async def test_every_golden_history_replays_with_the_current_code():
    histories = history_files(DIRECTORY)
    results = await replay(histories, build_replayer(pydantic_data_converter))
    assert [r.workflow_id for r in results] == [h.workflow_id for h in histories]
    failures = [r.line() for r in results if not r.ok]
    assert not failures, "\n".join(failures)


def test_the_command_line_replays_the_golden_histories():
    """What CI and an operator run: one line per history, exit 0."""
    done = subprocess.run(
        [sys.executable, "worker.py", "--replay-check", "--histories", str(DIRECTORY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    count = len(list(DIRECTORY.glob("*.json")))
    assert sum(line.startswith("ok    ") for line in done.stdout.splitlines()) == count, done.stdout
    assert f"{count} replayed, 0 failed" in done.stdout


@workflow.defn(name="CutoverWorkflow", sandboxed=False)
class ReorderedCutover:
    """A deliberately incompatible variant: reads Kong before DNS."""

    @workflow.run
    async def run(self, plan: Any) -> None:
        await workflow.execute_activity("kong_inspect", plan, start_to_close_timeout=timedelta(seconds=5))


async def test_the_replay_check_catches_a_reordered_workflow():
    path = DIRECTORY / "completed-cname.json"
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    replayer = build_replayer(pydantic_data_converter, workflows=[ReorderedCutover, CutoverLock])
    [result] = await replay([history], replayer)
    assert not result.ok
    assert result.failure is not None and "Nondeterminism" in result.failure, result.failure
    assert result.line().startswith("FAIL  completed-cname (run ")


def test_an_unreadable_history_file_is_named(tmp_path):
    (tmp_path / "broken.json").write_text('{"events": [{"eventType": "nonsense"}]}')
    done = subprocess.run(
        [sys.executable, "worker.py", "--replay-check", "--histories", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "broken.json: not a workflow history" in done.stderr, done.stderr
