"""Printing, machine facts, a quiet machine, reports, exit codes: what every benchmark script shares."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sandbox.topology import REPO_ROOT, venv_binary

EXIT_ERROR = 1


class BenchError(RuntimeError):
    """The measurement could not be made (a run did not complete, a component failed): exit non-zero."""


def say(text: str = "") -> None:
    """Print and flush (the figures stream while a long benchmark runs)."""
    print(text, flush=True)


def package_version(name: str) -> str:
    """An installed distribution's version, or ``not installed``."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _command_output(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "?"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_total() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def machine_facts() -> dict[str, str]:
    """What a reader needs to interpret the figures: CPUs, load, versions, the commit measured."""
    load = os.getloadavg()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": f"{os.cpu_count()} x {_cpu_model()}",
        "memory": _memory_total(),
        "os": f"{platform.system()} {platform.release()}",
        "load average (1/5/15 min)": " / ".join(f"{value:.2f}" for value in load),
        "python": platform.python_version(),
        "temporalio": package_version("temporalio"),
        "temporal CLI (dev server)": _command_output([venv_binary("temporal"), "--version"]),
        "bind": _command_output(["/usr/sbin/named", "-v"]),
        "dnspython": package_version("dnspython"),
        "aiohttp": package_version("aiohttp"),
        "commit": _command_output(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]),
        "uncommitted product files": _uncommitted(),
    }


PRODUCT_PATHS = ("models", "providers", "activities", "workflows", "worker.py", "starter.py", "settings.py", "sandbox")
"""What the figures depend on: a change here that is not committed yet is measured too."""


def _uncommitted() -> str:
    """The product files that differ from the commit (others work in the same tree), or ``none``."""
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", *PRODUCT_PATHS],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    changed = [line[3:] for line in done.stdout.splitlines() if line.strip()]
    return ", ".join(changed) if changed else "none"


def print_facts(title: str) -> dict[str, str]:
    """Print the machine facts under a title; return them for the JSON output."""
    facts = machine_facts()
    say(f"== {title}")
    width = max(len(key) for key in facts)
    for key, value in facts.items():
        say(f"  {key:<{width}}  {value}")
    return facts


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


async def wait_for_quiet(threshold: float, timeout: float) -> float:
    """Wait until the 1-minute load average is below ``threshold`` (at most ``timeout`` s); return it.

    Other people's heavy tests on a 2-core machine distort every figure; the benchmark says so
    rather than silently measuring a busy machine.
    """
    deadline = time.monotonic() + timeout
    load = load_average()
    if load >= threshold:
        say(f"  load average {load:.2f} >= {threshold:g}: waiting up to {timeout:.0f} s for a quiet machine")
    while load >= threshold and time.monotonic() < deadline:
        await asyncio.sleep(5)
        load = load_average()
    if load >= threshold:
        say(f"  WARNING: load average still {load:.2f} (>= {threshold:g}): the figures below are from a busy machine")
    else:
        say(f"  load average {load:.2f} (< {threshold:g}): quiet enough")
    return load


async def quiet_start(args: argparse.Namespace) -> float:
    """Before one measured run: wait for a quiet machine (unless ``--quiet-timeout 0``); return the load average."""
    if args.quiet_timeout > 0:
        await wait_for_quiet(args.quiet_load, args.quiet_timeout)
    return load_average()


def common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every benchmark takes."""
    parser.add_argument("--quiet-load", type=float, default=1.0, help="wait for a 1-min load average below this (1.0)")
    parser.add_argument("--quiet-timeout", type=float, default=600.0, help="seconds to wait for it (600; 0: don't)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directories (logs)")


def write_report(
    args: argparse.Namespace,
    benchmark: str,
    facts: Mapping[str, Any],
    figures: Mapping[str, Any],
    load_before_after: tuple[float, float] | None = None,
) -> None:
    """Write a benchmark's figures with the machine facts and its arguments when ``--json`` was given."""
    header: dict[str, Any] = {
        "benchmark": benchmark,
        "facts": facts,
        "arguments": {k: str(v) for k, v in vars(args).items()},
    }
    if load_before_after is not None:
        header["load_average"] = {"before": load_before_after[0], "after": load_before_after[1]}
    write_json(args.json, {**header, **figures})


def write_json(path: Path | None, data: Mapping[str, Any]) -> None:
    """Write the figures (and facts) when ``--json`` was given."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    say(f"figures written to {path}")


def run_main(main: Callable[[argparse.Namespace], Any], parser: argparse.ArgumentParser) -> int:
    """Parse, run, and exit 0 unless the measurement itself failed (a missed target is not a failure)."""
    args = parser.parse_args()
    try:
        asyncio.run(main(args))
    except BenchError as exc:
        say(f"ERROR: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    return 0


async def stop_loop(task: asyncio.Task[None] | None) -> None:
    """Cancel a watcher's background loop and wait until it has really stopped."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
