"""``kind: gcp-project``: delete A's Google Cloud project with Resource Manager v3, undelete to undo.

``DELETE v3/projects/{id}`` moves an ACTIVE project to ``DELETE_REQUESTED`` through a long-running
operation; the project can be restored with ``POST v3/projects/{id}:undelete`` for 30 days
(dns.md §3.3). A project already ``DELETE_REQUESTED`` is not deleted again: the state is reported as
is, without a second call. The preflight checks the project exists, the caller holds
``resourcemanager.projects.delete`` (``testIamPermissions``), that it is neither a protected project
nor the Cloud DNS or logs project, and that the worker policy allows it: listed in
``gcp_projects.deletable``, or carrying the label ``gcp_projects.require_label`` as Resource Manager
reports it (re-read just before the deletion). Restoring does not re-attach billing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import google.auth.credentials
import google.auth.exceptions
import httpx

from models.decommission import DecommissionPreflight, DecommissionResult
from models.plan import GcpProjectDecommission
from providers.decommission.base import Decommissioner, ProgressCallback, ProjectRules, ignore_progress
from providers.errors import DecommissionRefused, DecommissionUnavailable, describe_transport_error
from providers.google_auth import GoogleAuth, describe_auth_error, is_transport_problem, load_credentials
from providers.google_errors import parse_google_error
from providers.netguard import NetworkGuard, check_google_endpoint, guarded_transport
from providers.secrets import Destination, EnvSecrets
from providers.tls import default_trust

log = logging.getLogger("cutover.providers.decommission.gcp_project")

DELETE_PERMISSION = "resourcemanager.projects.delete"
UNDELETE_PERMISSION = "resourcemanager.projects.undelete"
GET_PERMISSION = "resourcemanager.projects.get"
RECOVERY_WINDOW = timedelta(days=30)
ACTIVE = "ACTIVE"
DELETE_REQUESTED = "DELETE_REQUESTED"
_RETRYABLE_RPC_CODES = {4, 8, 10, 13, 14}
"""DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE in an Operation's error."""
UNDELETE_CAVEATS = (
    "billing is not re-attached automatically: link the billing account again; some services (Cloud Storage, "
    "Pub/Sub) may already have deleted their data, and some take up to 36 h to come back"
)


