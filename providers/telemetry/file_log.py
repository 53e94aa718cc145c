"""Kong's file-log plugin output: one PDK-serializer JSON object per line (kong.md §4.2).

The file is tailed incrementally. A cursor remembers, per file, its device and inode, the byte offset
just after the last complete line, and a fingerprint of its first bytes. That is enough to survive
what log rotation does to a file between two polls:

* **append**: read from the offset to the last complete line; a partial last line is carried to the
  next poll by not moving the offset past it (the writer has not finished it yet);
* **rotation** (rename, then a new file at the path): the renamed file is found again by its inode
  in the same directory and read to its end, then the new file is read from its start. Kong keeps
  writing to the renamed file until it reopens it (file-log ``reopen: false``), so rotated files are
  followed while they exist (at most :data:`MAX_FOLLOWED_FILES`);
* **truncation in place** (``copytruncate``): the file is shorter than the offset, or its first bytes
  changed: read again from the start, with a note that lines written between the last poll and the
  truncation went to the copy.

History windows (:meth:`KongFileLog.read_window`) read the file and its uncompressed rotated siblings
and keep the requests whose ``started_at`` falls in the window. :meth:`KongFileLog.read_latest` reads
the same way once and returns a cursor positioned where the reading stopped, so a long watch never
reads the files again. Neither reads a large file from its beginning: Kong writes a line when its
request has finished, so the lines are in the order their requests finished (``started_at`` +
``latencies.request``), and a binary search finds the first line that can matter (one that finished
no earlier than :data:`WRITE_ORDER_SLACK` before the window starts). A baseline or drain proof then
costs the window's lines, not the whole day's, and many concurrent cutovers on one log stay cheap.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import IO, ClassVar

from models.plan import KongFileLogSource
from models.telemetry import WindowSummary
from providers.errors import ConfigError, TelemetryUnavailable
from providers.telemetry import line_index
from providers.telemetry.base import (
    Cursor,
    HistoricalTelemetrySource,
    Progress,
    to_rfc3339,
    utc_now,
)
from providers.telemetry.log_lines import (
    EMPTY_HEAD,
    HEAD_BYTES,
    FilePosition,
    decode_cursor,
    end_of_last_line,
    fingerprint,
    first_relevant_offset,
)
from providers.telemetry.summary import SummaryBuilder

PROGRESS_EVERY_LINES = 10_000
"""A long scan reports its progress this often, so the activity's heartbeats show it moving."""
MAX_FOLLOWED_FILES = 4
"""The file at the path plus this many minus one rotated files are followed at once."""
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip")


