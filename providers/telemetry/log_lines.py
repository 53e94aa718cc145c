"""A growing file of JSON lines, read by byte offset.

Positions that survive rotation, complete lines only, and a binary search for the first line a time
window needs (the lines of Kong's file-log are in the order their requests finished).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO

from providers.telemetry.base import Cursor, decoding_cursor, from_rfc3339

HEAD_BYTES = 256
"""Bytes fingerprinted at the start of a file to notice it was truncated and rewritten past our offset."""
WRITE_ORDER_SLACK = timedelta(minutes=5)
"""How far out of finishing order a line may be written (Kong writes in the log phase, so seconds at
most: nginx workers append concurrently). Lines that finished this long before a window's start are
skipped without being read."""
SEARCH_BELOW_BYTES = 1 << 20
"""Files smaller than this are simply read from the start; a search would not save anything."""
READ_CHUNK = 1 << 20
"""Bytes read at once when walking lines."""
SEARCH_PROBE_LINES = 8
"""At a probe point, this many lines are tried for a time before the search gives up and reads on."""


@dataclass
class FilePosition:
    """Where reading stopped in one file (a JSON-serialisable part of the cursor)."""

    device: int
    inode: int
    offset: int
    head: str
    """sha256 of the file's first ``min(offset, HEAD_BYTES)`` bytes."""

    def same_file(self, stat: os.stat_result) -> bool:
        """True when ``stat`` is of this position's file (device and inode: a rename keeps them)."""
        return self.device == stat.st_dev and self.inode == stat.st_ino


def fingerprint(handle: IO[bytes], length: int) -> str:
    """sha256 of a file's first ``min(length, HEAD_BYTES)`` bytes (its identity across a truncation)."""
    handle.seek(0)
    return hashlib.sha256(handle.read(min(length, HEAD_BYTES))).hexdigest()


def end_of_last_line(handle: IO[bytes], size: int) -> int:
    """The offset just after the last newline: a cursor opened now starts at a line boundary."""
    position = size
    while position > 0:
        start = max(0, position - 65536)
        handle.seek(start)
        chunk = handle.read(position - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def tail_fingerprint(handle: IO[bytes], end: int) -> str:
    """sha256 of the ``HEAD_BYTES`` bytes before ``end`` (the newest lines read: timestamps, so unique)."""
    start = max(0, end - HEAD_BYTES)
    handle.seek(start)
    return hashlib.sha256(handle.read(end - start)).hexdigest()


EMPTY_HEAD = hashlib.sha256(b"").hexdigest()
"""The fingerprint of a position at offset 0."""


def decode_cursor(cursor: Cursor, path: str) -> tuple[datetime, list[FilePosition]]:
    """The poll time and file positions of a cursor.

    Raises:
        InvalidCursor: a field is missing or of the wrong type, or the cursor is another file's.
    """

    def decode() -> tuple[datetime, list[FilePosition]]:
        if cursor["path"] != path:
            raise ValueError(f"the cursor follows {cursor['path']}, not {path}")
        positions = []
        for item in cursor["files"]:
            position = FilePosition(**item)
            if not all(isinstance(value, int) for value in (position.device, position.inode, position.offset)):
                raise TypeError("device, inode and offset must be integers")
            if not isinstance(position.head, str) or position.offset < 0:
                raise ValueError("bad head or offset")
            positions.append(position)
        return from_rfc3339(cursor["polled_at"]), positions

    return decoding_cursor(decode)


def complete_lines(handle: IO[bytes], offset: int) -> Iterator[tuple[bytes, int]]:
    """Yield ``(line, offset)`` for each newline-terminated line from ``offset`` (the newline left off).

    A partial last line (its writer has not finished it) is not yielded. The file is read in
    :data:`READ_CHUNK` blocks and split, not line by line: ``readline`` on every line of a shared log
    was most of what a history read cost the worker (bench.cost, py-spy).
    """
    handle.seek(offset)
    pending = b""
    while True:
        chunk = handle.read(READ_CHUNK)
        if not chunk:
            return
        data = pending + chunk if pending else chunk
        end = data.rfind(b"\n") + 1
        if end == 0:
            pending = data
            continue
        lines = data[:end].split(b"\n")
        lines.pop()  # the empty piece after the last newline
        for line in lines:
            yield line, offset
            offset += len(line) + 1
        pending = data[end:]


def finished_at(line: bytes) -> float | None:
    """When a serialized request finished (epoch seconds), or None when the line doesn't say."""
    try:
        record = json.loads(line)
        started_ms = record["started_at"]
        latencies = record.get("latencies") or {}
        total_ms = latencies.get("request") or 0
        if not isinstance(started_ms, (int, float)) or not isinstance(total_ms, (int, float)):
            return None
        return (started_ms + max(total_ms, 0)) / 1000
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def probe_line(handle: IO[bytes], position: int, limit: int) -> tuple[int, float] | None:
    """The start of the first complete line after ``position`` (before ``limit``) and when it finished."""
    handle.seek(position)
    if position > 0:
        handle.readline()  # the rest of the line the position fell into
    for _ in range(SEARCH_PROBE_LINES):
        start = handle.tell()
        if start >= limit:
            return None
        line = handle.readline()
        if not line.endswith(b"\n"):
            return None
        finished = finished_at(line)
        if finished is not None:
            return start, finished
    return None


def first_relevant_offset(handle: IO[bytes], size: int, not_before: datetime) -> int:
    """A line start before which every line finished before ``not_before`` - slack (binary search).

    Returns 0 for small files, and stops narrowing where the lines carry no time (garbage, another
    format): reading more than needed is always safe, skipping a relevant line never is.
    """
    if size < SEARCH_BELOW_BYTES:
        return 0
    target = (not_before - WRITE_ORDER_SLACK).timestamp()
    low, high = 0, size
    while high - low > 65536:
        probe = probe_line(handle, (low + high) // 2, high)
        if probe is None:
            break
        start, finished = probe
        if finished < target:
            low = start
        else:
            high = (low + high) // 2
    return low
