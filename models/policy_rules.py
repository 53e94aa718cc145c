"""A plan judged against the worker policy (or, without one, against the rules that need none).

:func:`check_plan` is pure: ``starter.py validate --policy`` runs it on a laptop, the ``policy_check``
activity runs it on the worker (adding what only the worker's environment shows), and the workflow
gets the same :class:`PolicyReport`: every violation, each naming its rule, and the effective
settings the run must use (gates and drain proof forced for destructive kinds, the approval rules).

Without a policy every rule that needs none still applies: Google credentials only to Google's own
endpoints, credentials only over https (plain http to loopback only), no metadata or link-local
destination, both gates and the drain proof for a destructive decommission, and the DNS and logs
projects never deleted. Messages name plan fields and rules; they never quote a secret (plans hold
none, and the worker's values are described, not shown).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from models.address_guard import host_refusal, is_loopback_host
from models.approval_rules import ApprovalRules
from models.names import split_host_port, url_host, url_port
from models.plan import (
    CloudDnsProvider,
    CloudLoggingSource,
    CutoverPlan,
    GcpProjectDecommission,
    PrometheusSource,
    PromqlSource,
    Rfc2136Provider,
    WebhookDecommission,
)
from models.policy import (
    DESTRUCTIVE_DEFAULT,
    OFFICIAL_GOOGLE_ENDPOINTS,
    WorkerPolicy,
    server_entry_matches,
    url_entry_matches,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Violation(_Model):
    """One thing the plan asks that the policy (or a rule needing none) refuses."""

    rule: str
    """e.g. ``endpoints.kong_admin``, ``secrets.binding``, ``transport.https``, ``network.metadata``."""
    field: str
    """The plan field, e.g. ``kong.admin_url``."""
    message: str

    def describe(self) -> str:
        """``kong.admin_url: ... (rule endpoints.kong_admin)``."""
        return f"{self.field}: {self.message} (rule {self.rule})"


class EffectiveSettings(_Model):
    """What the run uses, whatever the plan says: the policy's forced gates and drain proof, and approvers."""

    flip_gate: bool
    decommission_gate: bool
    require_drained: bool
    destructive: bool
    """The decommission kind deletes something (the policy's ``destructive.kinds``)."""
    approval_rules: ApprovalRules = ApprovalRules()
    protected_projects: tuple[str, ...] = ()
    """Never deleted: the policy's, the plan's, the Cloud DNS project and the logs project."""
    deletable_projects: tuple[str, ...] = ()
    required_label: str | None = None
    """A gcp-project decommission needs this ``key=value`` label on the project (checked on the project itself)."""


class PolicyReport(_Model):
    """Violations (refuse the run when any) and the effective settings."""

    policy: str
    violations: tuple[Violation, ...] = ()
    effective: EffectiveSettings
    warnings: tuple[str, ...] = ()
    """What the policy refuses that does not stop the run (a notification URL: notices are best effort)."""

    @property
    def ok(self) -> bool:
        """No violation."""
        return not self.violations

    def describe(self) -> str:
        """One line per violation, for errors and the CLI."""
        lines = [f"{len(self.violations)} policy violation(s) ({self.policy}):"]
        lines += [f"  - {v.describe()}" for v in self.violations]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Url:
    kind: str
    field: str
    url: str
    secrets: tuple[tuple[str, str, bool], ...] = ()
    """(variable, the plan field naming it, whether its value is sent) for each secret used for the call."""


