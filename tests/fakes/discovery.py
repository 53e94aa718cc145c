"""Check a fake Google API against Google's own discovery document.

The discovery documents ship with google-api-python-client (a test dependency). A fake server looks
up the method a request addresses (``match``), and validates the request body and its own response
body against the method's schemas (``validate``), so the fakes can't drift from the real API shape.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import googleapiclient
import jsonschema
import jsonschema.validators


@dataclass(frozen=True)
class DiscoveryMethod:
    """One REST method of a discovery document."""

    id: str
    http_method: str
    path: str
    """Path template relative to the service root, e.g. ``dns/v1/projects/{project}/...``."""
    request: str | None
    response: str | None
    parameters: dict[str, Any]

    def path_regex(self) -> re.Pattern[str]:
        """Regex matching concrete paths; ``{+name}`` spans slashes, ``{name}`` does not."""
        pattern = ""
        for part in re.split(r"(\{\+?[A-Za-z0-9_]+\})", self.path):
            if part.startswith("{+"):
                pattern += f"(?P<{part[2:-1]}>.+?)"
            elif part.startswith("{"):
                pattern += f"(?P<{part[1:-1]}>[^/]+)"
            else:
                pattern += re.escape(part)
        return re.compile("^/" + pattern + "$")


class DiscoveryDocument:
    """A parsed discovery document with method lookup and schema validation."""

    def __init__(self, name: str) -> None:
        folder = os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents")
        with open(os.path.join(folder, f"{name}.json")) as handle:
            self.doc: dict[str, Any] = json.load(handle)
        self.methods: list[DiscoveryMethod] = []
        self._collect(self.doc.get("resources", {}))

    def _collect(self, resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                self.methods.append(
                    DiscoveryMethod(
                        id=method["id"],
                        http_method=method["httpMethod"],
                        path=self.doc.get("servicePath", "") + method.get("flatPath", method["path"])
                        if "{+" not in method["path"]
                        else self.doc.get("servicePath", "") + method["path"],
                        request=method.get("request", {}).get("$ref"),
                        response=method.get("response", {}).get("$ref"),
                        parameters=method.get("parameters", {}),
                    )
                )
            self._collect(resource.get("resources", {}))

    def method(self, method_id: str) -> DiscoveryMethod:
        """The method with this id, e.g. ``dns.changes.create``."""
        for method in self.methods:
            if method.id == method_id:
                return method
        raise KeyError(method_id)

    def match(self, http_method: str, path: str) -> tuple[DiscoveryMethod, dict[str, str]]:
        """The method a request addresses and its path parameters; AssertionError if none does."""
        candidates = []
        for method in self.methods:
            if method.http_method != http_method:
                continue
            found = method.path_regex().match(path)
            if found and all(
                re.match(method.parameters.get(name, {}).get("pattern", ""), value)
                for name, value in found.groupdict().items()
            ):
                candidates.append((method, found.groupdict()))
        # Prefer the most literal template (fewest parameters) when several match.
        candidates.sort(key=lambda item: (len(item[1]), -len(item[0].path)))
        assert candidates, f"{http_method} {path} is not a method of {self.doc['name']} {self.doc['version']}"
        return candidates[0]

    def check_query(self, method: DiscoveryMethod, query: dict[str, str]) -> None:
        """Every query parameter must be one the method declares (or a global one)."""
        known = set(method.parameters) | set(self.doc.get("parameters", {}))
        unknown = set(query) - known
        assert not unknown, f"{method.id}: unknown query parameters {sorted(unknown)}"

    @cache  # noqa: B019 - documents live for the whole test run
    def json_schema(self, name: str) -> dict[str, Any]:
        """A JSON Schema for a discovery schema: unknown properties are refused, int64 is a string."""
        return {
            "$ref": f"#/definitions/{name}",
            "definitions": {k: self._convert(v) for k, v in self.doc["schemas"].items()},
        }

    def _convert(self, schema: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in schema:
            return {"$ref": f"#/definitions/{schema['$ref']}"}
        kind = schema.get("type")
        out: dict[str, Any] = {}
        if kind == "object":
            out["type"] = "object"
            if "properties" in schema:
                out["properties"] = {k: self._convert(v) for k, v in schema["properties"].items()}
                out["additionalProperties"] = False
            if "additionalProperties" in schema:
                out["additionalProperties"] = self._convert(schema["additionalProperties"])
        elif kind == "array":
            out["type"] = "array"
            out["items"] = self._convert(schema.get("items", {}))
        elif kind == "string":
            out["type"] = "string"
            if "enum" in schema:
                out["enum"] = schema["enum"]
        elif kind == "integer":
            # JSON numbers; int64/uint64 travel as strings in Google's JSON.
            out["type"] = ["integer", "string"] if schema.get("format") in ("int64", "uint64") else "integer"
        elif kind == "number":
            out["type"] = "number"
        elif kind == "boolean":
            out["type"] = "boolean"
        elif kind == "any":
            pass
        return out

    @cache  # noqa: B019 - documents live for the whole test run
    def validator(self, schema_name: str) -> Any:
        """A compiled validator (checking the schema itself once, not on every call)."""
        schema = self.json_schema(schema_name)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        return cls(schema)

    def validate(self, schema_name: str, instance: Any) -> None:
        """Raise ``jsonschema.ValidationError`` when ``instance`` doesn't fit the named schema."""
        self.validator(schema_name).validate(instance)


@cache
def discovery(name: str) -> DiscoveryDocument:
    """Load a document once per test run, e.g. ``discovery("dns.v1")``."""
    return DiscoveryDocument(name)
