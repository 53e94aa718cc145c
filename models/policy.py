"""The worker policy: what the operator who runs the worker allows, whatever a plan asks.

A plan comes from whoever can start a run; the policy comes from whoever runs the worker, and wins.
It says where each kind of call may go (allow-lists per destination), which environment variable
may be sent where (secrets bound to destinations), whether loopback and link-local addresses may be
reached at all, which Google API endpoints stand for Google, which projects may be deleted, which
decommission kinds are destructive (both approval gates and the drain proof forced), and who may
approve (:class:`models.approval_rules.ApprovalRules`). Nothing in it is secret.

Allow-list entries:

* URL destinations (``kong_admin``, ``kong_status``, ``readiness``, ``prometheus``, ``webhook``,
  ``notify``): ``scheme://host[:port][/path]``. The port defaults to the scheme's (``:*`` for any);
  ``*.example.com`` matches any name below example.com; a path is a prefix ending at a ``/``.
* server destinations (``dns_servers``, ``nameservers``): ``host[:port]`` (port 53 by default, ``:*``
  any), ``[v6]:port``, ``*.example.com``, or an IP network ``10.0.0.0/24`` (any port).

The rules that use it are in :mod:`models.policy_rules`; the file loader in providers/policy_file.py.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from models.approval_rules import ApprovalRules
from models.names import ENV_VAR, absolute_name, has_blank_or_control, http_url_problem, split_host_port

GoogleApi = Literal["dns", "logging", "resource_manager", "monitoring"]
OFFICIAL_GOOGLE_ENDPOINTS: dict[str, str] = {
    "dns": "https://dns.googleapis.com",
    "logging": "https://logging.googleapis.com",
    "resource_manager": "https://cloudresourcemanager.googleapis.com",
    "monitoring": "https://monitoring.googleapis.com",
}
"""Where Google credentials go when the policy names no other endpoint for an API."""

UrlKind = Literal["kong_admin", "kong_status", "readiness", "prometheus", "webhook", "notify"]
ServerKind = Literal["dns_server", "nameserver"]
DestinationKind = Literal[UrlKind, ServerKind, "google"]
DestructiveKind = Literal["gcp-project", "webhook"]
DESTRUCTIVE_DEFAULT: tuple[DestructiveKind, ...] = ("gcp-project",)
"""Decommission kinds treated as destructive without a policy (a policy may add ``webhook``)."""


# --- allow-list entries ----------------------------------------------------------------------------


def _host_pattern_ok(host: str) -> bool:
    if host.startswith("*."):
        host = host[2:]
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    try:
        absolute_name(host)
    except ValueError:
        return False
    return True


def _url_entry(value: str) -> str:
    probe = value.replace("://*.", "://wildcard.").replace(":*", "")
    problem = http_url_problem(probe)
    if problem or "?" in value:
        raise ValueError("is not a URL allow-list entry (scheme://host[:port|:*][/path-prefix])")
    return value


def _server_entry(value: str) -> str:
    if has_blank_or_control(value):
        raise ValueError("holds whitespace or a control character")
    if "/" in value:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            raise ValueError("is not an IP network (e.g. 10.0.0.0/24)") from exc
        return value
    host_port = value[:-2] if value.endswith(":*") else value
    host_port = host_port.replace("*.", "wildcard.", 1) if host_port.startswith("*.") else host_port
    split_host_port(host_port, 53)
    return value


def _env_name(value: str) -> str:
    if not ENV_VAR.fullmatch(value):
        raise ValueError("is not an environment variable name")
    return value


UrlEntry = Annotated[str, AfterValidator(_url_entry)]
ServerEntry = Annotated[str, AfterValidator(_server_entry)]


def url_entry_matches(entry: str, url: str) -> bool:
    """True when ``url`` (already a checked http(s) URL) falls under the allow-list ``entry``."""
    any_port = ":*" in entry.split("://", 1)[1].split("/", 1)[0]
    parts = urllib.parse.urlsplit(entry.replace(":*", "", 1) if any_port else entry)
    target = urllib.parse.urlsplit(url)
    if parts.scheme != target.scheme:
        return False
    pattern = (parts.hostname or "").rstrip(".").lower()
    host = (target.hostname or "").rstrip(".").lower()
    if not _host_matches(pattern, host):
        return False
    default = 443 if target.scheme == "https" else 80
    if not any_port and (parts.port or default) != (target.port or default):
        return False
    prefix = parts.path
    if prefix in ("", "/"):
        return True
    path = target.path or "/"
    return path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/")


def server_entry_matches(entry: str, host: str, port: int) -> bool:
    """True when ``host:port`` (host an IP address or a name) falls under the allow-list ``entry``."""
    host = host.strip("[]").rstrip(".").lower()
    if "/" in entry:
        try:
            return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    any_port = entry.endswith(":*")
    text = entry[:-2] if any_port else entry
    wildcard = text.startswith("*.")
    entry_host, entry_port = split_host_port(text.replace("*.", "wildcard.", 1) if wildcard else text, 53)
    if wildcard:
        entry_host = "*." + entry_host.removeprefix("wildcard.")
    if not any_port and entry_port != port:
        return False
    return _host_matches(entry_host.strip("[]").rstrip(".").lower(), host)


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    try:
        return ipaddress.ip_address(pattern) == ipaddress.ip_address(host)
    except ValueError:
        return pattern == host


# --- the policy ------------------------------------------------------------------------------------


class _Section(BaseModel):
    # Booleans are StrictBool (``allow_loopback: 1`` is an error); lists in the file become tuples.
    model_config = ConfigDict(extra="forbid", frozen=True)


class GoogleEndpoints(_Section):
    """The endpoint standing for each Google API; the official one unless named (tests name local fakes)."""

    dns: UrlEntry = OFFICIAL_GOOGLE_ENDPOINTS["dns"]
    logging: UrlEntry = OFFICIAL_GOOGLE_ENDPOINTS["logging"]
    resource_manager: UrlEntry = OFFICIAL_GOOGLE_ENDPOINTS["resource_manager"]
    monitoring: UrlEntry = OFFICIAL_GOOGLE_ENDPOINTS["monitoring"]
    """Google Managed Prometheus's Prometheus-compatible API (a ``promql`` source with ``auth: google``)."""

    def endpoint(self, api: str) -> str:
        """The endpoint for ``api`` (``dns``, ``logging``, ``resource_manager``, ``monitoring``)."""
        return str(getattr(self, api))


