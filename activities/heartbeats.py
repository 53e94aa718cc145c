"""One keepalive for every long activity: heartbeat on progress, and repeat it while nothing happens.

Heartbeats carry a cancellation (``abort``) to a running activity and show its progress in the UI;
a provider call may block for longer than the heartbeat timeout (a slow API call, a multi-GB file read
in a thread, a poll pause), so progress alone isn't enough: the latest details are repeated every
``every`` seconds until the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from temporalio import activity

HEARTBEAT_FLUSH_SECONDS = 2.0
"""How often the worker sends an activity's latest heartbeat to the server (worker.py's throttle).

A cancellation (``abort``) reaches a running activity in the answer to such a send, and a monitor
resumes from the last one sent, so this bounds both. Heartbeating more often than this costs the
worker CPU and only replaces details before they are sent.
"""


class KeepAlive:
    """Heartbeat ``details()`` now, on every :meth:`progress`, and every ``every`` seconds until exit."""

    def __init__(self, details: Any, every: float) -> None:
        """Args: details: the first details, or a callable giving the current ones; every: seconds."""
        self._details: Callable[[], Any] = details if callable(details) else (lambda: details)
        self._every = every
        self._task: asyncio.Task[None] | None = None

    def progress(self, details: Any) -> None:
        """New progress (a providers' ``on_progress``): heartbeat it now and keep repeating it."""
        self._details = lambda: details
        activity.heartbeat(details)

    def progress_from_thread(self, details: Any) -> None:
        """New progress told by a read running in a thread: recorded, and heartbeated by the repeat.

        ``activity.heartbeat`` needs the activity's event loop, which a thread doesn't have.
        """
        self._details = lambda: details

    async def _repeat(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            activity.heartbeat(self._details())

    async def __aenter__(self) -> KeepAlive:
        activity.heartbeat(self._details())
        self._task = asyncio.get_running_loop().create_task(self._repeat())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
