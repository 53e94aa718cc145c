"""A local Google Cloud DNS: the v1 REST API on a loopback aiohttp server, plus its zone served over DNS.

Reusable by any test (provider tests, an end-to-end run)::

    async with FakeCloudDns(dns_name="example.test.") as fake:
        fake.seed("api.example.test.", "CNAME", 300, ["a-project.example.test."])
        ...  # point a CloudDnsProvider plan at fake.url, nameservers at [fake.nameserver]
        fake.rrset("api.example.test.", "CNAME")       # what the zone holds now
    fake.assert_valid()                                 # every request/response matched dns.v1

What it implements, with the real API's semantics as far as they are documented (dns.md §3.1):

* ``managedZones.get``; ``resourceRecordSets.list`` (``name``/``type`` filters, ``maxResults`` and
  ``pageToken`` pagination); ``changes.list`` (``sortBy=changeSequence``, ``sortOrder``);
* ``changes.create``, atomic: every deletion must match the live rrset exactly, TTL included (412
  ``conditionNotMet``; a missing one is 404 ``notFound``), an addition of an existing rrset is 409
  ``alreadyExists``, a CNAME beside other data or at the apex is 400 ``invalid``, a reused
  ``clientOperationId`` is 409 ``alreadyExists``;
* ``changes.get``: a change stays ``pending`` for :attr:`FakeCloudDns.pending_polls` polls, then ``done``;
* failures on demand: :meth:`FakeCloudDns.fail_requests` (401, 403, 429, 5xx),
  :attr:`FakeCloudDns.before_change` to edit the zone between a client's read and its change, and
  :meth:`FakeCloudDns.answer_raw` for answers off the document (a broken API or proxy).

Every request (method and path, query parameters, body) and every response body is validated
against Google's ``dns v1`` discovery document (:mod:`tests.fakes.discovery`); a mismatch is recorded
in :attr:`FakeCloudDns.problems`, answered with HTTP 500, and fails :meth:`FakeCloudDns.assert_valid`.

The DNS side answers authoritatively (AA) on a UDP loopback port from the zone data, with an SOA
serial that grows with every change, like the zone's Google nameservers; :meth:`hold_nameserver`
freezes it to play a nameserver that lags.
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import jsonschema
from aiohttp import web

from tests.fakes.discovery import DiscoveryMethod, discovery

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "errors"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "integer"},
                "message": {"type": "string"},
                "status": {"type": "string"},
                "errors": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["domain", "reason", "message"],
                        "additionalProperties": False,
                        "properties": {
                            "domain": {"type": "string"},
                            "reason": {"type": "string"},
                            "message": {"type": "string"},
                            "locationType": {"type": "string"},
                            "location": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}
"""Google's JSON error body (the discovery document has no schema for it)."""

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """An error answer in Google's shape."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def body(self) -> dict[str, Any]:
        """``{"error": {...}}`` as Google sends it."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
                "status": _STATUS_NAMES.get(self.code, "UNKNOWN"),
            }
        }


_FAILURES = {
    401: ApiError(
        401,
        "authError",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
        "valid authentication credential.",
    ),
    403: ApiError(403, "forbidden", "Forbidden: the caller does not have permission dns.changes.create"),
    429: ApiError(429, "rateLimitExceeded", "Rate limit exceeded"),
    500: ApiError(500, "internalError", "Internal error"),
    503: ApiError(503, "backendError", "The service is currently unavailable"),
}


@dataclass
class RecordedRequest:
    """One request the fake received, for assertions (e.g. how often and how fast it was polled)."""

    method_id: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    at: float = field(default_factory=time.monotonic)


def _key(name: str, rdtype: str) -> tuple[str, str]:
    return name.lower(), rdtype.upper()


def _rrset(name: str, rdtype: str, ttl: int, rrdatas: Sequence[str]) -> dict[str, Any]:
    return {
        "kind": "dns#resourceRecordSet",
        "name": name.lower(),
        "type": rdtype.upper(),
        "ttl": ttl,
        "rrdatas": list(rrdatas),
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        _key(a["name"], a["type"]) == _key(b["name"], b["type"])
        and int(a.get("ttl", 0)) == int(b.get("ttl", 0))
        and sorted(a.get("rrdatas", [])) == sorted(b.get("rrdatas", []))
    )


