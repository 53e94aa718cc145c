"""The field types of a plan: names, URLs, variable names and numbers, each checked whole.

Every type here is strict about what it accepts and never quotes a value that could be a secret in
its error (a user who pasted the secret itself into a ``*_env`` field or a URL would see it in logs
and history). :mod:`models.plan` builds the plan's sections from them.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from models.names import (
    ENV_VAR,
    HEADER_NAME,
    KONG_NAME,
    RESERVED_HEADERS,
    absolute_name,
    has_control,
    http_url_problem,
    is_ip_name,
    split_host_port,
)
from models.promql import label_matchers, promql_url


def _dns_name(value: str) -> str:
    return absolute_name(value)


def _host_name(value: str) -> str:
    """A DNS name that must not be an IP address written as a name (a CNAME target, a record)."""
    name = absolute_name(value)
    if is_ip_name(name):
        raise ValueError(
            "is an IP address, not a host name: a CNAME points at a name (RFC 1034 §3.6.2); give B's host name"
        )
    return name


def _key_name(value: str) -> str:
    """A TSIG key name: a valid DNS name, kept as written (it is part of the plan's digest)."""
    absolute_name(value)
    return value


def _host_port(value: str) -> str:
    split_host_port(value, 53)
    return value


def _env_var(value: str) -> str:
    # Never quote the value: a user who pasted the secret itself here would see it in logs and history.
    if not ENV_VAR.fullmatch(value):
        raise ValueError(
            "is not an environment variable name (letters, digits and '_', not starting with a digit; value not "
            "shown): name the variable that holds the secret (e.g. CUTOVER_TSIG_SECRET), never the secret itself"
        )
    return value


def _http_url(value: str) -> str:
    problem = http_url_problem(value)
    if problem:
        raise ValueError(f"{problem} (value not shown)")
    return value


def _kong_name(value: str) -> str:
    if not KONG_NAME.fullmatch(value):
        raise ValueError("is not a Kong name or id (1-128 of letters, digits, '.', '-', '_', '~')")
    return value


def _header_name(value: str) -> str:
    if not HEADER_NAME.fullmatch(value):
        raise ValueError("is not an HTTP header name (a token: no space, colon, CR or LF; at most 64 characters)")
    if value.lower() in RESERVED_HEADERS:
        raise ValueError("is a header cutover sets itself or that frames the request; a plan can't set it")
    return value


def _plain_text(value: str) -> str:
    if has_control(value):
        raise ValueError("holds a control character or line break")
    return value


def _path(value: str) -> str:
    if has_control(value):
        raise ValueError("a path holds no control character or line break")
    return value


def _gcp_project(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", value):
        raise ValueError(
            f"{value!r} is not a Google Cloud project id (6-30 characters: lower-case letters, digits, hyphens)"
        )
    return value


DnsName = Annotated[str, AfterValidator(_dns_name)]
"""An absolute DNS name, lower-cased, with its trailing dot."""
HostName = Annotated[str, AfterValidator(_host_name)]
"""A :data:`DnsName` that is not an IP address."""
KeyName = Annotated[str, AfterValidator(_key_name)]
KongName = Annotated[str, AfterValidator(_kong_name)]
HeaderName = Annotated[str, AfterValidator(_header_name)]
PlainText = Annotated[str, Field(max_length=500), AfterValidator(_plain_text)]
FilePath = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_path)]
HostPort = Annotated[str, AfterValidator(_host_port)]
"""``host:port``, ``[v6]:port`` or ``host`` (port 53)."""
EnvVarName = Annotated[str, AfterValidator(_env_var)]
"""The name of an environment variable the worker reads a secret from."""
HttpUrl = Annotated[str, AfterValidator(_http_url)]
GcpProjectId = Annotated[str, AfterValidator(_gcp_project)]
ExpectedStatus = Annotated[int, Field(ge=200, le=399)]
"""A status that means success: 2xx, or 3xx for a redirecting health URL (a 4xx/5xx never proves anything)."""
Ttl = Annotated[int, Field(ge=1, le=86400)]
LabelMatchers = Annotated[str, AfterValidator(label_matchers)]
"""PromQL label matchers as written inside braces: ``namespace="kong", job=~"kong-dp.*"``."""
PromqlUrl = Annotated[str, AfterValidator(promql_url)]
