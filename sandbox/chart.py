"""A PNG of what the load saw during a cutover: who served the requests over time, and failures.

Top: the share of each time bucket served by A and by B (stacked, so a clean cutover is a band
moving from A to B). Bottom: requests and failed requests per bucket. The workflow's phase
changes, when known, are vertical lines labelled with the phase, so the move from A to B can be
read against "flipping", "draining" and "decommissioning". Rendered with matplotlib's Agg backend:
no display needed (CI, SSH).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from sandbox.load import LoadSummary

LABELS_ACROSS = 70
"""At most this many phase labels side by side: the least distance between two, as a share of the x axis."""
COLOURS = {"A": "#d95f02", "B": "#1b9e77", "failed": "#e7298a", "requests": "#7570b3"}


def render_chart(
    summary: LoadSummary,
    path: str | Path,
    *,
    phases: Sequence[tuple[float, str]] = (),
    title: str = "Client load through Kong during the cutover",
) -> Path:
    """Draw ``summary`` to ``path`` (PNG) and return the path.

    Args:
        summary: the load's summary; its buckets are the x axis (seconds since the load began).
        path: where the PNG goes (parent directories are created).
        phases: ``(seconds since the load began, phase)`` for each phase change of the workflow.
        title: the figure's title.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    buckets = summary.buckets
    x = [b.start for b in buckets]
    width = summary.bucket_seconds
    share_a = [100 * (b.share("A") or 0.0) for b in buckets]
    share_b = [100 * (b.share("B") or 0.0) for b in buckets]
    failed = [b.failures for b in buckets]
    requests = [b.requests for b in buckets]

    figure, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(12, 6.5), gridspec_kw={"height_ratios": [3, 1.4]}, constrained_layout=True
    )
    top.bar(x, share_a, width=width, align="edge", color=COLOURS["A"], label="served by A (127.0.0.2)")
    top.bar(x, share_b, width=width, align="edge", bottom=share_a, color=COLOURS["B"], label="served by B (127.0.0.3)")
    top.set_ylim(0, 100)
    top.set_ylabel("share of requests (%)")
    top.set_title(title)
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")

    bottom.bar(x, requests, width=width, align="edge", color=COLOURS["requests"], alpha=0.35, label="requests")
    bottom.bar(x, failed, width=width, align="edge", color=COLOURS["failed"], label="failed (non-2xx or no answer)")
    bottom.set_ylabel(f"per {width:g} s")
    bottom.set_xlabel("seconds since the load began")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")

    end = max([b.end for b in buckets], default=1.0)
    gap = end / LABELS_ACROSS
    label_x = -end
    for offset, phase in sorted(phases):
        if not 0 <= offset <= end:
            continue
        for axis in (top, bottom):
            axis.axvline(offset, color="#444444", linestyle="--", linewidth=0.8)
        # Phases a second apart would print over each other: move the label right, not the line.
        label_x = max(offset, label_x + gap)
        top.text(
            label_x,
            97,
            phase,
            rotation=90,
            va="top",
            ha="left",
            fontsize=7,
            color="#222222",
            bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.5},
        )
    top.set_xlim(0, end)
    figure.text(
        0.995,
        0.005,
        f"{summary.requests} requests, {summary.failed} failed; "
        f"A {_pct(summary.share('A'))}, B {_pct(summary.share('B'))} overall",
        ha="right",
        va="bottom",
        fontsize=8,
    )
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return target


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"
