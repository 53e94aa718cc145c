"""Validate Admin API exchanges against Kong's published OpenAPI spec (vendored subset).

The spec differs from real Kong in a few documented places (tests/vendor/README.md); each
relaxation below is explicit, so everything else is checked as the spec says.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import yaml
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_PATH = Path(__file__).resolve().parents[1] / "vendor" / "kong-admin-oss-3.9-subset.yaml"
SPEC_URI = "urn:kong-admin-oss-3.9"

KONG_ERROR_BODY = {
    "type": "object",
    "required": ["message"],
    "properties": {
        "message": {"type": "string"},
        "code": {"type": "integer"},
        "name": {"type": "string"},
        "fields": {"type": "object"},
    },
}
"""Kong's DAO/API error body (kong.md §2.6); the spec leaves most error answers undescribed."""
KONG_DEFAULTS_MISSING_IN_SPEC = {"protocols"}
"""``route-request`` requires ``protocols`` without a default; Kong defaults it to ``["http", "https"]``."""


@dataclass
class Exchange:
    """One request/response pair seen on the wire."""

    method: str
    url: str
    path: str
    request_body: Any
    status: int
    response_body: Any
    request_headers: dict[str, str] = field(default_factory=dict)


class RecordingTransport(httpx.AsyncBaseTransport):
    """A real network transport that also records every exchange (no behaviour changed)."""

    def __init__(self, **kwargs: Any) -> None:
        self._inner = httpx.AsyncHTTPTransport(**kwargs)
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        content = await response.aread()
        await response.aclose()
        raw = request.content
        self.exchanges.append(
            Exchange(
                method=request.method,
                url=str(request.url),
                path=request.url.path,
                request_body=json.loads(raw) if raw else None,
                status=response.status_code,
                response_body=json.loads(content) if content else None,
                request_headers=dict(request.headers),
            )
        )
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=content,
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Kept open across clients (each activity builds its own); :meth:`shutdown` closes it."""

    async def shutdown(self) -> None:
        """Close the real transport."""
        await self._inner.aclose()

    def count(self, method: str, path_suffix: str = "") -> int:
        """How many requests with this method (and path ending) went out."""
        return sum(1 for e in self.exchanges if e.method == method and e.path.endswith(path_suffix))


def _drop_nulls(value: Any) -> Any:
    """Real Kong sends ``null`` for unset optional fields; the spec lacks ``nullable`` (README)."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


