"""Secrets come from the worker's environment, by the name a plan gives; they never travel in a plan."""

from __future__ import annotations

import os
import unicodedata
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
        control = next((ch for ch in value if unicodedata.category(ch) == "Cc"), None)
        if control is not None:
            # Never stripped silently: a value that is not what the user meant must be fixed at its source.
            # Sent as it is, httpx/h11 would reject the header and repeat its value in the error text.
            raise ConfigError(
                f"environment variable {name} (named by {purpose}) contains {_describe(control)}: secrets are "
                "used exactly as set and cutover strips nothing, so remove it where the variable is set (a "
                "trailing newline usually comes from a secret made from a file, e.g. `kubectl create secret "
                "--from-file`, or written with echo: write it with printf '%s')"
            )
        return value

    def require_header_value(self, name: str, purpose: str) -> str:
        """Like :meth:`require`, for a value sent as an HTTP header: it must also be ASCII.

        httpx encodes header values as ASCII and would otherwise fail with a UnicodeEncodeError
        that quotes part of the secret.
        """
        value = self.require(name, purpose)
        if not value.isascii():
            raise ConfigError(
                f"environment variable {name} (named by {purpose}) is sent as an HTTP header but holds non-ASCII "
                "characters: check that it holds the token itself, copied without typographic quotes or dashes"
            )
        return value

    def optional(self, name: str | None, purpose: str) -> str | None:
        """Like :meth:`require`, for optional secrets: None when the plan names none."""
        return None if name is None else self.require(name, purpose)


def _describe(character: str) -> str:
    """Name a control character without quoting the secret around it."""
    names = {"\n": "a line feed (LF)", "\r": "a carriage return (CR)", "\t": "a tab", "\x00": "a NUL byte"}
    return names.get(character, f"the control character U+{ord(character):04X}")
