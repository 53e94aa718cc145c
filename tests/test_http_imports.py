"""httpx's per-request check of the async library must not search the disk for a module.

httpcore runs ``import sniffio`` for every request it sends through a pool. When sniffio is not
installed the import fails, and a failed import is not cached: every request walks the import
path again (~0.35 ms of CPU, about 6 % of a cutover's worker CPU and a quarter of the Kong
emulator's under load). ``sniffio`` is a declared dependency so that the import is a lookup.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

import httpcore._synchronization as synchronization


class _CountingFinder(importlib.abc.MetaPathFinder):
    """Counts the module searches that reach the import path."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        self.searched.append(fullname)
        return None


def test_the_async_library_check_of_every_request_imports_nothing() -> None:
    finder = _CountingFinder()

    async def check_many() -> set[str]:
        return {synchronization.current_async_library() for _ in range(200)}

    sys.meta_path.insert(0, finder)
    try:
        libraries = asyncio.run(check_many())
    finally:
        sys.meta_path.remove(finder)
    assert libraries == {"asyncio"}
    assert finder.searched == [], f"httpcore searched the disk for {sorted(set(finder.searched))}"