class KongOpenApi:
    """Operation lookup and schema validation for the vendored spec."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        self.doc: dict[str, Any] = yaml.safe_load(path.read_text())
        self.registry: Registry[Any] = Registry().with_resource(
            SPEC_URI, Resource.from_contents(self.doc, default_specification=DRAFT4)
        )
        self._templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"), template)
            for template in self.doc["paths"]
        ]

    def template(self, path: str) -> str:
        """The spec path template a concrete path matches."""
        matches = [t for pattern, t in self._templates if pattern.match(path)]
        if not matches:
            raise AssertionError(f"{path} is not a path of the vendored spec")
        return max(matches, key=lambda t: t.count("/") - t.count("{"))

    def operation(self, method: str, path: str) -> dict[str, Any]:
        """The spec's operation object."""
        ops = self.doc["paths"][self.template(path)]
        op = ops.get(method.lower())
        if op is None:
            raise AssertionError(f"{method} {path}: the spec defines no such operation")
        return dict(op)

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            _, _, kind, name = node["$ref"].split("/", 3)
            node = self.doc["components"][kind][name]
        return node

    def _errors(self, schema: dict[str, Any], instance: Any) -> list[str]:
        validator = OAS30Validator(schema, registry=self.registry)
        errors = validator.iter_errors(instance)
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]

    def _anchored(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Rewrite local ``#/components`` refs to the registry's URI."""
        text = json.dumps(schema).replace('"#/components/', f'"{SPEC_URI}#/components/')
        return dict(json.loads(text))

    def validate_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Problems of a response against the spec (with the documented relaxations)."""
        op = self.operation(method, path)
        responses = op["responses"]
        key = str(status)
        if key not in responses and status == 201 and method in ("POST", "PUT"):
            key = "200"  # Kong answers creates with 201; the spec says 200
        if key not in responses:
            if status >= 400:
                return self._errors(KONG_ERROR_BODY, body)
            return [f"{method} {path}: status {status} is not documented in the spec"]
        response = self._resolve(responses[key])
        content = response.get("content", {}).get("application/json")
        if content is None:
            if status >= 400 and body is not None:
                return self._errors(KONG_ERROR_BODY, body)
            return [] if body in (None, b"") else [f"{method} {path} {status}: the spec documents no body"]
        schema = self._anchored(content["schema"])
        instance = _drop_nulls(body)
        problems = self._errors(schema, instance)
        if self.template(path) == "/services" and method == "GET" and status == 200:
            # The spec's list schema is a lone Service; Kong answers {data: [...], next}: check items.
            item = self._anchored({"$ref": "#/components/schemas/Service"})
            for index, entity in enumerate(instance.get("data", [])):
                problems += [f"data/{index}/{p}" for p in self._errors(item, entity)]
            if not isinstance(instance.get("data"), list):
                problems.append("GET /services: no data array")
        return problems

    def validate_request(self, method: str, path: str, body: Any) -> list[str]:
        """Problems of a request body; PATCH bodies are partial, so ``required`` is ignored for them."""
        op = self.operation(method, path)
        if "requestBody" not in op:
            return [] if body is None else [f"{method} {path}: the spec takes no body"]
        schema = copy.deepcopy(self._resolve(op["requestBody"])["content"]["application/json"]["schema"])
        if method == "PATCH":
            schema.pop("required", None)
        else:  # Kong fills fields that have a default (protocol, port, enabled...): they are not required
            properties = schema.get("properties", {})
            defaulted = {k for k, v in properties.items() if "default" in v} | KONG_DEFAULTS_MISSING_IN_SPEC
            if isinstance(body, dict) and "url" in body:
                defaulted |= {"host", "protocol", "port"}  # the url shorthand sets them
            schema["required"] = [k for k in schema.get("required", []) if k not in defaulted]
            if not schema["required"]:
                del schema["required"]
        return self._errors(self._anchored(schema), body)

    def matches(self, path: str) -> bool:
        """True when a spec path template matches."""
        return any(pattern.match(path) for pattern, _ in self._templates)

    def validate_exchange(self, exchange: Exchange) -> list[str]:
        """Every problem of one exchange, prefixed with its request line (a workspace prefix is skipped)."""
        path = exchange.path.rstrip("/") or "/"
        if not self.matches(path) and path.count("/") > 1:
            path = "/" + path.split("/", 2)[2]
        if not self.matches(path) and exchange.status == 404:
            problems = self._errors(KONG_ERROR_BODY, exchange.response_body)  # a path Kong doesn't have
            return [f"{exchange.method} {exchange.path} -> {exchange.status}: {p}" for p in problems]
        template = self.template(path)
        if exchange.method.lower() not in self.doc["paths"][template] and exchange.status == 405:
            problems = self._errors(KONG_ERROR_BODY, exchange.response_body)  # a method Kong doesn't route
        else:
            problems = []
            if exchange.status < 400:  # a request Kong refused may be invalid on purpose; its answer is checked
                problems += self.validate_request(exchange.method, path, exchange.request_body)
            problems += self.validate_response(exchange.method, path, exchange.status, exchange.response_body)
        return [f"{exchange.method} {exchange.path} -> {exchange.status}: {p}" for p in problems]


@cache
def kong_spec() -> KongOpenApi:
    """The parsed vendored spec (parsed once per test run)."""
    return KongOpenApi()


def assert_spec_valid(exchanges: list[Exchange]) -> None:
    """Fail with every problem when any Admin API exchange departs from the spec."""
    spec = kong_spec()
    problems = [p for exchange in exchanges for p in spec.validate_exchange(exchange)]
    assert not problems, "Admin API exchanges depart from Kong's OpenAPI spec:\n" + "\n".join(problems)
