"""The Admin API's error answers, with Kong's status codes and JSON bodies (kong.md §2.6)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


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