def _urls(plan: CutoverPlan) -> Iterator[_Url]:
    """Every URL destination of the plan except Google's, with the variables used for the call."""
    kong = plan.kong
    token = ((kong.token_env, "kong.token_env", True),) if kong.token_env else ()
    yield _Url("kong_admin", "kong.admin_url", kong.admin_url, token)
    for index, url in enumerate(kong.status_urls):
        yield _Url("kong_status", f"kong.status_urls.{index}", url)
    yield _Url("readiness", "readiness.url", plan.readiness.url)
    if plan.readiness.parity_url:
        yield _Url("readiness", "readiness.parity_url", plan.readiness.parity_url)
    source = plan.monitor.source
    if isinstance(source, PrometheusSource):
        yield _Url("prometheus", "monitor.source.url", source.url)
    if isinstance(source, PromqlSource) and source.auth != "google":
        token = (
            ((source.token_env, "monitor.source.token_env", True),)
            if source.auth == "bearer" and source.token_env
            else ()
        )
        yield _Url("prometheus", "monitor.source.url", source.url, token)
    decommission = plan.decommission
    if isinstance(decommission, WebhookDecommission):
        used = [
            (variable, f"decommission.headers_env.{header}", True)
            for header, variable in decommission.headers_env.items()
        ]
        if decommission.signature_secret_env:
            # The HMAC key signs the body and is never sent; it is still bound to where its signatures go.
            used.append((decommission.signature_secret_env, "decommission.signature_secret_env", False))
        yield _Url("webhook", "decommission.url", decommission.url, tuple(used))


def _google_uses(plan: CutoverPlan) -> Iterator[tuple[str, str, str, str | None, str]]:
    """(api, endpoint field, endpoint, credentials variable, variable field) for every Google API call."""
    provider = plan.dns.provider
    if isinstance(provider, CloudDnsProvider):
        yield "dns", "dns.provider.api_endpoint", provider.api_endpoint, provider.credentials_env, "dns.provider"
    source = plan.monitor.source
    if isinstance(source, CloudLoggingSource):
        endpoint = source.api_endpoint or OFFICIAL_GOOGLE_ENDPOINTS["logging"]
        yield "logging", "monitor.source.api_endpoint", endpoint, source.credentials_env, "monitor.source"
    if isinstance(source, PromqlSource) and source.auth == "google":
        # Managed Prometheus's URL carries the project in its path: the endpoint is its origin.
        yield "monitoring", "monitor.source.url", api_origin(source.url), source.credentials_env, "monitor.source"
    decommission = plan.decommission
    if isinstance(decommission, GcpProjectDecommission):
        yield (
            "resource_manager",
            "decommission.api_endpoint",
            decommission.api_endpoint,
            decommission.credentials_env,
            "decommission",
        )


