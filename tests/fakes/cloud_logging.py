"""A local Cloud Logging v2 ``entries.list`` on a real loopback HTTP server, checked against Google's shapes.

Every request body is validated against ``ListLogEntriesRequest`` and every response body against
``ListLogEntriesResponse`` of the ``logging.v2`` discovery document; stored entries against
``LogEntry``. A mismatch is recorded in ``problems`` and answered with 400, and leaving the context
manager raises ``AssertionError`` listing the problems, so a drifting client or fake fails the test.

The fake evaluates the subset of the Logging query language cutover and its tests use: ``AND``,
``OR``, ``NOT``, parentheses, implicit AND, comparisons ``= != < <= > >=`` and ``:`` (has, ``:*``
exists) on dotted field paths, with quoted or bare values; ``timestamp`` compares as time. Anything
else is a problem (the test must not rely on a filter the fake can't judge).

Usage::

    async with CloudLoggingFake(project="kong-gke") as fake:
        fake.add_json({...serializer object...}, timestamp=...)
        fake.throttle(2)                 # the next two calls answer 429 RESOURCE_EXHAUSTED
        client = fake.client()           # the real google-cloud-logging client, HTTP, anonymous
        fake.requests                    # every ListLogEntriesRequest body received
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jsonschema
from aiohttp import web
from google.auth.credentials import AnonymousCredentials
from google.cloud import logging as cloud_logging

from tests.fakes.discovery import discovery


@functools.cache
def schema_validator(document: str, schema: str) -> Any:
    """A reusable validator for one discovery schema (same rules as ``DiscoveryDocument.validate``).

    ``jsonschema.validate`` re-checks the whole discovery-derived schema on every call (~0.1 s);
    fakes answer many calls, so they check the schema once and keep the validator.
    """
    converted = discovery(document).json_schema(schema)
    validator_class = jsonschema.validators.validator_for(converted)
    validator_class.check_schema(converted)
    return validator_class(converted)


def validate(document: str, schema: str, instance: Any) -> None:
    """Raise ``jsonschema.ValidationError`` when ``instance`` doesn't fit ``schema`` of ``document``."""
    schema_validator(document, schema).validate(instance)


# --- the query language subset -------------------------------------------------------------------

_TOKEN = re.compile(
    r'\s*(?:(?P<lparen>\()|(?P<rparen>\))|(?P<op>>=|<=|!=|=|<|>|:)|(?P<string>"(?:[^"\\]|\\.)*")'
    r"|(?P<word>[A-Za-z0-9_.\-@/*+]+))"
)


class FilterError(ValueError):
    """The filter uses syntax this fake does not evaluate."""


def _tokens(text: str) -> list[tuple[str, str]]:
    position, out = 0, []
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise FilterError(f"cannot tokenize filter at {text[position : position + 20]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
        position = match.end()
    return out


Predicate = Callable[[dict[str, Any]], bool]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterError("filter ends too early")
        self.index += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek()}")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.peek() == ("word", "OR"):
            self.take()
            parts.append(self.conjunction())
        return lambda entry: any(part(entry) for part in parts)

    def conjunction(self) -> Predicate:
        parts = [self.unary()]
        while (token := self.peek()) is not None and token[0] != "rparen" and token != ("word", "OR"):
            if token == ("word", "AND"):
                self.take()
            parts.append(self.unary())
        return lambda entry: all(part(entry) for part in parts)

    def unary(self) -> Predicate:
        if self.peek() in (("word", "NOT"), ("op", "-")):
            self.take()
            inner = self.unary()
            return lambda entry: not inner(entry)
        if self.peek() == ("lparen", "("):
            self.take()
            inner = self.disjunction()
            if self.take() != ("rparen", ")"):
                raise FilterError("missing ')'")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        kind, path = self.take()
        if kind != "word":
            raise FilterError(f"expected a field path, got {path!r}")
        op_kind, op = self.take()
        if op_kind != "op":
            raise FilterError(f"only comparisons are supported, got {path!r} {op!r}")
        value_kind, value = self.take()
        if value_kind not in ("string", "word"):
            raise FilterError(f"expected a value after {path}{op}")
        return _compare(path, op, value)


