"""bench.cost's worker: ``python worker.py`` plus the null workflow, optionally profiled.

    python -m bench.cost_worker [--profile DIR] [--dns-queries FILE] -- <worker.py arguments>

The product worker exactly (same policy, activities, sandbox, options), with bench/null_workflow.py
registered beside cutover's workflows, so both run through one worker and one server. With
``--profile DIR``, every thread that runs Python (the event loop running the activities and the
workflow-task threads) is profiled with cProfile from the start; each SIGUSR1 writes what was
profiled since the previous one to ``DIR/profile-<n>.pstats`` and starts afresh. With
``--dns-queries FILE``, every DNS message the worker sends is counted by the activity that sent it and
its type; each SIGUSR2 writes the counts since the previous one to FILE (JSON) and starts afresh.
"""

from __future__ import annotations

import cProfile
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import dns.asyncquery
import dns.message
import dns.opcode
import dns.rdatatype
from temporalio import activity

import providers.dns.exchange
import worker
from bench.null_workflow import NullLock, NullWorkflow, null_activity
from workflows.registry import WORKFLOWS


class ThreadProfiles:
    """One cProfile profiler per thread (cProfile sees only the thread that enabled it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.profiles: list[cProfile.Profile] = []
        self.dumps = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        """Profile this thread now and every thread started from now on."""
        threading.setprofile(self._enable_in_new_thread)
        self._enable()

    def _enable(self) -> None:
        # CPU time of this thread, not wall time: a wait in epoll must not count as work.
        profile = cProfile.Profile(time.thread_time)
        with self._lock:
            self.profiles.append(profile)
        profile.enable()

    def _enable_in_new_thread(self, frame: FrameType, event: str, arg: Any) -> None:
        sys.setprofile(None)
        self._enable()

    def dump(self, signum: int = 0, frame: FrameType | None = None) -> None:
        """Write every thread's figures since the last dump as one pstats file; start afresh."""
        import pstats

        self.dumps += 1
        path = self.directory / f"profile-{self.dumps}.pstats"
        with self._lock:
            snapshots = []
            for profile in self.profiles:
                profile.snapshot_stats()
                snapshots.append(_Snapshot(dict(profile.stats)))
                profile.clear()
        if snapshots:
            pstats.Stats(*snapshots).dump_stats(str(path))  # type: ignore[arg-type]


class _Snapshot:
    """What pstats.Stats accepts from a profiler: ``create_stats()`` then ``.stats``."""

    def __init__(self, stats: dict[Any, Any]) -> None:
        self.stats = stats

    def create_stats(self) -> None:
        """Already made."""


class QueryCounter:
    """Count the DNS messages the worker sends, by sending activity and query type (UPDATE for updates)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: dict[str, dict[str, int]] = {}

    def install(self) -> None:
        """Wrap the two places the product sends DNS messages from: queries over UDP, and TCP."""
        udp = providers.dns.exchange.Session.exchange
        tcp = dns.asyncquery.tcp

        async def counted_udp(
            session: providers.dns.exchange.Session,
            queries: Sequence[tuple[dns.message.Message, bytes]],
            *args: Any,
            **kwargs: Any,
        ) -> list[dns.message.Message]:
            for query, _ in queries:
                self.count(query)
            return await udp(session, queries, *args, **kwargs)

        async def counted_tcp(query: dns.message.Message, *args: Any, **kwargs: Any) -> dns.message.Message:
            self.count(query)
            return await tcp(query, *args, **kwargs)

        providers.dns.exchange.Session.exchange = counted_udp  # type: ignore[method-assign,assignment]
        vars(dns.asyncquery)["tcp"] = counted_tcp

    def count(self, query: dns.message.Message) -> None:
        """One message, under the activity sending it."""
        sender = activity.info().activity_type if activity.in_activity() else "(outside activities)"
        if query.opcode() == dns.opcode.UPDATE:
            kind = "UPDATE"
        else:
            kind = dns.rdatatype.to_text(query.question[0].rdtype) if query.question else "?"
        by_kind = self.counts.setdefault(sender, {})
        by_kind[kind] = by_kind.get(kind, 0) + 1

    def dump(self, signum: int = 0, frame: FrameType | None = None) -> None:
        """Write the counts since the last dump; start afresh."""
        counts, self.counts = self.counts, {}
        self.path.write_text(json.dumps(counts, indent=1, sort_keys=True))


def with_null_activity(build: Callable[..., list[Callable[..., Any]]]) -> Callable[..., list[Callable[..., Any]]]:
    """``worker.build_activities`` plus the null activity."""

    def build_all(*args: Any, **kwargs: Any) -> list[Callable[..., Any]]:
        return [*build(*args, **kwargs), null_activity]

    return build_all


def main(argv: list[str]) -> int:
    """Register the null workflow beside the product's, start profiling if asked, run worker.py's main."""
    profile_dir: Path | None = None
    if argv[:1] == ["--profile"]:
        profile_dir, argv = Path(argv[1]), argv[2:]
    if argv[:1] == ["--dns-queries"]:
        counter = QueryCounter(Path(argv[1]))
        argv = argv[2:]
        counter.install()
        signal.signal(signal.SIGUSR2, counter.dump)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    # worker.py's own module globals: build_worker and serve read them when called.
    vars(worker).update(
        WORKFLOWS=[*WORKFLOWS, NullWorkflow, NullLock], build_activities=with_null_activity(worker.build_activities)
    )
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        profiles = ThreadProfiles(profile_dir)
        signal.signal(signal.SIGUSR1, profiles.dump)
        profiles.start()
    return worker.main(argv)


if __name__ == "__main__":
    worker.exit_now(main(sys.argv[1:]))
