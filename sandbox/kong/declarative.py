"""Kong's declarative config format (``_format_version: "3.0"``), loaded into the emulator's store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import yaml

from sandbox.kong.errors import KongApiError
from sandbox.kong.store import Store


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
