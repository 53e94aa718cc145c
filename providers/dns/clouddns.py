"""Google Cloud DNS through its v1 REST API (httpx + google-auth), as compare-and-swap changes.

A change is one ``changes.create`` whose ``deletions`` are the exact expected rrsets (TTL included)
and whose ``additions`` are the desired ones; Cloud DNS applies it atomically and refuses it with
412 ``conditionNotMet`` when a deletion no longer matches, or 409 ``alreadyExists`` when an addition
is already there. Either way cutover re-reads: if the zone already holds the desired data the change
counts as already applied (a retry after a lost answer), otherwise someone else changed the record
and nothing is overwritten.

``clientOperationId`` is a hash of the change and of the zone's latest change id, so a retried create
of the same change on the same zone state carries the same id, and the same change made again later
(flip, roll back, flip) gets a new one.

A change in status ``done`` has only been sent to Google's nameservers: cutover then reads the rrsets
back through the API and proves propagation by querying the nameservers themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import dns.asyncresolver
import dns.exception
import google.auth.exceptions
import httpx

from models.dns import DnsChange, RRset
from models.plan import CloudDnsProvider
from providers.dns import discovery
from providers.dns.base import DnsProvider
from providers.dns.nameservers import IGNORED_TYPES, Nameserver, canonical_name, canonical_rdata, sorted_rrsets
from providers.errors import (
    DnsAuthError,
    DnsError,
    DnsRefused,
    DnsUnavailable,
    InvalidChange,
    NotInZone,
    PreconditionFailed,
    describe_transport_error,
)
from providers.google_auth import GoogleAuth, describe_auth_error, is_transport_problem
from providers.google_errors import parse_google_error
from providers.netguard import NetworkGuard

_RETRYABLE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "backendError"}


def api_error(response: httpx.Response, what: str, *, project: str, managed_zone: str) -> DnsError:
    """The typed error for a failed Cloud DNS call (Google's message included, never a token)."""
    error = parse_google_error(response)
    message, reasons = error.message, error.reasons
    status = response.status_code
    detail = f"{what}: HTTP {status} {', '.join(reasons) or response.reason_phrase}: {message}"
    if status == 401:
        return DnsAuthError(f"Cloud DNS rejected the credentials ({detail})")
    if status == 403:
        if _RETRYABLE_REASONS & set(reasons):
            return DnsUnavailable(f"Cloud DNS quota or rate limit ({detail})")
        return DnsRefused(
            f"Cloud DNS denied access to {managed_zone} in {project} ({detail}); the worker's identity needs "
            "roles/dns.admin or the permissions listed in docs/dns.md"
        )
    if status == 404:
        return NotInZone(f"managed zone {managed_zone} not found in project {project} ({detail})")
    if status in (409, 412):
        return PreconditionFailed(f"Cloud DNS refused the change ({detail})")
    if status == 400:
        return InvalidChange(f"Cloud DNS rejected the change as invalid ({detail})")
    if status == 429 or status >= 500:
        return DnsUnavailable(f"Cloud DNS is unavailable ({detail})")
    return DnsRefused(f"Cloud DNS refused the request ({detail})")


def rrset_to_api(rrset: RRset) -> dict[str, Any]:
    """A ``ResourceRecordSet`` body."""
    return {"name": rrset.name, "type": rrset.type, "ttl": rrset.ttl, "rrdatas": list(rrset.rdatas)}


def rrset_from_api(item: Any) -> RRset:
    """The model of an API ``ResourceRecordSet``.

    Raises:
        InvalidChange: the rrset uses a routing policy, which cutover does not move, or holds record
            data cutover can't read (a retry would read the same).
        DnsUnavailable: the item is not shaped like a ResourceRecordSet (a broken answer or proxy).
    """
    if not isinstance(item, dict):
        raise DnsUnavailable(f"Cloud DNS listed an rrset that is not an object ({type(item).__name__})")
    if item.get("routingPolicy") is not None:
        raise InvalidChange(
            f"{item.get('name')} {item.get('type')} uses a Cloud DNS routing policy; cutover only moves plain rrsets"
        )
    try:
        name, rdtype = canonical_name(str(item["name"])), str(item["type"]).upper()
        ttl = int(item.get("ttl", 0))
        texts = item.get("rrdatas", [])
        if not isinstance(texts, list):
            raise TypeError(f"rrdatas is a {type(texts).__name__}, not a list")
    except KeyError as exc:
        raise DnsUnavailable(f"Cloud DNS listed an rrset without {exc.args[0]!r}: {_shown(item)}") from exc
    except (TypeError, ValueError, dns.exception.DNSException) as exc:
        raise DnsUnavailable(f"Cloud DNS listed an rrset cutover can't read ({exc}): {_shown(item)}") from exc
    try:
        rdatas = tuple(canonical_rdata(rdtype, str(text)) for text in texts)
    except ValueError as exc:
        raise InvalidChange(
            f"Cloud DNS holds {name} {rdtype} data cutover can't read ({exc}); fix or remove that rrset first"
        ) from exc
    return RRset(name=name, type=rdtype, ttl=ttl, rdatas=rdatas)


def _shown(item: Any) -> str:
    """A short JSON rendering of part of an API answer, for error messages (rrsets hold no secrets)."""
    text = json.dumps(item, default=str)
    return text if len(text) <= 200 else text[:200] + "..."


def _list_of(page: dict[str, Any], key: str, what: str) -> list[Any]:
    """``page[key]`` as a list (absent: empty).

    Raises:
        DnsUnavailable: the answer holds something else there.
    """
    value = page.get(key, [])
    if not isinstance(value, list):
        raise DnsUnavailable(f"Cloud DNS answered {what} with {key!r} that is not a list: {_shown(value)}")
    return value


def operation_id(change: DnsChange, managed_zone: str, after_change: str) -> str:
    """Deterministic ``clientOperationId`` for ``change`` made on top of change ``after_change``."""
    content = json.dumps(
        {
            "zone": managed_zone,
            "after": after_change,
            "name": change.name,
            "expected": [rrset_to_api(r) for r in change.expected],
            "desired": [rrset_to_api(r) for r in change.desired],
        },
        sort_keys=True,
    )
    return "cutover-" + hashlib.sha256(content.encode()).hexdigest()[:40]


class GoogleCloudDnsProvider(DnsProvider):
    """A Cloud DNS managed zone, changed with atomic ``changes.create`` calls."""

    kind = "clouddns"

    def __init__(
        self,
        config: CloudDnsProvider,
        client: httpx.AsyncClient,
        *,
        nameservers: Sequence[str] | None = None,
        resolver: dns.asyncresolver.Resolver | None = None,
        query_timeout: float = 5.0,
        first_poll_interval: float = 0.1,
        max_poll_interval: float = 2.0,
        guard: NetworkGuard | None = None,
    ) -> None:
        """Build the provider.

        Args:
            config: the plan's provider section.
            client: an ``httpx.AsyncClient`` whose base URL is the API endpoint and whose auth adds
                Google credentials; the provider closes it.
            nameservers: ``host:port`` of the authoritative servers; None for the zone's ``nameServers``.
            resolver: recursive resolver for nameserver names and names outside the zone.
            query_timeout: seconds to wait for one DNS answer from a nameserver.
            first_poll_interval: first wait before polling a pending change; doubles each poll.
            max_poll_interval: the longest wait between two polls.
            guard: where nameserver queries may go (default: the rules that need no policy).
        """
        super().__init__(
            zone=config.zone, nameservers=nameservers, query_timeout=query_timeout, resolver=resolver, guard=guard
        )
        self.config = config
        self.client = client
        self.first_poll_interval = first_poll_interval
        self.max_poll_interval = max_poll_interval
        self._zone_path = f"/dns/v1/projects/{config.project}/managedZones/{config.managed_zone}"
        self._managed_zone: dict[str, Any] | None = None

    async def aclose(self) -> None:
        """Close the HTTP client and, when it authenticates with :class:`GoogleAuth`, its token-refresh session."""
        await self.client.aclose()
        if isinstance(self.client.auth, GoogleAuth):
            self.client.auth.close()
        await super().aclose()

    async def _send(
        self, method: str, path: str, what: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> httpx.Response:
        """One API request; transport and token failures become typed errors, HTTP errors are returned."""
        try:
            return await self.client.request(method, self._zone_path + path, params=params, json=body)
        except google.auth.exceptions.GoogleAuthError as exc:
            if is_transport_problem(exc):
                raise DnsUnavailable(
                    f"could not get a Google access token for Cloud DNS: the token endpoint or metadata server is "
                    f"unreachable or failing ({describe_auth_error(exc)}); retrying is safe"
                ) from exc
            raise DnsAuthError(
                f"could not get a Google access token for Cloud DNS ({describe_auth_error(exc)}): the credentials "
                "were refused"
            ) from exc
        except httpx.TimeoutException as exc:
            raise DnsUnavailable(f"Cloud DNS did not answer {what} in time ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            # Never str(exc): h11's protocol errors repeat header lines, and this client sends the bearer token.
            raise DnsUnavailable(f"Cloud DNS is unreachable for {what} ({describe_transport_error(exc)})") from exc

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        if not response.is_success:
            raise api_error(response, what, project=self.config.project, managed_zone=self.config.managed_zone)
        try:
            data = response.json()
        except ValueError as exc:
            raise DnsUnavailable(f"Cloud DNS answered {what} with something that is not JSON") from exc
        return data if isinstance(data, dict) else {}

    async def _call(
        self, method: str, path: str, what: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> dict[str, Any]:
        return self._json(await self._send(method, path, what, params=params, body=body), what)

    async def managed_zone(self) -> dict[str, Any]:
        """The managed zone (``managedZones.get``), checked once against the plan's zone name.

        Raises:
            NotInZone: the managed zone serves another DNS name than the plan says.
        """
        if self._managed_zone is None:
            zone = await self._call("GET", "", f"managedZones.get {self.config.managed_zone}")
            try:
                dns_name = canonical_name(str(zone.get("dnsName", ".")))
            except dns.exception.DNSException as exc:
                raise DnsUnavailable(
                    f"Cloud DNS answered managedZones.get {self.config.managed_zone} with a dnsName that is not a "
                    f"DNS name ({type(exc).__name__}): {_shown(zone.get('dnsName'))}"
                ) from exc
            if dns_name != self.zone:
                raise NotInZone(
                    f"managed zone {self.config.managed_zone} in {self.config.project} serves {dns_name}, not "
                    f"{self.zone}: fix dns.provider.zone or dns.provider.managed_zone"
                )
            self._managed_zone = zone
        return self._managed_zone

    async def list_rrsets(self, name: str, rdtype: str | None = None) -> tuple[RRset, ...]:
        """Every rrset at ``name`` (of ``rdtype`` when given), following ``nextPageToken``."""
        await self.managed_zone()
        params: dict[str, Any] = {"name": name}
        if rdtype:
            params["type"] = rdtype
        found: list[RRset] = []
        while True:
            page = await self._call("GET", "/rrsets", f"rrsets.list {name}", params=params)
            for item in _list_of(page, "rrsets", f"rrsets.list {name}"):
                if not isinstance(item, dict) or str(item.get("type", "")).upper() not in IGNORED_TYPES:
                    found.append(rrset_from_api(item))
            token = page.get("nextPageToken")
            if not token:
                return sorted_rrsets(r for r in found if r.name == name)
            params["pageToken"] = token

    async def _read(self, name: str, types: Iterable[str] = ()) -> tuple[int | None, tuple[RRset, ...]]:
        """Every rrset at ``name`` from the API (which lists all types, so ``types`` needs no query)."""
        return None, await self.list_rrsets(name)

    async def negative_ttl(self) -> int:
        """From the zone's SOA rrset."""
        soa = await self.list_rrsets(self.zone, "SOA")
        if not soa or not soa[0].rdatas:
            raise DnsRefused(f"managed zone {self.config.managed_zone} lists no SOA for {self.zone}")
        fields = soa[0].rdatas[0].split()
        if len(fields) != 7 or not fields[6].isdigit():
            raise DnsUnavailable(f"managed zone {self.config.managed_zone} lists an SOA cutover can't read: {soa[0]}")
        return min(soa[0].ttl, int(fields[6]))

    async def _discover_nameservers(self) -> list[Nameserver]:
        zone = await self.managed_zone()
        try:
            names = [canonical_name(str(n)) for n in _list_of(zone, "nameServers", "managedZones.get")]
        except dns.exception.DNSException as exc:
            raise DnsUnavailable(
                f"managed zone {self.config.managed_zone} lists nameServers that are not DNS names "
                f"({type(exc).__name__}): {_shown(zone.get('nameServers'))}"
            ) from exc
        if not names:
            raise DnsUnavailable(f"managed zone {self.config.managed_zone} lists no nameServers")
        return await discovery.nameserver_addresses(
            names, self.zone, primary=None, resolver=self.resolver, timeout=self.query_timeout
        )

    async def _latest_change_id(self) -> str:
        page = await self._call(
            "GET",
            "/changes",
            "changes.list",
            params={"sortBy": "changeSequence", "sortOrder": "descending", "maxResults": 1},
        )
        changes = _list_of(page, "changes", "changes.list")
        if changes and not isinstance(changes[0], dict):
            raise DnsUnavailable(
                f"Cloud DNS answered changes.list with a change that is not an object: {_shown(changes[0])}"
            )
        return str(changes[0].get("id", "")) if changes else ""

    async def _submit(self, change: DnsChange) -> str | None:
        op_id = operation_id(change, self.config.managed_zone, await self._latest_change_id())
        body: dict[str, Any] = {}
        if change.desired:
            body["additions"] = [rrset_to_api(r) for r in change.desired]
        if change.expected:
            body["deletions"] = [rrset_to_api(r) for r in change.expected]
        what = f"changes.create for {change.name}"
        response = await self._send("POST", "/changes", what, params={"clientOperationId": op_id}, body=body)
        if response.status_code == 404 and "deletions" in (message := parse_google_error(response).message):
            # Deleting an rrset that no longer exists is a stale expectation, not a missing zone.
            raise PreconditionFailed(f"Cloud DNS refused the change: {message}")
        created = self._json(response, what)
        change_id = str(created.get("id", ""))
        self.log.info("_submit: change %s (%s) is %s", change_id, op_id, created.get("status"))
        if created.get("status") != "done":
            await self._wait_done(change_id)
        return change_id

    async def _wait_done(self, change_id: str) -> None:
        """Poll ``changes.get`` at a growing interval until ``done``, within the provider's poll_timeout.

        Raises:
            DnsUnavailable: still pending at the deadline (a retry re-reads and will find it applied).
        """
        timeout = self.config.poll_timeout.total_seconds()
        deadline = time.monotonic() + timeout
        interval = self.first_poll_interval
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DnsUnavailable(
                    f"Cloud DNS change {change_id} was still pending after {timeout:g}s (dns.provider.poll_timeout)"
                )
            await asyncio.sleep(min(interval, remaining))
            interval = min(interval * 2, self.max_poll_interval)
            status = await self._call("GET", f"/changes/{change_id}", f"changes.get {change_id}")
            if status.get("status") == "done":
                return
