"""A local Cloud Resource Manager v3 (projects get/delete/undelete/testIamPermissions, operations.get).

A real loopback HTTP server. Every request is matched to a method of the ``cloudresourcemanager.v3``
discovery document (path, HTTP method, path-parameter patterns, query parameters), its body validated
against the method's request schema, and every answer against its response schema; a mismatch is
recorded in ``problems``, answered with 400, and raised by the context manager's exit, so the test
fails. Semantics follow dns.md §3.3: delete moves ACTIVE to DELETE_REQUESTED through a long-running
operation and is idempotent on a DELETE_REQUESTED project; undelete only works on DELETE_REQUESTED;
an unknown project answers 403 like the real API.

Usage::

    async with ResourceManagerFake(operation_polls=2) as fake:
        fake.add_project("a-project-123", permissions=DELETE_ONLY)
        ...  # point api_endpoint at fake.endpoint
        fake.calls       # method ids in order, e.g. ["cloudresourcemanager.projects.get", ...]
        fake.projects["a-project-123"].state
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.cloud_logging import validate
from tests.fakes.discovery import discovery

DOCUMENT = "cloudresourcemanager.v3"
GET = "resourcemanager.projects.get"
DELETE = "resourcemanager.projects.delete"
UNDELETE = "resourcemanager.projects.undelete"
ALL_PERMISSIONS = frozenset({GET, DELETE, UNDELETE})
_TYPE = "type.googleapis.com/google.cloud.resourcemanager.v3."


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class FakeProject:
    """One project and what the caller may do on it."""

    project_id: str
    number: int
    state: str = "ACTIVE"
    permissions: frozenset[str] = ALL_PERMISSIONS
    lien: bool = False
    """A lien blocks deletion with FAILED_PRECONDITION."""
    delete_time: str | None = None
    create_time: str = field(default_factory=_now)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"projects/{self.number}"

    def resource(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "projectId": self.project_id,
            "parent": "organizations/123456789012",
            "state": self.state,
            "displayName": self.project_id,
            "createTime": self.create_time,
            "updateTime": self.delete_time or self.create_time,
            "etag": f'W/"{self.state.lower()}"',
        }
        if self.delete_time:
            body["deleteTime"] = self.delete_time
        if self.labels:
            body["labels"] = dict(self.labels)
        return body


@dataclass
class _Operation:
    name: str
    project: FakeProject
    target_state: str
    metadata_type: str
    polls_left: int
    done: bool = False

    def finish(self) -> None:
        self.done = True
        self.project.state = self.target_state
        self.project.delete_time = _now() if self.target_state == "DELETE_REQUESTED" else None

    def resource(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "done": self.done, "metadata": {"@type": _TYPE + self.metadata_type}}
        if self.done:
            body["response"] = {"@type": _TYPE + "Project", **self.project.resource()}
        return body


class ResourceManagerFake:
    """Resource Manager v3 for a few projects, on 127.0.0.1."""

    def __init__(self, *, operation_polls: int = 0) -> None:
        """``operation_polls``: how many operations.get calls an operation stays not done (0: done at once)."""
        self.projects: dict[str, FakeProject] = {}
        self.calls: list[str] = []
        self.problems: list[str] = []
        self.operation_polls = operation_polls
        self.delay = 0.0
        """Seconds every answer takes (a slow API)."""
        self.endpoint = ""
        self._operations: dict[str, _Operation] = {}
        self._failures: list[int] = []
        self._raw: list[tuple[int, str, str]] = []
        self._numbers = itertools.count(100000000001)
        self._runner: web.AppRunner | None = None
        self._doc = discovery(DOCUMENT)

    # --- test controls -----------------------------------------------------------------------------

    def add_project(
        self,
        project_id: str,
        *,
        state: str = "ACTIVE",
        permissions: frozenset[str] = ALL_PERMISSIONS,
        labels: dict[str, str] | None = None,
    ) -> FakeProject:
        project = FakeProject(
            project_id, next(self._numbers), state=state, permissions=permissions, labels=dict(labels or {})
        )
        if state == "DELETE_REQUESTED":
            project.delete_time = _now()
        self.projects[project_id] = project
        return project

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` calls with ``status`` (e.g. 503) before doing anything."""
        self._failures.extend([status] * times)

    def answer_raw_next(self, body: str, *, status: int = 200, content_type: str = "text/html") -> None:
        """Answer the next call with ``body`` as is, off the schema, doing nothing: a proxy or a broken API."""
        self._raw.append((status, content_type, body))

    # --- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> ResourceManagerFake:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.endpoint = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        assert not self.problems, "Resource Manager fake saw requests or answers off Google's schema:\n" + "\n".join(
            self.problems
        )

    # --- the API -----------------------------------------------------------------------------------

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        return web.json_response({"error": {"code": status, "message": message, "status": code}}, status=status)

    def _denied(self, permission: str, resource: str) -> web.Response:
        return self._error(
            403,
            "PERMISSION_DENIED",
            f"Permission '{permission}' denied on resource '//cloudresourcemanager.googleapis.com/{resource}' "
            "(or it may not exist).",
        )

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            method, params = self._doc.match(request.method, request.path)
            self._doc.check_query(method, dict(request.query))
            body = await request.json() if request.can_read_body else None
            if method.request:
                validate(DOCUMENT, method.request, body if body is not None else {})
            elif body is not None:
                raise AssertionError(f"{method.id} takes no body")
        except Exception as exc:  # AssertionError from match/check_query, jsonschema errors, bad JSON
            self.problems.append(f"{request.method} {request.path_qs}: {exc}")
            return self._error(400, "INVALID_ARGUMENT", f"request off schema: {exc}")
        self.calls.append(method.id)
        if self.delay:
            await asyncio.sleep(self.delay)
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return self._error(401, "UNAUTHENTICATED", "Request is missing required authentication credential.")
        if self._raw:
            raw_status, content_type, text = self._raw.pop(0)
            return web.Response(status=raw_status, text=text, content_type=content_type)
        if self._failures:
            status = self._failures.pop(0)
            return self._error(status, "UNAVAILABLE" if status >= 500 else "RESOURCE_EXHAUSTED", "try again later")
        handler = {
            "cloudresourcemanager.projects.get": self._get,
            "cloudresourcemanager.projects.delete": self._delete,
            "cloudresourcemanager.projects.undelete": self._undelete,
            "cloudresourcemanager.projects.testIamPermissions": self._test_permissions,
            "cloudresourcemanager.operations.get": self._operation,
        }.get(method.id)
        if handler is None:
            self.problems.append(f"{method.id} is not served by this fake")
            return self._error(501, "UNIMPLEMENTED", method.id)
        name = params.get("name") or params.get("resource") or ""
        status, answer = handler(name, body or {})
        if isinstance(answer, web.Response):
            return answer
        try:
            if method.response:
                validate(DOCUMENT, method.response, answer)
        except Exception as exc:
            self.problems.append(f"{method.id} answer off schema: {exc}")
            return self._error(500, "INTERNAL", str(exc))
        return web.json_response(answer, status=status)

    def _find(self, name: str) -> FakeProject | None:
        key = name.removeprefix("projects/")
        for project in self.projects.values():
            if key in (project.project_id, str(project.number)):
                return project
        return None

    def _visible(self, name: str) -> FakeProject | web.Response:
        project = self._find(name)
        if project is None or GET not in project.permissions:
            return self._denied(GET, name)
        return project

    def _get(self, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        project = self._visible(name)
        return (200, project) if isinstance(project, web.Response) else (200, project.resource())

    def _test_permissions(self, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        project = self._visible(name)
        if isinstance(project, web.Response):
            return 403, project
        granted = [permission for permission in body.get("permissions", []) if permission in project.permissions]
        return 200, {"permissions": granted} if granted else {}

    def _start(self, project: FakeProject, target: str, metadata: str) -> dict[str, Any]:
        operation = _Operation(
            name=f"operations/{'dp' if target == 'DELETE_REQUESTED' else 'up'}.{len(self._operations) + 1:06d}",
            project=project,
            target_state=target,
            metadata_type=metadata,
            polls_left=self.operation_polls,
        )
        if not operation.polls_left:
            operation.finish()
        self._operations[operation.name] = operation
        return operation.resource()

    def _delete(self, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        project = self._visible(name)
        if isinstance(project, web.Response):
            return 403, project
        if DELETE not in project.permissions:
            return 403, self._denied(DELETE, name)
        if project.lien:
            return 400, self._error(
                400, "FAILED_PRECONDITION", "A lien to prevent deletion was placed on the project by [cutover-test]."
            )
        if project.state == "DELETE_REQUESTED":
            # "will not cause an error, but also won't do anything" (dns.md §3.3)
            done = _Operation("operations/dp.noop", project, project.state, "DeleteProjectMetadata", 0, done=True)
            return 200, done.resource()
        return 200, self._start(project, "DELETE_REQUESTED", "DeleteProjectMetadata")

    def _undelete(self, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        project = self._visible(name)
        if isinstance(project, web.Response):
            return 403, project
        if UNDELETE not in project.permissions:
            return 403, self._denied(UNDELETE, name)
        if project.state != "DELETE_REQUESTED":
            return 400, self._error(400, "FAILED_PRECONDITION", f"Project {project.project_id} is not deleted.")
        return 200, self._start(project, "ACTIVE", "UndeleteProjectMetadata")

    def _operation(self, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        operation = self._operations.get(name)
        if operation is None:
            return 404, self._error(404, "NOT_FOUND", f"Operation {name} not found")
        if not operation.done:
            operation.polls_left -= 1
            if operation.polls_left <= 0:
                operation.finish()
        return 200, operation.resource()
