"""The replay check: replay real histories against this code before deploying it.

A cutover runs for hours or days, and a new worker takes over its open runs by replaying their
history with the new code. A change that makes the code issue different commands for the same
history (a step moved, an upsert added, a patch removed) fails every such run's workflow task with
a nondeterminism error (TMPRL1100) until the old code is back. Replaying the namespace's recent
histories with the new code first turns that outage into a failed check:

    python worker.py --replay-check --since 7d                  # the namespace's runs, open or recent
    python worker.py --replay-check --histories DIR             # files from `temporal workflow show -o json`
    python worker.py --replay-check --query "CutoverRecord='api.example.com.'"

The worker builds the Replayer (the same workflows, data converter and sandbox as ``build_worker``),
so what is checked is what will run. CI replays the golden histories through :func:`replay`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

DEFAULT_SINCE = timedelta(days=7)
_CORE_MESSAGE = re.compile(r'message: "(.*?)", source:')


class ReplayCheckError(Exception):
    """The check could not run (unreadable history file, empty directory): nothing was replayed."""


@dataclass(frozen=True)
class Replayed:
    """One history replayed: its run, how long the replay took, and the nondeterminism error if any."""

    workflow_id: str
    run_id: str
    events: int
    seconds: float
    failure: str | None

    @property
    def ok(self) -> bool:
        """True when the current code produced exactly the commands the history records."""
        return self.failure is None

    def line(self) -> str:
        """The one line printed for this history."""
        where = f"{self.workflow_id} (run {self.run_id}, {self.events} events, {self.seconds:.2f} s)"
        return f"ok    {where}" if self.ok else f"FAIL  {where}: {self.failure}"


def history_files(directory: Path) -> list[WorkflowHistory]:
    """Every ``*.json`` history in ``directory`` (``temporal workflow show -w ID -o json > ID.json``).

    The file name (without ``.json``) is the workflow id: the exported history does not carry it.

    Raises:
        ReplayCheckError: the directory holds no history, or a file is not one.
    """
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise ReplayCheckError(f"{directory}: no *.json history files")
    histories = []
    for path in paths:
        try:
            history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
            history.run_id  # noqa: B018 - raises unless the first event starts a workflow
        except Exception as exc:  # JSON, protobuf parse and shape errors alike: one message per file
            raise ReplayCheckError(f"{path}: not a workflow history ({type(exc).__name__}: {exc})") from None
        histories.append(history)
    return histories


def recent_query(workflow_types: Sequence[str], since: timedelta, extra: str | None, now: datetime) -> str:
    """The visibility query for the runs a deploy would replay.

    Open runs whatever their age (they are the ones the new worker takes over), and runs started
    within ``since`` (recent closed ones show the paths the code takes today). ``extra`` narrows it.
    """
    names = ", ".join(f"'{name}'" for name in workflow_types)
    start = (now - since).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    query = f"WorkflowType IN ({names}) AND (ExecutionStatus = 'Running' OR StartTime > '{start}')"
    return f"{query} AND ({extra})" if extra else query


async def _timed(
    histories: AsyncIterator[WorkflowHistory] | Iterable[WorkflowHistory], handed_over: dict[str, float]
) -> AsyncIterator[WorkflowHistory]:
    """Pass the histories on, noting when each was handed to the replayer (fetching is not replay time)."""
    if isinstance(histories, AsyncIterator):
        async for history in histories:
            handed_over[history.run_id] = time.perf_counter()
            yield history
    else:
        for history in histories:
            handed_over[history.run_id] = time.perf_counter()
            yield history


async def replay(
    histories: AsyncIterator[WorkflowHistory] | Iterable[WorkflowHistory],
    replayer: Replayer,
    on_result: Callable[[Replayed], None] | None = None,
) -> list[Replayed]:
    """Replay every history with ``replayer``; one :class:`Replayed` each, in order, also given to ``on_result``."""
    handed_over: dict[str, float] = {}
    results = []
    async with replayer.workflow_replay_iterator(_timed(histories, handed_over)) as replayed:
        async for result in replayed:
            history = result.history
            failure = result.replay_failure
            outcome = Replayed(
                workflow_id=history.workflow_id,
                run_id=history.run_id,
                events=len(history.events),
                seconds=time.perf_counter() - handed_over[history.run_id],
                failure=None if failure is None else describe_failure(failure),
            )
            results.append(outcome)
            if on_result is not None:
                on_result(outcome)
    return results


def describe_failure(failure: Exception) -> str:
    """The replay failure in one line: Core's own message (``[TMPRL1100] ...``) without its Rust debug wrapping."""
    text = str(failure)
    found = _CORE_MESSAGE.search(text)
    return f"{type(failure).__name__}: {found.group(1) if found else text}"


async def check(
    replayer: Replayer,
    *,
    client: Client | None,
    workflow_types: Sequence[str],
    since: timedelta | None,
    query: str | None,
    histories_dir: Path | None,
    out: Callable[[str], None] = print,
) -> int:
    """Replay the files and/or the namespace's runs, print one line each and a total; 0 if all replay.

    Raises:
        ReplayCheckError: a history file could not be read.
    """
    results: list[Replayed] = []

    def report(outcome: Replayed) -> None:
        out(outcome.line())

    if histories_dir is not None:
        files = history_files(histories_dir)
        out(f"replaying {len(files)} history file(s) from {histories_dir}")
        results += await replay(files, replayer, report)
    if client is not None:
        visibility = recent_query(workflow_types, since or DEFAULT_SINCE, query, datetime.now(UTC))
        out(f"replaying the runs of namespace {client.namespace} matching: {visibility}")
        results += await replay(client.list_workflows(visibility).map_histories(), replayer, report)
    failed = [r for r in results if not r.ok]
    if not results:
        out("nothing to replay: no run matched")
        return 0
    slowest = max(r.seconds for r in results)
    out(f"{len(results)} replayed, {len(failed)} failed (slowest {slowest:.2f} s)")
    if failed:
        out(
            "do not deploy this code: the runs above would fail their workflow tasks. Guard the change with "
            "workflow.patched(...) (docs/operations.md, 'Upgrading the worker while cutovers are open')"
        )
    return 1 if failed else 0
