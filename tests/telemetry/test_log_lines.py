"""Lines of a growing file, read in blocks: offsets exact, a partial last line left for the next read."""

from __future__ import annotations

import io

import pytest

from providers.telemetry import log_lines
from providers.telemetry.log_lines import complete_lines


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_every_complete_line_with_its_offset_whatever_the_block_size(monkeypatch, chunk):
    monkeypatch.setattr(log_lines, "READ_CHUNK", chunk)
    content = b'{"a":1}\n\n' + b"x" * 40 + b'\n{"b":2}\r\n{"partial'
    lines = list(complete_lines(io.BytesIO(content), 0))
    assert lines == [(b'{"a":1}', 0), (b"", 8), (b"x" * 40, 9), (b'{"b":2}\r', 50)]
    assert all(content[offset : offset + len(line) + 1] == line + b"\n" for line, offset in lines)


@pytest.mark.parametrize("chunk", [2, 1 << 20])
def test_reading_from_an_offset_and_resuming_after_the_last_complete_line(monkeypatch, chunk):
    monkeypatch.setattr(log_lines, "READ_CHUNK", chunk)
    handle = io.BytesIO(b"one\ntwo\nthr")
    first = list(complete_lines(handle, 4))
    assert first == [(b"two", 4)]
    resume = first[-1][1] + len(first[-1][0]) + 1
    handle.seek(0, io.SEEK_END)
    handle.write(b"ee\n")
    assert list(complete_lines(handle, resume)) == [(b"three", 8)]
    assert list(complete_lines(io.BytesIO(b"no newline yet"), 0)) == []
