"""The campaign chart: one row per API, a real PNG, events and phases drawn."""

from __future__ import annotations

from sandbox.chart_fleet import render_fleet_chart
from sandbox.load import RequestRecord, summarize
from tests.sandbox.test_chart import png_size


def records(flip_at: float, failing: bool = False) -> list[RequestRecord]:
    out = []
    for i in range(100):
        offset = i * 0.2
        on_b = offset >= flip_at
        status = 503 if failing and on_b else 200
        out.append(
            RequestRecord(
                started=1_000 + offset,
                offset=offset,
                status=status,
                served_by=("B" if on_b else "A") if status == 200 else None,
                latency=0.002,
            )
        )
    return out


def test_one_row_per_api(tmp_path):
    summaries = {
        "api-01": (0.0, summarize(records(5.0), bucket_seconds=1.0)),
        "api-02": (0.5, summarize(records(12.0, failing=True), bucket_seconds=1.0)),
    }
    path = render_fleet_chart(
        summaries,
        tmp_path / "fleet.png",
        events=[(1.0, "wave 1"), (11.0, "wave 2"), (14.0, "line stopped")],
        phases={"api-01": [(4.0, "draining"), (9.0, "completed")], "api-02": [(13.0, "rolling-back")]},
    )
    width, height = png_size(path)
    assert width == 1200 and height > 300