def _same_endpoint(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


class _Checker:
    def __init__(self, plan: CutoverPlan, policy: WorkerPolicy | None) -> None:
        self.plan = plan
        self.policy = policy
        self.violations: list[Violation] = []
        network = policy.network if policy else None
        # Without a policy loopback is the sandbox's and a laptop's: allowed; link-local and metadata never.
        self.allow_loopback = network.allow_loopback if network else True
        self.allow_link_local = network.allow_link_local if network else False

    def add(self, rule: str, field: str, message: str) -> None:
        self.violations.append(Violation(rule=rule, field=field, message=message))

    def guard(self, field: str, host: str) -> bool:
        problem = host_refusal(host, allow_loopback=self.allow_loopback, allow_link_local=self.allow_link_local)
        if problem:
            rule = "network.metadata" if "metadata" in problem else "network.guard"
            self.add(rule, field, problem)
        return problem is None

    def transport(self, field: str, url: str, what: str) -> None:
        """A credential goes over https, or plain http to loopback only."""
        if url.startswith("https://"):
            return
        if is_loopback_host(url_host(url)) and self.allow_loopback:
            return
        self.add(
            "transport.https",
            field,
            f"{what} would be sent over plain http to a host that is not loopback: use https",
        )

    def check_urls(self) -> None:
        policy = self.policy
        for item in _urls(self.plan):
            if not self.guard(item.field, url_host(item.url)):
                continue
            for variable, field, sent in item.secrets:
                if sent:
                    self.transport(item.field, item.url, f"{field} ({variable})")
            if self.dev and not is_loopback_host(url_host(item.url)):
                self.add("dev.loopback_only", item.field, "the dev policy allows loopback destinations only")
                continue
            if policy is None or self.dev:
                continue
            entries = getattr(policy.endpoints, item.kind)
            if not any(url_entry_matches(entry, item.url) for entry in entries):
                self.add(
                    f"endpoints.{item.kind}",
                    item.field,
                    f"{_origin(item.url)} is not in the policy's {item.kind} allow-list",
                )
            for variable, field, _ in item.secrets:
                self.binding(variable, field, item.kind, item.url, server=None)

    @property
    def dev(self) -> bool:
        return bool(self.policy and self.policy.dev_loopback_only)

    def binding(self, variable: str, field: str, kind: str, url: str | None, server: tuple[str, int] | None) -> None:
        assert self.policy is not None
        bound = self.policy.secrets.get(variable)
        if bound is None:
            self.add("secrets.declared", field, f"{variable} is not declared in the policy's secrets")
            return
        entries = getattr(bound, kind, ())
        if not entries:
            kinds = ", ".join(bound.kinds()) or "nothing"
            self.add("secrets.binding", field, f"{variable} may be sent to {kinds}, not to {kind}")
            return
        if url is not None:
            allowed = any(url_entry_matches(entry, url) for entry in entries)
            where = _origin(url)
        else:
            assert server is not None
            allowed = any(server_entry_matches(entry, *server) for entry in entries)
            where = f"{server[0]}:{server[1]}"
        if not allowed:
            self.add("secrets.binding", field, f"{variable} may not be sent to {where} ({kind})")

    def check_dns(self) -> None:
        provider = self.plan.dns.provider
        policy = self.policy
        if isinstance(provider, Rfc2136Provider):
            host, port = split_host_port(provider.server, 53)
            if self.guard("dns.provider.server", host):
                if self.dev and not is_loopback_host(host):
                    self.add("dev.loopback_only", "dns.provider.server", "the dev policy allows loopback servers only")
                elif policy is not None and not self.dev:
                    if not any(server_entry_matches(e, host, port) for e in policy.endpoints.dns_servers):
                        self.add(
                            "endpoints.dns_servers",
                            "dns.provider.server",
                            f"{host}:{port} is not in the policy's dns_servers allow-list",
                        )
                    if provider.tsig_secret_env:
                        self.binding(
                            provider.tsig_secret_env, "dns.provider.tsig_secret_env", "dns_server", None, (host, port)
                        )
        for index, entry in enumerate(self.plan.dns.nameservers or ()):
            field = f"dns.nameservers.{index}"
            host, port = split_host_port(entry, 53)
            if not self.guard(field, host):
                continue
            if self.dev and not is_loopback_host(host):
                self.add("dev.loopback_only", field, "the dev policy allows loopback servers only")
            elif policy is not None and not self.dev and policy.endpoints.nameservers is not None:
                if not any(server_entry_matches(e, host, port) for e in policy.endpoints.nameservers):
                    self.add("endpoints.nameservers", field, f"{host}:{port} is not in the policy's nameservers")

    def check_google(self) -> None:
        policy = self.policy
        for api, field, endpoint, variable, variable_field in _google_uses(self.plan):
            allowed = policy.endpoints.google.endpoint(api) if policy else OFFICIAL_GOOGLE_ENDPOINTS[api]
            if not _same_endpoint(endpoint, allowed):
                who = "the policy's" if policy and allowed != OFFICIAL_GOOGLE_ENDPOINTS[api] else "Google's official"
                self.add(
                    "endpoints.google",
                    field,
                    f"Google credentials go only to {who} {api} endpoint {allowed}, not to {_origin(endpoint)}",
                )
                continue
            if not self.guard(field, url_host(endpoint)):
                continue
            self.transport(field, endpoint, "Google credentials")
            if self.dev and not is_loopback_host(url_host(endpoint)):
                self.add("dev.loopback_only", field, "the dev policy reaches no Google API (loopback only)")
            if variable and policy is not None and not self.dev:
                bound = policy.secrets.get(variable)
                if bound is None:
                    self.add("secrets.declared", f"{variable_field}.credentials_env", f"{variable} is not declared")
                elif api not in bound.google:
                    kinds = ", ".join(bound.kinds()) or "nothing"
                    self.add(
                        "secrets.binding",
                        f"{variable_field}.credentials_env",
                        f"{variable} may be used for {kinds}, not for Google's {api} API",
                    )

    def check_notify(self) -> None:
        notify = self.plan.notify
        policy = self.policy
        if notify is None or policy is None or self.dev:
            return
        bound = policy.secrets.get(notify.webhook_env)
        if bound is None:
            self.add("secrets.declared", "notify.webhook_env", f"{notify.webhook_env} is not declared in the policy")
        elif not bound.notify:
            kinds = ", ".join(bound.kinds()) or "nothing"
            self.add("secrets.binding", "notify.webhook_env", f"{notify.webhook_env} is bound to {kinds}, not notify")

    def check_decommission(self) -> EffectiveSettings:
        plan, policy = self.plan, self.policy
        destructive_kinds = policy.destructive.kinds if policy else DESTRUCTIVE_DEFAULT
        force_gates = policy.destructive.force_approvals if policy else True
        force_drained = policy.destructive.force_require_drained if policy else True
        decommission = plan.decommission
        destructive = decommission.kind in destructive_kinds
        if destructive and force_gates:
            for gate in ("flip", "decommission"):
                if not getattr(plan.approvals, gate):
                    self.add(
                        "destructive.force_approvals",
                        f"approvals.{gate}",
                        f"a {decommission.kind} decommission deletes A: the {gate} gate is always waited at; "
                        f"remove approvals.{gate}: false",
                    )
        if destructive and force_drained and not decommission.require_drained:
            self.add(
                "destructive.force_require_drained",
                "decommission.require_drained",
                f"a {decommission.kind} decommission deletes A only once A is proven drained; remove "
                "require_drained: false",
            )
        protected: list[str] = list(policy.gcp_projects.protected) if policy else []
        if isinstance(plan.dns.provider, CloudDnsProvider):
            protected.append(plan.dns.provider.project)
        if isinstance(plan.monitor.source, CloudLoggingSource):
            protected.append(plan.monitor.source.project)
        deletable: tuple[str, ...] = ()
        label: str | None = None
        if isinstance(decommission, GcpProjectDecommission):
            protected += decommission.protected_projects
            project = decommission.project_id
            if project in protected:
                self.add(
                    "destructive.protected_project",
                    "decommission.project_id",
                    f"{project} is protected (the Cloud DNS project, the logs project, or listed as protected): "
                    "cutover never deletes it",
                )
            elif policy is not None:
                deletable, label = policy.gcp_projects.deletable, policy.gcp_projects.require_label
                if self.dev or (project not in deletable and label is None):
                    self.add(
                        "destructive.deletable_projects",
                        "decommission.project_id",
                        f"the policy does not allow deleting {project} (gcp_projects.deletable or require_label)",
                    )
                elif project in deletable:
                    label = None
        return EffectiveSettings(
            flip_gate=plan.approvals.flip or (destructive and force_gates),
            decommission_gate=plan.approvals.decommission or (destructive and force_gates),
            require_drained=decommission.kind != "none"
            and (decommission.require_drained or (destructive and force_drained)),
            destructive=destructive,
            approval_rules=policy.approvals if policy else ApprovalRules(),
            protected_projects=tuple(dict.fromkeys(protected)),
            deletable_projects=deletable,
            required_label=label,
        )


def api_origin(url: str) -> str:
    """``scheme://host[:port]`` as written: the API endpoint a URL with a path (Managed Prometheus) belongs to."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _origin(url: str) -> str:
    """``https://host:port``: where a URL goes, without its path and query (which may carry tokens)."""
    host = url_host(url)
    shown = f"[{host}]" if ":" in host else host
    return f"{url.split('://', 1)[0]}://{shown}:{url_port(url)}"


def check_plan(plan: CutoverPlan, policy: WorkerPolicy | None) -> PolicyReport:
    """Every violation of ``plan`` against ``policy`` (None: the rules that need no policy), and what to enforce."""
    checker = _Checker(plan, policy)
    checker.check_dns()
    checker.check_urls()
    checker.check_google()
    checker.check_notify()
    effective = checker.check_decommission()
    return PolicyReport(
        policy=policy.name if policy else "no policy: the rules that need none",
        violations=tuple(dict.fromkeys(checker.violations)),
        effective=effective,
    )


class PolicyCheckInput(_Model):
    """The plan a run was started with, to be judged by the worker's policy."""

    plan: CutoverPlan
