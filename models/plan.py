"""The cutover plan: what a user submits (YAML or JSON), validated whole before anything changes.

Every section is a frozen pydantic model with unknown keys rejected. Field-level rules live on the
fields; rules that relate fields to each other (record inside the zone, TTL order, no literal
secrets, ...) are collected by :meth:`CutoverPlan._collect_every_problem`, so that one
``ValidationError`` lists every problem of a plan at once. The sections live in
models/plan_sections.py, the cross-field rules in models/plan_rules.py; ``docs/plan.md`` documents
each field.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import ValidationError, ValidatorFunctionWrapHandler, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from models.names import has_control
from models.plan_fields import PlainText
from models.plan_rules import SECRET_MESSAGE, cross_field_problems, redacted
from models.plan_sections import (
    ApprovalsSection,
    CloudDnsProvider,
    CloudLoggingSource,
    Decommission,
    DnsSection,
    GcpProjectDecommission,
    KongDnsOverrides,
    KongFileLogSource,
    KongSection,
    MonitorSection,
    NoDecommission,
    NotifySection,
    PrometheusSource,
    PromqlSource,
    ReadinessSection,
    Rfc2136Provider,
    Section,
    TsigAlgorithm,
    WebhookDecommission,
)

__all__ = [
    "WORKFLOW_ID_PREFIX",
    "ApprovalsSection",
    "CloudDnsProvider",
    "CloudLoggingSource",
    "CutoverPlan",
    "Decommission",
    "DnsSection",
    "GcpProjectDecommission",
    "KongDnsOverrides",
    "KongFileLogSource",
    "KongSection",
    "MonitorSection",
    "NoDecommission",
    "NotifySection",
    "PrometheusSource",
    "PromqlSource",
    "ReadinessSection",
    "Rfc2136Provider",
    "TsigAlgorithm",
    "WebhookDecommission",
    "describe_problems",
]

WORKFLOW_ID_PREFIX = "cutover-"
_LATER_FIELDS = (("kong", "token_header", "Kong-Admin-Token"), ("kong", "dns_caches_cleared", "no"))


def _sha256_of(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class CutoverPlan(Section):
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
                message, value = redacted(err["msg"], err.get("input"))
                problems.append(
                    InitErrorDetails(
                        type=PydanticCustomError(err["type"], "{detail}", {"detail": message}),
                        loc=err["loc"],
                        input=value,
                    )
                )
        if isinstance(data, dict):
            rules = cross_field_problems(data)
            # A value that looks like a secret gets one error, the one saying so: its field's own
            # complaint (not a DNS name, not a variable name...) would only blur it.
            secrets = {_untagged(loc) for loc, message, _ in rules if message.startswith(SECRET_MESSAGE)}
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
