"""Kong Admin API client: read the Service and how Kong reaches its backend, repoint it, restore it.

Facts this module relies on are in shared/reference/kong.md (sections cited inline):

* ``GET /`` returns the node's whole parsed configuration: ``role`` and ``database`` tell the
  deployment mode, the ``dns_*`` / ``resolver_*`` keys the DNS client's settings (settings left at
  ``NONE`` are absent, so a missing ``dns_valid_ttl`` means "record TTL") (§2.1).
* DB-less nodes and hybrid data planes answer writes with 405 ``{"code": 12, ...}``: changes must
  go to the Control Plane (§2.8). Konnect has its own API and is refused here (§2.7).
* Kong's error bodies are ``{code, name, message, fields}`` (§2.6); they map to the typed errors of
  providers/errors.py: 400 rejected, 401/403 auth, 404 not found, 405 read-only, 409 conflict,
  5xx/timeouts unavailable (the only retryable kind).
* Kong sends ``Host`` = ``$upstream_host`` (Service host, or the Upstream's ``host_header`` / target
  name, ``:port`` appended unless default) and the same name as TLS SNI (§5).

Writes are compare-and-swap by hand (Kong has no conditional update): re-read, compare with what
cutover read before, PATCH only ``host``. Idempotent GETs are retried a few times; writes are not
(the activity's retry re-reads and compares first).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from models.kong import (
    DEFAULT_PORTS,
    DataPlaneSync,
    KongDnsSettings,
    KongInspection,
    KongMode,
    KongRequestShape,
    RouteInfo,
    ServiceSnapshot,
    TargetInfo,
    UpstreamInfo,
    host_header_for,
    kong_host,
)
from models.names import is_ip
from models.plan import KongDnsOverrides, KongSection
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
from providers.netguard import guarded_transport
from providers.resources import AsyncResource
from providers.secrets import Destination, EnvSecrets
from providers.tls import verify_context

log = logging.getLogger("cutover.providers.kong")

ADMIN_TOKEN_HEADER = "Kong-Admin-Token"
"""Kong Enterprise RBAC header by default (``rbac_auth_header``, kong.md §2.7); ``kong.token_header`` changes it."""
KONNECT_SUFFIX = ".api.konghq.com"
TLS_PROTOCOLS = frozenset({"https", "grpcs", "wss", "tls"})
LEGACY_DEFAULT_ORDER = ("LAST", "SRV", "A", "CNAME")
NEW_CLIENT_DEFAULT_FAMILY = ("A", "SRV")

Strategy = Literal["cname", "alias"]


# --- DNS settings ---------------------------------------------------------------------------------


def _int_or_none(value: Any) -> int | None:
    """A whole number of seconds, rounded *up*.

    Kong's TTL settings may be fractional (``dns_stale_ttl = 2.5``) and its clients use them as they
    are (kong/resty/dns/client.lua:252-255 adds ``staleTtl`` unrounded): truncating would shorten every
    wait built on them.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return math.ceil(number) if math.isfinite(number) else None


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("on", "true", "yes", "1")
    return bool(value)


