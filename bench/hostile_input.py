"""Hostile plan files: what they cost the reader before and after the input caps (issue 10, section 4).

    .venv/bin/python -m bench.hostile_input

Before: PyYAML's ``safe_load`` and plan validation, as ``starter.py validate`` read plans until the
caps. After: :func:`models.input_file.parse_document`. Prints seconds per file and what each path
ends with (an error, a traceback, or data).

Measured on the 2-vCPU development machine (bench/RESULTS.md): the alias bomb 66-75 s before (plan
validation walking a million shared leaves), about 1 ms after; the 5,000-deep nesting a
RecursionError traceback after 1.2 s before, 0.02 ms after.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import yaml
from pydantic import ValidationError

from models.input_file import InputFileError, parse_document
from models.plan import CutoverPlan


def alias_bomb(levels: int = 6) -> bytes:
    """``levels`` lists of ten aliases of the previous one: 10**levels leaves from a few lines."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return ("\n".join(lines) + f"\nname: *a{levels - 1}\n").encode()


def deep(depth: int = 5000) -> bytes:
    return ("name: " + "[" * depth + "]" * depth + "\n").encode()


def before(data: bytes) -> Any:
    parsed = yaml.safe_load(data.decode())
    return CutoverPlan.model_validate(parsed)


def after(data: bytes) -> Any:
    return parse_document(data, "plan.yaml")


def measure(run: Callable[[bytes], Any], data: bytes) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        run(data)
        outcome = "accepted"
    except (InputFileError, ValidationError) as exc:
        outcome = f"error: {str(exc).splitlines()[0][:90]}"
    except RecursionError:
        outcome = "RecursionError (a traceback, exit 1)"
    return time.perf_counter() - started, outcome


def main() -> None:
    sys.setrecursionlimit(1000)
    files = {"alias bomb, 10^6 leaves": alias_bomb(), "5,000-deep nesting": deep()}
    print(f"{'file':26} {'path':7} {'ms':>10}  outcome")
    for name, data in files.items():
        for label, run in (("before", before), ("after", after)):
            seconds, outcome = measure(run, data)
            print(f"{name:26} {label:7} {seconds * 1000:10.3f}  {outcome}")


if __name__ == "__main__":
    main()
