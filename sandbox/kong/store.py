"""The emulator's entities (Services, Routes, Upstreams, Targets) with Kong's defaults and errors.

Defaults, field checks and error bodies follow Kong 3.9's schemas and DAO errors as summarised in
shared/reference/kong.md §2.2-§2.6: entities get uuid ids and ``created_at``/``updated_at`` in
seconds (targets: float seconds with millisecond precision), unset optional fields are ``null``,
a target without a port gets 8000, a duplicate target or name is a 409 unique violation, and
schema violations are 400 ``{code: 2, name: "schema violation", message, fields}``.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import yaml

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


class KongApiError(Exception):
    """An Admin API error answer: HTTP status and Kong's JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body


def schema_violation(fields: Mapping[str, Any]) -> KongApiError:
    """400 ``{code: 2, name: "schema violation", ...}``, one message listing every field (kong.md §2.6)."""
    parts = [f"{key}: {value if isinstance(value, str) else json.dumps(value)}" for key, value in fields.items()]
    count = len(parts)
    message = f"schema violation ({parts[0]})" if count == 1 else f"{count} schema violations ({'; '.join(parts)})"
    return KongApiError(400, {"code": 2, "name": "schema violation", "message": message, "fields": dict(fields)})


def unique_violation(entity: str, key: str, value: str) -> KongApiError:
    """409 ``{code: 5, name: "unique constraint violation"}``."""
    return KongApiError(
        409,
        {
            "code": 5,
            "name": "unique constraint violation",
            "message": f"UNIQUE violation detected on '{{{key}=\"{value}\"}}'",
            "fields": {key: value},
        },
    )


def not_found() -> KongApiError:
    """404 ``{"message": "Not found"}``."""
    return KongApiError(404, {"message": "Not found"})


def _now() -> int:
    return int(time.time())


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _is_host(value: Any) -> bool:
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


def _check_int(fields: dict[str, Any], data: Mapping[str, Any], key: str, low: int, high: int) -> None:
    if key in data and data[key] is not None:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            fields[key] = "expected an integer"
        elif not low <= value <= high:
            fields[key] = f"value should be between {low} and {high}"


def _check_bool(fields: dict[str, Any], data: Mapping[str, Any], key: str) -> None:
    if key in data and data[key] is not None and not isinstance(data[key], bool):
        fields[key] = "expected a boolean"


def _check_strings(fields: dict[str, Any], data: Mapping[str, Any], key: str) -> None:
    if key in data and data[key] is not None:
        value = data[key]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            fields[key] = "expected a set" if key == "tags" else "expected an array"


def _unknown(fields: dict[str, Any], data: Mapping[str, Any], known: Iterable[str]) -> None:
    allowed = set(known) | set(READ_ONLY_FIELDS)
    for key in data:
        if key not in allowed:
            fields[key] = "unknown field"


