"""The parsed lines of a shared Kong file-log, kept once per worker for every reader of the file.

Every cutover monitoring through one worker reads the same file: each baseline, poll and drain proof
walks every service's lines in its span. Without this index each of N concurrent readers reads and
parses the same lines again (N² work for N cutovers); with it, the newest lines are parsed once, by
whichever reader reaches them first, and the others walk a list.

What the index holds is exactly what a reader would have read: a stretch of consecutive complete
lines of one file (device and inode), each with its byte offset and its parse (:func:`parse_line`),
ending at the last complete line anyone has read. It is a cache with a fixed size: at most
:data:`MAX_INDEXED_LINES` lines per file (the oldest are dropped) and :data:`MAX_INDEXED_FILES`
files. A reader is served in steps of at most :data:`STEP_BYTES` of file or :data:`STEP_LINES`
lines, so neither a reader nor the lock ever holds more than that:

* inside the stretch: lines come from the index;
* at the stretch's end: new lines are read, parsed, appended (the oldest dropped beyond the limit);
* before the stretch (a long history window): lines are read and parsed directly, not kept, until
  the reader reaches the stretch;
* a little past its end (a cursor opened at the end of the file): the stretch first catches up.

The stretch is checked against the file at every step: a file shorter than what was indexed, or
whose first bytes or bytes before the indexed end changed (truncated, or rewritten in place under the
same inode), is indexed again from the reader's position.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from providers.telemetry.log_lines import complete_lines, fingerprint, tail_fingerprint
from providers.telemetry.records import ProxiedRequest, parse_line
from providers.telemetry.summary import SummaryBuilder

MAX_INDEXED_LINES = 60_000
"""Lines kept per file (about 1 KiB of file each): at 100 requests/s through Kong, the last 10 minutes."""
MAX_INDEXED_FILES = 8
"""Files indexed at once (the file at the path and its followed rotated copies, for a few log paths)."""
STEP_BYTES = 1 << 20
"""File bytes read and parsed in one step (under the lock)."""
STEP_LINES = 4096
"""Indexed lines handed to a reader in one step."""
CATCH_UP_BYTES = 4 << 20
"""A reader this far past the stretch's end makes it catch up; farther, the stretch starts again there."""

Parsed = ProxiedRequest | str | None
"""A line's request, why it can't be read, or None for a blank line (not counted at all)."""
Line = tuple[int, int, Parsed]
"""``(offset, end, parsed)``: where the line starts, where the next one starts, and its parse."""


def parse(line: bytes) -> Parsed:
    """A line as a reader counts it: blank lines are skipped, others parsed (see :func:`parse_line`)."""
    raw = line.strip()
    return parse_line(raw) if raw else None


def read_lines(handle: IO[bytes], offset: int, *, stop: int | None = None) -> list[Line]:
    """The complete lines from ``offset``, parsed: about :data:`STEP_BYTES` of them, none from ``stop`` on."""
    found: list[Line] = []
    for line, start in complete_lines(handle, offset):
        if stop is not None and start >= stop:
            break
        end = start + len(line) + 1
        found.append((start, end, parse(line)))
        if end - offset >= STEP_BYTES:
            break
    return found


@dataclass
class _Stretch:
    """Consecutive complete lines of one file, from ``start`` (a line start) to ``end`` (after a newline)."""

    start: int
    end: int
    head: str = ""
    """:func:`fingerprint` of the file's first bytes when the stretch was last extended."""
    tail: str = ""
    """:func:`tail_fingerprint` of the bytes before ``end`` (a file replaced under the same inode differs)."""
    offsets: list[int] = field(default_factory=list)
    items: list[Parsed] = field(default_factory=list)


