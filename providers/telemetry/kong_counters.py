"""Kong's ``kong_http_requests_total`` counters, summed per status code and origin, as a window's counts.

Both metric sources (a scraped ``/metrics`` endpoint and a PromQL query) reduce the counter to one
number per ``"<code>|<origin>"`` key (``"503|service"``, ``"502|kong"``) and turn the increases into
the fields of a :class:`~models.telemetry.WindowSummary` the same way.

What the metric can't say (kong.md §4.3): there is no upstream status label (``code`` is the status
sent to the client) and no upstream address. So the upstream status is approximated by ``code`` when
``source="service"`` (the response came from the upstream), Kong's own 502/503/504 count as upstream
errors, and the traffic share is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from providers.telemetry.records import KONG_UNREACHABLE_STATUSES
from providers.telemetry.summary import status_class

COUNT_KEY = re.compile(r"(?:[1-5]\d\d|other)\|(?:service|kong|)")
"""The form of a key: a status code (or ``other``) and the response's origin (``""`` without a source label)."""
NO_ADDRESS_NOTE = "Prometheus has no upstream address or upstream status: traffic share unknown"


def count_key(labels: Mapping[str, str]) -> str:
    """What a counter is summed under: its status code and where the response came from.

    ``"503|service"``, ``"502|kong"``, ``"200|"`` (no ``source`` label), ``"other|service"`` (a code
    that is not an HTTP status). Every other label (route, consumer, workspace, instance ...) is summed
    away, so a cursor holds at most ~1500 keys whatever the number of consumers, and in practice a dozen.
    """
    code = labels.get("code", "")
    status = code if re.fullmatch(r"[1-5]\d\d", code) else "other"
    origin = labels.get("source")
    return f"{status}|{'' if origin is None else 'kong' if origin == 'kong' else 'service'}"


@dataclass(frozen=True)
class CountedWindow:
    """A window's request counts in the shape of a WindowSummary's fields."""

    requests: int
    status_classes: dict[str, int]
    upstream_statuses: dict[str, int]
    upstream_errors: int
    sourceless: bool
    """Some counts had no ``source`` label (Kong < 3.x?): every 5xx then counts as an upstream error."""

    def notes(self) -> list[str]:
        """What a reader of the verdict must know about these counts."""
        notes = []
        if self.sourceless:
            notes.append("no 'source' label (Kong < 3.x?): every 5xx is counted as an upstream error")
        notes.append(NO_ADDRESS_NOTE)
        return notes


def counted_window(increases: Mapping[str, int]) -> CountedWindow:
    """Requests per key (``"503|service": 5``) as the counts of a window; keys of zero or less count nothing."""
    statuses: dict[str, int] = {}
    classes: dict[str, int] = {}
    requests = errors = 0
    sourceless = False
    for key, count in increases.items():
        if count <= 0:
            continue
        code, origin = key.split("|")
        status = 0 if code == "other" else int(code)
        requests += count
        family = status_class(status) if status else "unknown"
        classes[family] = classes.get(family, 0) + count
        if origin == "kong":
            upstream = ""
            is_error = status in KONG_UNREACHABLE_STATUSES
        else:
            upstream = "" if code == "other" else code
            is_error = status >= 500
            sourceless = sourceless or not origin
        statuses[upstream] = statuses.get(upstream, 0) + count
        errors += count if is_error else 0
    return CountedWindow(
        requests=requests,
        status_classes=dict(sorted(classes.items())),
        upstream_statuses=dict(sorted(statuses.items())),
        upstream_errors=errors,
        sourceless=sourceless,
    )
