"""The sections of a cutover plan: frozen pydantic models with unknown keys rejected, one per concern.

``docs/plan.md`` documents each field; :class:`models.plan.CutoverPlan` puts them together.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.durations import Duration
from models.plan_fields import (
    DnsName,
    EnvVarName,
    ExpectedStatus,
    FilePath,
    GcpProjectId,
    HeaderName,
    HostName,
    HostPort,
    HttpUrl,
    KeyName,
    KongName,
    LabelMatchers,
    PromqlUrl,
    Ttl,
)


class Section(BaseModel):
    """What every plan section shares: strict types, no unknown keys, immutable."""

    # strict: no coercion, so `cutover_ttl: true` is an error instead of a TTL of 1, and "30" is not 30.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


TsigAlgorithm = Literal["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5"]


class Rfc2136Provider(Section):
    """An authoritative server that takes RFC 2136 UPDATEs (BIND, PowerDNS, Knot), signed with TSIG."""

    kind: Literal["rfc2136"]
    server: HostPort
    """Primary that takes UPDATEs, ``host:port``."""
    zone: DnsName
    tsig_key_name: KeyName | None = None
    tsig_algorithm: TsigAlgorithm = "hmac-sha256"
    tsig_secret_env: EnvVarName | None = None
    """Environment variable holding the base64 TSIG secret; read by the worker, never by the plan."""
    timeout: Duration = timedelta(seconds=5)
    """Per-message timeout for UPDATEs and queries."""


class CloudDnsProvider(Section):
    """A Google Cloud DNS managed zone, changed through the Cloud DNS v1 REST API."""

    kind: Literal["clouddns"]
    project: GcpProjectId
    managed_zone: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")
    zone: DnsName
    """The zone's DNS name (``dnsName`` of the managed zone); checked against the API when verifying."""
    credentials_env: EnvVarName | None = None
    """Optional variable naming a service-account key file; default: Application Default Credentials."""
    api_endpoint: HttpUrl = "https://dns.googleapis.com"
    poll_timeout: Duration = timedelta(minutes=2)
    """How long to poll a change from ``pending`` to ``done``."""


DnsProvider = Annotated[Rfc2136Provider | CloudDnsProvider, Field(discriminator="kind")]


class DnsSection(Section):
    """Which record moves, where to, and with which TTLs."""

    provider: DnsProvider
    nameservers: list[HostPort] | None = None
    """Authoritative servers to prove changes on; default: the zone's NS set on port 53."""
    record: HostName
    target: HostName
    cutover_ttl: Ttl = 30
    final_ttl: Ttl = 300
    propagation_timeout: Duration = timedelta(minutes=2)
    """How long every authoritative server may take to answer a change."""
    wait_margin: Duration = timedelta(seconds=5)
    """Added to every computed cache wait (clock skew, resolver latency)."""
    retry_deadline: Duration = timedelta(minutes=2)
    """How long a DNS change may take, retries included, before the run rolls back; undos get 5x as long."""


class KongDnsOverrides(Section):
    """Kong DNS settings to assume when they can't be read (hybrid data planes, locked-down nodes)."""

    dns_valid_ttl: int | None = Field(default=None, ge=0)
    dns_stale_ttl: int | None = Field(default=None, ge=0)
    dns_not_found_ttl: int | None = Field(default=None, ge=0)
    dns_error_ttl: int | None = Field(default=None, ge=0)
    dns_order: list[str] | None = None
    new_dns_client: bool | None = None
    resolver_valid_ttl: int | None = Field(default=None, ge=0)
    resolver_stale_ttl: int | None = Field(default=None, ge=0)
    resolver_error_ttl: int | None = Field(default=None, ge=0)


class KongSection(Section):
    """The Kong Service in front of A, and how to reach Kong's Admin API."""

    admin_url: HttpUrl
    """Admin API of traditional Kong, or of the Control Plane in hybrid mode."""
    service: KongName
    """Name or id of the Kong Service."""
    token_env: EnvVarName | None = None
    token_header: HeaderName = "Kong-Admin-Token"
    """Header the RBAC token is sent in: Kong Enterprise's ``rbac_auth_header`` (default ``Kong-Admin-Token``)."""
    workspace: KongName | None = None
    status_urls: list[HttpUrl] = []
    dns_overrides: KongDnsOverrides = KongDnsOverrides()
    ca_bundle: FilePath | None = None
    """CA bundle for an https Admin API; default: system roots."""
    timeout: Duration = timedelta(seconds=10)
    dns_caches_cleared: Literal["no", "restart", "reload"] = "no"
    """What the operator does to every data plane after the flip: ``restart`` it, or ``reload`` it
    (``kong reload``, legacy DNS client only: the new client's cache survives a reload). Confirmed in
    the decommission approval, it lets A go once cutover TTL + query has passed, instead of waiting
    out ``dns_stale_ttl`` for workers idle since before the flip."""


class ReadinessSection(Section):
    """How to prove B answers what Kong will send it, before any change."""

    url: HttpUrl
    """B's health URL, addressed directly (not through Kong)."""
    expect_status: list[ExpectedStatus] = Field(default=[200], min_length=1, max_length=20)
    successes: int = Field(default=3, ge=1, le=1000)
    interval: Duration = timedelta(seconds=5)
    timeout: Duration = timedelta(minutes=5)
    ca_bundle: FilePath | None = None
    parity_url: HttpUrl | None = None
    """Optional: A's equivalent URL; the same request must get the same status class from A and B."""
    request_timeout: Duration = timedelta(seconds=5)


