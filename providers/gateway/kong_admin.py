"""Kong Admin API client: typed errors, retried reads, the Service PATCH, data-plane status reads.

Facts this module relies on are in shared/reference/kong.md (sections cited inline):

* ``GET /`` returns the node's whole parsed configuration: ``role`` and ``database`` tell the
  deployment mode, the ``dns_*`` / ``resolver_*`` keys the DNS client's settings (§2.1).
* DB-less nodes and hybrid data planes answer writes with 405 ``{"code": 12, ...}``: changes must
  go to the Control Plane (§2.8). Konnect has its own API and is refused here (§2.7).
* Kong's error bodies are ``{code, name, message, fields}`` (§2.6); they map to the typed errors of
  providers/errors.py: 400 rejected, 401/403 auth, 404 not found, 405 read-only, 409 conflict,
  5xx/timeouts unavailable (the only retryable kind).

Idempotent GETs are retried a few times; writes are not (the activity's retry re-reads and compares first).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from models.kong import KongDnsSettings
from models.plan import KongSection
from providers.errors import (
    ConfigError,
    GatewayAuthError,
    GatewayConflict,
    GatewayError,
    GatewayNotFound,
    GatewayReadOnly,
    GatewayRejected,
    GatewayUnavailable,
    GatewayUnsupported,
    certificate_problem,
    describe_transport_error,
)
from providers.gateway.kong_dns_settings import dns_settings_from_configuration
from providers.gateway.kong_entities import KongNode, node_mode
from providers.netguard import guarded_transport
from providers.resources import AsyncResource
from providers.secrets import Destination, EnvSecrets
from providers.tls import verify_context

log = logging.getLogger("cutover.providers.kong")

ADMIN_TOKEN_HEADER = "Kong-Admin-Token"
"""Kong Enterprise RBAC header by default (``rbac_auth_header``, kong.md §2.7); ``kong.token_header`` changes it."""
KONNECT_SUFFIX = ".api.konghq.com"


def _body(response: httpx.Response) -> dict[str, Any]:
    """Kong's JSON answer; anything else is described (type and size), never quoted into errors or history."""
    try:
        data = response.json()
    except ValueError:
        return {"message": f"a non-JSON answer ({_content_facts(response)})"}
    return data if isinstance(data, dict) else {"message": f"a JSON {type(data).__name__}, not an object"}


def _content_facts(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "no content type").split(";", 1)[0].strip()[:60]
    return f"{len(response.content)} bytes of {kind}"


def refuse_konnect(admin_url: str) -> None:
    """Konnect's Control Plane Config API is a different API: refuse it with the way forward."""
    host = (urlsplit(admin_url).hostname or "").lower()
    if host == KONNECT_SUFFIX.lstrip(".") or host.endswith(KONNECT_SUFFIX):
        raise GatewayUnsupported(
            f"kong.admin_url {admin_url} is Kong Konnect, which cutover does not support yet: Konnect's Control "
            "Plane Config API differs from the Admin API. Use the cname strategy with Konnect (Kong untouched) only "
            "after reading its DNS settings by hand into kong.dns_overrides, or repoint the Service in Konnect "
            "yourself."
        )


async def get_without_token(
    client: httpx.AsyncClient, url: str, token_header: str = ADMIN_TOKEN_HEADER
) -> httpx.Response:
    """A GET that does not carry the Admin API token (data-plane status endpoints are another host)."""
    request = client.build_request("GET", url)
    if token_header in request.headers:
        del request.headers[token_header]
    return await client.send(request)


@dataclass
class DataPlaneReading:
    """What one data plane's status endpoints told us."""

    url: str
    config_hash: str | None = None
    settings: KongDnsSettings | None = None
    version: str | None = None
    client: str | None = None
    """``legacy``/``new`` from ``/status/dns`` when ``GET /`` is not exposed."""
    problems: list[str] = field(default_factory=list)


