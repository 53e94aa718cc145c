"""Kong's request records, as its logs write them, reduced to what a traffic verdict needs.

Two shapes exist (kong.md §4):

* the PDK serializer (``kong.log.serialize()``) that file-log, http-log and friends write as one JSON
  object per line; on GKE the same object arrives in Cloud Logging as ``jsonPayload``;
* nginx's text access log (Kong's ``kong_log_format`` from 3.5, nginx ``combined`` before), which has
  no upstream fields unless the operator adds ``$upstream_status`` and ``$upstream_addr`` to a custom
  ``log_format`` (docs/telemetry.md shows the exact configuration).

Parsers raise :class:`RecordError` with a short reason (never the line itself: log lines can carry
user data), so callers count the line as a parse failure and go on.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

KONG_UNREACHABLE_STATUSES = frozenset({502, 503, 504})
"""Client statuses Kong itself returns when it could not get an answer from any upstream."""


class RecordError(ValueError):
    """A log record that is not a usable Kong request record; the message is the reason."""


@dataclass(frozen=True, slots=True)
class ProxiedRequest:
    """One request Kong handled, reduced to the facts a verdict uses."""

    started_at: datetime
    status: int
    """Status Kong sent to the client (``response.status``)."""
    upstream_status: str
    """The final upstream status (last of ``"502, 200"``), or ``""`` when no upstream answered."""
    attempts: int
    """How many upstream tries Kong made (0 when it reached none)."""
    upstream_ip: str | None
    """Address of the final try, or None when unknown."""
    services: tuple[str, ...] | None
    """The Kong service's name and id; None when the log format carries no service at all (text logs)."""
    status_logged: bool = True
    """False when the format has no upstream status: ``upstream_status`` then repeats the client status."""
    address_logged: bool = True
    """False when the format has no upstream address (``$upstream_addr`` missing from a text format)."""

    @property
    def upstream_error(self) -> bool:
        """The final upstream answer was a 5xx, or Kong reached no upstream and said 502/503/504."""
        if self.upstream_status:
            return int(self.upstream_status) >= 500
        return self.status in KONG_UNREACHABLE_STATUSES

    def belongs_to(self, service: str | None) -> bool:
        """True when the request went through ``service`` (matched by name or id); None: any service.

        Formats without a service field (text access logs) can only be scoped by the query that
        fetched them, so their records belong to any service.
        """
        return service is None or self.services is None or service in self.services


def split_upstream_statuses(text: str) -> list[str]:
    """``"502, 200"`` -> ``["502", "200"]``; nginx's ``" : "`` group separator and ``-`` are handled.

    Raises:
        RecordError: when an element is not a three-digit status.
    """
    statuses = []
    for part in re.split(r"[,:]", text):
        token = part.strip()
        if not token or token == "-":
            continue
        if not re.fullmatch(r"[1-5]\d\d", token):
            raise RecordError("upstream_status is not a list of HTTP statuses")
        statuses.append(token)
    return statuses


def normalise_ip(text: str) -> str:
    """The canonical text of an IP address (IPv6 compressed), or the text unchanged if it isn't one."""
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        return text.strip()


def normalise_addresses(addresses: Iterable[str]) -> list[str]:
    """A's or B's addresses in the form the sources record them (IPv6 compressed), so they compare equal."""
    return [normalise_ip(address) for address in addresses]


def upstream_host(address: str) -> str | None:
    """The host of the last entry of nginx's ``$upstream_addr`` (``"10.0.0.1:443, [::1]:8443"``)."""
    parts = [part.strip() for part in re.split(r",| : ", address) if part.strip() and part.strip() != "-"]
    if not parts:
        return None
    last = parts[-1]
    if last.startswith("["):
        return normalise_ip(last[1 : last.find("]")])
    if last.count(":") == 1:
        last = last.rsplit(":", 1)[0]
    return normalise_ip(last)