class GcpProjectDecommissioner(Decommissioner):
    """Delete (and undelete) one Google Cloud project through the Resource Manager v3 REST API."""

    kind: ClassVar[str] = "gcp-project"

    def __init__(
        self,
        section: GcpProjectDecommission,
        *,
        dns_project: str | None = None,
        credentials: google.auth.credentials.Credentials | None = None,
        secrets: EnvSecrets | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_progress: ProgressCallback = ignore_progress,
        poll_initial: float = 1.0,
        poll_max: float = 10.0,
        operation_timeout: timedelta = timedelta(minutes=5),
        rules: ProjectRules | None = None,
        guard: NetworkGuard | None = None,
    ) -> None:
        """Prepare the client; credentials default to the plan's key file or ADC.

        Raises:
            ConfigError: no usable credentials.
        """
        self.section = section
        self.project_id = section.project_id
        self.dns_project = dns_project
        self.rules = rules or ProjectRules()
        guard = guard or (secrets.guard if secrets else NetworkGuard())
        check_google_endpoint(guard, "resource_manager", section.api_endpoint, "decommission.api_endpoint")
        if credentials is None:
            credentials = load_credentials(
                section.credentials_env,
                "decommission.credentials_env",
                secrets,
                Destination("google", url=section.api_endpoint, api="resource_manager"),
            )
        self._auth = GoogleAuth(credentials)
        self._http = httpx.AsyncClient(
            base_url=section.api_endpoint.rstrip("/"),
            auth=self._auth,
            transport=transport or guarded_transport(guard, default_trust()),
            timeout=30.0,
            verify=default_trust(),
        )
        self._on_progress = on_progress
        self._poll_initial = poll_initial
        self._poll_max = poll_max
        self._operation_timeout = operation_timeout

    # --- checks ------------------------------------------------------------------------------------

    def _protection_problem(self) -> str | None:
        if self.project_id in self.section.protected_projects:
            return f"{self.project_id} is in decommission.protected_projects: cutover will not delete it"
        if self.dns_project and self.project_id == self.dns_project:
            return f"{self.project_id} hosts the Cloud DNS zone cutover changes: cutover will not delete it"
        if self.project_id in self.rules.protected:
            return (
                f"{self.project_id} is protected (the worker policy's gcp_projects.protected, the Cloud DNS or the "
                "logs project): cutover will not delete it"
            )
        return None

    def _policy_problem(self, project: dict[str, Any]) -> str | None:
        """Why the worker policy does not let this project be deleted, from the project as read now."""
        rules = self.rules
        if rules.deletable is None or self.project_id in rules.deletable:
            return None
        if rules.required_label:
            key, _, value = rules.required_label.partition("=")
            labels = project.get("labels")
            if isinstance(labels, dict) and labels.get(key) == value:
                return None
            return (
                f"project {self.project_id} lacks the label {rules.required_label} the worker policy requires for a "
                "deletion (gcp_projects.require_label), and is not in gcp_projects.deletable"
            )
        return f"the worker policy does not allow deleting {self.project_id} (gcp_projects.deletable)"

    async def preflight(self) -> DecommissionPreflight:
        """Check existence, state, permissions and protection, without changing anything.

        Raises:
            DecommissionUnavailable: Resource Manager could not be asked (5xx, timeout).
        """
        checks: list[str] = []
        problems: list[str] = []
        protection = self._protection_problem()
        if protection:
            problems.append(protection)
        else:
            checks.append(f"{self.project_id} is neither protected nor the Cloud DNS project")
        project = await self._project()
        reversible = False
        if project is None:
            problems.append(
                f"project {self.project_id} does not exist or the caller can't see it ({GET_PERMISSION} denied)"
            )
        else:
            state = project.get("state", "STATE_UNSPECIFIED")
            checks.append(f"project {self.project_id} ({project.get('name')}) exists, state {state}")
            refused = self._policy_problem(project)
            if refused:
                problems.append(refused)
            elif self.rules.deletable is not None:
                checks.append(f"the worker policy allows deleting {self.project_id}")
            if state == DELETE_REQUESTED:
                checks.append("already DELETE_REQUESTED: the deletion will change nothing")
            elif state != ACTIVE:
                problems.append(f"project {self.project_id} is {state}, not ACTIVE")
            granted = await self._granted(project["name"])
            if DELETE_PERMISSION in granted:
                checks.append(f"the caller holds {DELETE_PERMISSION}")
            else:
                problems.append(
                    f"the caller lacks {DELETE_PERMISSION} on {self.project_id} (roles/owner or a role with it)"
                )
            reversible = UNDELETE_PERMISSION in granted
            checks.append(
                f"the caller holds {UNDELETE_PERMISSION}: a deletion can be undone for 30 days"
                if reversible
                else f"the caller lacks {UNDELETE_PERMISSION}: cutover could not undo the deletion"
            )
        return DecommissionPreflight(
            ok=not problems,
            checks=tuple(checks),
            problems=tuple(problems),
            reversible=reversible,
            description=(
                f"delete GCP project {self.project_id} (DELETE_REQUESTED, restorable with undelete for 30 days; "
                "billing is not re-attached on restore)"
            ),
        )

    # --- delete and undelete -----------------------------------------------------------------------

    async def delete(self) -> DecommissionResult:
        """Request the project's deletion and wait for the operation; idempotent.

        Raises:
            DecommissionRefused: protected project, project not visible, permission denied, lien.
            DecommissionUnavailable: 5xx, 429, timeout, or the operation outlived its deadline.
        """
        protection = self._protection_problem()
        if protection:
            raise DecommissionRefused(protection)
        project = await self._visible_project(DELETE_PERMISSION)
        refused = self._policy_problem(project)
        if refused:
            raise DecommissionRefused(refused)
        if project.get("state") == DELETE_REQUESTED:
            return self._deleted(project, None, "was already DELETE_REQUESTED: nothing was called again")
        operation = await self._call("DELETE", f"/v3/{project['name']}", DELETE_PERMISSION)
        operation = await self._wait(operation, DELETE_PERMISSION)
        project = await self._visible_project(GET_PERMISSION)
        if project.get("state") != DELETE_REQUESTED:
            raise DecommissionUnavailable(
                f"operation {operation.get('name')} finished but {self.project_id} is {project.get('state')}; "
                "retrying is safe"
            )
        return self._deleted(project, operation.get("name"), "is now DELETE_REQUESTED")

    def _deleted(self, project: dict[str, Any], operation: str | None, how: str) -> DecommissionResult:
        deleted_at = datetime.now(UTC)
        if project.get("deleteTime"):
            try:
                deleted_at = datetime.fromisoformat(str(project["deleteTime"]))
            except ValueError:
                # The deletion happened; an unreadable time must not turn that into a failure that a
                # retry would repeat forever. "Now" is the latest it can have happened.
                log.warning("project %s: deleteTime %r is not a timestamp", self.project_id, project["deleteTime"])
        until = deleted_at + RECOVERY_WINDOW
        return DecommissionResult(
            kind=self.kind,
            done=True,
            state=DELETE_REQUESTED,
            detail=(
                f"GCP project {self.project_id} {how}; it can be restored with undelete until "
                f"{until.date().isoformat()} (gcloud projects undelete {self.project_id}); {UNDELETE_CAVEATS}"
            ),
            operation=operation,
            reversible_until=until,
        )

    async def undo(self) -> DecommissionResult:
        """Undelete a DELETE_REQUESTED project (the compensation); an ACTIVE project is left as is.

        Raises:
            DecommissionRefused: permission denied, or the project is gone for good.
            DecommissionUnavailable: 5xx, 429, timeout, or the operation outlived its deadline.
        """
        project = await self._visible_project(UNDELETE_PERMISSION)
        if project.get("state") == ACTIVE:
            return DecommissionResult(
                kind=self.kind,
                done=True,
                state=ACTIVE,
                detail=f"GCP project {self.project_id} is ACTIVE: nothing to undo",
            )
        operation = await self._call("POST", f"/v3/{project['name']}:undelete", UNDELETE_PERMISSION, {})
        operation = await self._wait(operation, UNDELETE_PERMISSION)
        project = await self._visible_project(GET_PERMISSION)
        return DecommissionResult(
            kind=self.kind,
            done=project.get("state") == ACTIVE,
            state=str(project.get("state")),
            detail=f"GCP project {self.project_id} was undeleted; {UNDELETE_CAVEATS}",
            operation=operation.get("name"),
        )

    # --- HTTP --------------------------------------------------------------------------------------

    async def _project(self) -> dict[str, Any] | None:
        """The project, or None when Resource Manager says 403/404 (it answers 403 for unknown projects)."""
        try:
            project = await self._call("GET", f"/v3/projects/{self.project_id}", GET_PERMISSION)
        except _NotVisible:
            return None
        if not isinstance(project.get("name"), str) or not project["name"].startswith("projects/"):
            raise DecommissionUnavailable(
                f"Resource Manager answered projects.get {self.project_id} without a resource name "
                f"(name={project.get('name')!r}); retrying is safe"
            )
        return project

    async def _visible_project(self, permission: str) -> dict[str, Any]:
        project = await self._project()
        if project is None:
            raise DecommissionRefused(
                f"project {self.project_id} does not exist or the caller can't see it "
                f"({GET_PERMISSION} denied; {permission} is needed too)"
            )
        return project

    async def _granted(self, name: str) -> set[str]:
        body = {"permissions": [DELETE_PERMISSION, UNDELETE_PERMISSION]}
        try:
            answer = await self._call("POST", f"/v3/{name}:testIamPermissions", GET_PERMISSION, body)
        except _NotVisible:
            return set()
        return set(answer.get("permissions", []))

    async def _wait(self, operation: dict[str, Any], permission: str) -> dict[str, Any]:
        """Poll a long-running operation until done, with a growing interval and a deadline."""
        deadline = time.monotonic() + self._operation_timeout.total_seconds()
        interval = self._poll_initial
        while not operation.get("done"):
            name = operation.get("name")
            if not name:
                raise DecommissionUnavailable("Resource Manager returned an unfinished operation without a name")
            if time.monotonic() >= deadline:
                raise DecommissionUnavailable(
                    f"operation {name} on {self.project_id} is not done after {self._operation_timeout}; "
                    "it is idempotent: retrying is safe"
                )
            self._on_progress(f"waiting for {name} on project {self.project_id}")
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 2, self._poll_max)
            operation = await self._call("GET", f"/v3/{name}", permission)
        error = operation.get("error")
        if error:
            details = error if isinstance(error, dict) else {"message": error}
            message = f"operation {operation.get('name')} on {self.project_id} failed: {details.get('message', error)}"
            if details.get("code") in _RETRYABLE_RPC_CODES:
                raise DecommissionUnavailable(message)
            raise DecommissionRefused(message)
        return operation

    async def _call(
        self, method: str, path: str, permission: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One Resource Manager call; Google errors become provider errors naming ``permission``."""
        try:
            response = await self._http.request(method, path, json=body)
        except google.auth.exceptions.GoogleAuthError as exc:
            if is_transport_problem(exc):
                raise DecommissionUnavailable(
                    "could not get a Google access token for Resource Manager: the token endpoint or metadata "
                    f"server is unreachable or failing ({describe_auth_error(exc)}); retrying is safe"
                ) from exc
            raise DecommissionRefused(
                f"Google credentials for Resource Manager are unusable: {describe_auth_error(exc)}"
            ) from exc
        except httpx.HTTPError as exc:
            # Never str(exc): h11's protocol errors repeat header lines, and this client sends the bearer token.
            raise DecommissionUnavailable(
                f"Resource Manager {method} {path} failed: {describe_transport_error(exc)}; retrying is safe"
            ) from exc
        if response.is_success:
            try:
                answer = response.json()
            except ValueError as exc:
                raise DecommissionUnavailable(
                    f"Resource Manager {method} {path} answered {response.status_code} with a body that is not JSON "
                    f"({response.headers.get('content-type', 'no content type')}): a proxy in the way? Retrying is safe"
                ) from exc
            if not isinstance(answer, dict):
                raise DecommissionUnavailable(
                    f"Resource Manager {method} {path} answered a JSON {type(answer).__name__}, not an object; "
                    "retrying is safe"
                )
            return answer
        message = parse_google_error(response).summary
        status = response.status_code
        if status == 429 or status >= 500:
            raise DecommissionUnavailable(f"Resource Manager {method} {path} answered {status}: {message}")
        if status == 401:
            raise DecommissionRefused(f"Resource Manager rejected the credentials (401): {message}")
        if status in (403, 404):
            if method == "GET" and path == f"/v3/projects/{self.project_id}":
                raise _NotVisible(message)
            raise DecommissionRefused(
                f"permission {permission} denied on project {self.project_id} ({status}): {message}"
            )
        raise DecommissionRefused(f"Resource Manager {method} {path} refused ({status}): {message}")

    async def aclose(self) -> None:
        """Close the HTTP client and the token-refresh session."""
        await self._http.aclose()
        self._auth.close()


class _NotVisible(Exception):
    """403/404 on projects.get: the project does not exist, or the caller may not see it."""
