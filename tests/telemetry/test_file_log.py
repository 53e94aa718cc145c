"""The file-log source against real files: appends, partial lines, rotation, truncation, garbage."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from models.plan import KongFileLogSource
from providers.errors import TelemetryUnavailable
from providers.telemetry.base import Cursor, InvalidCursor, utc_now
from providers.telemetry.file_log import KongFileLog
from providers.telemetry.log_lines import SEARCH_BELOW_BYTES
from tests.telemetry.kong_lines import A_IP, B_IP, SERVICE, SERVICE_ID, ago, kong_line


def source_for(path: Path, service: str = SERVICE) -> KongFileLog:
    return KongFileLog(KongFileLogSource(kind="kong-file-log", path=str(path)), service)


def append(path: Path, *lines: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(lines))


def append_bytes(path: Path, *chunks: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(b"".join(chunks))


def roundtrip(cursor: Cursor) -> Cursor:
    """Cursors travel in heartbeats as JSON."""
    restored: Cursor = json.loads(json.dumps(cursor))
    return restored


async def test_read_window_counts_statuses_retries_addresses_and_scope(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    append(
        log,
        kong_line(at=ago(30)),
        kong_line(at=ago(20)),
        kong_line(at=ago(10), tries=[(A_IP, 502), (B_IP, None)]),  # retried: "502, 200"
        kong_line(at=ago(9), status=503, tries=[(B_IP, None)]),  # B answered 503
        kong_line(at=ago(8), status=502, tries=[], upstream_status=""),  # Kong reached no upstream
        kong_line(at=ago(7), status=401, tries=[], upstream_status=""),  # auth plugin: not an error
        kong_line(at=ago(6), tries=[(A_IP, None)]),
        kong_line(at=ago(5), service="billing-api"),  # another service: ignored
        kong_line(at=ago(4), service=None),  # no route matched: no service
        kong_line(at=ago(7200)),  # outside the window
    )
    start, end = utc_now() - timedelta(minutes=5), utc_now()
    summary = await source_for(log).read_window(start, end)

    assert summary.requests == 7
    assert summary.status_classes == {"2xx": 4, "4xx": 1, "5xx": 2}
    assert summary.upstream_statuses == {"": 2, "200": 4, "503": 1}
    assert summary.upstream_errors == 2  # B's 503 and Kong's own 502
    assert summary.retried == 1
    assert summary.requests_per_ip == {A_IP: 1, B_IP: 4}
    assert summary.last_seen_per_ip[A_IP] > summary.last_seen_per_ip[B_IP]
    assert summary.first_seen is not None and summary.first_seen >= start
    assert summary.last_seen is not None and summary.last_seen < end
    assert summary.first_seen.tzinfo is not None
    assert summary.parse_failures == 0
    assert any("other services ignored (billing-api, (no service))" in note for note in summary.notes)
    assert summary.window_start == start and summary.window_end == end


async def test_service_is_matched_by_id_too(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    append(log, kong_line(at=ago(3)), kong_line(at=ago(2), service="billing-api"))
    summary = await source_for(log, SERVICE_ID).read_window(ago(60), utc_now())
    assert summary.requests == 1


async def test_poll_counts_only_appended_lines(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    append(log, kong_line(), kong_line())
    source = source_for(log)
    cursor = roundtrip(await source.open_cursor())

    empty, cursor = await source.poll(cursor)
    assert empty.requests == 0

    append(log, kong_line(), kong_line(status=502, tries=[(A_IP, 502), (B_IP, 502)]), kong_line())
    delta, cursor = await source.poll(roundtrip(cursor))
    assert delta.requests == 3
    assert delta.upstream_errors == 1 and delta.retried == 1
    assert delta.window_start is not None and delta.window_end is not None
    assert delta.window_start < delta.window_end

    again, _ = await source.poll(roundtrip(cursor))
    assert again.requests == 0


async def test_partial_last_line_is_carried_until_complete(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    log.write_text(kong_line())
    half = kong_line(status=503)
    append(log, kong_line() + half[:40])  # the writer is mid-line
    source = source_for(log)
    cursor = await source.open_cursor()  # opened while the last line is partial

    first, cursor = await source.poll(cursor)
    assert (first.requests, first.parse_failures) == (0, 0)

    append(log, half[40:])
    second, cursor = await source.poll(cursor)
    assert (second.requests, second.upstream_errors, second.parse_failures) == (1, 1, 0)

    append(log, half[:10])
    third, cursor = await source.poll(cursor)
    assert (third.requests, third.parse_failures) == (0, 0)


async def test_rotation_by_rename_reads_the_old_file_to_its_end_then_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    append(log, kong_line())
    source = source_for(log)
    cursor = roundtrip(await source.open_cursor())

    append(log, kong_line(tries=[(A_IP, None)]), kong_line(tries=[(A_IP, None)]))  # before the rename
    os.rename(log, tmp_path / "file-log.json.1")
    # Kong (file-log reopen: false) keeps writing to the renamed file until it reopens it.
    append(tmp_path / "file-log.json.1", kong_line(tries=[(A_IP, None)]))
    append(log, kong_line(), kong_line(), kong_line())  # the new file

    delta, cursor = await source.poll(roundtrip(cursor))
    assert delta.requests == 6
    assert delta.requests_per_ip == {A_IP: 3, B_IP: 3}
    assert any("was rotated" in note for note in delta.notes)
    assert len(cursor["files"]) == 2

    append(tmp_path / "file-log.json.1", kong_line(tries=[(A_IP, None)]))
    append(log, kong_line())
    later, cursor = await source.poll(roundtrip(cursor))
    assert later.requests_per_ip == {A_IP: 1, B_IP: 1}

    os.remove(tmp_path / "file-log.json.1")  # logrotate compressed or deleted it
    append(log, kong_line())
    last, cursor = await source.poll(roundtrip(cursor))
    assert last.requests == 1
    assert any("rotated file" in note and "gone" in note for note in last.notes)
    assert len(cursor["files"]) == 1


async def test_file_missing_during_rotation_is_a_note_not_an_error(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    append(log, kong_line())
    source = source_for(log)
    cursor = await source.open_cursor()
    append(log, kong_line())
    os.rename(log, tmp_path / "file-log.json.1")

    delta, cursor = await source.poll(cursor)
    assert delta.requests == 1
    assert any("does not exist right now" in note for note in delta.notes)

    append(log, kong_line(), kong_line())
    after, _ = await source.poll(cursor)
    assert after.requests == 2


async def test_truncation_in_place_reads_again_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    append(log, *(kong_line() for _ in range(5)))
    source = source_for(log)
    cursor = await source.open_cursor()
    inode = log.stat().st_ino

    os.truncate(log, 0)  # copytruncate
    append(log, kong_line(status=503))
    delta, cursor = await source.poll(cursor)
    assert log.stat().st_ino == inode
    assert (delta.requests, delta.upstream_errors) == (1, 1)
    assert any("truncated" in note for note in delta.notes)

    # Truncated again, then rewritten past the old offset before the next poll: the head changed.
    offset_before = cursor["files"][0]["offset"]
    os.truncate(log, 0)
    append(log, *(kong_line(tries=[(A_IP, None)]) for _ in range(3)))
    assert log.stat().st_size > offset_before
    regrown, _ = await source.poll(cursor)
    assert regrown.requests_per_ip == {A_IP: 3}
    assert any("truncated" in note for note in regrown.notes)


async def test_garbage_lines_are_counted_never_raised(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    source = source_for(log)
    log.write_text("")
    cursor = await source.open_cursor()
    append_bytes(
        log,
        b"not json at all\n",
        b"[1, 2, 3]\n",
        b'{"started_at": "yesterday", "response": {"status": 200}}\n',
        b'{"started_at": 1700000000000, "response": {}}\n',
        b'{"started_at": 1e300, "response": {"status": 200}}\n',
        b"\xff\xfe\x00garbage\n",
        kong_line(upstream_status="abc").encode(),
        b"\n",  # a blank line is not a request, nor a failure
        kong_line().encode(),
    )
    delta, _ = await source.poll(cursor)
    assert delta.requests == 1
    assert delta.parse_failures == 7
    joined = " | ".join(delta.notes)
    for reason in ("not JSON", "not a JSON object", "no numeric started_at", "no response.status", "not UTF-8"):
        assert reason in joined
    assert "upstream_status is not a list of HTTP statuses" in joined
    assert "started_at out of range" in joined
    assert "not json at all" not in joined  # notes locate lines, they never quote them


async def test_read_window_includes_rotated_siblings(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    append(tmp_path / "file-log.json.1", kong_line(at=ago(50), tries=[(A_IP, None)]))
    append(tmp_path / "file-log.json.2.gz", "compressed bytes\n")
    append(log, kong_line(at=ago(5)))
    summary = await source_for(log).read_window(ago(120), utc_now())
    assert summary.requests_per_ip == {A_IP: 1, B_IP: 1}
    assert any("compressed" in note for note in summary.notes)


async def test_missing_file_is_unavailable(tmp_path: Path) -> None:
    source = source_for(tmp_path / "nope.json")
    with pytest.raises(TelemetryUnavailable, match="does not exist"):
        await source.open_cursor()
    with pytest.raises(TelemetryUnavailable, match="does not exist"):
        await source.read_window(ago(60), utc_now())


# --- read_latest: the quiet window once, then a cursor that follows on -------------------------------


async def test_read_latest_then_poll_counts_every_line_once(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    rotated = tmp_path / "file-log.json.1"
    append(rotated, kong_line(at=ago(7200)), kong_line(at=ago(50), tries=[(A_IP, None)]))
    append(log, kong_line(at=ago(600)), kong_line(at=ago(20)), kong_line(at=ago(10)), '{"partial": ')
    source = source_for(log)
    summary, cursor = await source.read_latest(timedelta(minutes=5))
    assert summary.requests_per_ip == {A_IP: 1, B_IP: 2}  # the 2 h and 10 min old lines are outside
    assert summary.window_end is not None and summary.window_start == summary.window_end - timedelta(minutes=5)
    # Both files are followed, each from the end of its last complete line; the file at the path last.
    assert [item["offset"] for item in cursor["files"]] == [
        rotated.stat().st_size,
        log.stat().st_size - len('{"partial": '),
    ]

    # Kong (reopen: false) still writes to the rotated file; the partial line is completed.
    append(rotated, kong_line(tries=[(A_IP, None)]))
    append(log, '"line"}\n', kong_line())
    delta, cursor = await source.poll(roundtrip(cursor))
    assert delta.requests_per_ip == {A_IP: 1, B_IP: 1}
    assert delta.parse_failures == 1  # the completed partial line, read once, from its start
    assert delta.window_start == summary.window_end

    again, _ = await source.poll(roundtrip(cursor))
    assert again.requests == 0


async def test_read_latest_does_not_scan_a_file_untouched_within_the_span(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    append(log, *(kong_line(at=ago(30), tries=[(A_IP, None)]) for _ in range(3)))
    an_hour_ago = ago(3600).timestamp()
    os.utime(log, (an_hour_ago, an_hour_ago))  # last written an hour ago: nothing in it can be recent
    source = source_for(log)
    summary, cursor = await source.read_latest(timedelta(minutes=5))
    assert summary.requests == 0  # not scanned (its lines' started_at can't be more recent than its mtime)
    assert cursor["files"][0]["offset"] == log.stat().st_size
    append(log, kong_line())
    delta, _ = await source.poll(cursor)
    assert delta.requests_per_ip == {B_IP: 1}


async def test_read_latest_without_any_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(TelemetryUnavailable, match="does not exist"):
        await source_for(tmp_path / "nope.json").read_latest(timedelta(minutes=5))


async def test_only_an_undecodable_cursor_is_invalid(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    append(log, kong_line())
    source = source_for(log)
    cursor = roundtrip(await source.open_cursor())
    source.check_cursor(cursor)
    position = cursor["files"][0]
    for bad in (
        {},
        {**cursor, "polled_at": "yesterday"},
        {**cursor, "path": str(tmp_path / "other.json")},
        {**cursor, "files": [{"generation": 2}]},
        {**cursor, "files": [{**position, "offset": "12"}]},
        {**cursor, "files": [{**position, "offset": -1}]},
        {**cursor, "files": "all of them"},
    ):
        with pytest.raises(InvalidCursor):
            source.check_cursor(bad)
        with pytest.raises(InvalidCursor):
            await source.poll(bad)
    # A decodable cursor of a file that is gone is no decoding problem: the poll says so in a note.
    os.remove(log)
    delta, _ = await source.poll(cursor)
    assert any("does not exist right now" in note for note in delta.notes)


# --- large files: the search for the first line that can matter --------------------------------------


def fill(path: Path, line: str, at_least: int = 2 * SEARCH_BELOW_BYTES) -> int:
    """Append copies of ``line`` until the file holds ``at_least`` more bytes; return how many."""
    copies = at_least // len(line) + 1
    append(path, line * copies)
    return copies


def ignored_other_service_requests(notes: tuple[str, ...] | list[str]) -> int:
    return sum(int(note.split()[0]) for note in notes if "other services ignored" in note)


async def test_a_large_file_is_read_from_the_first_line_that_can_matter(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    old = fill(log, kong_line(at=ago(7200), service="billing-api"))
    append(log, kong_line(at=ago(3)), kong_line(at=ago(2), tries=[(A_IP, None)]))

    summary = await source_for(log).read_window(ago(60), utc_now())

    assert summary.requests == 2 and summary.requests_per_ip == {A_IP: 1, B_IP: 1}
    # A whole read would have met (and reported as ignored) every one of the two-hour-old lines.
    assert ignored_other_service_requests(summary.notes) < old // 10


async def test_lines_written_out_of_finishing_order_within_the_slack_are_never_skipped(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    fill(log, kong_line(at=ago(7200), service="billing-api"))
    append(log, kong_line(at=ago(30), tries=[(A_IP, None)]))  # in the window, written before older ones:
    fill(log, kong_line(at=ago(240), service="billing-api"))  # these finished 4 minutes ago (< the slack)
    append(log, kong_line(at=ago(5)))

    summary = await source_for(log).read_window(ago(60), utc_now())

    assert summary.requests_per_ip == {A_IP: 1, B_IP: 1}


async def test_a_large_file_without_times_is_read_whole(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    garbage = fill(log, "not json at all, but a line of some other log format\n")
    append(log, kong_line(at=ago(3)))

    summary = await source_for(log).read_window(ago(60), utc_now())

    assert summary.requests == 1
    assert summary.parse_failures == garbage


async def test_read_latest_skips_old_lines_and_its_cursor_follows_on(tmp_path: Path) -> None:
    log = tmp_path / "file-log.json"
    old = fill(log, kong_line(at=ago(7200), service="billing-api"))
    append(log, kong_line(at=ago(3)))
    source = source_for(log)

    summary, cursor = await source.read_latest(timedelta(minutes=1))
    append(log, kong_line(at=ago(0)), kong_line(at=ago(0)))
    polled, _ = await source.poll(roundtrip(cursor))

    assert summary.requests == 1 and ignored_other_service_requests(summary.notes) < old // 10
    assert polled.requests == 2
