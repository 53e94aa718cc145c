"""The emulator's entities (Services, Routes, Upstreams, Targets) with Kong's defaults and errors.

Defaults, field checks and error bodies follow Kong 3.9's schemas and DAO errors as summarised in
shared/reference/kong.md §2.2-§2.6: entities get uuid ids and ``created_at``/``updated_at`` in
seconds (targets: float seconds with millisecond precision), unset optional fields are ``null``,
a target without a port gets 8000, a duplicate target or name is a 409 unique violation, and
schema violations are 400 ``{code: 2, name: "schema violation", message, fields}``.
"""

from __future__ import annotations

import ipaddress
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from sandbox.kong.errors import KongApiError, schema_violation, unique_violation

PROTOCOLS = ("grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp", "ws", "wss")
TLS_UPSTREAM_PROTOCOLS = ("https", "grpcs", "tls", "wss")
DEFAULT_TARGET_PORT = 8000
"""``kong/db/dao/targets.lua`` DEFAULT_PORT (kong.md §2.4)."""
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")
NAME = re.compile(r"^[\w.~-]+$")

SERVICE_DEFAULTS: dict[str, Any] = {
    "name": None,
    "retries": 5,
    "protocol": "http",
    "host": None,
    "port": 80,
    "path": None,
    "connect_timeout": 60000,
    "write_timeout": 60000,
    "read_timeout": 60000,
    "tags": None,
    "client_certificate": None,
    "tls_verify": None,
    "tls_verify_depth": None,
    "ca_certificates": None,
    "enabled": True,
}
ROUTE_DEFAULTS: dict[str, Any] = {
    "name": None,
    "protocols": ["http", "https"],
    "methods": None,
    "hosts": None,
    "paths": None,
    "headers": None,
    "https_redirect_status_code": 426,
    "regex_priority": 0,
    "strip_path": True,
    "path_handling": "v0",
    "preserve_host": False,
    "request_buffering": True,
    "response_buffering": True,
    "snis": None,
    "sources": None,
    "destinations": None,
    "tags": None,
    "service": None,
}
HEALTHCHECK_DEFAULTS: dict[str, Any] = {
    "threshold": 0,
    "active": {
        "type": "http",
        "timeout": 1,
        "concurrency": 10,
        "http_path": "/",
        "https_sni": None,
        "https_verify_certificate": True,
        "headers": None,
        "healthy": {"interval": 0, "http_statuses": [200, 302], "successes": 0},
        "unhealthy": {
            "interval": 0,
            "http_statuses": [429, 404, 500, 501, 502, 503, 504, 505],
            "tcp_failures": 0,
            "timeouts": 0,
            "http_failures": 0,
        },
    },
    "passive": {
        "type": "http",
        "healthy": {
            "http_statuses": [*range(200, 209), 226, *range(300, 309)],
            "successes": 0,
        },
        "unhealthy": {"http_statuses": [429, 500, 503], "tcp_failures": 0, "timeouts": 0, "http_failures": 0},
    },
}
UPSTREAM_DEFAULTS: dict[str, Any] = {
    "name": None,
    "algorithm": "round-robin",
    "hash_on": "none",
    "hash_fallback": "none",
    "hash_on_header": None,
    "hash_fallback_header": None,
    "hash_on_cookie": None,
    "hash_on_cookie_path": "/",
    "hash_on_query_arg": None,
    "hash_fallback_query_arg": None,
    "hash_on_uri_capture": None,
    "hash_fallback_uri_capture": None,
    "slots": 10000,
    "healthchecks": HEALTHCHECK_DEFAULTS,
    "tags": None,
    "host_header": None,
    "client_certificate": None,
    "use_srv_name": False,
}
TARGET_DEFAULTS: dict[str, Any] = {"target": None, "weight": 100, "tags": None, "upstream": None}
READ_ONLY_FIELDS = ("id", "created_at", "updated_at")


def now_seconds() -> int:
    """Kong's timestamps of Services, Routes and Upstreams: whole seconds."""
    return int(time.time())


