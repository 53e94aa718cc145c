"""Where a profiled worker's CPU went: cProfile rows grouped by component (bench.cost ``--profile``).

Own time (``tottime``) only, so every CPU-second is counted once: a function's time goes to the
component of the file it is written in (a C function's to the module it belongs to).
"""

from __future__ import annotations

import pstats
from collections import defaultdict
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parent.parent)

# (substring of the file or of a built-in's name, component), first match wins.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("_ssl.", "TLS (ssl)"),
    ("/ssl.py", "TLS (ssl)"),
    ("/httpcore/", "HTTP client (httpx, httpcore, h11)"),
    ("/httpx/", "HTTP client (httpx, httpcore, h11)"),
    ("/h11/", "HTTP client (httpx, httpcore, h11)"),
    ("/anyio/", "HTTP client (httpx, httpcore, h11)"),
    ("/certifi/", "HTTP client (httpx, httpcore, h11)"),
    ("site-packages/dns/", "DNS (dnspython)"),
    ("/pydantic_core/", "pydantic"),
    ("pydantic_core.", "pydantic"),
    ("/pydantic/", "pydantic"),
    ("/temporalio/worker/workflow_sandbox/", "Temporal SDK: workflow sandbox"),
    ("/temporalio/converter", "Temporal SDK: payload conversion"),
    ("/temporalio/", "Temporal SDK: other"),
    ("temporal_sdk_bridge", "Temporal SDK: other"),
    ("/google/protobuf/", "protobuf"),
    ("google._upb", "protobuf"),
    ("/yaml/", "YAML"),
    ("/json/", "json"),
    ("_json.", "json"),
    ("/asyncio/", "asyncio event loop"),
    ("/selectors.py", "asyncio event loop"),
    ("select.epoll", "asyncio event loop"),
    ("/cryptography/", "cryptography"),
    ("/logging/", "logging"),
)
OTHER = "other (standard library, interpreter)"

Row = tuple[str, int, str]
"""A pstats key: file, line, function (``("~", 0, "<built-in method ...>")`` for C functions)."""


def component_of(key: Row) -> str:
    """The component a profiled function belongs to."""
    filename, _, function = key
    if filename.startswith(f"{REPO_ROOT}/") and "/site-packages/" not in filename:
        return f"cutover: {filename[len(REPO_ROOT) + 1 :].split('/')[0].removesuffix('.py')}"
    where = function if filename == "~" else filename
    for marker, component in COMPONENTS:
        if marker in where:
            return component
    return OTHER


def own_times(stats: pstats.Stats) -> dict[Row, float]:
    """Each function's own time (``tottime``)."""
    rows: dict[Row, tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    return {key: value[2] for key, value in rows.items()}


def by_component(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time summed per component, largest first."""
    return group(own_times(stats))


def group(times: dict[Row, float]) -> list[tuple[str, float]]:
    """``own_times`` summed per component, largest first."""
    totals: dict[str, float] = defaultdict(float)
    for key, seconds in times.items():
        totals[component_of(key)] += seconds
    return sorted(totals.items(), key=lambda item: -item[1])


def top_functions(stats: pstats.Stats, count: int) -> list[tuple[str, float]]:
    """The ``count`` functions with the most own time, as ``file:line(function)``."""
    times = sorted(own_times(stats).items(), key=lambda item: -item[1])[:count]
    return [(label(key), seconds) for key, seconds in times]


def label(key: Row) -> str:
    """``httpx/_client.py:1520(send)``: the path from the package (or the repository) on."""
    filename, line, function = key
    if filename == "~":
        return function
    for root in ("site-packages/", f"{REPO_ROOT}/"):
        if root in filename:
            filename = filename.split(root, 1)[1]
            break
    else:
        if "/lib/python3" in filename:
            filename = filename.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return f"{filename}:{line}({function})"
