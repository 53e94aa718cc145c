"""Rules for the ``promql`` telemetry source's plan fields: its URL, label matchers and credentials.

Plan input is hostile until checked: the URL must be a plain API base (no user information, query or
fragment), label matchers must be matchers and nothing else (they are put inside a PromQL selector),
and a credential (``auth: bearer`` or ``google``) only travels over https, except to a loopback host.
The worker's own allow-list policy decides which hosts may be reached at all.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Any

Problem = tuple[tuple[str | int, ...], str, Any]
"""A plan problem: where, what, the offending value (as models.plan collects them)."""

_LABEL_MATCHER = r'[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\\n]|\\.)*"'
_LABEL_MATCHERS = re.compile(rf"^(?:{_LABEL_MATCHER}(?:\s*,\s*{_LABEL_MATCHER})*)?$")


def label_matchers(value: str) -> str:
    """Label matchers and nothing else: they go inside the braces of a PromQL selector cutover builds."""
    if not _LABEL_MATCHERS.match(value.strip()):
        raise ValueError(
            f"{value[:80]!r} is not a list of PromQL label matchers: write them as they go inside braces, "
            'e.g. namespace="kong", job=~"kong-dp.*"'
        )
    return value.strip()


def promql_url(value: str) -> str:
    """The base of a Prometheus HTTP API: scheme, host, optional port and path prefix, nothing else."""
    parts = urllib.parse.urlsplit(value)
    if "@" in parts.netloc:
        raise ValueError("the URL carries user information: credentials go in token_env or credentials_env")
    if not re.match(r"^https?://[^\s/:@?#]+(:\d{1,5})?(/[^\s?#]*)?$", value):
        raise ValueError(
            f"{value!r} is not the base URL of an http(s) API (scheme, host, port, path; no query or fragment)"
        )
    if parts.path.rstrip("/").endswith(("/api/v1/query", "/api/v1/query_range", "/api/v1")):
        raise ValueError(f"{value!r} names an API path: give the base URL, cutover adds /api/v1/query itself")
    return value.rstrip("/")


_LOOPBACK_NAMES = ("localhost", "localhost.", "ip6-localhost")


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: the only hosts plain http may carry a credential to."""
    host = host.strip().lower().removeprefix("[").removesuffix("]")
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def promql_problems(source: Any) -> list[Problem]:
    """A promql source's credential rules: which variable goes with which ``auth``, and https for any credential."""
    if not isinstance(source, dict) or source.get("kind") != "promql":
        return []
    loc = ("monitor", "source")
    auth = source.get("auth", "none")
    problems: list[Problem] = []
    if auth == "bearer" and not source.get("token_env"):
        problems.append(((*loc, "token_env"), "auth: bearer needs token_env (the variable holding the token)", None))
    if source.get("token_env") and auth != "bearer":
        problems.append(((*loc, "token_env"), "token_env is only used with auth: bearer", source.get("token_env")))
    if source.get("credentials_env") and auth != "google":
        problems.append(
            ((*loc, "credentials_env"), "credentials_env is only used with auth: google", source.get("credentials_env"))
        )
    url = source.get("url")
    if auth in ("bearer", "google") and isinstance(url, str):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
            problems.append(
                (
                    (*loc, "url"),
                    f"auth: {auth} sends a credential, which goes only over https (plain http is allowed for "
                    "loopback hosts only)",
                    url,
                )
            )
    return problems