class KongAdminClient(AsyncResource):
    """Async client for one Kong Admin API (traditional node, DB-less node or hybrid Control Plane).

    Args:
        section: the plan's ``kong`` section (URL, workspace, token variable, CA bundle, timeout).
        secrets: resolves ``token_env`` to the RBAC token, sent as ``Kong-Admin-Token``.
        transport: an httpx transport to use instead of the network stack (tests, proxies).
        get_attempts: how many times an idempotent GET is tried on 5xx/timeouts before giving up.
        retry_backoff: first pause between GET attempts, doubled each time.

    Raises:
        GatewayUnsupported: for Konnect admin URLs (``*.api.konghq.com``).
        ConfigError: when the token variable is named but unset, or the CA bundle is unreadable.
    """

    def __init__(
        self,
        section: KongSection,
        *,
        secrets: EnvSecrets,
        transport: httpx.AsyncBaseTransport | None = None,
        get_attempts: int = 3,
        retry_backoff: float = 0.25,
    ) -> None:
        self.section = section
        self.admin_url = section.admin_url.rstrip("/")
        refuse_konnect(self.admin_url)
        self._get_attempts = max(1, get_attempts)
        self._retry_backoff = retry_backoff
        headers = {"Accept": "application/json", "User-Agent": "cutover"}
        secrets.guard.check_url("kong_admin", self.admin_url, "kong.admin_url")
        for index, url in enumerate(section.status_urls):
            secrets.guard.check_url("kong_status", url, f"kong.status_urls.{index}")
        token = (
            secrets.require_header_value(
                section.token_env, "kong.token_env", Destination("kong_admin", url=self.admin_url)
            )
            if section.token_env
            else None
        )
        self.token_header = section.token_header
        if token:
            headers[self.token_header] = token
        verify = verify_context(section.ca_bundle, "kong.ca_bundle")
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=section.timeout.total_seconds(),
            transport=transport or guarded_transport(secrets.guard, verify),
            verify=verify,
            follow_redirects=False,
        )
        self._entity_prefix = f"/{quote(section.workspace, safe='')}" if section.workspace else ""

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    # -- transport and error mapping --

    def _url(self, path: str, *, entity: bool = True) -> str:
        return self.admin_url + (self._entity_prefix if entity else "") + path

    async def _send(self, method: str, url: str, action: str, json_body: Any = None) -> httpx.Response:
        try:
            return await self._client.request(method, url, json=json_body)
        except httpx.TimeoutException as exc:
            raise GatewayUnavailable(
                f"Kong Admin API did not answer {action} within {self.section.timeout.total_seconds():g} s ({url})"
            ) from exc
        except httpx.ConnectError as exc:
            # Never str(exc): h11's protocol errors repeat header lines, and this client sends the token.
            untrusted = certificate_problem(exc)
            if untrusted is not None:
                raise ConfigError(
                    f"the Kong Admin API's TLS certificate is not trusted ({url}): set kong.ca_bundle to the CA "
                    f"that signed it ({untrusted})"
                ) from exc
            raise GatewayUnavailable(
                f"cannot connect to the Kong Admin API for {action} ({url}): {describe_transport_error(exc)}"
            ) from exc
        except httpx.HTTPError as exc:
            # TransportError, and the ones that are not: DecodingError (a body that does not decode as its
            # Content-Encoding says), TooManyRedirects.
            raise GatewayUnavailable(
                f"the Kong Admin API exchange failed during {action} ({url}): {describe_transport_error(exc)}"
            ) from exc

    def error_for(self, response: httpx.Response, action: str) -> GatewayError:
        """The typed error for a non-2xx answer, with Kong's own message and fields."""
        body = _body(response)
        status = response.status_code
        message = str(body.get("message") or response.reason_phrase)
        code = body.get("code")
        where = f"{response.request.method} {response.request.url}"
        if status == 405 or code == 12:
            return GatewayReadOnly(
                f"Kong refused {action} with {status} ({message}): {self.admin_url} is a DB-less node or a hybrid "
                "data plane, whose Admin API is read-only. Changes must go to the Control Plane: set kong.admin_url "
                "to the Control Plane's Admin API."
            )
        if status == 401:
            hint = (
                f"the token in {self.section.token_env} was refused"
                if self.section.token_env
                else "set kong.token_env to the environment variable holding an RBAC token "
                f"(sent as {self.section.token_header})"
            )
            return GatewayAuthError(f"Kong answered 401 ({message}) to {action} ({where}): {hint}.")
        if status == 403:
            return GatewayAuthError(
                f"Kong answered 403 ({message}) to {action} ({where}): the token "
                f"{'in ' + self.section.token_env if self.section.token_env else '(none: set kong.token_env)'} "
                "lacks permission; check its RBAC role (read on services, routes, upstreams, targets; update on "
                f"services) in workspace {self.section.workspace or 'default'}."
            )
        if status == 404:
            return GatewayNotFound(
                f"{action}: Kong answered 404 ({message}) for {where}"
                + (f" in workspace {self.section.workspace}" if self.section.workspace else "")
            )
        if status == 409:
            return GatewayConflict(f"Kong refused {action} with 409 ({message}): it conflicts with existing config.")
        if status == 400:
            fields = body.get("fields")
            detail = f"; fields: {fields}" if fields else ""
            return GatewayRejected(f"Kong rejected {action} with 400 {body.get('name') or ''} ({message}){detail}.")
        if status >= 500 or status == 429:
            return GatewayUnavailable(f"Kong answered {status} ({message}) to {action} ({where}).")
        return GatewayRejected(f"Kong answered {status} ({message}) to {action} ({where}).")

    async def _get(self, url: str, action: str) -> dict[str, Any]:
        """GET with a few retries on 5xx/timeouts: reads are idempotent."""
        delay = self._retry_backoff
        for attempt in range(1, self._get_attempts + 1):
            try:
                response = await self._send("GET", url, action)
                if response.is_success:
                    return _body(response)
                error = self.error_for(response, action)
            except GatewayUnavailable as exc:
                error = exc
            if not error.retryable or attempt == self._get_attempts:
                raise error
            log.info("%s: attempt %d failed (%s); retrying in %.2f s", action, attempt, error, delay)
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises

    async def _get_all(self, path: str, action: str) -> list[dict[str, Any]]:
        """Every item of a paginated list (``offset`` cursor, kong.md §2)."""
        items: list[dict[str, Any]] = []
        url = self._url(path)
        while True:
            page = await self._get(url, action)
            items.extend(item for item in page.get("data") or [] if isinstance(item, dict))
            offset = page.get("offset")
            if not offset:
                return items
            url = self._url(path) + ("&" if "?" in path else "?") + f"offset={quote(str(offset), safe='')}"

    # -- reads --

    async def node(self) -> KongNode:
        """``GET /``: mode, writability, version and configuration of the node."""
        info = await self._get(self._url("/", entity=False), "reading the node (GET /)")
        raw = info.get("configuration")
        configuration: dict[str, Any] = raw if isinstance(raw, dict) else {}
        mode, writable, explanation = node_mode(configuration)
        return KongNode(
            mode=mode,
            writable=writable,
            version=info.get("version"),
            configuration=configuration,
            explanation=explanation,
        )

    async def get_service(self, service: str | None = None) -> dict[str, Any]:
        """The Service entity (by name or id; default: the plan's)."""
        ref = service or self.section.service
        return await self._get(
            self._url(f"/services/{quote(ref, safe='')}"), f"reading Service {ref} (GET /services/{ref})"
        )

    async def list_routes(self, service_id: str) -> list[dict[str, Any]]:
        """Every Route of a Service."""
        return await self._get_all(
            f"/services/{quote(service_id, safe='')}/routes", f"listing the routes of Service {service_id}"
        )

    async def find_upstream(self, name: str) -> dict[str, Any] | None:
        """The Upstream called ``name``, or None when the name is a plain DNS name."""
        try:
            return await self._get(self._url(f"/upstreams/{quote(name, safe='')}"), f"reading Upstream {name}")
        except GatewayNotFound:
            return None

    async def list_targets(self, upstream_id: str) -> list[dict[str, Any]]:
        """Every target of an Upstream."""
        return await self._get_all(
            f"/upstreams/{quote(upstream_id, safe='')}/targets", f"listing the targets of Upstream {upstream_id}"
        )

    # -- writes --

    async def patch_service(self, service_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH only ``fields`` of a Service; not retried here (the caller compares before retrying)."""
        action = f"updating Service {service_id} ({', '.join(sorted(fields))})"
        response = await self._send(
            "PATCH", self._url(f"/services/{quote(service_id, safe='')}"), action, json_body=dict(fields)
        )
        if not response.is_success:
            raise self.error_for(response, action)
        return _body(response)

    # -- data planes --

    async def read_data_plane(self, url: str, *, settings: bool = True) -> DataPlaneReading:
        """Read a data plane's ``/status`` (configuration_hash) and, if exposed, its ``GET /`` configuration.

        ``url`` is the base of the DP's Status API or Admin API, with or without ``/status``. No token is
        sent: status endpoints are unauthenticated and the token belongs to the Control Plane.
        ``settings=False`` reads only ``/status`` (polling for a new configuration).
        """
        base = url.rstrip("/")
        if base.endswith("/status"):
            base = base[: -len("/status")]
        reading = DataPlaneReading(url=url)
        try:
            response = await get_without_token(self._client, base + "/status", self.token_header)
            if response.is_success:
                reading.config_hash = _body(response).get("configuration_hash")
            else:
                reading.problems.append(f"GET {base}/status answered {response.status_code}")
            if not settings:
                return reading
            info = await get_without_token(self._client, base + "/", self.token_header)
            if info.is_success and isinstance(_body(info).get("configuration"), dict):
                data = _body(info)
                reading.settings = dns_settings_from_configuration(
                    data["configuration"], version=data.get("version"), source=f"GET / on data plane {base}"
                )
                reading.version = data.get("version")
            else:
                dns_status = await get_without_token(self._client, base + "/status/dns", self.token_header)
                if dns_status.status_code == 501:
                    reading.client = "legacy"
                elif dns_status.is_success:
                    reading.client = "new"
        except httpx.HTTPError as exc:
            reading.problems.append(f"cannot read data plane {base}: {describe_transport_error(exc)}")
        return reading
