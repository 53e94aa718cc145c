"""``policy_check``: the worker's policy applied to a run's plan, first thing in ``verifying`` (and the dry run).

The workflow calls it before any other activity. It returns every violation (each naming its rule)
and the effective settings the run must use (both gates and the drain proof forced for a
destructive decommission, the approval rules); a run with violations is refused before anything
is read or changed, and a dry run lists them. Beyond the pure rules (:func:`models.policy_rules.check_plan`,
the same ``starter.py validate --policy`` runs), it checks what only the worker's environment shows:
the notification URL a variable holds (a warning, not a violation: notices are best effort, and the
notify activity refuses such a URL at each use). Nothing secret is returned: the policy holds none,
and the environment's values are judged, never quoted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from models.policy_rules import PolicyCheckInput, PolicyReport, check_plan
from providers.errors import ConfigError, PolicyViolation
from providers.secrets import EnvSecrets


class PolicyActivities:
    """Judge plans by the worker policy ``secrets`` carries (None: the rules that need no policy)."""

    def __init__(self, secrets: EnvSecrets | None = None) -> None:
        self._secrets = secrets or EnvSecrets()

    def activities(self) -> list[Callable[..., Any]]:
        """The activity callables to register on a worker."""
        return [self.check]

    @activity.defn(name="policy_check")
    async def check(self, input: PolicyCheckInput) -> PolicyReport:
        """Every violation of the plan against the worker policy, and the settings the run must use."""
        report = check_plan(input.plan, self._secrets.policy)
        if not any(violation.field == "notify.webhook_env" for violation in report.violations):
            warning = self._notify_warning(input)
            if warning:
                report = report.model_copy(update={"warnings": (*report.warnings, warning)})
        if report.violations:
            activity.logger.warning("policy_check: %s", report.describe())
        else:
            activity.logger.info("policy_check: %s allows the plan", report.policy)
        return report

    def _notify_warning(self, input: PolicyCheckInput) -> str | None:
        """Why notices will not be sent: the URL the variable holds (a secret, never shown) is refused."""
        notify = input.plan.notify
        if notify is None or self._secrets.policy is None:
            return None
        try:
            self._secrets.require_url(notify.webhook_env, "notify.webhook_env", "notify")
        except PolicyViolation as exc:
            return f"notices will not be sent: {exc} (rule endpoints.notify)"
        except ConfigError as exc:
            return f"notices will not be sent: {exc}"
        return None