def is_uuid(text: str) -> bool:
    """True for an entity id (Kong takes a reference that parses as a uuid for an id, else a name)."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def is_host(value: Any) -> bool:
    """True for an IP address (v6 with or without brackets) or a hostname Kong accepts."""
    if not isinstance(value, str) or not value:
        return False
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return bool(HOSTNAME.match(value))
    return True


def split_target(target: str) -> tuple[str, int | None]:
    """``host:port`` / ``[v6]:port`` / ``host`` -> (host, port or None)."""
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if target.count(":") == 1:
        host, port = target.split(":")
        return host, int(port) if port.isdigit() else None
    return target, None


def check_int(fields: dict[str, Any], data: Mapping[str, Any], key: str, low: int, high: int) -> None:
    """Note in ``fields`` a set ``key`` that is no integer in ``[low, high]``."""
    if key in data and data[key] is not None:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            fields[key] = "expected an integer"
        elif not low <= value <= high:
            fields[key] = f"value should be between {low} and {high}"


def check_bool(fields: dict[str, Any], data: Mapping[str, Any], key: str) -> None:
    """Note in ``fields`` a set ``key`` that is no boolean."""
    if key in data and data[key] is not None and not isinstance(data[key], bool):
        fields[key] = "expected a boolean"


def check_strings(fields: dict[str, Any], data: Mapping[str, Any], key: str) -> None:
    """Note in ``fields`` a set ``key`` that is no list of strings."""
    if key in data and data[key] is not None:
        value = data[key]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            fields[key] = "expected a set" if key == "tags" else "expected an array"


def unknown_fields(fields: dict[str, Any], data: Mapping[str, Any], known: Iterable[str]) -> None:
    """Note in ``fields`` every key of ``data`` the entity does not have."""
    allowed = set(known) | set(READ_ONLY_FIELDS)
    for key in data:
        if key not in allowed:
            fields[key] = "unknown field"


def validate_service(services: Mapping[str, dict[str, Any]], data: dict[str, Any], *, exclude_id: str | None) -> None:
    """Kong's checks of a Service: every field problem at once (400), then a taken name (409)."""
    fields: dict[str, Any] = {}
    unknown_fields(fields, data, [*SERVICE_DEFAULTS, "url"])
    if data.get("host") in (None, ""):
        fields["host"] = "required field missing"
    elif not is_host(data["host"]):
        fields["host"] = f"invalid value: {data['host']}"
    if data.get("protocol") not in PROTOCOLS:
        fields["protocol"] = "expected one of: " + ", ".join(PROTOCOLS)
    check_int(fields, data, "port", 0, 65535)
    check_int(fields, data, "retries", 0, 32767)
    for key in ("connect_timeout", "write_timeout", "read_timeout"):
        check_int(fields, data, key, 1, 2**31 - 2)
    check_int(fields, data, "tls_verify_depth", 0, 64)
    check_bool(fields, data, "tls_verify")
    check_bool(fields, data, "enabled")
    check_strings(fields, data, "tags")
    path = data.get("path")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        fields["path"] = "should start with: /"
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not NAME.match(name)):
        fields["name"] = "invalid value '" + str(name) + "': it must only contain alphanumeric and '., -, _, ~'"
    if data.get("protocol") not in TLS_UPSTREAM_PROTOCOLS:
        tls_only = ("tls_verify", "tls_verify_depth", "ca_certificates", "client_certificate")
        conditional = [key for key in tls_only if data.get(key)]
        if conditional:
            for key in conditional:
                fields[key] = "value must be null"
            fields["@entity"] = ["failed conditional validation given value of field 'protocol'"]
    if fields:
        raise schema_violation(fields)
    if name is not None:
        for other in services.values():
            if other["name"] == name and other["id"] != exclude_id:
                raise unique_violation("services", "name", name)