def _field(entry: dict[str, Any], path: str) -> Any:
    current: Any = entry
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def timestamp_nanos(text: str) -> int:
    """RFC 3339 with up to nanosecond precision -> integer nanoseconds since the epoch."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", text)
    if not match:
        raise FilterError(f"{text!r} is not an RFC 3339 timestamp")
    base = datetime.fromisoformat(match[1] + match[3].replace("Z", "+00:00"))
    return int(base.timestamp()) * 1_000_000_000 + int((match[2] or "0").ljust(9, "0"))


def _compare(path: str, op: str, value: str) -> Predicate:
    if path == "timestamp":
        bound = timestamp_nanos(value)
        compare = {
            "=": lambda a: a == bound,
            "!=": lambda a: a != bound,
            "<": lambda a: a < bound,
            "<=": lambda a: a <= bound,
            ">": lambda a: a > bound,
            ">=": lambda a: a >= bound,
        }.get(op)
        if compare is None:
            raise FilterError(f"timestamp{op} is not supported")
        return lambda entry: compare(timestamp_nanos(entry["timestamp"]))

    def check(entry: dict[str, Any]) -> bool:
        actual = _field(entry, path)
        if op == ":":
            return actual is not None if value == "*" else value.lower() in json.dumps(actual).lower()
        if actual is None:
            return op == "!="
        if isinstance(actual, int | float) and not isinstance(actual, bool):
            try:
                number = float(value)
            except ValueError:
                return op == "!="
            left, right = float(actual), number
            return {"=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
                    ">": left > right, ">=": left >= right}[op]  # fmt: skip
        text = str(actual).lower() if isinstance(actual, bool) else str(actual)
        return {"=": text == value, "!=": text != value, "<": text < value, "<=": text <= value,
                ">": text > value, ">=": text >= value}[op]  # fmt: skip

    return check


def compile_filter(text: str) -> Predicate:
    """A predicate over LogEntry dicts for ``text``; FilterError for unsupported syntax."""
    return _Parser(text).parse() if text.strip() else (lambda entry: True)


# --- the server ----------------------------------------------------------------------------------


def rfc3339_nanos(moment: datetime, nanos: int | None = None) -> str:
    """The way Cloud Logging writes timestamps: ``2024-05-01T12:00:00.123456789Z``."""
    moment = moment.astimezone(UTC)
    fraction = nanos if nanos is not None else moment.microsecond * 1000
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


class CloudLoggingFake:
    """Cloud Logging's ``POST /v2/entries:list`` for one project, on 127.0.0.1."""

    def __init__(self, project: str = "kong-gke-project") -> None:
        self.project = project
        self.entries: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.statuses: list[int] = []
        self._throttled = 0
        self._denied: int | None = None
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.endpoint = ""
        self._doc = discovery("logging.v2")

    # --- test controls -----------------------------------------------------------------------------

    def add_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Store a LogEntry (validated against the discovery schema)."""
        entry = {
            "logName": f"projects/{self.project}/logs/stdout",
            "resource": {
                "type": "k8s_container",
                "labels": {"project_id": self.project, "namespace_name": "kong", "container_name": "proxy"},
            },
            "insertId": f"fake{next(self._ids):08d}",
            **entry,
        }
        entry.setdefault("receiveTimestamp", entry["timestamp"])
        validate("logging.v2", "LogEntry", entry)
        self.entries.append(entry)
        return entry

    def add_json(self, payload: dict[str, Any], *, timestamp: datetime, **fields: Any) -> dict[str, Any]:
        """A GKE stdout line that was a JSON object (file-log to /dev/stdout): ``jsonPayload``."""
        return self.add_entry({"jsonPayload": payload, "timestamp": rfc3339_nanos(timestamp), **fields})

    def add_text(self, line: str, *, timestamp: datetime, **fields: Any) -> dict[str, Any]:
        """A GKE stdout line that was plain text (nginx access line): ``textPayload``."""
        return self.add_entry({"textPayload": line, "timestamp": rfc3339_nanos(timestamp), **fields})

    def throttle(self, times: int) -> None:
        """Answer the next ``times`` calls with 429 RESOURCE_EXHAUSTED."""
        self._throttled = times

    def deny(self, status: int | None = 403) -> None:
        """Answer every call with 401/403 (None: stop denying)."""
        self._denied = status

    def client(self) -> Any:
        """The real google-cloud-logging client, over HTTP, anonymous, pointed at this fake."""
        return cloud_logging.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            _use_grpc=False,
            client_options={"api_endpoint": self.endpoint},
        )

    # --- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> CloudLoggingFake:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        assert not self.problems, "Cloud Logging fake saw requests or answers off Google's schema:\n" + "\n".join(
            self.problems
        )

    # --- the API -----------------------------------------------------------------------------------

    def _error(self, status: int, code: str, message: str) -> web.Response:
        self.statuses.append(status)
        return web.json_response({"error": {"code": status, "message": message, "status": code}}, status=status)

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            method, _ = self._doc.match(request.method, request.path)
            assert method.id == "logging.entries.list", f"the fake only serves entries.list, not {method.id}"
            self._doc.check_query(method, dict(request.query))
            body = await request.json()
            validate("logging.v2", "ListLogEntriesRequest", body)
        except Exception as exc:  # AssertionError from match, jsonschema errors, bad JSON
            self.problems.append(f"{request.method} {request.path_qs}: {exc}")
            return self._error(400, "INVALID_ARGUMENT", f"request off schema: {exc}")
        self.requests.append(body)
        if self._denied is not None:
            return self._error(
                self._denied,
                "PERMISSION_DENIED" if self._denied == 403 else "UNAUTHENTICATED",
                "The caller does not have permission",
            )
        if self._throttled:
            self._throttled -= 1
            return self._error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute'",
            )
        try:
            page = self._page(body)
            validate("logging.v2", "ListLogEntriesResponse", page)
        except FilterError as exc:
            self.problems.append(f"filter {body.get('filter')!r}: {exc}")
            return self._error(400, "INVALID_ARGUMENT", str(exc))
        except Exception as exc:
            self.problems.append(f"response off schema: {exc}")
            return self._error(500, "INTERNAL", str(exc))
        self.statuses.append(200)
        return web.json_response(page)

    def _page(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("resourceNames") != [f"projects/{self.project}"]:
            raise FilterError(f"resourceNames must be ['projects/{self.project}'], got {body.get('resourceNames')}")
        order = body.get("orderBy", "timestamp asc")
        if order not in ("timestamp asc", "timestamp desc"):
            raise FilterError(f"orderBy {order!r} is not allowed")
        predicate = compile_filter(body.get("filter", ""))
        matching = sorted(
            (entry for entry in self.entries if predicate(entry)),
            key=lambda entry: (timestamp_nanos(entry["timestamp"]), entry["insertId"]),
            reverse=order == "timestamp desc",
        )
        size = body.get("pageSize") or 50
        start = 0
        if body.get("pageToken"):
            token = json.loads(base64.urlsafe_b64decode(body["pageToken"]))
            if token["filter"] != body.get("filter", ""):
                raise FilterError("pageToken used with a different filter than the call that returned it")
            start = token["offset"]
        page: dict[str, Any] = {"entries": matching[start : start + size]}
        if start + size < len(matching):
            token = {"filter": body.get("filter", ""), "offset": start + size}
            page["nextPageToken"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
        if not page["entries"]:
            del page["entries"]
        return page
