"""The cutover plan: what a user submits (YAML or JSON), validated whole before anything changes.

Every section is a frozen pydantic model with unknown keys rejected. Field-level rules live on the
fields; rules that relate fields to each other (record inside the zone, TTL order, no literal
secrets, ...) are collected by :meth:`CutoverPlan._collect_every_problem`, so that one
``ValidationError`` lists every problem of a plan at once. ``docs/plan.md`` documents each field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from models.durations import Duration, parse_duration
from models.names import PLAN_NAME, absolute_name, has_control, is_subdomain, looks_like_secret
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
    PlainText,
    PromqlUrl,
    Ttl,
)
from models.promql import promql_problems


class _Section(BaseModel):
    # strict: no coercion, so `cutover_ttl: true` is an error instead of a TTL of 1, and "30" is not 30.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- dns -----------------------------------------------------------------------------------------

TsigAlgorithm = Literal["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5"]


class Rfc2136Provider(_Section):
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


class CloudDnsProvider(_Section):
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


class DnsSection(_Section):
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


# --- kong ----------------------------------------------------------------------------------------


class KongDnsOverrides(_Section):
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


class KongSection(_Section):
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


# --- readiness -----------------------------------------------------------------------------------


class ReadinessSection(_Section):
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


# --- monitor -------------------------------------------------------------------------------------


class KongFileLogSource(_Section):
    """JSON lines written by Kong's file-log plugin."""

    kind: Literal["kong-file-log"]
    path: FilePath


class CloudLoggingSource(_Section):
    """Kong data-plane logs in Google Cloud Logging (GKE stdout)."""

    kind: Literal["cloud-logging"]
    project: GcpProjectId
    filter: str = ""
    """Extra Logging query ANDed with the time bounds and service scope cutover adds."""
    payload: Literal["auto", "json", "text"] = "auto"
    credentials_env: EnvVarName | None = None
    api_endpoint: HttpUrl | None = None