def expand_url(data: dict[str, Any]) -> dict[str, Any]:
    """A Service's ``url`` shorthand, expanded into protocol, host, port and path as Kong does."""
    url = data.pop("url", None)
    if url is None:
        return data
    parts = urlsplit(str(url))
    if not parts.scheme or not parts.hostname:
        raise schema_violation({"url": "missing host in url"})
    data["protocol"] = parts.scheme
    data["host"] = parts.hostname
    data["port"] = parts.port or (443 if parts.scheme in ("https", "grpcs", "wss", "tls") else 80)
    data["path"] = parts.path or None
    return data


def validate_route(
    services: Mapping[str, dict[str, Any]],
    routes: Mapping[str, dict[str, Any]],
    data: dict[str, Any],
    *,
    exclude_id: str | None,
) -> None:
    """Kong's checks of a Route: a missing Service is a foreign key violation (400)."""
    fields: dict[str, Any] = {}
    unknown_fields(fields, data, ROUTE_DEFAULTS)
    for key in ("protocols", "methods", "hosts", "paths", "snis", "tags"):
        check_strings(fields, data, key)
    for key in ("strip_path", "preserve_host", "request_buffering", "response_buffering"):
        check_bool(fields, data, key)
    check_int(fields, data, "regex_priority", -(2**31), 2**31 - 1)
    for index, path in enumerate(data.get("paths") or []):
        if isinstance(path, str) and not path.startswith(("/", "~/")):
            fields["paths"] = {str(index + 1): "should start with: / (fixed path) or ~/ (regex path)"}
    service = data.get("service")
    if service is not None:
        if not isinstance(service, dict) or "id" not in service:
            fields["service"] = "expected a record"
        elif service["id"] not in services:
            raise KongApiError(
                400,
                {
                    "code": 4,
                    "name": "foreign key violation",
                    "message": f"the foreign key '{{id=\"{service['id']}\"}}' does not reference an existing "
                    "'services' entity.",
                    "fields": {"service": {"id": service["id"]}},
                },
            )
    if not any(data.get(key) for key in ("methods", "hosts", "headers", "paths", "snis")):
        fields["@entity"] = [
            "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"
        ]
    if fields:
        raise schema_violation(fields)
    name = data.get("name")
    if name is not None:
        for other in routes.values():
            if other["name"] == name and other["id"] != exclude_id:
                raise unique_violation("routes", "name", name)


def validate_upstream(upstreams: Mapping[str, dict[str, Any]], data: dict[str, Any], *, exclude_id: str | None) -> None:
    """Kong's checks of an Upstream: its name must be a hostname, and unique."""
    fields: dict[str, Any] = {}
    unknown_fields(fields, data, UPSTREAM_DEFAULTS)
    name = data.get("name")
    if name in (None, ""):
        fields["name"] = "required field missing"
    elif not is_host(name):
        fields["name"] = "Invalid name ('" + str(name) + "'); must be a valid hostname"
    host_header = data.get("host_header")
    if host_header is not None and not is_host(host_header):
        fields["host_header"] = f"invalid value: {host_header}"
    if data.get("algorithm") not in ("round-robin", "consistent-hashing", "least-connections", "latency"):
        fields["algorithm"] = "expected one of: consistent-hashing, latency, least-connections, round-robin"
    check_int(fields, data, "slots", 10, 2**16)
    check_bool(fields, data, "use_srv_name")
    check_strings(fields, data, "tags")
    if fields:
        raise schema_violation(fields)
    for other in upstreams.values():
        if other["name"] == name and other["id"] != exclude_id:
            raise unique_violation("upstreams", "name", str(name))


def validate_target(data: dict[str, Any]) -> None:
    """Kong's checks of a Target: a hostname or IP address with an optional port."""
    fields: dict[str, Any] = {}
    unknown_fields(fields, data, TARGET_DEFAULTS)
    target = data.get("target")
    if target in (None, ""):
        fields["target"] = "required field missing"
    else:
        host, port = split_target(str(target))
        if not is_host(host) or (port is not None and not 0 < port < 65536):
            fields["target"] = "Invalid target ('" + str(target) + "'); not a valid hostname or ip address"
    check_int(fields, data, "weight", 0, 65535)
    check_strings(fields, data, "tags")
    if fields:
        raise schema_violation(fields)