class Endpoints(_Section):
    """Allow-lists per destination. An absent list allows nothing, except ``nameservers`` (see there)."""

    kong_admin: tuple[UrlEntry, ...] = ()
    kong_status: tuple[UrlEntry, ...] = ()
    dns_servers: tuple[ServerEntry, ...] = ()
    """RFC 2136 primaries: where signed UPDATEs (and the TSIG key's signatures) go."""
    nameservers: tuple[ServerEntry, ...] | None = None
    """Authoritative servers queried (unsigned, read-only); None: any address the network guard passes."""
    readiness: tuple[UrlEntry, ...] = ()
    """B's health URL and A's parity URL."""
    prometheus: tuple[UrlEntry, ...] = ()
    webhook: tuple[UrlEntry, ...] = ()
    """Decommission webhooks."""
    notify: tuple[UrlEntry, ...] = ()
    """Notification URLs (read from the worker's environment: the URL itself is a secret)."""
    google: GoogleEndpoints = GoogleEndpoints()


class SecretBinding(_Section):
    """Where one environment variable may be sent. Only the listed destination kinds, only those entries."""

    kong_admin: tuple[UrlEntry, ...] = ()
    kong_status: tuple[UrlEntry, ...] = ()
    dns_server: tuple[ServerEntry, ...] = ()
    readiness: tuple[UrlEntry, ...] = ()
    prometheus: tuple[UrlEntry, ...] = ()
    webhook: tuple[UrlEntry, ...] = ()
    notify: tuple[UrlEntry, ...] = ()
    google: tuple[GoogleApi, ...] = ()
    """Google APIs a key file named by this variable may be used for."""

    def kinds(self) -> list[str]:
        """The destination kinds this variable is bound to."""
        return [name for name in type(self).model_fields if getattr(self, name)]


class Network(_Section):
    """Address classes the network guard lets through (checked on the resolved address, at connect time)."""

    allow_loopback: StrictBool = False
    """127.0.0.0/8, ::1 and ``localhost``: the sandbox and tests; a production worker has no business there."""
    allow_link_local: StrictBool = False
    """169.254.0.0/16 and fe80::/10, except the metadata addresses, which are never allowed."""


class Destructive(_Section):
    """Decommission kinds that delete something, and what they force regardless of the plan."""

    kinds: tuple[DestructiveKind, ...] = DESTRUCTIVE_DEFAULT
    force_approvals: StrictBool = True
    """Both gates (flip, decommission) are waited at; a plan turning one off is refused."""
    force_require_drained: StrictBool = True
    """A is deleted only with a drain proof the decommission activity computes itself."""


def _label(value: str) -> str:
    key, sep, _ = value.partition("=")
    if not sep or not key or len(value) > 127 or has_blank_or_control(value):
        raise ValueError("is not a label requirement key=value (e.g. cutover-deletable=true)")
    return value


class GcpProjects(_Section):
    """Which Google Cloud projects a ``gcp-project`` decommission may delete."""

    deletable: tuple[str, ...] = ()
    """Project ids that may be deleted."""
    require_label: Annotated[str, AfterValidator(_label)] | None = None
    """Or: any project carrying this label (``key=value``), read from Resource Manager before deleting."""
    protected: tuple[str, ...] = ()
    """Never deleted, whatever else says (B's project, shared projects). The DNS and logs projects always are."""


class WorkerPolicy(_Section):
    """Everything the worker allows; see the module docstring and docs/security.md."""

    version: Literal[1] = 1
    name: str = Field(default="policy", max_length=100)
    """Shown in statuses and errors (e.g. the file it came from)."""
    endpoints: Endpoints = Endpoints()
    secrets: dict[Annotated[str, AfterValidator(_env_name)], SecretBinding] = {}
    network: Network = Network()
    destructive: Destructive = Destructive()
    gcp_projects: GcpProjects = GcpProjects()
    approvals: ApprovalRules = ApprovalRules()
    dev_loopback_only: StrictBool = False
    """The built-in laptop policy (``CUTOVER_POLICY=dev``): every destination on loopback, any variable
    to loopback only, nothing else; not settable from a file."""

    @classmethod
    def dev(cls) -> WorkerPolicy:
        """The laptop policy: only loopback destinations, reachable over plain http too; nothing else."""
        return cls(name="dev (loopback only)", network=Network(allow_loopback=True), dev_loopback_only=True)