class KongFileLogSource(Section):
    """JSON lines written by Kong's file-log plugin."""

    kind: Literal["kong-file-log"]
    path: FilePath


class CloudLoggingSource(Section):
    """Kong data-plane logs in Google Cloud Logging (GKE stdout)."""

    kind: Literal["cloud-logging"]
    project: GcpProjectId
    filter: str = ""
    """Extra Logging query ANDed with the time bounds and service scope cutover adds."""
    payload: Literal["auto", "json", "text"] = "auto"
    credentials_env: EnvVarName | None = None
    api_endpoint: HttpUrl | None = None


class PrometheusSource(Section):
    """Kong's Prometheus plugin endpoint (``kong_http_requests_total``)."""

    kind: Literal["prometheus"]
    url: HttpUrl
    metric: str = Field(default="kong_http_requests_total", pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    ca_bundle: FilePath | None = None


class PromqlSource(Section):
    """A Prometheus HTTP API (Prometheus, Thanos, Mimir, Google Managed Prometheus) holding Kong's counters.

    Kong's ``kong_http_requests_total`` is summed across every data plane Prometheus scrapes, with
    history, so the baseline is a past window instead of two scrapes.
    """

    kind: Literal["promql"]
    url: PromqlUrl
    """Base URL of the API: ``http://prometheus.monitoring:9090``, or for Google Managed Prometheus
    ``https://monitoring.googleapis.com/v1/projects/PROJECT/location/global/prometheus``."""
    metric: str = Field(default="kong_http_requests_total", pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    selector: LabelMatchers = ""
    """Extra label matchers ANDed with the service's, e.g. ``namespace="kong"`` (one Kong of several)."""
    service_label: str = Field(default="service", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    upstream: str | None = Field(default=None, min_length=1, max_length=256)
    """Kong Upstream the Service points at, to report ``kong_upstream_target_health`` (optional)."""
    lag: Duration = timedelta(minutes=1)
    """How far behind now the API is read: at least the scrape interval plus ingestion delay."""
    auth: Literal["none", "bearer", "google"] = "none"
    """``google``: Google credentials (Managed Prometheus); ``bearer``: a token from ``token_env``."""
    token_env: EnvVarName | None = None
    credentials_env: EnvVarName | None = None
    """With ``auth: google``: variable naming a service-account key file; default: Application Default Credentials."""
    ca_bundle: str | None = None
    timeout: Duration = timedelta(seconds=10)


TelemetrySource = Annotated[
    KongFileLogSource | CloudLoggingSource | PrometheusSource | PromqlSource, Field(discriminator="kind")
]


class MonitorSection(Section):
    """How traffic through Kong is judged after the flip."""

    source: TelemetrySource
    service: KongName | None = None
    """Kong service name in the logs; default: ``kong.service``."""
    window: Duration = timedelta(minutes=10)
    poll_interval: Duration = timedelta(seconds=15)
    max_error_ratio: float = Field(default=0.01, ge=0, le=1)
    min_requests: int = Field(default=50, ge=0)
    baseline: bool = True
    on_inconclusive: Literal["ask", "wait", "rollback"] = "ask"
    """``ask``: a human decides at the decommission gate; ``wait``: watch another window; ``rollback``."""
    max_windows: int = Field(default=3, ge=1, le=100)
    """With ``on_inconclusive: wait``, how many windows to watch before asking a human."""


class ApprovalsSection(Section):
    """Which human gates the run waits at, and for how long."""

    flip: bool = True
    decommission: bool = True
    timeout: Duration = timedelta(hours=24)
    on_timeout: Literal["abort", "wait"] = "abort"


class _DecommissionBase(Section):
    require_drained: bool = True
    quiet_period: Duration = timedelta(minutes=10)
    """A must have received no request for this long before it is deleted."""
    drain_timeout: Duration = timedelta(hours=1)
    """How long to wait for the quiet period to be proven before giving up."""


class NoDecommission(_DecommissionBase):
    """Leave A in place; the status says so."""

    kind: Literal["none"] = "none"


class GcpProjectDecommission(_DecommissionBase):
    """Delete A's Google Cloud project (recoverable for 30 days)."""

    kind: Literal["gcp-project"]
    project_id: GcpProjectId
    protected_projects: list[GcpProjectId] = []
    """Projects that must never be deleted (B's project). The Cloud DNS project is always protected."""
    credentials_env: EnvVarName | None = None
    api_endpoint: HttpUrl = "https://cloudresourcemanager.googleapis.com"


class WebhookDecommission(_DecommissionBase):
    """Ask the user's own decommission system to delete A."""

    kind: Literal["webhook"]
    url: HttpUrl
    method: Literal["POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers_env: dict[HeaderName, EnvVarName] = Field(default={}, max_length=20)
    """Header name -> environment variable holding its value."""
    signature_secret_env: EnvVarName | None = None
    """Variable holding an HMAC key: the body is signed (``X-Cutover-Signature``), the key is never sent."""
    expect_status: list[ExpectedStatus] = Field(default=[200, 201, 202, 204], min_length=1, max_length=20)
    timeout: Duration = timedelta(seconds=30)
    ca_bundle: FilePath | None = None


Decommission = Annotated[NoDecommission | GcpProjectDecommission | WebhookDecommission, Field(discriminator="kind")]


class NotifySection(Section):
    """Where gate, rollback and completion notices go (Slack-compatible JSON with ``text``)."""

    webhook_env: EnvVarName
