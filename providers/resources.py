"""The ``async with`` protocol every provider holding connections shares: enter returns self, exit closes.

Providers hold httpx clients, token-refresh sessions and discovered state; an activity uses each one
for a single call and must release them even when the call fails, so every provider is an
:class:`AsyncResource` and is used as ``async with provider: ...``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncResource:
    """Mixin: ``async with`` support around :meth:`aclose`; subclasses override ``aclose`` to release things."""

    async def aclose(self) -> None:
        """Release connections and clients; this base holds none."""
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
