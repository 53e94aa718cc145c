"""Timelines as segments (one answer kind over a stretch of time), and the comparison Kong vs emulator."""

from __future__ import annotations

from dataclasses import dataclass

from tests.kong_conformance.runner import Point


@dataclass
class Segment:
    """The same answer from ``start`` to ``end`` (seconds from t0), ``count`` polls."""

    label: str
    start: float
    end: float
    count: int


def segments(points: list[Point]) -> list[Segment]:
    """Consecutive equal answers merged."""
    out: list[Segment] = []
    for p in sorted(points, key=lambda p: p.t):
        if out and out[-1].label == p.label:
            out[-1].end, out[-1].count = p.t, out[-1].count + 1
        else:
            out.append(Segment(p.label, p.t, p.t, 1))
    return out


def describe(points: list[Point]) -> str:
    """``127.0.0.2 [-3.9..+4.1] | 127.0.0.3 [+4.3..+11.9]``."""
    return " | ".join(f"{s.label} [{s.start:+.1f}..{s.end:+.1f}]" for s in segments(points))


def disagreements(kong: list[Point], emulator: list[Point], tolerance: float) -> list[str]:
    """Where the emulator's timeline differs from Kong's: another sequence of answers, or a switch
    more than ``tolerance`` seconds apart."""
    a, b = segments(kong), segments(emulator)
    if [s.label for s in a] != [s.label for s in b]:
        return [f"answers differ: Kong {describe(kong)}; emulator {describe(emulator)}"]
    problems = []
    for kong_seg, emu_seg in zip(a[1:], b[1:], strict=True):
        if abs(kong_seg.start - emu_seg.start) > tolerance:
            problems.append(
                f"switch to {kong_seg.label}: Kong at {kong_seg.start:+.2f} s, emulator at {emu_seg.start:+.2f} s "
                f"(more than {tolerance} s apart)"
            )
    return problems


def switch_time(points: list[Point], label: str, after: float = 0.0) -> float | None:
    """When the answer became ``label`` for good (after ``after``), or None if it did not stay."""
    later = [p for p in sorted(points, key=lambda p: p.t) if p.t >= after]
    for i, p in enumerate(later):
        if all(q.label == label for q in later[i:]):
            return p.t
    return None


def window(points: list[Point], label: str) -> tuple[float, float] | None:
    """First and last moment of ``label`` (an error window), or None."""
    times = [p.t for p in points if p.label == label]
    return (min(times), max(times)) if times else None
