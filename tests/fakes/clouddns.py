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
import json
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, cast

import dns.exception
import dns.message
import dns.rdatatype
import jsonschema
from aiohttp import web

from tests.fakes.clouddns_errors import ERROR_SCHEMA, FAILURES, ApiError
from tests.fakes.clouddns_zone import CloudDnsZone
from tests.fakes.discovery import DiscoveryMethod, discovery


@dataclass
class RecordedRequest:
    """One request the fake received, for assertions (e.g. how often and how fast it was polled)."""

    method_id: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    at: float = field(default_factory=time.monotonic)


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


class FakeCloudDns(CloudDnsZone):
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
        super().__init__(managed_zone=managed_zone, dns_name=dns_name, name_servers=name_servers, page_size=page_size)
        self.project = project
        self.token = token
        self._failure: ApiError | None = None
        self._raw: dict[str, tuple[int, str, str]] = {}
        self.problems: list[str] = []
        self.requests: list[RecordedRequest] = []
        self.dns_queries: Counter[str] = Counter()
        """DNS queries the nameserver received, by qtype."""
        self.silent_types: set[str] = set()
        """Qtypes never answered (a server that drops them, e.g. response-rate-limiting)."""
        self._runner: web.AppRunner | None = None
        self._site_port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_port = 0
        self._doc = discovery("dns.v1")
        self._validators: dict[str, Any] = {}

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

    # --- failures on demand and assertions -----------------------------------------------------------

    def fail_requests(self, status: int | None) -> None:
        """Answer every API request with Google's error for ``status`` (401, 403, 429, 500, 503); None stops."""
        self._failure = None if status is None else FAILURES[status]

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

    def requests_for(self, method_id: str) -> list[RecordedRequest]:
        """Recorded requests of one API method, e.g. ``dns.changes.get``."""
        return [r for r in self.requests if r.method_id == method_id]

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
                raise FAILURES[401]
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
