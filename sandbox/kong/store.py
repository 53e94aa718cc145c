"""The emulator's entities (Services, Routes, Upstreams, Targets), kept as Kong keeps them.

Defaults and checks live in sandbox/kong/schema.py, error bodies in sandbox/kong/errors.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.kong.errors import KongApiError, not_found
from sandbox.kong.schema import (
    DEFAULT_TARGET_PORT,
    READ_ONLY_FIELDS,
    ROUTE_DEFAULTS,
    SERVICE_DEFAULTS,
    TARGET_DEFAULTS,
    UPSTREAM_DEFAULTS,
    expand_url,
    is_uuid,
    now_seconds,
    split_target,
    validate_route,
    validate_service,
    validate_target,
    validate_upstream,
)


class Store:
    """All entities of one emulated Kong node, keyed by id, in insertion order."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.services: dict[str, dict[str, Any]] = {}
        self.routes: dict[str, dict[str, Any]] = {}
        self.upstreams: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, dict[str, Any]] = {}
        self._clock = clock
        self.routing_version = 0
        """Bumped by every write to a Service or Route: the proxy's router cache is keyed on it."""

    # -- lookups --

    @staticmethod
    def _find(table: Mapping[str, dict[str, Any]], ref: str, key: str = "name") -> dict[str, Any]:
        if is_uuid(ref):
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
        if is_uuid(ref) and ref in self.targets and self.targets[ref]["upstream"]["id"] == upstream_id:
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

    def create_service(self, data: Mapping[str, Any], *, entity_id: str | None = None) -> dict[str, Any]:
        """POST /services (or PUT of a new one)."""
        self.routing_version += 1
        given = expand_url(dict(data))
        entity = {**copy.deepcopy(SERVICE_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        validate_service(self.services, given | entity, exclude_id=None)
        now = now_seconds()
        entity.update(id=entity_id or given.get("id") or str(uuid.uuid4()), created_at=now, updated_at=now)
        self.services[entity["id"]] = entity
        return entity

    def update_service(self, ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH /services/{id or name}: merge the given fields."""
        self.routing_version += 1
        current = self.service(ref)
        given = expand_url(dict(data))
        merged = {**current, **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        validate_service(self.services, given | merged, exclude_id=current["id"])
        merged["updated_at"] = now_seconds()
        current.clear()
        current.update(merged)
        return current

    def upsert_service(self, ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /services/{id or name}: replace (or create) with the given fields and defaults."""
        self.routing_version += 1
        try:
            current = self.service(ref)
        except KongApiError:
            given = dict(data)
            if not is_uuid(ref):
                given["name"] = ref
            return self.create_service(given, entity_id=ref if is_uuid(ref) else None)
        given = expand_url(dict(data))
        if not is_uuid(ref):
            given.setdefault("name", ref)
        entity = {**copy.deepcopy(SERVICE_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        validate_service(self.services, given | entity, exclude_id=current["id"])
        entity.update(id=current["id"], created_at=current["created_at"], updated_at=now_seconds())
        current.clear()
        current.update(entity)
        return current

    def delete_service(self, ref: str) -> None:
        """DELETE /services/{id or name}: refused while Routes reference it."""
        self.routing_version += 1
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

    def _service_ref(self, data: dict[str, Any]) -> dict[str, Any]:
        service = data.get("service")
        if isinstance(service, dict) and "name" in service and "id" not in service:
            data["service"] = {"id": self.service(str(service["name"]))["id"]}
        elif isinstance(service, str):
            data["service"] = {"id": self.service(service)["id"]}
        return data

    def create_route(self, data: Mapping[str, Any], *, entity_id: str | None = None) -> dict[str, Any]:
        """POST /routes or /services/{s}/routes."""
        self.routing_version += 1
        given = self._service_ref(dict(data))
        entity = {**copy.deepcopy(ROUTE_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        validate_route(self.services, self.routes, given | entity, exclude_id=None)
        now = now_seconds()
        entity.update(id=entity_id or given.get("id") or str(uuid.uuid4()), created_at=now, updated_at=now)
        self.routes[entity["id"]] = entity
        return entity

    def update_route(self, ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH /routes/{id or name}."""
        self.routing_version += 1
        current = self.route(ref)
        given = self._service_ref(dict(data))
        merged = {**current, **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        validate_route(self.services, self.routes, given | merged, exclude_id=current["id"])
        merged["updated_at"] = now_seconds()
        current.clear()
        current.update(merged)
        return current

    def upsert_route(self, ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /routes/{id or name}."""
        self.routing_version += 1
        given = dict(data)
        if not is_uuid(ref):
            given.setdefault("name", ref)
        try:
            current = self.route(ref)
        except KongApiError:
            return self.create_route(given, entity_id=ref if is_uuid(ref) else None)
        given = self._service_ref(given)
        entity = {**copy.deepcopy(ROUTE_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        validate_route(self.services, self.routes, given | entity, exclude_id=current["id"])
        entity.update(id=current["id"], created_at=current["created_at"], updated_at=now_seconds())
        current.clear()
        current.update(entity)
        return current

    def delete_route(self, ref: str) -> None:
        """DELETE /routes/{id or name}."""
        self.routing_version += 1
        try:
            current = self.route(ref)
        except KongApiError:
            return
        del self.routes[current["id"]]

    # -- upstreams and targets --

    def create_upstream(self, data: Mapping[str, Any], *, entity_id: str | None = None) -> dict[str, Any]:
        """POST /upstreams."""
        given = dict(data)
        entity = {**copy.deepcopy(UPSTREAM_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        validate_upstream(self.upstreams, given | entity, exclude_id=None)
        now = now_seconds()
        entity.update(id=entity_id or given.get("id") or str(uuid.uuid4()), created_at=now, updated_at=now)
        self.upstreams[entity["id"]] = entity
        return entity

    def update_upstream(self, ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH /upstreams/{id or name}."""
        current = self.upstream(ref)
        merged = {**current, **{k: v for k, v in data.items() if k not in READ_ONLY_FIELDS}}
        validate_upstream(self.upstreams, dict(data) | merged, exclude_id=current["id"])
        merged["updated_at"] = now_seconds()
        current.clear()
        current.update(merged)
        return current

    def upsert_upstream(self, ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /upstreams/{id or name}."""
        given = dict(data)
        if not is_uuid(ref):
            given.setdefault("name", ref)
        try:
            current = self.upstream(ref)
        except KongApiError:
            return self.create_upstream(given, entity_id=ref if is_uuid(ref) else None)
        entity = {**copy.deepcopy(UPSTREAM_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        validate_upstream(self.upstreams, given | entity, exclude_id=current["id"])
        entity.update(id=current["id"], created_at=current["created_at"], updated_at=now_seconds())
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

    def create_target(self, upstream_ref: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """POST /upstreams/{u}/targets: port 8000 when omitted; a duplicate is a 409."""
        upstream = self.upstream(upstream_ref)
        given = dict(data)
        given.pop("upstream", None)
        entity = {**copy.deepcopy(TARGET_DEFAULTS), **{k: v for k, v in given.items() if k not in READ_ONLY_FIELDS}}
        validate_target(given | entity)
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
        validate_target({k: v for k, v in merged.items() if k not in (*READ_ONLY_FIELDS, "upstream")})
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
