"""The demo's own logic: timings that fit the load, what the progress line says, the commands it prints."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta

import pytest

from cli.live import current_activity as _current_activity
from models.workflow import CutoverStatus, StepRecord, WaitRecord
from sandbox.demo import _approve_cli, _starter_cli, build_parser, demo_timings
from sandbox.topology import Topology


def status(**fields) -> CutoverStatus:
    base = {
        "name": "orders-api",
        "workflow_id": "cutover-orders-api",
        "phase": "draining",
        "plan_digest": "d" * 64,
        "strategy": "cname",
        "record": "a-project.example.test.",
        "target": "b-project.example.test.",
    }
    return CutoverStatus.model_validate({**base, **fields})


@pytest.mark.parametrize(("rate", "expected"), [(20, 50), (4, 40), (1, 10), (0.01, 1)])
def test_min_requests_stays_below_what_the_load_sends_in_a_window(rate, expected):
    assert demo_timings(rate).min_requests == expected


def test_progress_shows_the_running_wait_with_its_reason_and_time_left():
    now = datetime.now(UTC)
    text = _current_activity(
        status(
            waits=[
                WaitRecord(phase="lowering-ttl", seconds=22, reason="old TTL", until=now - timedelta(seconds=30)),
                WaitRecord(
                    phase="draining", seconds=19, reason="cutover TTL + Kong", until=now + timedelta(seconds=12.2)
                ),
            ]
        )
    )
    assert text == "wait 19 s (12 s left): cutover TTL + Kong"


def test_progress_shows_the_running_step_or_the_gate():
    started = datetime.now(UTC) - timedelta(seconds=7.4)
    running = status(
        phase="monitoring",
        timeline=[
            StepRecord(phase="flipping", step="Flip", started_at=started, finished_at=started, ok=True),
            StepRecord(phase="monitoring", step="Monitor traffic window 1 (20s)", started_at=started),
        ],
    )
    assert _current_activity(running) == "Monitor traffic window 1 (20s) (7 s)"
    gate = status(phase="awaiting-flip-approval", gates_awaited=["flip"])
    assert _current_activity(gate) == "waiting for approval: flip"
    assert _current_activity(status()) == "-"


def test_printed_commands_name_this_server_and_the_digest(tmp_path):
    topo = Topology(tmp_path, ports="auto")
    command = shlex.split(_approve_cli(topo, "cutover-orders-api", "flip", "d" * 64))
    assert command[0].endswith("temporal")
    assert command[1:4] == ["workflow", "update", "execute"]
    assert command[command.index("--address") + 1] == topo.temporal_address
    assert '"digest": "' + "d" * 64 + '"' in command[command.index("--input") + 1]
    starter = shlex.split(_starter_cli(topo, "status cutover-orders-api"))
    assert starter[0] == f"TEMPORAL_ADDRESS={topo.temporal_address}"
    assert starter[2].endswith("starter.py") and starter[3:] == ["status", "cutover-orders-api"]


def test_command_line_defaults():
    args = build_parser().parse_args([])
    assert (args.strategy, args.auto_approve, args.rate, args.exit_when_done, args.workdir, args.ports) == (
        "cname",
        False,
        20.0,
        False,
        ".demo",
        "default",
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--strategy", "weighted"])
