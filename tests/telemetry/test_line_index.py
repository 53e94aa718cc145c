"""The worker's index of a shared file-log: parsed once, checked against the file at every read."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from models.plan import KongFileLogSource
from providers.telemetry import line_index
from providers.telemetry.base import utc_now
from providers.telemetry.file_log import KongFileLog
from providers.telemetry.line_index import LineIndex, Parsed
from providers.telemetry.records import ProxiedRequest, parse_line
from tests.telemetry.kong_lines import A_IP, B_IP, SERVICE, ago, kong_line


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every line the index parses (the LRU under it is bypassed, so each parse shows)."""
    seen: list[bytes] = []

    def counting(line: bytes) -> line_index.Parsed:
        seen.append(line)
        raw = line.strip()
        return parse_line.__wrapped__(raw) if raw else None

    monkeypatch.setattr(line_index, "parse", counting)
    monkeypatch.setattr(line_index, "SHARED", LineIndex())
    return seen


def write(path: Path, text: str, mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as handle:
        handle.write(text)


def walk(index: LineIndex, path: Path, offset: int = 0) -> list[tuple[int, int, Parsed]]:
    with open(path, "rb") as handle:
        return list(index.lines(handle, offset))


def same_lines(tmp_path: Path, count: int) -> tuple[Path, str]:
    """A file-log of ``count`` copies of one line (offsets are then multiples of its length)."""
    path, line = tmp_path / "kong.log", kong_line(at=ago(1))
    write(path, line * count)
    return path, line


def ips(lines: list[tuple[int, int, Parsed]]) -> list[str | None]:
    return [parsed.upstream_ip for _, _, parsed in lines if isinstance(parsed, ProxiedRequest)]


def reader(path: Path, service: str = SERVICE) -> KongFileLog:
    return KongFileLog(KongFileLogSource(kind="kong-file-log", path=str(path)), service)


async def test_many_readers_of_one_file_parse_each_line_once(tmp_path: Path, parses: list[bytes]) -> None:
    path = tmp_path / "kong.log"
    write(path, "".join(kong_line(at=ago(30 - i), tries=[(A_IP if i < 10 else B_IP, None)]) for i in range(20)))
    readers = [reader(path), reader(path, "other-api"), reader(path)]
    start, end = utc_now() - timedelta(minutes=1), utc_now()
    windows = [await r.read_window(start, end) for r in readers]
    assert [w.requests for w in windows] == [20, 0, 20]
    assert windows[0].requests_per_ip == {A_IP: 10, B_IP: 10} and windows[2] == windows[0]
    assert "20 request(s) of other services ignored (orders-api)" in " ".join(windows[1].notes)
    assert len(parses) == 20

    write(path, kong_line(at=ago(1)) + kong_line(at=ago(0)))
    latest = [await r.read_window(utc_now() - timedelta(minutes=1), utc_now()) for r in readers]
    assert [w.requests for w in latest] == [22, 0, 22]
    assert len(parses) == 22  # only the two new lines


def test_offsets_ends_and_a_partial_line_left_for_later(tmp_path: Path, parses: list[bytes]) -> None:
    path = tmp_path / "kong.log"
    first, second = kong_line(at=ago(2)), kong_line(at=ago(1))
    write(path, first + "\n" + second + '{"partial')
    index = LineIndex()
    lines = walk(index, path)
    assert [(start, end) for start, end, _ in lines] == [
        (0, len(first)),
        (len(first), len(first) + 1),
        (len(first) + 1, len(first) + 1 + len(second)),
    ]
    assert lines[1][2] is None  # the blank line is not counted at all
    assert walk(index, path, len(first) + 1) == lines[2:]
    write(path, '": 1}\n')
    tail = walk(index, path, lines[-1][1])
    assert [(start, parsed) for start, _, parsed in tail] == [(lines[-1][1], "no numeric started_at")]


def test_truncated_or_rewritten_files_are_indexed_again(tmp_path: Path, parses: list[bytes]) -> None:
    path = tmp_path / "kong.log"
    index = LineIndex()
    write(path, kong_line(at=ago(5), tries=[(A_IP, None)]) * 3)
    assert ips(walk(index, path)) == [A_IP] * 3
    # copytruncate, then new lines: shorter than what was indexed.
    write(path, kong_line(at=ago(1), tries=[(B_IP, None)]), mode="w")
    assert ips(walk(index, path)) == [B_IP]
    # Rewritten in place (same inode), longer than before, same first bytes: the newest bytes differ.
    same_start = (tmp_path / "kong.log").read_text()
    write(path, same_start + kong_line(at=ago(0), tries=[(A_IP, None)]) * 2, mode="w")
    with open(path, "r+", encoding="utf-8") as handle:
        handle.seek(len(same_start) - 40)
        handle.write("x" * 39)
    lines = walk(index, path)
    assert isinstance(lines[0][2], str) and ips(lines) == [A_IP, A_IP]


def test_a_reader_before_the_stretch_reads_beside_it_and_the_index_stays_bounded(
    tmp_path: Path, parses: list[bytes]
) -> None:
    path, line = same_lines(tmp_path, 10)
    index = LineIndex(max_lines=4)
    with open(path, "rb") as handle:
        assert len(list(index.lines(handle, 6 * len(line)))) == 4 and index.indexed(handle) == 4
        assert len(parses) == 4
        assert len(list(index.lines(handle, 3 * len(line)))) == 7  # the reader gets every line it asked for
        assert len(parses) == 7 and index.indexed(handle) == 4  # lines 3-5 parsed beside the index, not kept
        assert len(list(index.lines(handle, 0))) == 10 and index.indexed(handle) == 4
    write(path, line * 3)
    with open(path, "rb") as handle:
        lines = list(index.lines(handle, 0))
        assert len(lines) == 13 and index.indexed(handle) == 4  # the oldest dropped as new ones came
        assert [start for start, _, _ in lines] == [i * len(line) for i in range(13)]


def test_a_reader_past_the_end_makes_the_index_catch_up_instead_of_starting_over(
    tmp_path: Path, parses: list[bytes]
) -> None:
    path, line = same_lines(tmp_path, 5)
    index = LineIndex()
    walk(index, path)
    write(path, line * 2)
    assert walk(index, path, 7 * len(line)) == []  # a cursor opened at the new end: nothing to read yet
    assert len(parses) == 7
    assert len(walk(index, path)) == 7 and len(parses) == 7  # nothing was re-read


def test_readers_during_appends_get_every_line_once_in_order(tmp_path: Path, parses: list[bytes]) -> None:
    path, line = same_lines(tmp_path, 50)
    index = LineIndex(max_lines=64)
    results: list[list[tuple[int, int, Parsed]]] = []
    stop = threading.Event()

    def append() -> None:
        for _ in range(200):  # ~1,000 lines while the readers read, then stop (a reader reads to the end)
            if stop.is_set():
                return
            write(path, line * 5)
            time.sleep(0.001)

    def read(offset: int) -> None:
        for _ in range(20):
            results.append(walk(index, path, offset))

    writer = threading.Thread(target=append)
    readers = [threading.Thread(target=read, args=(n * 7 * len(line),)) for n in range(6)]
    writer.start()
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join()
    stop.set()
    writer.join()
    assert len(results) == 120
    for lines in results:
        assert all(end == following for (_, end, _), (following, _, _) in itertools.pairwise(lines))
        assert all(end - start == len(line) and isinstance(parsed, ProxiedRequest) for start, end, parsed in lines)


def test_concurrent_readers_see_the_same_lines(tmp_path: Path, parses: list[bytes]) -> None:
    path = tmp_path / "kong.log"
    write(path, "".join(kong_line(at=ago(60 - i)) for i in range(300)))
    index = LineIndex()
    results: list[list[tuple[int, int, Parsed]]] = []

    def read() -> None:
        results.append(walk(index, path))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and all(result == results[0] for result in results)
    assert len(results[0]) == 300 and len(parses) == 300
