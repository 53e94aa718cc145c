"""Turn provider errors into Temporal ``ApplicationError`` at the activity boundary.

The error type is the provider error's class name (e.g. ``PreconditionFailed``), so workflows and
operators can match on it; ``non_retryable`` comes from the class. Unknown exceptions are left alone:
Temporal retries them, and a real bug stays visible as a bug.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from providers.errors import CutoverError

P = ParamSpec("P")
R = TypeVar("R")


def to_application_error(exc: CutoverError) -> ApplicationError:
    """The Temporal form of a provider error: same message, class name as type."""
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=not exc.retryable)


def maps_provider_errors(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorate an activity so provider errors leave it as typed ``ApplicationError``."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await func(*args, **kwargs)
        except CutoverError as exc:
            # No exception chain: Temporal would serialise every cause into history, and a third-party
            # cause (e.g. h11 quoting an invalid header) can repeat a secret the provider kept out.
            raise to_application_error(exc) from None

    return wrapper