def _order(value: Any, default: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip().upper() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        return tuple(str(part).upper() for part in value)
    return tuple(default)


def _version_tuple(version: str | None) -> tuple[int, int]:
    if not version:
        return (3, 9)
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return (3, 9)


def default_stale_ttl(version: str | None) -> int:
    """``dns_stale_ttl`` default: 3600 s from 3.6.0, 4 s before (kong.md §1.1)."""
    return 3600 if _version_tuple(version) >= (3, 6) else 4


def dns_settings_from_configuration(
    configuration: Mapping[str, Any], *, version: str | None, source: str
) -> KongDnsSettings:
    """Kong's effective DNS client settings from ``GET /`` ``configuration`` (kong.md §1.1, §2.1).

    Absent keys take Kong's defaults, except ``*_valid_ttl`` whose absence means "record TTL".
    """
    if _flag(configuration.get("new_dns_client", False)):
        error_ttl = _int_or_none(configuration.get("resolver_error_ttl"))
        stale = _int_or_none(configuration.get("resolver_stale_ttl"))
        return KongDnsSettings(
            client="new",
            valid_ttl=_int_or_none(configuration.get("resolver_valid_ttl")),
            stale_ttl=3600 if stale is None else stale,
            not_found_ttl=1 if error_ttl is None else error_ttl,
            error_ttl=1 if error_ttl is None else error_ttl,
            order=_order(configuration.get("resolver_family"), NEW_CLIENT_DEFAULT_FAMILY),
            version=version,
            source=source,
        )
    stale = _int_or_none(configuration.get("dns_stale_ttl"))
    not_found = _int_or_none(configuration.get("dns_not_found_ttl"))
    error = _int_or_none(configuration.get("dns_error_ttl"))
    return KongDnsSettings(
        client="legacy",
        valid_ttl=_int_or_none(configuration.get("dns_valid_ttl")),
        stale_ttl=default_stale_ttl(version) if stale is None else stale,
        not_found_ttl=30 if not_found is None else not_found,
        error_ttl=1 if error is None else error,
        order=_order(configuration.get("dns_order"), LEGACY_DEFAULT_ORDER),
        version=version,
        source=source,
    )


def default_dns_settings(source: str = "Kong 3.6+ defaults (nothing could be read)") -> KongDnsSettings:
    """Kong 3.6+ defaults: legacy client, record TTL, ``dns_stale_ttl`` 3600 s."""
    return dns_settings_from_configuration({}, version=None, source=source)


def apply_overrides(settings: KongDnsSettings, overrides: KongDnsOverrides) -> KongDnsSettings:
    """Let the plan's ``kong.dns_overrides`` win, field by field; the source says which were overridden."""
    given = overrides.model_dump(exclude_none=True)
    if not given:
        return settings
    client = settings.client
    if overrides.new_dns_client is not None:
        client = "new" if overrides.new_dns_client else "legacy"
    prefix = "resolver" if client == "new" else "dns"
    valid = getattr(overrides, f"{prefix}_valid_ttl")
    stale = getattr(overrides, f"{prefix}_stale_ttl")
    error = getattr(overrides, f"{prefix}_error_ttl")
    not_found = overrides.resolver_error_ttl if client == "new" else overrides.dns_not_found_ttl
    order = overrides.dns_order if client == "legacy" else None
    base = (
        settings
        if client == settings.client
        else dns_settings_from_configuration(
            {"new_dns_client": client == "new"}, version=settings.version, source=settings.source
        )
    )
    return KongDnsSettings(
        client=client,
        valid_ttl=base.valid_ttl if valid is None else valid,
        stale_ttl=base.stale_ttl if stale is None else stale,
        not_found_ttl=base.not_found_ttl if not_found is None else not_found,
        error_ttl=base.error_ttl if error is None else error,
        order=base.order if order is None else tuple(o.upper() for o in order),
        version=settings.version,
        source=f"{settings.source}; plan kong.dns_overrides ({', '.join(sorted(given))}) win",
    )


def merge_worst_case(readings: Sequence[KongDnsSettings]) -> KongDnsSettings:
    """One setting set that is at least as slow to forget an address as every node read."""
    if len(readings) == 1:
        return readings[0]
    client: Literal["legacy", "new"] = "legacy" if any(r.client == "legacy" for r in readings) else "new"
    valid = [r.valid_ttl for r in readings if r.valid_ttl is not None]
    first = next(r for r in readings if r.client == client)
    return KongDnsSettings(
        client=client,
        valid_ttl=max(valid) if valid else None,
        stale_ttl=max(r.stale_ttl for r in readings),
        not_found_ttl=max(r.not_found_ttl for r in readings),
        error_ttl=max(r.error_ttl for r in readings),
        order=first.order,
        version=first.version,
        source="worst case of " + "; ".join(r.source for r in readings),
    )


# --- Host and SNI ---------------------------------------------------------------------------------


def _split_target(target: str) -> tuple[str, int]:
    if target.startswith("["):
        host, _, port = target[1:].partition("]:")
        return host, int(port) if port.isdigit() else 8000
    host, sep, port = target.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return target, 8000


def compute_request_shape(
    service: Mapping[str, Any],
    routes: Sequence[RouteInfo],
    upstream: UpstreamInfo | None,
    *,
    strategy: Strategy,
    record: str,
) -> KongRequestShape:
    """The Host header and SNI Kong will send to B once the cutover is done (kong.md §5).

    cname strategy: Kong is untouched, so it keeps sending what it sends today (Service host, or
    the Upstream's ``host_header`` / the target named by the record). alias strategy: the Service
    host becomes the alias (the plan's record), so Kong sends the alias.
    """
    scheme = str(service.get("protocol") or "http")
    record_host = kong_host(record).lower()
    explanation: list[str] = []
    port = int(service.get("port") or DEFAULT_PORTS.get(scheme, 80))
    if strategy == "alias":
        hostname = record_host
        explanation.append(
            f"alias strategy: the Service host becomes the alias {record_host}, so Kong sends Host and SNI "
            f"{record_host} to A (right after the repoint) and to B (after the flip)."
        )
        if upstream is not None:
            explanation.append(
                f"The Service host is the Upstream {upstream.name} today; repointing it to the alias bypasses the "
                "Upstream's targets and health checks."
            )
    elif upstream is not None:
        chosen = next((t for t in upstream.targets if _split_target(t.target)[0].lower() == record_host), None)
        chosen = chosen or next((t for t in upstream.targets if t.weight > 0), None)
        if chosen is not None:
            target_host, port = _split_target(chosen.target)
        else:
            target_host = record_host
        if upstream.host_header:
            hostname = upstream.host_header
            explanation.append(
                f"The Service host names the Upstream {upstream.name}, whose host_header {upstream.host_header} "
                "is sent as Host and SNI for every target."
            )
        else:
            hostname = target_host
            explanation.append(
                f"The Service host names the Upstream {upstream.name} without host_header, so Kong sends the "
                f"target's name {target_host} as Host and SNI."
            )
    else:
        hostname = str(service.get("host") or "")
        explanation.append(
            f"cname strategy: Kong is untouched and keeps sending Host and SNI {hostname} (the Service host); "
            f"after the flip that name leads to B, so B must accept it."
        )
    host_header = host_header_for(hostname, port, scheme)
    if host_header != hostname:
        explanation.append(f"Port {port} is not the default for {scheme}, so Kong appends it: Host {host_header}.")
    sni = hostname.rsplit(":", 1)[0] if scheme in TLS_PROTOCOLS and not is_ip(hostname) else None
    tls_verify = service.get("tls_verify")
    if scheme in TLS_PROTOCOLS:
        if tls_verify is True:
            explanation.append(f"tls_verify=true: Kong checks B's certificate against {sni}.")
        elif tls_verify is False:
            explanation.append("tls_verify=false: Kong does not check B's certificate.")
        else:
            explanation.append(
                "tls_verify is unset: Kong defers to nginx's proxy_ssl_verify (off unless the deployment sets "
                f"nginx_proxy_proxy_ssl_verify); readiness still requires a certificate valid for {sni}."
            )
    preserved: list[str] = []
    for route in routes:
        if route.preserve_host:
            if route.hosts:
                preserved.extend(route.hosts)
                explanation.append(
                    f"Route {route.name or route.id} has preserve_host=true: requests for "
                    f"{', '.join(route.hosts)} reach B with the client's Host and SNI."
                )
            else:
                preserved.append("*")
                explanation.append(
                    f"Route {route.name or route.id} has preserve_host=true and no hosts: any client Host reaches "
                    "B unchanged."
                )
    return KongRequestShape(
        scheme=scheme,
        host_header=host_header,
        sni=sni,
        port=port,
        path=service.get("path"),
        tls_verify=tls_verify if isinstance(tls_verify, bool) else None,
        preserve_host_hosts=tuple(dict.fromkeys(preserved)),
        explanation=tuple(explanation),
    )


# --- the client -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KongNode:
    """What ``GET /`` says about the node behind an Admin API URL."""

    mode: KongMode
    writable: bool
    version: str | None
    configuration: dict[str, Any]
    explanation: str


def node_mode(configuration: Mapping[str, Any]) -> tuple[KongMode, bool, str]:
    """Deployment mode from ``configuration.role`` and ``database`` (kong.md §2.1, §2.8)."""
    role = configuration.get("role") or "traditional"
    database = configuration.get("database")
    if role == "control_plane":
        return "hybrid-control-plane", True, "hybrid Control Plane: writable; data planes receive its config"
    if role == "data_plane":
        return (
            "hybrid-data-plane",
            False,
            "hybrid data plane: read-only Admin API; changes must go to the Control Plane's Admin API",
        )
    if database == "off":
        return (
            "db-less",
            False,
            "DB-less node: read-only Admin API (writes answer 405); change its declarative config, or the Control "
            "Plane if it is a data plane",
        )
    return "traditional", True, f"traditional node with database {database or 'unknown'}: writable"


def snapshot_of(entity: Mapping[str, Any]) -> ServiceSnapshot:
    """A ServiceSnapshot of a Service entity as the Admin API returned it."""
    return ServiceSnapshot(
        id=str(entity["id"]),
        name=entity.get("name"),
        host=str(entity.get("host") or ""),
        port=int(entity.get("port") or 0),
        protocol=str(entity.get("protocol") or "http"),
        path=entity.get("path"),
        updated_at=_int_or_none(entity.get("updated_at")),
        entity=dict(entity),
    )


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """Keys whose values differ between two entity versions (absent == null, as Kong treats them)."""
    skip = set(ignore)
    return sorted(k for k in set(before) | set(after) if k not in skip and before.get(k) != after.get(k))


def describe_changes(before: Mapping[str, Any], after: Mapping[str, Any], fields: Sequence[str]) -> str:
    """``host: 'a' -> 'b', port: 443 -> 8443`` for error messages."""
    return ", ".join(f"{key}: {before.get(key)!r} -> {after.get(key)!r}" for key in fields)


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


# --- the operations the activities run --------------------------------------------------------------


def health_thresholds(healthchecks: Any) -> dict[str, dict[str, int]]:
    """The Upstream's unhealthy thresholds that are on (> 0), passive and active.

    Kong's Upstream schema: ``healthchecks.passive.unhealthy.{http_failures,tcp_failures,timeouts}``
    (0 = off, Kong's default) count failures of proxied requests; ``healthchecks.active.unhealthy``
    the same for probes, only when its ``interval`` is above 0. An address marked unhealthy gets no
    traffic; when all are, the balancer answers 503 "failure to get a peer from the ring-balancer"
    (kong/runloop/balancer/init.lua:350-356).
    """
    found: dict[str, dict[str, int]] = {"passive_unhealthy": {}, "active_unhealthy": {}}
    if not isinstance(healthchecks, Mapping):
        return found
    for kind in ("passive", "active"):
        section = healthchecks.get(kind)
        unhealthy = section.get("unhealthy") if isinstance(section, Mapping) else None
        if not isinstance(unhealthy, Mapping):
            continue
        if kind == "active" and not (_int_or_none(unhealthy.get("interval")) or 0) > 0:
            continue
        for key in ("http_failures", "tcp_failures", "timeouts"):
            value = _int_or_none(unhealthy.get(key))
            if value:
                found[f"{kind}_unhealthy"][key] = value
    return found


def route_info(entity: Mapping[str, Any]) -> RouteInfo:
    """The Host-relevant parts of a Route entity."""
    return RouteInfo(
        id=str(entity.get("id")),
        name=entity.get("name"),
        hosts=tuple(entity.get("hosts") or ()),
        paths=tuple(entity.get("paths") or ()),
        preserve_host=bool(entity.get("preserve_host")),
    )


async def inspect_service(client: KongAdminClient, *, strategy: Strategy, record: str, target: str) -> KongInspection:
    """Read everything a cutover needs from Kong, and say what looks wrong, in plain words."""
    section = client.section
    warnings: list[str] = []
    node = await client.node()
    service = await client.get_service()
    routes = tuple(route_info(r) for r in await client.list_routes(str(service["id"])))
    upstream_entity = await client.find_upstream(str(service.get("host") or ""))
    upstream: UpstreamInfo | None = None
    if upstream_entity is not None:
        targets = await client.list_targets(str(upstream_entity["id"]))
        upstream = UpstreamInfo(
            id=str(upstream_entity["id"]),
            name=str(upstream_entity.get("name")),
            host_header=upstream_entity.get("host_header"),
            targets=tuple(TargetInfo(target=str(t["target"]), weight=int(t.get("weight", 100))) for t in targets),
            **health_thresholds(upstream_entity.get("healthchecks")),
        )

    # DNS settings: plan overrides > data planes' own GET / > this node's GET / > defaults.
    config_hashes: dict[str, str] = {}
    dp_settings: list[KongDnsSettings] = []
    for url in section.status_urls:
        reading = await client.read_data_plane(url)
        warnings.extend(reading.problems)
        if reading.config_hash:
            config_hashes[url] = str(reading.config_hash)
        if reading.settings is not None:
            dp_settings.append(reading.settings)
        elif reading.client is not None:
            warnings.append(
                f"data plane {url} exposes no GET / (Status API only): its DNS client is {reading.client} (from "
                "/status/dns), but its TTL settings can't be read; give them in kong.dns_overrides"
            )
    if dp_settings:
        settings = merge_worst_case(dp_settings)
    elif node.mode in ("traditional", "db-less", "hybrid-data-plane") and node.configuration:
        settings = dns_settings_from_configuration(
            node.configuration, version=node.version, source=f"GET / on {client.admin_url} ({node.mode})"
        )
    elif node.mode == "hybrid-control-plane" and node.configuration:
        settings = dns_settings_from_configuration(
            node.configuration, version=node.version, source=f"GET / on the Control Plane {client.admin_url}"
        )
        if not section.dns_overrides.model_dump(exclude_none=True):
            warnings.append(
                "Kong DNS settings were read from the Control Plane; data planes may run different dns_* / resolver_* "
                "settings (kong.md §2.1). List the data planes in kong.status_urls or set kong.dns_overrides."
            )
    else:
        settings = default_dns_settings()
        warnings.append(
            "Kong's DNS settings could not be read; assuming Kong 3.6+ defaults (legacy client, record TTL, "
            "dns_stale_ttl 3600 s). Set kong.dns_overrides to the data planes' real values."
        )
    settings = apply_overrides(settings, section.dns_overrides)

    if not node.writable:
        warnings.append(
            f"{client.admin_url} is a {node.mode} node: its Admin API is read-only, so cutover cannot repoint the "
            "Service there; changes must go to the Control Plane."
        )
    protocol = str(service.get("protocol") or "http")
    if protocol not in DEFAULT_PORTS:
        warnings.append(
            f"Service protocol {protocol}: there is no HTTP Host header; readiness can only check TLS and reachability."
        )
    record_host = kong_host(record).lower()
    service_host = str(service.get("host") or "").lower()
    target_host = kong_host(target).lower()
    if service_host == target_host:
        warnings.append(
            f"The Service host is already the target {target_host}: Kong already sends its traffic to B's name."
        )
    if strategy == "cname":
        if upstream is not None:
            names = {_split_target(t.target)[0].lower() for t in upstream.targets}
            if record_host not in names:
                warnings.append(
                    f"The Service's Upstream {upstream.name} has targets {', '.join(sorted(names)) or '(none)'}, none "
                    f"of which is the plan's record {record_host}: flipping {record_host} would not move Kong's "
                    "traffic."
                )
        elif service_host != record_host:
            warnings.append(
                f"The Service host is {service_host}, not the plan's record {record_host}: flipping {record_host} "
                "would not move Kong's traffic."
            )
    else:
        if service_host == record_host:
            warnings.append(f"The Service host is already the alias {record_host}: no repoint is needed.")
        warnings.append(
            f"alias strategy: after the repoint Kong sends Host and SNI {record_host} to A, and after the flip to B; "
            "both must accept that name (and present a certificate for it if tls_verify is on)."
        )
        if upstream is not None:
            warnings.append(
                f"The Service host is the Upstream {upstream.name}: the alias strategy would bypass its targets."
            )
    shape = compute_request_shape(service, routes, upstream, strategy=strategy, record=record)
    return KongInspection(
        mode=node.mode,
        writable=node.writable,
        version=node.version,
        service=snapshot_of(service),
        routes=routes,
        upstream=upstream,
        dns=settings,
        shape_after=shape,
        config_hashes=config_hashes,
        warnings=tuple(dict.fromkeys(warnings)),
    )


async def await_data_planes(
    client: KongAdminClient,
    previous_hashes: Mapping[str, str],
    *,
    timeout: float,
    on_progress: Callable[[str], object] | None = None,
    first_interval: float = 0.5,
    max_interval: float = 5.0,
) -> DataPlaneSync:
    """Poll every ``kong.status_urls`` data plane until each runs a configuration other than before.

    A data plane is on the new configuration when its ``/status`` ``configuration_hash`` differs from
    ``previous_hashes[url]`` (read before the Service change), or, when it had none then, as soon as
    it answers one. Polls at a growing interval (``first_interval`` doubling up to ``max_interval``),
    re-reading only the lagging ones, and reports each poll to ``on_progress``
    ("1/2 data planes on the new configuration; ...").

    Returns:
        ``in_sync=False`` with the lagging data planes and why after ``timeout`` seconds, instead of
        raising: whether to go on is the workflow's decision.
    """
    urls = list(dict.fromkeys(client.section.status_urls))
    if not urls:
        return DataPlaneSync(in_sync=True, hashes={})
    deadline = time.monotonic() + timeout
    interval = first_interval
    hashes: dict[str, str] = {}
    lagging: dict[str, str] = {url: f"{url}: not read yet" for url in urls}
    while True:
        pending = [url for url in urls if url in lagging]
        readings = await asyncio.gather(*(client.read_data_plane(url, settings=False) for url in pending))
        for url, reading in zip(pending, readings, strict=True):
            now = str(reading.config_hash) if reading.config_hash else None
            before = previous_hashes.get(url)
            if now is not None:
                hashes[url] = now
            if now is not None and now != before:
                del lagging[url]
            elif now is not None:
                lagging[url] = f"{url}: still on configuration {before}"
            else:
                lagging[url] = f"{url}: {'; '.join(reading.problems) or 'its /status has no configuration_hash'}"
        waiting = [lagging[url] for url in urls if url in lagging]
        if on_progress is not None:
            message = f"{len(urls) - len(waiting)}/{len(urls)} data planes on the new configuration"
            on_progress(message + (f"; waiting for {waiting[0]}" if waiting else ""))
        if not waiting:
            return DataPlaneSync(in_sync=True, hashes=hashes)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            log.warning("await_data_planes: after %gs, %d data plane(s) lag: %s", timeout, len(waiting), waiting)
            return DataPlaneSync(in_sync=False, hashes=hashes, lagging=tuple(waiting))
        await asyncio.sleep(min(interval, remaining))
        interval = min(interval * 2, max_interval)


async def _require_writable(client: KongAdminClient, action: str) -> None:
    node = await client.node()
    if not node.writable:
        raise GatewayReadOnly(
            f"cannot {action}: {client.admin_url} is a {node.mode} node ({node.explanation}). Set kong.admin_url to "
            "the Control Plane's Admin API."
        )


async def repoint_service(client: KongAdminClient, expected: ServiceSnapshot, new_host: str) -> ServiceSnapshot:
    """Set the Service host to ``new_host`` if the Service is still exactly ``expected``.

    Idempotent: when the host is already ``new_host``, this is cutover's own earlier write (an attempt
    whose answer was lost) and the current state is returned, applied, so its undo stays registered;
    another party's edit of *other* fields meanwhile is logged, not mistaken for a conflict. Refuses
    (GatewayConflict, nothing written) when the host is not ``new_host`` and anything changed since
    it was read.
    """
    new_host = kong_host(new_host)
    current = await client.get_service(expected.id)
    if str(current.get("host")) == new_host:
        others = changed_fields(expected.entity, current, ignore={"host", "updated_at"})
        if others:
            log.warning(
                "repoint_service: Service %s already has host %s (cutover's earlier attempt); other fields were "
                "changed outside cutover meanwhile (%s)",
                expected.id,
                new_host,
                describe_changes(expected.entity, current, others),
            )
        return snapshot_of(current)
    changed = changed_fields(expected.entity, current)
    if changed:
        raise GatewayConflict(
            f"Kong Service {expected.name or expected.id} changed since cutover read it "
            f"({describe_changes(expected.entity, current, changed)}); nothing was written. Check who changed it, "
            "then start the cutover again so it reads the current state."
        )
    await _require_writable(client, f"repoint Service {expected.name or expected.id}")
    updated = await client.patch_service(expected.id, {"host": new_host})
    others = changed_fields(expected.entity, updated, ignore={"host", "updated_at"})
    if others:
        log.warning(
            "repoint_service: Service %s also changed concurrently (%s); the PATCH touched only host",
            expected.id,
            describe_changes(expected.entity, updated, others),
        )
    return snapshot_of(updated)


async def restore_service(client: KongAdminClient, original: ServiceSnapshot, repointed_host: str) -> ServiceSnapshot:
    """Put the Service's host back to ``original`` if it is still as cutover left it.

    No-op when it already equals ``original``. Refuses (GatewayConflict) when anyone else changed it:
    cutover never overwrites someone else's change blindly.
    """
    repointed_host = kong_host(repointed_host)
    current = await client.get_service(original.id)
    if not changed_fields(original.entity, current, ignore={"updated_at"}):
        return snapshot_of(current)
    others = changed_fields(original.entity, current, ignore={"host", "updated_at"})
    if str(current.get("host")) != repointed_host or others:
        changed = changed_fields(original.entity, current, ignore={"updated_at"})
        raise GatewayConflict(
            f"Kong Service {original.name or original.id} is not as cutover left it "
            f"(expected host {repointed_host} and otherwise the original; found "
            f"{describe_changes(original.entity, current, changed)}); nothing was written. Restore it by hand: "
            f"PATCH /services/{original.name or original.id} with host={original.host} once you know who changed it."
        )
    await _require_writable(client, f"restore Service {original.name or original.id}")
    restored = await client.patch_service(original.id, {"host": original.host})
    return snapshot_of(restored)
