"""Secrets come from the worker's environment, by the name a plan gives; they never travel in a plan."""

from __future__ import annotations

import os
from collections.abc import Mapping

from providers.errors import ConfigError


class EnvSecrets:
    """Resolve secret names (environment variable names) to values on the worker."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def require(self, name: str, purpose: str) -> str:
        """The value of ``name``, or a ConfigError saying which plan field needs it.

        Args:
            name: the environment variable the plan names.
            purpose: the plan field that named it, e.g. ``dns.provider.tsig_secret_env``.
        """
        value = self._environ.get(name)
        if not value:
            raise ConfigError(
                f"environment variable {name} (named by {purpose}) is not set on the worker: "
                "set it where the worker runs; plans only carry the variable's name"
            )
        return value

    def optional(self, name: str | None, purpose: str) -> str | None:
        """Like :meth:`require`, for optional secrets: None when the plan names none."""
        return None if name is None else self.require(name, purpose)