class KongFileLog(HistoricalTelemetrySource):
    """Read the JSON lines Kong's file-log plugin writes to ``source.path``."""

    kind: ClassVar[str] = "kong-file-log"

    def __init__(self, source: KongFileLogSource, service: str | None) -> None:
        super().__init__(service)
        self.path = source.path

    @property
    def description(self) -> str:
        """E.g. ``kong-file-log /var/log/kong/file-log.json``."""
        return f"{self.kind} {self.path}"

    # --- the cursor --------------------------------------------------------------------------------

    async def open_cursor(self) -> Cursor:
        """Start at the end of the file's last complete line.

        Raises:
            TelemetryUnavailable: the file does not exist (yet).
            ConfigError: the worker may not read it.
        """
        return await asyncio.to_thread(self._open_cursor)

    def _open_cursor(self) -> Cursor:
        now = utc_now()
        return self._cursor(now, [self._position_at_end(self.path)])

    def _cursor(self, polled_at: datetime, positions: list[FilePosition]) -> Cursor:
        """The cursor: the newest :data:`MAX_FOLLOWED_FILES` positions, the file at the path last."""
        return {
            "path": self.path,
            "polled_at": to_rfc3339(polled_at),
            "files": [asdict(position) for position in positions[-MAX_FOLLOWED_FILES:]],
        }

    def _position_at_end(self, path: str) -> FilePosition:
        """The end of ``path``'s last complete line, found without reading the lines before it."""
        try:
            with open(path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                offset = end_of_last_line(handle, stat.st_size)
                head = fingerprint(handle, offset)
        except OSError as exc:
            raise self._error(exc) from exc
        return FilePosition(stat.st_dev, stat.st_ino, offset, head)

    def check_cursor(self, cursor: Cursor) -> None:
        """Raise InvalidCursor unless ``cursor`` is this file's: a poll time and file positions."""
        decode_cursor(cursor, self.path)

    async def poll(self, cursor: Cursor) -> tuple[WindowSummary, Cursor]:
        """Read every complete line written since ``cursor``, across rotation and truncation.

        Raises:
            InvalidCursor: the cursor can't be decoded.
            TelemetryUnavailable: the file can't be read.
            ConfigError: the worker may not read it.
        """
        polled_at, followed = decode_cursor(cursor, self.path)
        return await asyncio.to_thread(self._poll, polled_at, followed)

    def _poll(self, polled_at: datetime, followed: list[FilePosition]) -> tuple[WindowSummary, Cursor]:
        now = utc_now()
        builder = SummaryBuilder(
            source=self.description,
            service=self.service,
            window_start=polled_at,
            window_end=now,
        )
        current = self._stat(self.path)
        kept: list[FilePosition] = []
        current_position: FilePosition | None = None
        for position in followed:
            if current is not None and position.same_file(current):
                current_position = position
                continue
            rotated_path = self._find_rotated(position)
            if rotated_path is None:
                builder.note(
                    f"a rotated file (inode {position.inode}) is gone from {os.path.dirname(self.path) or '.'}: "
                    "lines written to it after the previous poll are not counted"
                )
                continue
            kept.append(self._read_new_lines(rotated_path, position, builder))
        if current is None:
            builder.note(f"{self.path} does not exist right now (rotation in progress?)")
        else:
            if current_position is None:
                if followed:
                    builder.note(f"{self.path} was rotated: following the new file from its start")
                current_position = FilePosition(current.st_dev, current.st_ino, 0, EMPTY_HEAD)
            kept.append(self._read_new_lines(self.path, current_position, builder))
        return builder.build(), self._cursor(now, kept)

    def _read_new_lines(
        self,
        path: str,
        position: FilePosition,
        builder: SummaryBuilder,
        progress: Progress | None = None,
        not_before: datetime | None = None,
    ) -> FilePosition:
        """Count the complete lines after ``position`` in ``path``; return the new position.

        ``not_before`` (history reads only) lets a read from the file's start skip old lines.
        """
        try:
            with open(path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                if not position.same_file(stat):
                    # Renamed again between the directory scan and open(): read it at the next poll.
                    return position
                offset = position.offset
                if stat.st_size < offset or (offset and fingerprint(handle, offset) != position.head):
                    builder.note(
                        f"{path} was truncated in place (copytruncate?): reading it again from the start; "
                        "lines written between the previous poll and the truncation are not counted"
                    )
                    offset = 0
                restarted = offset < position.offset
                offset = self._count_lines(
                    handle, path, offset, builder, progress, not_before if not restarted else None
                )
                head = position.head
                if restarted or position.offset < HEAD_BYTES:
                    head = fingerprint(handle, offset)
        except FileNotFoundError:
            builder.note(f"{path} disappeared while being read")
            return position
        except OSError as exc:
            raise self._error(exc) from exc
        return FilePosition(position.device, position.inode, offset, head)

    def _count_lines(
        self,
        handle: IO[bytes],
        path: str,
        offset: int,
        builder: SummaryBuilder,
        progress: Progress | None = None,
        not_before: datetime | None = None,
    ) -> int:
        """Feed complete lines from ``offset`` to the builder; return the offset after the last one.

        From the start of a file (``offset`` 0) with ``not_before``, lines that finished well before
        it are skipped unread.
        """
        size = os.fstat(handle.fileno()).st_size
        if offset == 0 and not_before is not None:
            offset = first_relevant_offset(handle, size, not_before)
        for count, (line_offset, end, parsed) in enumerate(line_index.SHARED.lines(handle, offset), start=1):
            line_index.count(parsed, path, line_offset, builder)
            offset = end
            if progress is not None and count % PROGRESS_EVERY_LINES == 0:
                progress(f"read {count} lines of {path} ({offset // 1_000_000} of {size // 1_000_000} MB)")
        return offset

    # --- history -----------------------------------------------------------------------------------

    async def read_window(self, start: datetime, end: datetime, *, progress: Progress | None = None) -> WindowSummary:
        """Requests that started in ``[start, end)``, from the file and its uncompressed rotated siblings.

        Every file modified since ``start`` is read from the first line that can matter (found by
        binary search, see the module docstring): ``progress`` hears every
        :data:`PROGRESS_EVERY_LINES` lines.

        Raises:
            TelemetryUnavailable: neither the file nor a rotated sibling exists.
            ConfigError: the worker may not read them.
        """
        return await asyncio.to_thread(self._read_window, start, end, progress)

    def _read_window(self, start: datetime, end: datetime, progress: Progress | None) -> WindowSummary:
        builder = SummaryBuilder(
            source=self.description,
            service=self.service,
            window_start=start,
            window_end=end,
            only_within_window=True,
        )
        files = self._window_files(start, builder)
        if not files:
            raise TelemetryUnavailable(
                f"{self.path} does not exist: is Kong's file-log plugin writing there, and is the file "
                "visible to the worker?"
            )
        for index, path in enumerate(files, start=1):
            if progress is not None:
                progress(f"reading {path} ({index} of {len(files)} file(s))")
            try:
                with open(path, "rb") as handle:
                    self._count_lines(handle, path, 0, builder, progress, not_before=start)
            except FileNotFoundError:
                builder.note(f"{path} disappeared while being read")
            except OSError as exc:
                raise self._error(exc) from exc
        return builder.build()

    async def read_latest(self, span: timedelta, *, progress: Progress | None = None) -> tuple[WindowSummary, Cursor]:
        """The requests that started in the last ``span``, and a cursor at the end of what was read.

        Like :meth:`read_window`, the file and the uncompressed rotated siblings modified within
        ``span`` are scanned once; the cursor then holds each file's position after its last
        complete line (the rotated ones too, Kong may still be writing to them), so polls read only
        what is appended afterwards. A file at the path that wasn't modified within ``span`` isn't
        scanned at all: the cursor starts at its end.

        Raises:
            TelemetryUnavailable: neither the file nor a rotated sibling exists.
            ConfigError: the worker may not read them.
        """
        return await asyncio.to_thread(self._read_latest, span, progress)

    def _read_latest(self, span: timedelta, progress: Progress | None) -> tuple[WindowSummary, Cursor]:
        now = utc_now()
        start = now - span
        builder = SummaryBuilder(
            source=self.description,
            service=self.service,
            window_start=start,
            window_end=None,  # lines written while scanning count too: the cursor starts after them
            only_within_window=True,
        )
        files = self._window_files(start, builder)
        current = self._stat(self.path)
        if not files and current is None:
            raise self._error(FileNotFoundError(self.path))
        rotated: list[FilePosition] = []
        current_position: FilePosition | None = None
        for index, path in enumerate(files, start=1):
            if progress is not None:
                progress(f"reading {path} ({index} of {len(files)} file(s))")
            stat = self._stat(path)
            if stat is None:
                builder.note(f"{path} disappeared while being read")
                continue
            position = self._read_new_lines(
                path, FilePosition(stat.st_dev, stat.st_ino, 0, EMPTY_HEAD), builder, progress, not_before=start
            )
            if current is not None and position.same_file(current):
                current_position = position
            else:
                rotated.append(position)
        if current is not None and current_position is None:
            current_position = self._position_at_end(self.path)
        positions = rotated[-(MAX_FOLLOWED_FILES - 1) :] + ([current_position] if current_position else [])
        summary = builder.build().model_copy(update={"window_end": now})
        return summary, self._cursor(now, positions)

    def _window_files(self, start: datetime, builder: SummaryBuilder) -> list[str]:
        """The file and the rotated siblings modified since ``start``, oldest first, each inode once."""
        found: dict[tuple[int, int], tuple[float, str]] = {}
        for path in [*self._siblings(), self.path]:
            stat = self._stat(path)
            if stat is None or stat.st_mtime < start.timestamp():
                continue
            if path.endswith(COMPRESSED_SUFFIXES):
                builder.note(f"{path} is compressed and was not read: the window may miss its requests")
                continue
            found.setdefault((stat.st_dev, stat.st_ino), (stat.st_mtime, path))
        return [path for _, path in sorted(found.values())]

    # --- files on disk -----------------------------------------------------------------------------

    def _siblings(self) -> list[str]:
        """Rotated copies in the same directory: ``<name>.1``, ``<name>-20240501`` ..."""
        folder = os.path.dirname(self.path) or "."
        name = os.path.basename(self.path)
        try:
            with os.scandir(folder) as entries:
                return sorted(
                    entry.path
                    for entry in entries
                    if entry.name != name and entry.name.startswith(name) and entry.is_file(follow_symlinks=False)
                )
        except OSError:
            return []

    def _find_rotated(self, position: FilePosition) -> str | None:
        for path in self._siblings():
            stat = self._stat(path)
            if stat is not None and position.same_file(stat):
                return path
        return None

    @staticmethod
    def _stat(path: str) -> os.stat_result | None:
        try:
            return os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TelemetryUnavailable(f"cannot stat {path}: {exc.strerror}") from exc

    def _error(self, exc: OSError) -> Exception:
        if isinstance(exc, PermissionError):
            return ConfigError(f"the worker may not read {self.path}: {exc.strerror}; grant it read access")
        if isinstance(exc, FileNotFoundError):
            return TelemetryUnavailable(
                f"{self.path} does not exist: is Kong's file-log plugin writing there, and is the file "
                "visible to the worker?"
            )
        return TelemetryUnavailable(f"cannot read {self.path}: {exc.strerror or exc}")
