"""The PNG chart: written, a real PNG, with and without phases and failures."""

from __future__ import annotations

import struct

from sandbox.chart import render_chart
from sandbox.load import RequestRecord, summarize


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def cutover_records():
    records = []
    for i in range(200):
        offset = i * 0.1
        served = "A" if offset < 8 else "B"
        status = 502 if 9 <= offset < 9.3 else 200
        records.append(
            RequestRecord(
                started=1_000 + offset,
                offset=offset,
                status=status,
                served_by=served if status == 200 else None,
                latency=0.003,
            )
        )
    return records


def test_chart_with_phases_and_failures(tmp_path):
    summary = summarize(cutover_records(), bucket_seconds=1.0)
    path = render_chart(
        summary,
        tmp_path / "out" / "load.png",
        phases=[(1.0, "verifying"), (7.5, "flipping"), (7.6, "draining"), (7.7, "monitoring"), (99, "outside")],
    )
    assert path == tmp_path / "out" / "load.png"
    width, height = png_size(path)
    assert (width, height) == (1200, 650)


def test_chart_of_an_empty_load(tmp_path):
    path = render_chart(summarize([]), tmp_path / "empty.png")
    assert png_size(path) == (1200, 650)
