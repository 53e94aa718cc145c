"""The parsed lines of a shared Kong file-log, kept once per worker for every reader of the file.

Every cutover monitoring through one worker reads the same file: each baseline, poll and drain proof
walks every service's lines in its span. Without this index each of N concurrent readers reads and
parses the same lines again (N² work for N cutovers); with it, the first reader of a stretch of the
file parses it and the others walk a list.

What the index holds is exactly what a reader would have read: the complete lines of one file
(device and inode), each with its byte offset and its parse (:func:`parse_line`), between two line
starts. It is checked against the file at every read: a file shorter than what was indexed, or whose
first bytes changed (truncated and rewritten in place), is indexed again from scratch. A reader
starting before the indexed stretch extends it backwards; lines appended since are read and parsed
once, by whichever reader comes first. The stretch is bounded (:data:`MAX_INDEXED_LINES`; its
oldest lines are dropped first) and so is the number of files (:data:`MAX_INDEXED_FILES`).
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

Parsed = ProxiedRequest | str | None
"""A line's request, why it can't be read, or None for a blank line (not counted at all)."""


def parse(line: bytes) -> Parsed:
    """A line as a reader counts it: blank lines are skipped, others parsed (see :func:`parse_line`)."""
    raw = line.strip()
    return parse_line(raw) if raw else None


@dataclass
class _Stretch:
    """Consecutive complete lines of one file, from ``start`` (a line start) to ``end`` (after a newline)."""

    head: str
    """:func:`fingerprint` of the file's first bytes when the stretch was last extended."""
    tail: str
    """:func:`tail_fingerprint` of the bytes before ``end`` (a file replaced under the same inode differs)."""
    start: int
    end: int
    offsets: list[int] = field(default_factory=list)
    items: list[Parsed] = field(default_factory=list)


class LineIndex:
    """Per-worker index of parsed file-log lines; safe to use from several threads."""

    def __init__(self, max_lines: int = MAX_INDEXED_LINES, max_files: int = MAX_INDEXED_FILES) -> None:
        self._max_lines = max_lines
        self._max_files = max_files
        self._lock = threading.Lock()
        self._files: OrderedDict[tuple[int, int], _Stretch] = OrderedDict()

    def lines(self, handle: IO[bytes], offset: int) -> Iterator[tuple[int, int, Parsed]]:
        """``(offset, end, parsed)`` for every complete line from ``offset`` (a line start) to the file's end.

        ``end`` is the offset just after the line's newline: where a cursor that read it stands.
        """
        offsets, items, first, last, end = self._prepare(handle, offset)
        for index in range(first, last):
            following = offsets[index + 1] if index + 1 < last else end
            yield offsets[index], following, items[index]

    def _prepare(self, handle: IO[bytes], offset: int) -> tuple[list[int], list[Parsed], int, int, int]:
        """Bring the file's stretch up to date and cover ``offset``; return a stable view of it."""
        stat = os.fstat(handle.fileno())
        key = (stat.st_dev, stat.st_ino)
        with self._lock:
            stretch = self._files.get(key)
            if stretch is not None and not self._still_valid(handle, stat.st_size, stretch):
                stretch = None
            if stretch is not None and offset < stretch.start and not self._extend_back(handle, stretch, offset):
                stretch = None
            if stretch is not None and not self._line_start(stretch, offset):
                stretch = None
            if stretch is None:
                stretch = _Stretch(head="", tail="", start=offset, end=offset)
            self._extend(handle, stretch)
            stretch.head = fingerprint(handle, stretch.end)
            stretch.tail = tail_fingerprint(handle, stretch.end)
            self._trim(stretch, keep_from=offset)
            self._files[key] = stretch
            self._files.move_to_end(key)
            while len(self._files) > self._max_files:
                self._files.popitem(last=False)
            first = bisect.bisect_left(stretch.offsets, offset)
            # The lists are only appended to under the lock and replaced (never cut) when trimmed, so the
            # view below stays valid while readers walk it without the lock.
            return stretch.offsets, stretch.items, first, len(stretch.items), stretch.end

    @staticmethod
    def _still_valid(handle: IO[bytes], size: int, stretch: _Stretch) -> bool:
        """False when the file was truncated (and maybe rewritten) since the stretch was read."""
        if size < stretch.end:
            return False
        return (
            fingerprint(handle, stretch.end) == stretch.head and tail_fingerprint(handle, stretch.end) == stretch.tail
        )

    @staticmethod
    def _line_start(stretch: _Stretch, offset: int) -> bool:
        """True when ``offset`` is one of the stretch's line starts or its end (where new lines begin)."""
        if offset == stretch.end:
            return True
        index = bisect.bisect_left(stretch.offsets, offset)
        return index < len(stretch.offsets) and stretch.offsets[index] == offset

    @staticmethod
    def _extend(handle: IO[bytes], stretch: _Stretch) -> None:
        """Append the complete lines written after the stretch."""
        for line, line_offset in complete_lines(handle, stretch.end):
            stretch.offsets.append(line_offset)
            stretch.items.append(parse(line))
            stretch.end = line_offset + len(line) + 1

    @staticmethod
    def _extend_back(handle: IO[bytes], stretch: _Stretch, offset: int) -> bool:
        """Prepend the lines from ``offset`` to the stretch's start (new lists: readers hold the old ones).

        False when the lines from ``offset`` don't meet the stretch at a line start.
        """
        offsets: list[int] = []
        items: list[Parsed] = []
        reached = offset
        for line, line_offset in complete_lines(handle, offset):
            reached = line_offset
            if line_offset >= stretch.start:
                break
            offsets.append(line_offset)
            items.append(parse(line))
        if reached != stretch.start:
            return False
        stretch.offsets = offsets + stretch.offsets
        stretch.items = items + stretch.items
        stretch.start = offset
        return True

    def _trim(self, stretch: _Stretch, keep_from: int) -> None:
        """Drop the oldest lines beyond the limit, never the ones the current reader is about to walk."""
        excess = len(stretch.items) - self._max_lines
        if excess <= 0:
            return
        cut = min(excess, bisect.bisect_left(stretch.offsets, keep_from))
        if cut <= 0:
            return
        stretch.offsets = stretch.offsets[cut:]
        stretch.items = stretch.items[cut:]
        stretch.start = stretch.offsets[0] if stretch.offsets else stretch.end


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