class _DnsProtocol(asyncio.DatagramProtocol):
    def __init__(self, fake: FakeCloudDns) -> None:
        self.fake = fake
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        assert self.transport is not None
        if query.question:
            qtype = dns.rdatatype.to_text(query.question[0].rdtype)
            self.fake.dns_queries[qtype] += 1
            if qtype in self.fake.silent_types:
                return
        self.transport.sendto(self.fake.dns_answer(query).to_wire(), addr)


class FakeCloudDns:
    """One project with one public managed zone, reachable over HTTP (API) and UDP (nameserver)."""

    def __init__(
        self,
        *,
        project: str = "dns-project-1",
        managed_zone: str = "example-test",
        dns_name: str = "example.test.",
        token: str | None = "test-token",
        name_servers: Sequence[str] = ("ns-cloud-a1.googledomains.com.", "ns-cloud-a2.googledomains.com."),
        page_size: int = 100,
    ) -> None:
        self.project = project
        self.managed_zone = managed_zone
        self.dns_name = dns_name.lower()
        self.token = token
        self.name_servers = list(name_servers)
        self.page_size = page_size
        self.pending_polls = 0
        """How many ``changes.get`` polls a new change answers ``pending`` before ``done``."""
        self.before_change: Callable[[dict[str, Any]], None] | None = None
        """Called with the body of each ``changes.create`` before it is checked: someone else's edit
        landing between cutover's read and its change."""
        self._failure: ApiError | None = None
        self._raw: dict[str, tuple[int, str, str]] = {}
        self.problems: list[str] = []
        self.requests: list[RecordedRequest] = []
        self.serial = 1
        self._rrsets: dict[tuple[str, str], dict[str, Any]] = {}
        self._changes: list[dict[str, Any]] = []
        self._polls_left: dict[str, int] = {}
        self._operation_ids: set[str] = set()
        self._held: dict[tuple[str, str], dict[str, Any]] | None = None
        self.dns_queries: Counter[str] = Counter()
        """DNS queries the nameserver received, by qtype."""
        self.minimal_any = False
        """Answer qtype ANY minimally with a synthesised HINFO (RFC 8482 §4.2), like many public servers."""
        self.refused_types: set[str] = set()
        """Qtypes answered REFUSED."""
        self.silent_types: set[str] = set()
        """Qtypes never answered (a server that drops them, e.g. response-rate-limiting)."""
        self._runner: web.AppRunner | None = None
        self._site_port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_port = 0
        self._doc = discovery("dns.v1")
        self._validators: dict[str, Any] = {}
        self.seed(self.dns_name, "NS", 21600, self.name_servers)
        self._write_soa()

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on free loopback ports (HTTP for the API, UDP for DNS)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._site_port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _DnsProtocol(self), local_addr=("127.0.0.1", 0))
        self._udp = transport
        self._udp_port = int(transport.get_extra_info("sockname")[1])

    async def stop(self) -> None:
        """Stop both listeners."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The API endpoint (a plan's ``api_endpoint``)."""
        return f"http://127.0.0.1:{self._site_port}"

    @property
    def nameserver(self) -> str:
        """``127.0.0.1:port`` of the zone's nameserver (a plan's ``dns.nameservers`` entry)."""
        return f"127.0.0.1:{self._udp_port}"

    @property
    def dns_port(self) -> int:
        """UDP port of the nameserver."""
        return self._udp_port

    def assert_valid(self) -> None:
        """Fail when any request or response did not match the discovery document."""
        assert not self.problems, "Cloud DNS fake saw invalid traffic:\n" + "\n".join(self.problems)

    # --- zone state ---------------------------------------------------------------------------------

    def seed(self, name: str, rdtype: str, ttl: int, rrdatas: Sequence[str]) -> None:
        """Put an rrset into the zone directly (no change, no serial increment): the world before a test."""
        self._rrsets[_key(name, rdtype)] = _rrset(name, rdtype, ttl, rrdatas)

    def remove(self, name: str, rdtype: str) -> None:
        """Delete an rrset directly, as another tool would."""
        self._rrsets.pop(_key(name, rdtype), None)
        self._bump()

    def edit(self, name: str, rdtype: str, ttl: int, rrdatas: Sequence[str]) -> None:
        """Replace an rrset directly, as someone else's tool would (the serial moves)."""
        self.seed(name, rdtype, ttl, rrdatas)
        self._bump()

    def rrset(self, name: str, rdtype: str) -> dict[str, Any] | None:
        """The rrset the zone holds now, or None."""
        found = self._rrsets.get(_key(name, rdtype))
        return copy.deepcopy(found) if found else None

    def rrsets_at(self, name: str) -> list[dict[str, Any]]:
        """Every rrset at ``name``, sorted by type."""
        return [copy.deepcopy(r) for k, r in sorted(self._rrsets.items()) if k[0] == name.lower()]

    def changes(self) -> list[dict[str, Any]]:
        """Every change accepted so far, oldest first."""
        return copy.deepcopy(self._changes)

    def fail_requests(self, status: int | None) -> None:
        """Answer every API request with Google's error for ``status`` (401, 403, 429, 500, 503); None stops."""
        self._failure = None if status is None else _FAILURES[status]

    def answer_raw(
        self, method_id: str, body: Any, *, status: int = 200, content_type: str = "application/json"
    ) -> None:
        """Answer every call of ``method_id`` with ``body`` as is (JSON-encoded unless a str), unchecked.

        A broken API or a proxy in front of it: the answer deliberately breaks the discovery document,
        so it is not recorded as a problem of the client's traffic. ``body=None`` stops it.
        """
        if body is None:
            self._raw.pop(method_id, None)
        else:
            self._raw[method_id] = (status, content_type, body if isinstance(body, str) else json.dumps(body))

    def hold_nameserver(self) -> None:
        """Freeze what the nameserver answers (a lagging server) until :meth:`release_nameserver`."""
        self._held = copy.deepcopy(self._rrsets)

    def release_nameserver(self) -> None:
        """Let the nameserver answer the live zone again."""
        self._held = None

    def requests_for(self, method_id: str) -> list[RecordedRequest]:
        """Recorded requests of one API method, e.g. ``dns.changes.get``."""
        return [r for r in self.requests if r.method_id == method_id]

    def _write_soa(self) -> None:
        self.seed(
            self.dns_name,
            "SOA",
            21600,
            [f"ns-cloud-a1.googledomains.com. cloud-dns-hostmaster.google.com. {self.serial} 21600 3600 259200 300"],
        )

    def _bump(self) -> None:
        self.serial += 1
        self._write_soa()

    # --- HTTP ----------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        body: Any = None
        method_id = "?"
        try:
            raw = await request.read()
            body = json.loads(raw) if raw else None
            method, params = self._doc.match(request.method, request.path)
            method_id = method.id
            self._check_request(method, query, body)
            if method_id in self._raw:
                raw_status, content_type, text = self._raw[method_id]
                self.requests.append(RecordedRequest(method_id, request.path, query, body, raw_status))
                return web.Response(status=raw_status, text=text, content_type=content_type)
            status, payload = self._dispatch(method, params, query, body, request.headers.get("Authorization"))
            if status < 300 and method.response:
                self._validate(method.response, payload)
            elif status >= 300:
                jsonschema.validate(payload, ERROR_SCHEMA)
        except (AssertionError, jsonschema.ValidationError, json.JSONDecodeError) as exc:
            message = str(exc).splitlines()[0]
            self.problems.append(f"{request.method} {request.path_qs}: {message}")
            status = 500
            payload = ApiError(500, "internalError", f"fake Cloud DNS: invalid request or response: {message}").body()
        self.requests.append(RecordedRequest(method_id, request.path, query, body, status))
        return web.json_response(payload, status=status)

    def _check_request(self, method: DiscoveryMethod, query: dict[str, str], body: Any) -> None:
        self._doc.check_query(method, query)
        for name, value in query.items():
            spec = method.parameters.get(name) or self._doc.doc.get("parameters", {}).get(name, {})
            if spec.get("type") == "integer":
                assert value.lstrip("-").isdigit(), f"{method.id}: {name}={value!r} is not an integer"
            if "enum" in spec:
                assert value in spec["enum"], f"{method.id}: {name}={value!r} is not one of {spec['enum']}"
        if method.request:
            assert body is not None, f"{method.id} needs a {method.request} body"
            self._validate(method.request, body)
        else:
            assert body is None, f"{method.id} takes no body"

    def _validate(self, schema_name: str, instance: Any) -> None:
        """``DiscoveryDocument.validate`` with the validator built once per schema.

        ``jsonschema.validate`` re-checks the whole dns.v1 schema set on every call (~0.1 s); a cached
        validator of the same class over the same schema gives the same verdict in microseconds.
        """
        validator = self._validators.get(schema_name)
        if validator is None:
            schema = self._doc.json_schema(schema_name)
            validator = jsonschema.validators.validator_for(schema)(schema)
            self._validators[schema_name] = validator
        validator.validate(instance)

    def _dispatch(
        self,
        method: DiscoveryMethod,
        params: dict[str, str],
        query: dict[str, str],
        body: Any,
        authorization: str | None,
    ) -> tuple[int, dict[str, Any]]:
        try:
            if self.token and authorization != f"Bearer {self.token}":
                raise _FAILURES[401]
            if self._failure is not None:
                raise self._failure
            if params.get("project") != self.project:
                raise ApiError(
                    404,
                    "notFound",
                    f"The 'parameters.project' resource named '{params.get('project')}' does not exist.",
                )
            if params.get("managedZone") != self.managed_zone:
                raise ApiError(
                    404,
                    "notFound",
                    f"The 'parameters.managedZone' resource named '{params.get('managedZone')}' does not exist.",
                )
            handler = {
                "dns.managedZones.get": self._zone_get,
                "dns.resourceRecordSets.list": self._rrsets_list,
                "dns.changes.create": self._changes_create,
                "dns.changes.get": self._changes_get,
                "dns.changes.list": self._changes_list,
            }.get(method.id)
            if handler is None:
                raise ApiError(400, "badRequest", f"the fake does not implement {method.id}")
            return 200, handler(params, query, body)
        except ApiError as exc:
            return exc.code, exc.body()

    def _zone_get(self, params: dict[str, str], query: dict[str, str], body: Any) -> dict[str, Any]:
        return {
            "kind": "dns#managedZone",
            "name": self.managed_zone,
            "id": "4811234567890123456",
            "dnsName": self.dns_name,
            "description": "cutover test zone",
            "nameServers": self.name_servers,
            "creationTime": "2025-01-02T03:04:05.678Z",
            "visibility": "public",
        }

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
        start = int(query.get("pageToken") or 0)
        size = min(int(query.get("maxResults") or self.page_size), self.page_size)
        end = start + size
        return items[start:end], (str(end) if end < len(items) else None)

    def _rrsets_list(self, params: dict[str, str], query: dict[str, str], body: Any) -> dict[str, Any]:
        if "type" in query and "name" not in query:
            raise ApiError(400, "invalid", "Invalid value for 'parameters.type': the name parameter is required")
        name = query.get("name", "").lower()
        items = [
            copy.deepcopy(r)
            for k, r in sorted(self._rrsets.items())
            if (not name or k[0] == name) and ("type" not in query or k[1] == query["type"].upper())
        ]
        page, token = self._page(items, query)
        result: dict[str, Any] = {"kind": "dns#resourceRecordSetsListResponse", "rrsets": page}
        if token:
            result["nextPageToken"] = token
        return result

    def _changes_create(self, params: dict[str, str], query: dict[str, str], body: Any) -> dict[str, Any]:
        if self.before_change is not None:
            self.before_change(body)
        op_id = query.get("clientOperationId")
        if op_id and op_id in self._operation_ids:
            raise ApiError(
                409, "alreadyExists", f"The resource 'entity.change' with clientOperationId '{op_id}' already exists"
            )
        deletions = body.get("deletions", [])
        additions = body.get("additions", [])
        zone = dns.name.from_text(self.dns_name)
        after = copy.deepcopy(self._rrsets)
        for index, rrset in enumerate(deletions):
            key = _key(rrset["name"], rrset["type"])
            live = after.get(key)
            if live is None:
                raise ApiError(
                    404,
                    "notFound",
                    f"The 'entity.change.deletions[{index}]' resource named '{rrset['name']} ({rrset['type']})' "
                    "does not exist.",
                )
            if not _same(live, rrset):
                raise ApiError(412, "conditionNotMet", f"Precondition not met for 'entity.change.deletions[{index}]'")
            del after[key]
        for index, rrset in enumerate(additions):
            key = _key(rrset["name"], rrset["type"])
            if not dns.name.from_text(rrset["name"]).is_subdomain(zone):
                raise ApiError(
                    400,
                    "invalid",
                    f"The resource 'entity.change.additions[{index}]' named '{rrset['name']} ({rrset['type']})' "
                    f"is not within the managed zone '{self.dns_name}'",
                )
            if key in after:
                raise ApiError(
                    409,
                    "alreadyExists",
                    f"The resource 'entity.change.additions[{index}]' named '{rrset['name']} ({rrset['type']})' "
                    "already exists",
                )
            after[key] = _rrset(rrset["name"], rrset["type"], int(rrset.get("ttl", 0)), rrset.get("rrdatas", []))
        for index, rrset in enumerate(additions):
            owner = rrset["name"].lower()
            types = {k[1] for k in after if k[0] == owner}
            if "CNAME" in types and len(types) > 1:
                raise ApiError(
                    400,
                    "invalid",
                    f"The resource 'entity.change.additions[{index}]' named '{rrset['name']} ({rrset['type']})' "
                    "is invalid because a CNAME resource record set cannot coexist with other record sets at the "
                    "same name",
                )
        self._rrsets = after
        self._bump()
        if op_id:
            self._operation_ids.add(op_id)
        change_id = str(len(self._changes) + 1)
        status = "pending" if self.pending_polls > 0 else "done"
        self._polls_left[change_id] = self.pending_polls
        change = {
            "kind": "dns#change",
            "id": change_id,
            "startTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "status": status,
            "isServing": True,
        }
        if additions:
            change["additions"] = [_rrset(r["name"], r["type"], int(r.get("ttl", 0)), r["rrdatas"]) for r in additions]
        if deletions:
            change["deletions"] = [_rrset(r["name"], r["type"], int(r.get("ttl", 0)), r["rrdatas"]) for r in deletions]
        self._changes.append(change)
        return copy.deepcopy(change)

    def _find_change(self, change_id: str) -> dict[str, Any]:
        for change in self._changes:
            if change["id"] == change_id:
                return change
        raise ApiError(404, "notFound", f"The 'parameters.changeId' resource named '{change_id}' does not exist.")

    def _changes_get(self, params: dict[str, str], query: dict[str, str], body: Any) -> dict[str, Any]:
        change = self._find_change(params["changeId"])
        if change["status"] == "pending":
            self._polls_left[change["id"]] -= 1
            if self._polls_left[change["id"]] < 0:
                change["status"] = "done"
        return copy.deepcopy(change)

    def _changes_list(self, params: dict[str, str], query: dict[str, str], body: Any) -> dict[str, Any]:
        items = copy.deepcopy(self._changes)
        if query.get("sortOrder") == "descending":
            items.reverse()
        page, token = self._page(items, query)
        result: dict[str, Any] = {"kind": "dns#changesListResponse", "changes": page}
        if token:
            result["nextPageToken"] = token
        return result

    # --- DNS -------------------------------------------------------------------------------------------

    def dns_answer(self, query: dns.message.Message) -> dns.message.Message:
        """An authoritative answer from the zone (or the held copy while the nameserver lags)."""
        response = dns.message.make_response(query)
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        zone = dns.name.from_text(self.dns_name)
        if not question.name.is_subdomain(zone):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        qtype = dns.rdatatype.to_text(question.rdtype)
        if qtype in self.refused_types:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        data = self._held if self._held is not None else self._rrsets
        owner = question.name.to_text().lower()
        at_name = {k[1]: r for k, r in data.items() if k[0] == owner}
        if qtype == "ANY" and self.minimal_any and at_name:
            response.answer.append(dns.rrset.from_text_list(owner, 3789, dns.rdataclass.IN, "HINFO", ['"RFC8482" ""']))
            return response
        if "CNAME" in at_name and qtype != "CNAME":
            chosen = [at_name["CNAME"]]
        elif qtype == "ANY":
            chosen = list(at_name.values())
        else:
            chosen = [at_name[qtype]] if qtype in at_name else []
        for rrset in chosen:
            response.answer.append(
                dns.rrset.from_text_list(owner, rrset["ttl"], dns.rdataclass.IN, rrset["type"], rrset["rrdatas"])
            )
        if not chosen:
            exists = any(k[0] == owner or k[0].endswith("." + owner) for k in data)
            if not exists:
                response.set_rcode(dns.rcode.NXDOMAIN)
            soa = data[_key(self.dns_name, "SOA")]
            minimum = int(soa["rrdatas"][0].split()[6])
            response.authority.append(
                dns.rrset.from_text_list(
                    self.dns_name, min(soa["ttl"], minimum), dns.rdataclass.IN, "SOA", soa["rrdatas"]
                )
            )
        return response