def _as_int(value: Any) -> int | None:
    """JSON numbers may arrive as floats (Cloud Logging keeps jsonPayload numbers as doubles)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_serialized_request(record: Any) -> ProxiedRequest:
    """Read one object written by Kong's PDK serializer (file-log line, Cloud Logging jsonPayload).

    Uses ``started_at`` (ms epoch), ``response.status``, ``upstream_status`` (a string, possibly
    ``"502, 200"``), ``tries[].ip`` and ``service.name``/``service.id`` (kong.md §4.2).

    Raises:
        RecordError: when a field a verdict needs is missing or malformed.
    """
    if not isinstance(record, Mapping):
        raise RecordError("not a JSON object")
    started_ms = _as_int(record.get("started_at"))
    if started_ms is None or started_ms <= 0:
        raise RecordError("no numeric started_at")
    response = record.get("response")
    status = _as_int(response.get("status")) if isinstance(response, Mapping) else None
    if status is None or not 100 <= status <= 599:
        raise RecordError("no response.status")
    raw_upstream = record.get("upstream_status")
    if raw_upstream is None:
        raw_upstream = ""
    elif isinstance(raw_upstream, int | float) and not isinstance(raw_upstream, bool):
        raw_upstream = str(int(raw_upstream))
    elif not isinstance(raw_upstream, str):
        raise RecordError("upstream_status is not a string")
    statuses = split_upstream_statuses(raw_upstream)
    tries = record.get("tries")
    tries = [item for item in tries if isinstance(item, Mapping)] if isinstance(tries, list) else []
    last_ip = tries[-1].get("ip") if tries else None
    service = record.get("service")
    services: tuple[str, ...] = ()
    if isinstance(service, Mapping):
        services = tuple(str(service[key]) for key in ("name", "id") if service.get(key))
    try:
        started_at = datetime.fromtimestamp(started_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise RecordError("started_at out of range") from exc
    return ProxiedRequest(
        started_at=started_at,
        status=status,
        upstream_status=statuses[-1] if statuses else "",
        attempts=len(tries) if tries else len(statuses),
        upstream_ip=normalise_ip(last_ip) if isinstance(last_ip, str) and last_ip else None,
        services=services,
    )


_QUOTED = r'(?:[^"\\]|\\.)*'
KONG_ACCESS_LINE = re.compile(
    r"^(?P<remote_addr>\S+) - (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "
    rf'"(?P<request>{_QUOTED})" (?P<status>\d{{3}}) (?P<body_bytes_sent>\d+|-)'
    rf'(?: "(?P<http_referer>{_QUOTED})" "(?P<http_user_agent>{_QUOTED})")?'
    r'(?: kong_request_id: "(?P<kong_request_id>[^"]*)")?'
    r'(?: upstream_status: "(?P<upstream_status>[^"]*)")?'
    r'(?: upstream_addr: "(?P<upstream_addr>[^"]*)")?'
    r"\s*$"
)
"""Kong's text access line: ``kong_log_format`` (3.5+), nginx ``combined`` (3.0-3.4), or either with
cutover's ``upstream_status: "..." upstream_addr: "..."`` suffix (docs/telemetry.md)."""


def parse_access_line(line: str, logged_at: datetime) -> ProxiedRequest:
    """Read one text access-log line; ``logged_at`` is the log entry's timestamp.

    Lines without the upstream fields still count (status classes, totals). Their upstream status is
    then unknown, so the client status stands in for it (any 5xx counts as an upstream error: Kong
    relays the upstream's status); their address is unknown, so they can't prove a drain.

    Raises:
        RecordError: when the line is not an access-log line.
    """
    match = KONG_ACCESS_LINE.match(line.strip())
    if not match:
        raise RecordError("not a Kong access-log line")
    status = int(match["status"])
    status_logged = match["upstream_status"] is not None
    statuses = split_upstream_statuses(match["upstream_status"] or "")
    address = match["upstream_addr"]
    tries = [part for part in re.split(r",| : ", address or "") if part.strip() and part.strip() != "-"]
    final = statuses[-1] if statuses else ""
    return ProxiedRequest(
        started_at=logged_at,
        status=status,
        upstream_status=final if status_logged else str(status),
        attempts=max(len(statuses), len(tries)),
        upstream_ip=upstream_host(address) if address else None,
        services=None,
        status_logged=status_logged,
        address_logged=address is not None,
    )


PARSED_LINES_CACHED = 8192
"""Parsed lines kept (about 1 KiB each): at 100 requests/s through Kong, the last 80 s of the file."""


@functools.lru_cache(maxsize=PARSED_LINES_CACHED)
def parse_line(raw: bytes) -> ProxiedRequest | str:
    """One non-empty file-log line: the request it records, or why it can't be read.

    A pure function of the line's bytes, so it is memoized: every cutover monitoring through one
    worker reads the same shared Kong file-log (every service's lines, each poll, the drain proof's and the
    baseline's spans), and a line parsed once is not parsed again by the next reader. The cache holds
    the newest lines (a ``ProxiedRequest`` is immutable).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    try:
        record: Any = json.loads(text)
    except ValueError:
        return "not JSON"
    try:
        return parse_serialized_request(record)
    except RecordError as exc:
        return str(exc)
