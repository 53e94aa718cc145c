"""Human-friendly durations for plans: ``30s``, ``10m``, ``24h``, ``1h30m`` or a number of seconds.

Plans are written by people and quoted back in approvals, so a duration must round-trip to the same
short text ("10m" stays "10m") and hash the same whether it was written as ``600``, ``"600s"`` or
``"10m"``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


MAX_DURATION = timedelta(days=366)
"""No wait in a cutover plausibly lasts longer: a bigger value is a typo, and would overflow timedelta."""


def parse_duration(value: Any) -> timedelta:
    """Parse ``"1h30m"``, ``"45s"``, ``"250ms"``, ISO 8601 (``"PT10M"``) or seconds into a timedelta.

    Raises:
        ValueError: with a message that shows the accepted forms, or that the value is absurdly long.
    """
    try:
        parsed = _parse(value)
    except OverflowError:
        raise ValueError(f"{value!r} is longer than {MAX_DURATION.days} days") from None
    if parsed > MAX_DURATION:
        raise ValueError(f"{value!r} is longer than {MAX_DURATION.days} days")
    return parsed


def _parse(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration must be like '30s', '10m', '24h' or a number of seconds")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("a duration must be like '30s', '10m', '24h' or a number of seconds")
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    iso = _ISO.match(value.strip().upper())
    if iso and any(iso.groups()):
        d, h, m, s = iso.groups()
        return timedelta(days=int(d or 0), hours=int(h or 0), minutes=int(m or 0), seconds=float(s or 0))
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        number, unit = match.groups()
        total += float(number) / 1000 if unit == "ms" else float(number) * _UNITS[unit]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration: use forms like '30s', '10m', '24h', '1h30m'")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """Render a timedelta in the shortest plan form, e.g. ``timedelta(seconds=5400)`` -> ``"1h30m"``."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    sign = "-" if millis < 0 else ""
    millis = abs(millis)
    seconds, ms = divmod(millis, 1000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if ms:
        parts.append(f"{ms}ms")
    return sign + "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["30s", "10m", "24h"]}),
]
"""A duration field: accepts plan text, serializes back to the shortest plan text."""
