"""Google's error body, parsed once for Cloud DNS and Resource Manager, with the fallbacks proxies need."""

from __future__ import annotations

from typing import Any

import httpx

from providers.google_errors import parse_google_error


def answer(status: int, *, json: Any = None, text: str | None = None) -> httpx.Response:
    request = httpx.Request("GET", "https://dns.googleapis.com/dns/v1/projects/p/managedZones/z")
    if json is not None:
        return httpx.Response(status, json=json, request=request)
    return httpx.Response(status, text=text or "", request=request)


def test_google_body_gives_message_status_and_reasons() -> None:
    error = parse_google_error(
        answer(
            403,
            json={
                "error": {
                    "code": 403,
                    "message": "Rate limit exceeded",
                    "status": "PERMISSION_DENIED",
                    "errors": [{"reason": "rateLimitExceeded", "domain": "usageLimits"}, {"domain": "global"}],
                }
            },
        )
    )
    assert (error.message, error.status, error.reasons) == (
        "Rate limit exceeded",
        "PERMISSION_DENIED",
        ("rateLimitExceeded",),
    )
    assert error.summary == "PERMISSION_DENIED Rate limit exceeded"


def test_resource_manager_body_without_reasons() -> None:
    error = parse_google_error(
        answer(400, json={"error": {"code": 400, "message": "A lien", "status": "FAILED_PRECONDITION"}})
    )
    assert error.summary == "FAILED_PRECONDITION A lien" and error.reasons == ()


def test_a_proxy_page_or_an_odd_body_falls_back_to_text_then_reason_phrase() -> None:
    assert parse_google_error(answer(502, text="<html>Bad Gateway</html>")).summary == "<html>Bad Gateway</html>"
    assert parse_google_error(answer(503, text="")).summary == "Service Unavailable"
    assert parse_google_error(answer(500, text="x" * 1000)).message == "x" * 300
    assert parse_google_error(answer(500, json=["not", "an", "object"])).message == '["not","an","object"]'
    odd = parse_google_error(answer(500, json={"error": {"status": 13, "errors": "nope"}}))
    assert (odd.message, odd.status, odd.reasons) == ("Internal Server Error", "", ())
