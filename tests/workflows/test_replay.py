"""Replay the committed golden histories: a non-deterministic change to CutoverWorkflow fails here.

Running cutovers live for hours or days; a worker deployed mid-run replays their history with the new
code. Record new histories with ``python -m tests.workflows.record_histories`` only for a deliberate,
patched change (see that module).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.cutover import CutoverWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_every_path_has_a_golden_history():
    names = {path.stem for path in HISTORIES}
    assert {"completed-cname", "completed-alias-gates", "rolled-back-abort-alias", "rolled-back-unhealthy"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path):
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    replayer = Replayer(workflows=[CutoverWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


@workflow.defn(name="CutoverWorkflow", sandboxed=False)
class ReorderedCutover:
    """A deliberately incompatible variant: reads Kong before DNS."""

    @workflow.run
    async def run(self, plan: Any) -> None:
        await workflow.execute_activity("kong_inspect", plan, start_to_close_timeout=timedelta(seconds=5))


async def test_the_replay_check_catches_a_reordered_workflow():
    path = next(p for p in HISTORIES if p.stem == "completed-cname")
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    replayer = Replayer(workflows=[ReorderedCutover], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None
    assert "Nondeterminism" in str(result.replay_failure) or "does not match" in str(result.replay_failure)