class Store:
    """All entities of one emulated Kong node, keyed by id, in insertion order."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.services: dict[str, dict[str, Any]] = {}
        self.routes: dict[str, dict[str, Any]] = {}
        self.upstreams: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, dict[str, Any]] = {}
        self._clock = clock

    # -- lookups --

    @staticmethod
    def _find(table: Mapping[str, dict[str, Any]], ref: str, key: str = "name") -> dict[str, Any]:
        if _is_uuid(ref):
            found = table.get(ref)
        else:
            found = next((e for e in table.values() if e.get(key) == ref), None)
        if found is None:
            raise not_found()
        return found

    def service(self, ref: str) -> dict[str, Any]:
        """A Service by id or name (404 otherwise)."""
        return self._find(self.services, ref)

    def route(self, ref: str) -> dict[str, Any]:
        """A Route by id or name."""
        return self._find(self.routes, ref)

    def upstream(self, ref: str) -> dict[str, Any]:
        """An Upstream by id or name."""
        return self._find(self.upstreams, ref)

    def upstream_by_name(self, name: str) -> dict[str, Any] | None:
        """The Upstream a Service host names, or None (host names are case-insensitive here)."""
        return next((u for u in self.upstreams.values() if str(u["name"]).lower() == name.lower()), None)

    def routes_of(self, service_id: str) -> list[dict[str, Any]]:
        """Routes attached to a Service."""
        return [r for r in self.routes.values() if (r.get("service") or {}).get("id") == service_id]

    def targets_of(self, upstream_id: str) -> list[dict[str, Any]]:
        """Targets of an Upstream."""
        return [t for t in self.targets.values() if t["upstream"]["id"] == upstream_id]

    def target(self, upstream_id: str, ref: str) -> dict[str, Any]:
        """A target by id or ``host:port`` (port 8000 when omitted)."""
        if _is_uuid(ref) and ref in self.targets and self.targets[ref]["upstream"]["id"] == upstream_id:
            return self.targets[ref]
        wanted = self.normalize_target(ref)
        for item in self.targets_of(upstream_id):
            if item["target"] == wanted:
                return item
        raise not_found()

    @staticmethod
    def normalize_target(text: str) -> str:
        """Add Kong's default port 8000 to a target given without one."""
        host, port = split_target(text)
        port = DEFAULT_TARGET_PORT if port is None else port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    # -- services --

    def _validate_service(self, data: dict[str, Any], *, exclude_id: str | None) -> None:
        fields: dict[str, Any] = {}
        _unknown(fields, data, [*SERVICE_DEFAULTS, "url"])
        if data.get("host") in (None, ""):
            fields["host"] = "required field missing"
        elif not _is_host(data["host"]):
            fields["host"] = f"invalid value: {data['host']}"
        if data.get("protocol") not in PROTOCOLS:
            fields["protocol"] = "expected one of: " + ", ".join(PROTOCOLS)
        _check_int(fields, data, "port", 0, 65535)
        _check_int(fields, data, "retries", 0, 32767)
        for key in ("connect_timeout", "write_timeout", "read_timeout"):
            _check_int(fields, data, key, 1, 2**31 - 2)
        _check_int(fields, data, "tls_verify_depth", 0, 64)
        _check_bool(fields, data, "tls_verify")
        _check_bool(fields, data, "enabled")
        _check_strings(fields, data, "tags")
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
            for other in self.services.values():
                if other["name"] == name and other["id"] != exclude_id:
                    raise unique_violation("services", "name", name)

    @staticmethod
    def _expand_url(data: dict[str, Any]) -> dict[str, Any]:
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

    def create_service(self, data: Mapping[str, Any], *, entity_id: str | None = None) -> dict[str, Any]:
        """POST /services (or PUT of a new one)."""
        given = self._expand_url(dict(data))
        entity = {**copy.deepcopy(SERVICE_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        self._validate_service(given | entity, exclude_id=None)
        now = _now()
        entity.update(id=entity_id or given.get("id") or str(uuid.uuid4()), created_at=now, updated_at=now)
        self.services[entity["id"]] = entity
        return entity

    def update_service(self, ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH /services/{id or name}: merge the given fields."""
        current = self.service(ref)
        given = self._expand_url(dict(data))
        merged = {**current, **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        self._validate_service(given | merged, exclude_id=current["id"])
        merged["updated_at"] = _now()
        current.clear()
        current.update(merged)
        return current

    def upsert_service(self, ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /services/{id or name}: replace (or create) with the given fields and defaults."""
        try:
            current = self.service(ref)
        except KongApiError:
            given = dict(data)
            if not _is_uuid(ref):
                given["name"] = ref
            return self.create_service(given, entity_id=ref if _is_uuid(ref) else None)
        given = self._expand_url(dict(data))
        if not _is_uuid(ref):
            given.setdefault("name", ref)
        entity = {**copy.deepcopy(SERVICE_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        self._validate_service(given | entity, exclude_id=current["id"])
        entity.update(id=current["id"], created_at=current["created_at"], updated_at=_now())
        current.clear()
        current.update(entity)
        return current

    def delete_service(self, ref: str) -> None:
        """DELETE /services/{id or name}: refused while Routes reference it."""
        try:
            current = self.service(ref)
        except KongApiError:
            return
        if self.routes_of(current["id"]):
            raise KongApiError(
                400,
                {
                    "code": 4,
                    "name": "foreign key violation",
                    "message": "an existing 'routes' entity references this 'services' entity",
                    "fields": {"@referenced_by": "routes"},
                },
            )
        del self.services[current["id"]]

    # -- routes --

    def _validate_route(self, data: dict[str, Any], *, exclude_id: str | None) -> None:
        fields: dict[str, Any] = {}
        _unknown(fields, data, ROUTE_DEFAULTS)
        for key in ("protocols", "methods", "hosts", "paths", "snis", "tags"):
            _check_strings(fields, data, key)
        for key in ("strip_path", "preserve_host", "request_buffering", "response_buffering"):
            _check_bool(fields, data, key)
        _check_int(fields, data, "regex_priority", -(2**31), 2**31 - 1)
        for index, path in enumerate(data.get("paths") or []):
            if isinstance(path, str) and not path.startswith(("/", "~/")):
                fields["paths"] = {str(index + 1): "should start with: / (fixed path) or ~/ (regex path)"}
        service = data.get("service")
        if service is not None:
            if not isinstance(service, dict) or "id" not in service:
                fields["service"] = "expected a record"
            elif service["id"] not in self.services:
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
            for other in self.routes.values():
                if other["name"] == name and other["id"] != exclude_id:
                    raise unique_violation("routes", "name", name)

    def _service_ref(self, data: dict[str, Any]) -> dict[str, Any]:
        service = data.get("service")
        if isinstance(service, dict) and "name" in service and "id" not in service:
            data["service"] = {"id": self.service(str(service["name"]))["id"]}
        elif isinstance(service, str):
            data["service"] = {"id": self.service(service)["id"]}
        return data

    def create_route(self, data: Mapping[str, Any], *, entity_id: str | None = None) -> dict[str, Any]:
        """POST /routes or /services/{s}/routes."""
        given = self._service_ref(dict(data))
        entity = {**copy.deepcopy(ROUTE_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        self._validate_route(given | entity, exclude_id=None)
        now = _now()
        entity.update(id=entity_id or given.get("id") or str(uuid.uuid4()), created_at=now, updated_at=now)
        self.routes[entity["id"]] = entity
        return entity

    def update_route(self, ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH /routes/{id or name}."""
        current = self.route(ref)
        given = self._service_ref(dict(data))
        merged = {**current, **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        self._validate_route(given | merged, exclude_id=current["id"])
        merged["updated_at"] = _now()
        current.clear()
        current.update(merged)
        return current

    def upsert_route(self, ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /routes/{id or name}."""
        given = dict(data)
        if not _is_uuid(ref):
            given.setdefault("name", ref)
        try:
            current = self.route(ref)
        except KongApiError:
            return self.create_route(given, entity_id=ref if _is_uuid(ref) else None)
        given = self._service_ref(given)
        entity = {**copy.deepcopy(ROUTE_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        self._validate_route(given | entity, exclude_id=current["id"])
        entity.update(id=current["id"], created_at=current["created_at"], updated_at=_now())
        current.clear()
        current.update(entity)
        return current

    def delete_route(self, ref: str) -> None:
        """DELETE /routes/{id or name}."""
        try:
            current = self.route(ref)
        except KongApiError:
            return
        del self.routes[current["id"]]

    # -- upstreams and targets --

    def _validate_upstream(self, data: dict[str, Any], *, exclude_id: str | None) -> None:
        fields: dict[str, Any] = {}
        _unknown(fields, data, UPSTREAM_DEFAULTS)
        name = data.get("name")
        if name in (None, ""):
            fields["name"] = "required field missing"
        elif not _is_host(name):
            fields["name"] = "Invalid name ('" + str(name) + "'); must be a valid hostname"
        host_header = data.get("host_header")
        if host_header is not None and not _is_host(host_header):
            fields["host_header"] = f"invalid value: {host_header}"
        if data.get("algorithm") not in ("round-robin", "consistent-hashing", "least-connections", "latency"):
            fields["algorithm"] = "expected one of: consistent-hashing, latency, least-connections, round-robin"
        _check_int(fields, data, "slots", 10, 2**16)
        _check_bool(fields, data, "use_srv_name")
        _check_strings(fields, data, "tags")
        if fields:
            raise schema_violation(fields)
        for other in self.upstreams.values():
            if other["name"] == name and other["id"] != exclude_id:
                raise unique_violation("upstreams", "name", str(name))

    def create_upstream(self, data: Mapping[str, Any], *, entity_id: str | None = None) -> dict[str, Any]:
        """POST /upstreams."""
        given = dict(data)
        entity = {**copy.deepcopy(UPSTREAM_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        self._validate_upstream(given | entity, exclude_id=None)
        now = _now()
        entity.update(id=entity_id or given.get("id") or str(uuid.uuid4()), created_at=now, updated_at=now)
        self.upstreams[entity["id"]] = entity
        return entity

    def update_upstream(self, ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH /upstreams/{id or name}."""
        current = self.upstream(ref)
        merged = {**current, **{k: v for k, v in data.items() if k not in READ_ONLY_FIELDS}}
        self._validate_upstream(dict(data) | merged, exclude_id=current["id"])
        merged["updated_at"] = _now()
        current.clear()
        current.update(merged)
        return current

    def upsert_upstream(self, ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /upstreams/{id or name}."""
        given = dict(data)
        if not _is_uuid(ref):
            given.setdefault("name", ref)
        try:
            current = self.upstream(ref)
        except KongApiError:
            return self.create_upstream(given, entity_id=ref if _is_uuid(ref) else None)
        entity = {**copy.deepcopy(UPSTREAM_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        self._validate_upstream(given | entity, exclude_id=current["id"])
        entity.update(id=current["id"], created_at=current["created_at"], updated_at=_now())
        current.clear()
        current.update(entity)
        return current

    def delete_upstream(self, ref: str) -> None:
        """DELETE /upstreams/{id or name} (its targets go with it)."""
        try:
            current = self.upstream(ref)
        except KongApiError:
            return
        for target in self.targets_of(current["id"]):
            del self.targets[target["id"]]
        del self.upstreams[current["id"]]

    def _validate_target(self, data: dict[str, Any]) -> None:
        fields: dict[str, Any] = {}
        _unknown(fields, data, TARGET_DEFAULTS)
        target = data.get("target")
        if target in (None, ""):
            fields["target"] = "required field missing"
        else:
            host, port = split_target(str(target))
            if not _is_host(host) or (port is not None and not 0 < port < 65536):
                fields["target"] = "Invalid target ('" + str(target) + "'); not a valid hostname or ip address"
        _check_int(fields, data, "weight", 0, 65535)
        _check_strings(fields, data, "tags")
        if fields:
            raise schema_violation(fields)

    def create_target(self, upstream_ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """POST /upstreams/{u}/targets: port 8000 when omitted; a duplicate is a 409."""
        upstream = self.upstream(upstream_ref)
        given = dict(data)
        given.pop("upstream", None)
        entity = {**copy.deepcopy(TARGET_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        self._validate_target(given | entity)
        entity["target"] = self.normalize_target(str(entity["target"]))
        if any(t["target"] == entity["target"] for t in self.targets_of(upstream["id"])):
            raise KongApiError(
                409,
                {
                    "code": 5,
                    "name": "unique constraint violation",
                    "message": f'UNIQUE violation detected on \'{{target="{entity["target"]}",'
                    f'upstream={{id="{upstream["id"]}"}}}}\'',
                    "fields": {"target": entity["target"], "upstream": {"id": upstream["id"]}},
                },
            )
        now = round(self._clock(), 3)
        entity.update(id=given.get("id") or str(uuid.uuid4()), created_at=now, updated_at=now)
        entity["upstream"] = {"id": upstream["id"]}
        self.targets[entity["id"]] = entity
        return entity

    def update_target(self, upstream_ref: str, ref: str, data: Mapping[str, Any], *, replace: bool) -> dict[str, Any]:
        """PATCH/PUT /upstreams/{u}/targets/{id or host:port}."""
        upstream = self.upstream(upstream_ref)
        current = self.target(upstream["id"], ref)
        given = {k: v for k, v in data.items() if k not in (*READ_ONLY_FIELDS, "upstream")}
        base = copy.deepcopy(TARGET_DEFAULTS) | {"target": current["target"]} if replace else dict(current)
        merged = {**base, **given}
        self._validate_target({k: v for k, v in merged.items() if k not in (*READ_ONLY_FIELDS, "upstream")})
        merged["target"] = self.normalize_target(str(merged["target"]))
        merged.update(
            id=current["id"],
            created_at=current["created_at"],
            updated_at=round(self._clock(), 3),
            upstream={"id": upstream["id"]},
        )
        current.clear()
        current.update(merged)
        return current

    def delete_target(self, upstream_ref: str, ref: str) -> None:
        """DELETE /upstreams/{u}/targets/{id or host:port}."""
        upstream = self.upstream(upstream_ref)
        try:
            current = self.target(upstream["id"], ref)
        except KongApiError:
            return
        del self.targets[current["id"]]

    # -- whole config --

    def configuration_hash(self) -> str:
        """md5 of the canonical config, like a DB-less node's ``configuration_hash`` (32 hex digits)."""
        if not (self.services or self.routes or self.upstreams or self.targets):
            return "0" * 32
        config = {
            "services": sorted(self.services.values(), key=lambda e: e["id"]),
            "routes": sorted(self.routes.values(), key=lambda e: e["id"]),
            "upstreams": sorted(self.upstreams.values(), key=lambda e: e["id"]),
            "targets": sorted(self.targets.values(), key=lambda e: e["id"]),
        }
        return hashlib.md5(json.dumps(config, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


class DeclarativeConfigError(ValueError):
    """A declarative config file Kong would reject; the message lists every problem."""


def load_declarative(store: Store, source: str | Mapping[str, Any]) -> None:
    """Seed the store from Kong's declarative format (``_format_version: "3.0"``).

    Supports services with nested ``routes``, top-level ``routes`` naming their ``service``, and
    upstreams with nested ``targets``: the same file seeds real Kong (``KONG_DECLARATIVE_CONFIG`` or
    ``deck gateway sync``). Every problem is collected before raising.
    """
    data = yaml.safe_load(source) if isinstance(source, str) else dict(source)
    if not isinstance(data, dict):
        raise DeclarativeConfigError("declarative config must be a mapping with _format_version")
    problems: list[str] = []
    version = str(data.get("_format_version", ""))
    if version not in ("3.0", "2.1", "1.1"):
        problems.append(f'_format_version: expected "3.0", got {version or "nothing"!r}')
    known = {"_format_version", "_transform", "_comment", "_info", "services", "routes", "upstreams"}
    for key in data:
        if key not in known:
            problems.append(f"{key}: not supported by the emulator (supported: services, routes, upstreams)")

    def attempt(what: str, action: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any] | None:
        try:
            return action(*args)
        except KongApiError as exc:
            problems.append(f"{what}: {exc.body.get('message')}")
        return None

    for index, service in enumerate(data.get("services") or []):
        service = dict(service)
        routes = service.pop("routes", None) or []
        label = f"services[{index}] ({service.get('name', '?')})"
        created = attempt(label, store.create_service, service)
        for r_index, route in enumerate(routes):
            if created is not None:
                attempt(f"{label}.routes[{r_index}]", store.create_route, {**route, "service": {"id": created["id"]}})
    for index, route in enumerate(data.get("routes") or []):
        attempt(f"routes[{index}]", store.create_route, dict(route))
    for index, upstream in enumerate(data.get("upstreams") or []):
        upstream = dict(upstream)
        targets = upstream.pop("targets", None) or []
        label = f"upstreams[{index}] ({upstream.get('name', '?')})"
        created = attempt(label, store.create_upstream, upstream)
        for t_index, target in enumerate(targets):
            if created is not None:
                attempt(f"{label}.targets[{t_index}]", store.create_target, created["id"], dict(target))
    if problems:
        raise DeclarativeConfigError("invalid declarative config:\n  " + "\n  ".join(problems))
