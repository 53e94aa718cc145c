"""Google's JSON error body, read one way for every Google REST API cutover calls (Cloud DNS, Resource Manager).

Google answers failures with ``{"error": {"code", "message", "status", "errors": [{"reason", ...}]}}``
(AIP-193); ``status`` is the RPC code name (``PERMISSION_DENIED``), ``errors[].reason`` the older
per-API reason (``conditionNotMet``, ``rateLimitExceeded``). Proxies and load balancers in front of
the API may answer with HTML or plain text instead, so every field is optional and the fallback is
the start of the body, then the HTTP reason phrase.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

BODY_SHOWN = 300
"""Characters of a non-JSON error body quoted in messages."""


@dataclass(frozen=True)
class GoogleError:
    """What a Google error answer says, for messages and for deciding whether to retry."""

    message: str
    status: str = ""
    """The RPC status name, e.g. ``PERMISSION_DENIED``; empty when the body has none."""
    reasons: tuple[str, ...] = ()
    """``errors[].reason`` values, e.g. ``rateLimitExceeded``."""

    @property
    def summary(self) -> str:
        """``PERMISSION_DENIED Permission ... denied``: status and message, as operators search for them."""
        return f"{self.status} {self.message}".strip()


def parse_google_error(response: httpx.Response) -> GoogleError:
    """The error a Google API answered, from its JSON body or, failing that, its text or reason phrase."""
    fallback = response.text[:BODY_SHOWN].strip() or response.reason_phrase
    try:
        body = response.json()
    except ValueError:
        return GoogleError(message=fallback)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GoogleError(message=fallback)
    details = error.get("errors")
    items = details if isinstance(details, list) else []
    reasons = tuple(str(item["reason"]) for item in items if isinstance(item, dict) and item.get("reason"))
    status = error.get("status")
    return GoogleError(
        message=str(error.get("message") or response.reason_phrase),
        status=status if isinstance(status, str) else "",
        reasons=reasons,
    )