class PrometheusSource(_Section):
    """Kong's Prometheus plugin endpoint (``kong_http_requests_total``)."""

    kind: Literal["prometheus"]
    url: HttpUrl
    metric: str = Field(default="kong_http_requests_total", pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    ca_bundle: FilePath | None = None


class PromqlSource(_Section):
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


class MonitorSection(_Section):
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


# --- approvals, decommission, notify -------------------------------------------------------------


class ApprovalsSection(_Section):
    """Which human gates the run waits at, and for how long."""

    flip: bool = True
    decommission: bool = True
    timeout: Duration = timedelta(hours=24)
    on_timeout: Literal["abort", "wait"] = "abort"


class _DecommissionBase(_Section):
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


class NotifySection(_Section):
    """Where gate, rollback and completion notices go (Slack-compatible JSON with ``text``)."""

    webhook_env: EnvVarName


# --- the plan ------------------------------------------------------------------------------------

WORKFLOW_ID_PREFIX = "cutover-"
_LATER_FIELDS = (("kong", "token_header", "Kong-Admin-Token"), ("kong", "dns_caches_cleared", "no"))


def _sha256_of(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class CutoverPlan(_Section):
    """One cutover of one record, as submitted by a user."""

    name: str
    strategy: Literal["cname", "alias"]
    dns: DnsSection
    kong: KongSection
    readiness: ReadinessSection
    monitor: MonitorSection
    approvals: ApprovalsSection = ApprovalsSection()
    decommission: Decommission = NoDecommission()
    notify: NotifySection | None = None
    ticket: PlainText | None = None
    """Free-form change ticket, shown in the memo and the UI."""
    dry_run: bool = False
    """Read the world and report the changes without making them. Not part of the digest."""

    @property
    def workflow_id(self) -> str:
        """The id the real run uses: one cutover per plan name at a time."""
        return WORKFLOW_ID_PREFIX + self.name

    @property
    def monitor_service(self) -> str:
        """The Kong service name traffic is scoped to."""
        return self.monitor.service or self.kong.service

    def digest(self) -> str:
        """Stable sha256 of the canonical JSON of the plan's non-default values, without ``dry_run``.

        The same plan as YAML or JSON, in any key order, with defaults spelled out or not, has the
        same digest: approvals quote it to prove they approve exactly this plan. Values equal to their
        default are left out, so a newer cutover that adds a field with a default computes the same
        digest for the same plan, and an open run's approvals keep matching after a worker upgrade.
        """
        return _sha256_of(self.model_dump(mode="json", exclude={"dry_run"}, exclude_defaults=True))

    def legacy_digest(self) -> str:
        """The digest of runs started before the stable digest (every field but those added since): replay only.

        Fields added later count only when set, so an open run started by an older worker keeps its
        digest (an approval quoting it must still match after a worker upgrade).
        """
        data = self.model_dump(mode="json", exclude={"dry_run"})
        for section, key, default in _LATER_FIELDS:
            if data.get(section, {}).get(key) == default:
                del data[section][key]
        return _sha256_of(data)

    @model_validator(mode="wrap")
    @classmethod
    def _collect_every_problem(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> CutoverPlan:
        """Run field validation and the cross-field rules together, and raise one error with all."""
        problems: list[InitErrorDetails] = []
        plan: CutoverPlan | None = None
        try:
            plan = handler(data)
        except ValidationError as exc:
            for err in exc.errors():
                message, value = _redacted(err["msg"], err.get("input"))
                problems.append(
                    InitErrorDetails(
                        type=PydanticCustomError(err["type"], "{detail}", {"detail": message}),
                        loc=err["loc"],
                        input=value,
                    )
                )
        if isinstance(data, dict):
            rules = _cross_field_problems(data)
            # A value that looks like a secret gets one error, the one saying so: its field's own
            # complaint (not a DNS name, not a variable name...) would only blur it.
            secrets = {_untagged(loc) for loc, message, _ in rules if message.startswith(_SECRET_MESSAGE)}
            problems = [problem for problem in problems if _untagged(problem["loc"]) not in secrets]
            for loc, message, value in rules:
                problems.append(
                    InitErrorDetails(
                        type=PydanticCustomError("plan_rule", "{detail}", {"detail": message}),
                        loc=loc,
                        input=value,
                    )
                )
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        assert plan is not None
        return plan


_SECRET_MESSAGE = "this value "
_KIND_TAGS = frozenset(
    {"rfc2136", "clouddns", "kong-file-log", "cloud-logging", "prometheus", "none", "gcp-project", "webhook"}
)


def _untagged(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """A location without the discriminator tags pydantic inserts (``dns.provider.rfc2136.server``)."""
    return tuple(part for part in loc if part not in _KIND_TAGS)


def describe_problems(error: ValidationError) -> str:
    """Every problem of a plan on one line each, with the field path, so all can be fixed in one go.

    A path may hold a key written in the plan (a header name): control characters in it are shown
    escaped, so a hostile key can't forge lines in a terminal or a log.
    """
    lines = [f"{error.error_count()} problem(s):"]
    for item in error.errors():
        where = ".".join(_shown_part(part) for part in item["loc"]) or "(plan)"
        lines.append(f"  - {where}: {item['msg']}")
    return "\n".join(lines)


def _shown_part(part: str | int) -> str:
    text = str(part)
    return text.encode("unicode_escape").decode("ascii") if has_control(text) or not text.isprintable() else text


# --- cross-field rules, on the raw data so they run even when other fields are broken -------------

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


def _redacted(message: str, value: Any) -> tuple[str, Any]:
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


def _cross_field_problems(data: dict[str, Any]) -> list[Problem]:
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
                    f"this value {reason}: plans must name an environment variable or secret reference "
                    "(e.g. tsig_secret_env: CUTOVER_TSIG_SECRET), never contain the secret",
                    "<redacted>",
                )
            )
    return problems
