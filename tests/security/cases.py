"""Hostile plans and policies, one per row: what an attacker (or a careless user) writes, and the rule that stops it.

Every bullet of issue 10's sections 1 and 4, and every item of the issue's first list, is a row.
``layer`` says where it is refused:

* ``file``: reading the file (size, depth, aliases, duplicate keys);
* ``plan``: the plan's own validation (names, URLs, strict types, ...), whatever the policy;
* ``baseline``: a rule that needs no policy (``starter.py validate`` without ``--policy`` refuses it);
* ``policy``: the reference worker policy below refuses it.

``allow`` edits the reference policy so that it allows the plan (the same plan must then pass);
None means no policy can allow it (a metadata address, a malformed file, a CNAME to an IP).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.conftest import TSIG_ENV, base_plan_data

Edit = Callable[[dict[str, Any]], None]
GCP = {"kind": "gcp-project", "project_id": "a-project-123", "protected_projects": ["b-project-456"]}
WEBHOOK = {"kind": "webhook", "url": "https://decom.example.test/projects/a"}
ATTACKER = "http://attacker.example"


def reference_policy() -> dict[str, Any]:
    """A policy allowing exactly the base plan (tests/conftest.py): loopback BIND, emulator, A and B."""
    return {
        "name": "reference",
        "network": {"allow_loopback": True},
        "endpoints": {
            "kong_admin": ["http://127.0.0.1:8001"],
            "dns_servers": ["127.0.0.1:5353"],
            "nameservers": ["127.0.0.1:5353", "127.0.0.1:5354"],
            "readiness": ["https://127.0.0.3:8443/orders/", "https://127.0.0.2:8443/orders/"],
            "webhook": ["https://decom.example.test/projects/"],
        },
        "secrets": {
            TSIG_ENV: {"dns_server": ["127.0.0.1:5353"]},
            "DECOM_TOKEN": {"webhook": ["https://decom.example.test/projects/"]},
        },
        "gcp_projects": {"deletable": ["a-project-123"]},
    }


def put(path: str, value: Any) -> Edit:
    """Set ``a.b.c`` in the plan (or the policy)."""

    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = copy.deepcopy(value)

    return edit


def both(*edits: Edit) -> Edit:
    """Several edits in order."""

    def edit(data: dict[str, Any]) -> None:
        for one in edits:
            one(data)

    return edit


@dataclass(frozen=True)
class Hostile:
    """One hostile plan (or policy) and what must refuse it."""

    id: str
    layer: Literal["file", "plan", "baseline", "policy"]
    where: str
    """The plan field (or ``rule``) the one error names."""
    words: str
    """Words of that error."""
    plan: Edit | None = None
    text: str | None = None
    """A whole plan file as written (file layer)."""
    policy: Edit | None = None
    """An edit of the reference policy that makes it hostile (a policy-file case)."""
    allow: Edit | None = None
    rules: tuple[str, ...] = field(default=())
    """For policy/baseline rows: the rule names expected among the violations (the first is the main one)."""

    def plan_data(self) -> dict[str, Any]:
        data = base_plan_data()
        if self.plan is not None:
            self.plan(data)
        return data


def _bomb() -> str:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 6)]
    return "\n".join(lines) + "\nname: *a5\n"


BASE_YAML_HEAD = "name: orders-api\nstrategy: cname\n"

CASES: list[Hostile] = [
    # --- the first list --------------------------------------------------------------------
    Hostile(
        "clouddns-endpoint-to-attacker",
        "baseline",
        "dns.provider.api_endpoint",
        "Google credentials go only to Google's official dns endpoint",
        plan=put(
            "dns.provider",
            {
                "kind": "clouddns",
                "project": "dns-project-789",
                "managed_zone": "example-test",
                "zone": "example.test.",
                "api_endpoint": ATTACKER,
            },
        ),
        rules=("endpoints.google",),
    ),
    Hostile(
        "clouddns-endpoint-the-policy-does-not-name",
        "baseline",
        "dns.provider.api_endpoint",
        "Google credentials go only to Google's official dns endpoint",
        plan=put(
            "dns.provider",
            {
                "kind": "clouddns",
                "project": "dns-project-789",
                "managed_zone": "example-test",
                "zone": "example.test.",
                "api_endpoint": "https://dns.private.example",
            },
        ),
        allow=put("endpoints.google.dns", "https://dns.private.example"),
        rules=("endpoints.google",),
    ),
    Hostile(
        "kong-token-is-the-tsig-secret",
        "policy",
        "kong.token_env",
        f"{TSIG_ENV} may be sent to dns_server, not to kong_admin",
        plan=put("kong.token_env", TSIG_ENV),
        allow=put(f"secrets.{TSIG_ENV}.kong_admin", ["http://127.0.0.1:8001"]),
        rules=("secrets.binding",),
    ),
    Hostile(
        "kong-admin-at-attacker-with-the-tsig-secret",
        "baseline",
        "kong.admin_url",
        "kong.token_env (CUTOVER_TSIG_SECRET) would be sent over plain http",
        plan=both(put("kong.admin_url", ATTACKER), put("kong.token_env", TSIG_ENV)),
        rules=("transport.https", "endpoints.kong_admin", "secrets.binding"),
    ),
    Hostile(
        "readiness-at-the-metadata-server",
        "baseline",
        "readiness.url",
        "cloud metadata address",
        plan=put("readiness.url", "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/"),
        rules=("network.metadata",),
    ),
    Hostile(
        "readiness-at-an-unauthenticated-kong-admin-on-loopback",
        "policy",
        "readiness.url",
        "not in the policy's readiness allow-list",
        plan=put("readiness.url", "http://127.0.0.1:8001/"),
        allow=put("endpoints.readiness", ["http://127.0.0.1:8001/", "https://127.0.0.2:8443/orders/"]),
        rules=("endpoints.readiness",),
    ),
    Hostile(
        "webhook-with-user-info-at-the-metadata-server",
        "plan",
        "decommission.webhook.url",
        "must not carry user info",
        plan=put(
            "decommission",
            {
                "kind": "webhook",
                "url": "http://user@169.254.169.254/",
                "headers_env": {"Authorization": "GOOGLE_APPLICATION_CREDENTIALS"},
            },
        ),
    ),
    Hostile(
        "webhook-sends-google-credentials",
        "policy",
        "decommission.headers_env.Authorization",
        "GOOGLE_APPLICATION_CREDENTIALS is not declared",
        plan=put("decommission", {**WEBHOOK, "headers_env": {"Authorization": "GOOGLE_APPLICATION_CREDENTIALS"}}),
        allow=put("secrets.GOOGLE_APPLICATION_CREDENTIALS", {"webhook": ["https://decom.example.test/projects/"]}),
        rules=("secrets.declared",),
    ),
    Hostile(
        "gcp-project-without-the-flip-gate",
        "baseline",
        "approvals.flip",
        "the flip gate is always waited at",
        plan=both(put("decommission", GCP), put("approvals.flip", False)),
        allow=put("destructive.force_approvals", False),
        rules=("destructive.force_approvals",),
    ),
    Hostile(
        "gcp-project-without-the-decommission-gate",
        "baseline",
        "approvals.decommission",
        "the decommission gate is always waited at",
        plan=both(put("decommission", GCP), put("approvals.decommission", False)),
        allow=put("destructive.force_approvals", False),
        rules=("destructive.force_approvals",),
    ),
    Hostile(
        "gcp-project-without-the-drain-proof",
        "baseline",
        "decommission.require_drained",
        "only once A is proven drained",
        plan=put("decommission", {**GCP, "require_drained": False}),
        allow=put("destructive.force_require_drained", False),
        rules=("destructive.force_require_drained",),
    ),
    Hostile(
        "duplicate-project-id",
        "file",
        "duplicate key",
        "duplicate key 'project_id'",
        text=BASE_YAML_HEAD + "decommission:\n  kind: gcp-project\n  project_id: a-project-123\n"
        "  project_id: dns-project-789\n",
    ),
    Hostile("name-ending-in-a-newline", "plan", "name", "a-z, 0-9 and '-'", plan=put("name", "orders-api\n")),
    Hostile(
        "url-ending-in-a-newline",
        "plan",
        "kong.admin_url",
        "no whitespace or control character",
        plan=put("kong.admin_url", "http://127.0.0.1:8001\n"),
    ),
    Hostile(
        "variable-name-ending-in-a-newline",
        "plan",
        "dns.provider.rfc2136.tsig_secret_env",
        "is not an environment variable name",
        plan=put("dns.provider.tsig_secret_env", TSIG_ENV + "\n"),
    ),
    Hostile("ttl-true", "plan", "dns.cutover_ttl", "valid integer", plan=put("dns.cutover_ttl", True)),
    Hostile(
        "cname-target-is-an-ip",
        "plan",
        "dns.target",
        "is an IP address, not a host name",
        plan=put("dns.target", "10.0.0.7"),
    ),
    Hostile(
        "crlf-in-a-header-name",
        "plan",
        "decommission.webhook.headers_env.X-A\\r\\nX-Injected: 1.[key]",
        "is not an HTTP header name",
        plan=put("decommission", {**WEBHOOK, "headers_env": {"X-A\r\nX-Injected: 1": "DECOM_TOKEN"}}),
    ),
    Hostile(
        "5000-deep-nesting", "file", "nested", "nested more than 32 levels", text="name: " + "[" * 5000 + "]" * 5000
    ),
    Hostile("alias-bomb", "file", "aliases", "more than 20 YAML anchors and aliases", text=_bomb()),
    # --- section 1: the worker policy --------------------------------------------------------------
    Hostile(
        "kong-admin-not-allowed",
        "policy",
        "kong.admin_url",
        "not in the policy's kong_admin allow-list",
        plan=put("kong.admin_url", "http://127.0.0.1:8002"),
        allow=put("endpoints.kong_admin", ["http://127.0.0.1:*"]),
        rules=("endpoints.kong_admin",),
    ),
    Hostile(
        "dns-primary-not-allowed",
        "policy",
        "dns.provider.server",
        "not in the policy's dns_servers allow-list",
        plan=put("dns.provider.server", "127.0.0.1:5399"),
        allow=both(
            put("endpoints.dns_servers", ["127.0.0.1:*"]), put(f"secrets.{TSIG_ENV}.dns_server", ["127.0.0.1:*"])
        ),
        rules=("endpoints.dns_servers", "secrets.binding"),
    ),
    Hostile(
        "nameserver-not-allowed",
        "policy",
        "dns.nameservers.1",
        "not in the policy's nameservers",
        plan=put("dns.nameservers", ["127.0.0.1:5353", "127.0.0.1:5399"]),
        allow=put("endpoints.nameservers", ["127.0.0.1:*"]),
        rules=("endpoints.nameservers",),
    ),
    Hostile(
        "nameserver-link-local",
        "baseline",
        "dns.nameservers.1",
        "link-local address",
        plan=put("dns.nameservers", ["127.0.0.1:5353", "[fe80::1]:53"]),
        allow=both(put("network.allow_link_local", True), put("endpoints.nameservers", None)),
        rules=("network.guard",),
    ),
    Hostile(
        "status-url-not-allowed",
        "policy",
        "kong.status_urls.0",
        "not in the policy's kong_status allow-list",
        plan=put("kong.status_urls", ["http://127.0.0.1:8100"]),
        allow=put("endpoints.kong_status", ["http://127.0.0.1:8100"]),
        rules=("endpoints.kong_status",),
    ),
    Hostile(
        "prometheus-at-the-aws-ipv6-metadata-address",
        "baseline",
        "monitor.source.url",
        "cloud metadata address",
        plan=put("monitor.source", {"kind": "prometheus", "url": "http://[fd00:ec2::254]/metrics"}),
        rules=("network.metadata",),
    ),
    Hostile(
        "parity-url-at-metadata-google-internal",
        "baseline",
        "readiness.parity_url",
        "metadata.google.internal is the cloud metadata server",
        plan=put("readiness.parity_url", "http://metadata.google.internal/computeMetadata/v1/"),
        rules=("network.metadata",),
    ),
    Hostile(
        "readiness-at-an-ipv4-mapped-metadata-address",
        "baseline",
        "readiness.url",
        "cloud metadata address",
        plan=put("readiness.url", "http://[::ffff:169.254.169.254]/"),
        rules=("network.metadata",),
    ),
    Hostile(
        "webhook-token-over-plain-http",
        "baseline",
        "decommission.url",
        "would be sent over plain http",
        plan=put(
            "decommission",
            {"kind": "webhook", "url": "http://decom.example.test/x", "headers_env": {"X-Key": "DECOM_TOKEN"}},
        ),
        rules=("transport.https", "endpoints.webhook", "secrets.binding"),
    ),
    Hostile(
        "undeclared-variable",
        "policy",
        "kong.token_env",
        "KONG_ADMIN_TOKEN is not declared in the policy's secrets",
        plan=put("kong.token_env", "KONG_ADMIN_TOKEN"),
        allow=put("secrets.KONG_ADMIN_TOKEN", {"kong_admin": ["http://127.0.0.1:8001"]}),
        rules=("secrets.declared",),
    ),
    Hostile(
        "tsig-secret-to-another-primary",
        "policy",
        "dns.provider.tsig_secret_env",
        f"{TSIG_ENV} may not be sent to 127.0.0.1:5353",
        policy=put(f"secrets.{TSIG_ENV}.dns_server", ["10.0.0.53:53"]),
        allow=put(f"secrets.{TSIG_ENV}.dns_server", ["10.0.0.53:53", "127.0.0.1:5353"]),
        rules=("secrets.binding",),
    ),
    Hostile(
        "google-key-bound-to-dns-used-for-project-deletion",
        "policy",
        "decommission.credentials_env",
        "may be used for google, not for Google's resource_manager API",
        plan=put("decommission", {**GCP, "credentials_env": "GOOGLE_KEY_FILE"}),
        policy=put("secrets.GOOGLE_KEY_FILE", {"google": ["dns"]}),
        allow=put("secrets.GOOGLE_KEY_FILE", {"google": ["dns", "resource_manager"]}),
        rules=("secrets.binding",),
    ),
    Hostile(
        "notify-through-the-tsig-secret",
        "policy",
        "notify.webhook_env",
        f"{TSIG_ENV} is bound to dns_server, not notify",
        plan=put("notify", {"webhook_env": TSIG_ENV}),
        allow=put(f"secrets.{TSIG_ENV}.notify", ["https://hooks.example.test/"]),
        rules=("secrets.binding",),
    ),
    Hostile(
        "gcp-project-not-deletable",
        "policy",
        "decommission.project_id",
        "the policy does not allow deleting b-project-999",
        plan=put("decommission", {**GCP, "project_id": "b-project-999"}),
        allow=put("gcp_projects.deletable", ["b-project-999"]),
        rules=("destructive.deletable_projects",),
    ),
    Hostile(
        "gcp-project-is-the-logs-project",
        "baseline",
        "decommission.project_id",
        "is protected",
        plan=both(
            put("monitor.source", {"kind": "cloud-logging", "project": "a-project-123"}),
            put("decommission", GCP),
        ),
        rules=("destructive.protected_project",),
    ),
    Hostile(
        "loopback-under-a-policy-without-it",
        "policy",
        "kong.admin_url",
        "loopback address, which the worker policy does not allow",
        policy=put("network.allow_loopback", False),
        allow=put("network.allow_loopback", True),
        rules=("network.guard",),
    ),
    Hostile(
        "webhook-made-destructive-by-the-policy-without-its-gate",
        "policy",
        "approvals.decommission",
        "a webhook decommission deletes A",
        plan=both(put("decommission", WEBHOOK), put("approvals.decommission", False)),
        policy=put("destructive.kinds", ["gcp-project", "webhook"]),
        allow=put("destructive.kinds", ["gcp-project"]),
        rules=("destructive.force_approvals",),
    ),
    # --- section 4: input hardening ----------------------------------------------------------------
    Hostile("oversized-file", "file", "larger", "larger than 256 KiB", text="ticket: '" + "x" * 300_000 + "'\n"),
    Hostile(
        "tsig-key-name-with-a-space",
        "plan",
        "dns.provider.rfc2136.tsig_key_name",
        "not a valid DNS name",
        plan=put("dns.provider.tsig_key_name", "update key"),
    ),
    Hostile(
        "reserved-header-name",
        "plan",
        "decommission.webhook.headers_env.Host.[key]",
        "a header cutover sets itself",
        plan=put("decommission", {**WEBHOOK, "headers_env": {"Host": "DECOM_TOKEN"}}),
    ),
    Hostile(
        "expect-status-5xx",
        "plan",
        "readiness.expect_status.0",
        "less than or equal to 399",
        plan=put("readiness.expect_status", [500]),
    ),
    Hostile(
        "successes-as-a-string", "plan", "readiness.successes", "valid integer", plan=put("readiness.successes", "3")
    ),
    Hostile(
        "service-name-with-crlf",
        "plan",
        "kong.service",
        "is not a Kong name",
        plan=put("kong.service", "orders-api\r\nX-Injected: 1"),
    ),
    Hostile(
        "secret-pasted-as-a-variable-name",
        "plan",
        "dns.provider.tsig_secret_env",
        "never contain the secret",
        plan=put("dns.provider.tsig_secret_env", "GnWTbplSquw/AX29Dp+isOysGi9valVxnGk6MsCIVQ4="),
    ),
]
"""Hostile plans: their ids are test ids."""

SECRET_VALUES = ("GnWTbplSquw/AX29Dp+isOysGi9valVxnGk6MsCIVQ4=",)
"""Values that must never appear in an error (a secret pasted into the wrong field)."""


HOSTILE_POLICIES: list[tuple[str, str, str]] = [
    ("dev-flag-in-a-file", "dev_loopback_only: true\n", "not settable in a file"),
    ("duplicate-secret", "secrets:\n  X: {webhook: []}\n  X: {kong_admin: []}\n", "duplicate key"),
    ("url-entry-with-a-newline", 'endpoints:\n  kong_admin: ["http://kong:8001\\n"]\n', "not a URL allow-list entry"),
    ("truthy-string-for-a-boolean", "network:\n  allow_loopback: 'yes'\n", "valid boolean"),
    ("metadata-label-requirement-without-value", "gcp_projects:\n  require_label: cutover\n", "key=value"),
    ("unknown-key", "endpoint:\n  kong_admin: []\n", "Extra inputs are not permitted"),
]
"""Hostile policy files: (id, YAML, words of the one problem)."""
