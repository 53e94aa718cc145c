"""A PNG of a campaign as clients saw it: every API's share of traffic served by B over time, one row each.

One row per API (its own route through Kong): the share served by A and by B per time bucket
(stacked, so a clean cutover is a band moving from A to B), failed requests as marks, and the API's
own phase changes as dotted lines. Campaign events (a wave starting, the line stopping, a resume) are
dashed lines across every row. Rendered with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from sandbox.chart import COLOURS
from sandbox.load import LoadSummary

MARKED_PHASES = ("flipping", "draining", "rolling-back", "completed", "rolled-back")
"""The phases of an API drawn in its row: where its traffic should move."""


def render_fleet_chart(
    summaries: Mapping[str, tuple[float, LoadSummary]],
    path: str | Path,
    *,
    events: Sequence[tuple[float, str]] = (),
    phases: Mapping[str, Sequence[tuple[float, str]]] | None = None,
    title: str = "Campaign: each API's traffic through Kong",
) -> Path:
    """Draw one row per API to ``path`` (PNG) and return the path.

    Args:
        summaries: API name -> (offset of its load's start on the common time axis, its load summary).
        path: where the PNG goes (parent directories are created).
        events: ``(seconds, label)`` of campaign events, drawn across every row.
        phases: API name -> ``(seconds, phase)`` of its cutover's phase changes.
        title: the figure's title.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    names = list(summaries)
    figure, axes = plt.subplots(
        len(names), 1, sharex=True, figsize=(12, 1.5 + 1.25 * len(names)), squeeze=False, constrained_layout=True
    )
    end = max((offset + s.duration for offset, s in summaries.values()), default=1.0)
    for row, name in zip(axes[:, 0], names, strict=True):
        offset, summary = summaries[name]
        x = [offset + b.start for b in summary.buckets]
        share_a = [100 * (b.share("A") or 0.0) for b in summary.buckets]
        share_b = [100 * (b.share("B") or 0.0) for b in summary.buckets]
        width = summary.bucket_seconds
        row.bar(x, share_a, width=width, align="edge", color=COLOURS["A"], label="served by A")
        row.bar(x, share_b, width=width, align="edge", bottom=share_a, color=COLOURS["B"], label="served by B")
        failed = [(offset + b.start + width / 2, b.failures) for b in summary.buckets if b.failures]
        if failed:
            row.scatter(
                [at for at, _ in failed], [50] * len(failed), s=[12 + 3 * n for _, n in failed],
                color=COLOURS["failed"], marker="x", label="failed requests", zorder=3,
            )  # fmt: skip
        for at, phase in (phases or {}).get(name, ()):
            if phase in MARKED_PHASES and 0 <= at <= end:
                row.axvline(at, color="#555555", linestyle=":", linewidth=0.9)
                row.text(at, 92, phase, fontsize=6, rotation=90, va="top", ha="right", color="#333333")
        for at, _ in events:
            row.axvline(at, color="#222222", linestyle="--", linewidth=0.9)
        row.set_ylim(0, 100)
        row.set_ylabel(f"{name}\n% of requests", fontsize=8)
        row.text(0.995, 0.5, f"{summary.failed} failed / {summary.requests}", transform=row.transAxes,
                 ha="right", va="center", fontsize=7)  # fmt: skip
    top = axes[0, 0]
    top.set_title(title)
    for at, label in events:
        top.text(
            at, 97, label, fontsize=7, rotation=90, va="top", ha="left", color="#222222",
            bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.0},
        )  # fmt: skip
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    bottom = axes[-1, 0]
    bottom.set_xlim(0, end)
    bottom.set_xlabel("seconds since the load began")
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return target
