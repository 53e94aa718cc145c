"""The plan's cross-field rules, run on the raw data so they report even when other fields are broken."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from models.durations import parse_duration
from models.names import PLAN_NAME, absolute_name, is_subdomain, looks_like_secret
from models.promql import promql_problems

SECRET_MESSAGE = "this value "
"""How every "a secret in the plan" problem begins (its field's own complaint is then dropped)."""

Problem = tuple[tuple[str | int, ...], str, Any]


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _try(parse: Callable[[Any], Any], value: Any) -> Any:
    if value is None:
        return None
    try:
        return parse(value)
    except (ValueError, TypeError):
        return None


def _walk_strings(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_strings(item, (*loc, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk_strings(item, (*loc, index))


def redacted(message: str, value: Any) -> tuple[str, Any]:
    """Keep secret-looking values out of error messages: they end up in logs and workflow history."""
    leaked = [text for _, text in _walk_strings(value, ()) if looks_like_secret(text)]
    if not leaked:
        return message, value
    for text in leaked:
        message = message.replace(text, "<redacted>")
    return message, "<redacted>"


_POSITIVE_DURATIONS: tuple[tuple[str, ...], ...] = (
    ("dns", "provider", "timeout"),
    ("dns", "provider", "poll_timeout"),
    ("dns", "propagation_timeout"),
    ("dns", "retry_deadline"),
    ("kong", "timeout"),
    ("readiness", "timeout"),
    ("readiness", "request_timeout"),
    ("monitor", "window"),
    ("approvals", "timeout"),
    ("decommission", "quiet_period"),
    ("decommission", "drain_timeout"),
    ("decommission", "timeout"),
    ("monitor", "source", "timeout"),
)


def cross_field_problems(data: dict[str, Any]) -> list[Problem]:
    """Every rule that relates fields to each other, as (location, message, shown value)."""
    problems: list[Problem] = []
    name = data.get("name")
    if isinstance(name, str) and not PLAN_NAME.fullmatch(name):
        problems.append(
            (("name",), "must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'", name)
        )
    elif name is not None and not isinstance(name, str):
        problems.append((("name",), "must be a string", name))

    zone = _try(absolute_name, _get(data, "dns", "provider", "zone"))
    record = _try(absolute_name, _get(data, "dns", "record"))
    target = _try(absolute_name, _get(data, "dns", "target"))
    if zone and record:
        if not is_subdomain(record, zone):
            problems.append(
                (
                    ("dns", "record"),
                    f"{record} is not inside the zone {zone}: cutover can only change records of the zone it updates",
                    record,
                )
            )
        elif record == zone:
            problems.append(
                (
                    ("dns", "record"),
                    f"{record} is the zone apex: a CNAME cannot live there, because the apex "
                    "always holds SOA and NS records (RFC 1034 §3.6.2, RFC 1912 §2.4). Use the alias strategy "
                    "with a name below the apex (e.g. origin-api." + zone + ")",
                    record,
                )
            )
    if record and target and record == target:
        problems.append((("dns", "target"), "target must differ from record", target))

    cutover_ttl, final_ttl = _get(data, "dns", "cutover_ttl"), _get(data, "dns", "final_ttl")
    if isinstance(cutover_ttl, int) and isinstance(final_ttl, int) and cutover_ttl > final_ttl:
        problems.append(
            (
                ("dns", "cutover_ttl"),
                f"cutover_ttl ({cutover_ttl}) must not exceed final_ttl ({final_ttl})",
                cutover_ttl,
            )
        )

    provider = _get(data, "dns", "provider")
    if isinstance(provider, dict) and provider.get("kind") == "rfc2136":
        if bool(provider.get("tsig_key_name")) != bool(provider.get("tsig_secret_env")):
            problems.append(
                (
                    ("dns", "provider"),
                    "tsig_key_name and tsig_secret_env go together: give both, or neither for an unsigned server",
                    None,
                )
            )

    for section, fast, slow in (("readiness", "interval", "timeout"), ("monitor", "poll_interval", "window")):
        short = _try(parse_duration, _get(data, section, fast))
        long_ = _try(parse_duration, _get(data, section, slow))
        if short is not None and long_ is not None:
            if short.total_seconds() <= 0:
                problems.append(((section, fast), f"{fast} must be longer than zero", _get(data, section, fast)))
            elif short > long_:
                problems.append(((section, fast), f"{fast} must not exceed {slow}", _get(data, section, fast)))

    for path in _POSITIVE_DURATIONS:
        raw = _get(data, *path)
        value = _try(parse_duration, raw)
        if value is not None and value.total_seconds() <= 0:
            problems.append((path, "must be longer than zero (a zero timeout means 'forever' to Temporal)", raw))

    if data.get("strategy") == "alias" and isinstance(data.get("readiness"), dict):
        if not data["readiness"].get("parity_url"):
            problems.append(
                (
                    ("readiness", "parity_url"),
                    "the alias strategy needs A's health URL: from the repoint to the flip "
                    "Kong sends the alias as Host and SNI to A, so A must be proven to accept it",
                    None,
                )
            )

    problems += promql_problems(_get(data, "monitor", "source"))

    decommission = data.get("decommission")
    if isinstance(decommission, dict) and decommission.get("kind") == "gcp-project":
        project = decommission.get("project_id")
        protected = set(decommission.get("protected_projects") or [])
        if isinstance(provider, dict) and provider.get("kind") == "clouddns":
            protected.add(provider.get("project"))
        if project in protected:
            problems.append(
                (
                    ("decommission", "project_id"),
                    f"{project} is protected (B's project or the Cloud DNS project): cutover will not delete it",
                    project,
                )
            )

    for loc, value in _walk_strings(data, ()):
        reason = looks_like_secret(value)
        if reason:
            problems.append(
                (
                    loc,
                    f"{SECRET_MESSAGE}{reason}: plans must name an environment variable or secret reference "
                    "(e.g. tsig_secret_env: CUTOVER_TSIG_SECRET), never contain the secret",
                    "<redacted>",
                )
            )
    return problems
