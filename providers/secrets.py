"""Secrets come from the worker's environment, by the name a plan gives; they never travel in a plan.

With a worker policy, a variable is resolved only for a destination it is bound to (``secrets:`` in
the policy): the TSIG key only for the listed primaries, a Kong token only for the listed Admin API,
a key file only for the listed Google APIs. A plan naming an undeclared variable, or a declared one
for another destination, gets a :class:`PolicyViolation` and the value is never read. The resolver
also carries the :class:`NetworkGuard` every provider opens its connections through.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from models.address_guard import is_loopback_host
from models.names import http_url_problem, url_host
from models.policy import WorkerPolicy, server_entry_matches, url_entry_matches
from providers.errors import ConfigError, PolicyViolation
from providers.netguard import NetworkGuard


@dataclass(frozen=True)
class Destination:
    """Where a secret's value (or what it signs or authorises) goes.

    ``kind`` is a policy destination kind (``dns_server``, ``kong_admin``, ``webhook``, ``notify``,
    ``google``...); ``url`` for URL kinds, ``server`` (host, port) for DNS servers, ``api`` for Google.
    A ``notify`` destination has no URL: the variable's value is the URL, checked once resolved.
    """

    kind: str
    url: str | None = None
    server: tuple[str, int] | None = None
    api: str | None = None

    def describe(self) -> str:
        """``kong_admin https://kong:8444`` (never a path or query, which may carry tokens)."""
        if self.url:
            host = url_host(self.url)
            return f"{self.kind} {self.url.split('://', 1)[0]}://{host}"
        if self.server:
            return f"{self.kind} {self.server[0]}:{self.server[1]}"
        return f"{self.kind} {self.api or ''}".strip()


class EnvSecrets:
    """Resolve secret names (environment variable names) to values on the worker, for a destination."""

    def __init__(self, environ: Mapping[str, str] | None = None, policy: WorkerPolicy | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self.policy = policy
        self.guard = NetworkGuard(policy)
        self._destination: Destination | None = None

    def bound(self, destination: Destination | None) -> EnvSecrets:
        """This resolver, with ``destination`` as the default for every lookup (handed to a credentials loader)."""
        copy = EnvSecrets(self._environ, self.policy)
        copy._destination = destination
        return copy

    def check(self, name: str, purpose: str, destination: Destination | None) -> None:
        """Refuse using ``name`` for ``destination`` unless the policy binds it there (no policy: no binding).

        Raises:
            PolicyViolation: undeclared, bound elsewhere, or no destination given under a policy.
        """
        policy = self.policy
        if policy is None:
            return
        destination = destination or self._destination
        if destination is None:
            raise PolicyViolation(f"{name} (named by {purpose}) is used without a destination the policy can check")
        if policy.dev_loopback_only:
            host = url_host(destination.url) if destination.url else destination.server[0] if destination.server else ""
            if destination.kind == "google" or (host and not is_loopback_host(host)):
                raise PolicyViolation(
                    f"{name} (named by {purpose}): the dev policy sends secrets to loopback destinations only"
                )
            return
        bound = policy.secrets.get(name)
        if bound is None:
            raise PolicyViolation(
                f"{name} (named by {purpose}) is not declared in the worker policy's secrets: the worker sends "
                "no variable the operator has not bound to a destination"
            )
        entries = getattr(bound, destination.kind, ())
        if not entries:
            kinds = ", ".join(bound.kinds()) or "nothing"
            raise PolicyViolation(
                f"{name} (named by {purpose}) may be sent to {kinds}, not to {destination.kind}: the worker "
                "policy binds it elsewhere"
            )
        if destination.kind == "google":
            allowed = destination.api in entries
        elif destination.url is not None:
            allowed = any(url_entry_matches(entry, destination.url) for entry in entries)
        elif destination.server is not None:
            allowed = any(server_entry_matches(entry, *destination.server) for entry in entries)
        else:
            allowed = True  # notify: the value is checked by require_url once resolved
        if not allowed:
            raise PolicyViolation(
                f"{name} (named by {purpose}) may not be sent to {destination.describe()}: not among the "
                "destinations the worker policy binds it to"
            )

    def require(self, name: str, purpose: str, destination: Destination | None = None) -> str:
        """The value of ``name``, or a ConfigError saying which plan field needs it.

        Args:
            name: the environment variable the plan names.
            purpose: the plan field that named it, e.g. ``dns.provider.tsig_secret_env``.
            destination: where the value (or what it signs) goes; required under a policy.

        Raises:
            PolicyViolation: the policy does not bind ``name`` to ``destination`` (the value is not read).
            ConfigError: unset, or holding a control character.
        """
        self.check(name, purpose, destination)
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

    def require_header_value(self, name: str, purpose: str, destination: Destination | None = None) -> str:
        """Like :meth:`require`, for a value sent as an HTTP header: it must also be ASCII.

        httpx encodes header values as ASCII and would otherwise fail with a UnicodeEncodeError
        that quotes part of the secret.
        """
        value = self.require(name, purpose, destination)
        if not value.isascii():
            raise ConfigError(
                f"environment variable {name} (named by {purpose}) is sent as an HTTP header but holds non-ASCII "
                "characters: check that it holds the token itself, copied without typographic quotes or dashes"
            )
        return value

    def optional(self, name: str | None, purpose: str, destination: Destination | None = None) -> str | None:
        """Like :meth:`require`, for optional secrets: None when the plan names none."""
        return None if name is None else self.require(name, purpose, destination)

    def require_url(self, name: str, purpose: str, kind: str) -> str:
        """A URL held in ``name`` (a notification webhook: the URL is the secret), checked as a destination.

        The URL must be http(s), reach an allowed address, be https unless it is loopback, and (with a
        policy) fall under both the ``kind`` allow-list and the variable's binding. Errors never quote it.

        Raises:
            PolicyViolation: any of that fails.
            ConfigError: unset or malformed.
        """
        url = self.require(name, purpose, Destination(kind))
        problem = http_url_problem(url)
        if problem:
            raise ConfigError(f"environment variable {name} (named by {purpose}) {problem} (value not shown)")
        host = url_host(url)
        self.guard.check_host(host, f"{purpose} ({name})")
        if not url.startswith("https://") and not is_loopback_host(host):
            raise PolicyViolation(
                f"the URL in {name} (named by {purpose}) is plain http to a host that is not loopback: such a URL "
                "often carries a token (Slack's do); use https"
            )
        policy = self.policy
        if policy is not None and not policy.dev_loopback_only:
            listed = getattr(policy.endpoints, kind, ())
            bound = getattr(policy.secrets[name], kind, ())
            if not any(url_entry_matches(e, url) for e in listed) or not any(url_entry_matches(e, url) for e in bound):
                raise PolicyViolation(
                    f"the URL in {name} (named by {purpose}) is not in the worker policy's {kind} allow-list and "
                    "binding (value not shown)"
                )
        return url


def _describe(character: str) -> str:
    """Name a control character without quoting the secret around it."""
    names = {"\n": "a line feed (LF)", "\r": "a carriage return (CR)", "\t": "a tab", "\x00": "a NUL byte"}
    return names.get(character, f"the control character U+{ord(character):04X}")