class LineIndex:
    """Per-worker index of parsed file-log lines; safe to use from several threads."""

    def __init__(self, max_lines: int = MAX_INDEXED_LINES, max_files: int = MAX_INDEXED_FILES) -> None:
        self._max_lines = max_lines
        self._max_files = max_files
        self._lock = threading.Lock()
        self._files: OrderedDict[tuple[int, int], _Stretch] = OrderedDict()

    def indexed(self, handle: IO[bytes]) -> int:
        """How many lines of this file the index holds (tests, diagnostics)."""
        stat = os.fstat(handle.fileno())
        with self._lock:
            stretch = self._files.get((stat.st_dev, stat.st_ino))
            return len(stretch.items) if stretch is not None else 0

    def lines(self, handle: IO[bytes], offset: int) -> Iterator[Line]:
        """Every complete line from ``offset`` (a line start) to the file's end, as ``(offset, end, parsed)``."""
        stat = os.fstat(handle.fileno())
        key = (stat.st_dev, stat.st_ino)
        position = offset
        while True:
            with self._lock:
                batch = self._step(handle, key, position)
            if not batch:
                return
            yield from batch
            position = batch[-1][1]

    def _step(self, handle: IO[bytes], key: tuple[int, int], position: int) -> list[Line]:
        """The next lines from ``position`` (empty at the end of the file's complete lines)."""
        stretch = self._current(handle, key)
        if stretch is not None and position < stretch.start:
            # Read directly, not kept, until the reader reaches the stretch (a line ending past its start
            # means the two are not aligned: the reader then starts a stretch of its own there).
            return read_lines(handle, position, stop=stretch.start)
        if stretch is not None and position > stretch.end and position - stretch.end <= CATCH_UP_BYTES:
            while stretch.end < position and self._append(handle, stretch, stop=position):
                pass
        if stretch is None or not self._line_start(stretch, position):
            stretch = _Stretch(start=position, end=position)
            self._install(handle, key, stretch)
        return self._step_inside(handle, key, stretch, position)

    def _step_inside(self, handle: IO[bytes], key: tuple[int, int], stretch: _Stretch, position: int) -> list[Line]:
        """Lines from ``position``, a line start of ``stretch`` or its end (then read, parsed and appended)."""
        if position == stretch.end:
            appended = self._append(handle, stretch)
            self._install(handle, key, stretch)
            return appended
        first = bisect.bisect_left(stretch.offsets, position)
        last = min(first + STEP_LINES, len(stretch.offsets))
        offsets, items = stretch.offsets, stretch.items
        return [
            (offsets[i], offsets[i + 1] if i + 1 < len(offsets) else stretch.end, items[i]) for i in range(first, last)
        ]

    def _current(self, handle: IO[bytes], key: tuple[int, int]) -> _Stretch | None:
        """The file's stretch, or None (and forgotten) when the file no longer holds what was indexed."""
        stretch = self._files.get(key)
        if stretch is None:
            return None
        size = os.fstat(handle.fileno()).st_size
        valid = size >= stretch.end and (
            stretch.end == 0
            or (
                fingerprint(handle, stretch.end) == stretch.head
                and tail_fingerprint(handle, stretch.end) == stretch.tail
            )
        )
        if not valid:
            del self._files[key]
            return None
        return stretch

    @staticmethod
    def _line_start(stretch: _Stretch, position: int) -> bool:
        """True when ``position`` is one of the stretch's line starts or its end (where new lines begin)."""
        if position == stretch.end:
            return True
        index = bisect.bisect_left(stretch.offsets, position)
        return index < len(stretch.offsets) and stretch.offsets[index] == position

    def _append(self, handle: IO[bytes], stretch: _Stretch, *, stop: int | None = None) -> list[Line]:
        """Read, parse and append the lines after the stretch (up to ``stop``); drop the oldest beyond the limit."""
        appended = read_lines(handle, stretch.end, stop=stop)
        if appended:
            stretch.offsets.extend(start for start, _, _ in appended)
            stretch.items.extend(parsed for _, _, parsed in appended)
            stretch.end = appended[-1][1]
            stretch.head = fingerprint(handle, stretch.end)
            stretch.tail = tail_fingerprint(handle, stretch.end)
            excess = len(stretch.items) - self._max_lines
            if excess > 0:
                # New lists: a reader's step holds tuples, never these lists, so nothing it walks changes.
                stretch.offsets = stretch.offsets[excess:]
                stretch.items = stretch.items[excess:]
                stretch.start = stretch.offsets[0]
        return appended

    def _install(self, handle: IO[bytes], key: tuple[int, int], stretch: _Stretch) -> None:
        """Keep the stretch as the file's (the least recently used file goes first when there are too many)."""
        if stretch.end == stretch.start:
            stretch.head = fingerprint(handle, stretch.end)
            stretch.tail = tail_fingerprint(handle, stretch.end)
        self._files[key] = stretch
        self._files.move_to_end(key)
        while len(self._files) > self._max_files:
            self._files.popitem(last=False)


SHARED = LineIndex()
"""The worker's index: every :class:`~providers.telemetry.file_log.KongFileLog` reads through it."""


def count(parsed: Parsed, path: str, offset: int, builder: SummaryBuilder) -> None:
    """Count one indexed line: a request into the builder, an unreadable one as a failure at ``path:offset``."""
    if parsed is None:
        return
    if isinstance(parsed, str):
        builder.failure(parsed, f"{path}:{offset}")
    else:
        builder.add(parsed)
