"""gcp-project decommission against a local Resource Manager v3 checked against Google's discovery document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import google.oauth2.credentials
import google.oauth2.service_account
import httpx
import pytest

from models.plan import GcpProjectDecommission
from providers.decommission.gcp_project import GcpProjectDecommissioner
from providers.errors import DecommissionRefused, DecommissionUnavailable
from sandbox.free_ports import port_free_on
from tests.dns.google_keys import MetadataServerCredentials, TokenEndpoint, service_account_info
from tests.fakes.resource_manager import DELETE, GET, ResourceManagerFake
from tests.kong.fixtures import header_echoing_server

A_PROJECT = "a-project-123"
B_PROJECT = "b-project-456"
DNS_PROJECT = "dns-project-789"
RM = "cloudresourcemanager."


@pytest.fixture
async def fake() -> AsyncIterator[ResourceManagerFake]:
    async with ResourceManagerFake() as server:
        yield server


def decommissioner(
    fake: ResourceManagerFake, project: str = A_PROJECT, *, dns_project: str | None = DNS_PROJECT, **kwargs: Any
) -> GcpProjectDecommissioner:
    section = GcpProjectDecommission(
        kind="gcp-project", project_id=project, protected_projects=[B_PROJECT], api_endpoint=fake.endpoint
    )
    return GcpProjectDecommissioner(
        section,
        dns_project=dns_project,
        credentials=google.oauth2.credentials.Credentials(token="test-access-token"),
        poll_initial=0.01,
        poll_max=0.05,
        **kwargs,
    )


async def test_preflight_passes_for_a_deletable_project(fake: ResourceManagerFake) -> None:
    fake.add_project(A_PROJECT)
    async with decommissioner(fake) as provider:
        preflight = await provider.preflight()
    assert preflight.ok and preflight.reversible
    assert preflight.problems == ()
    assert any("exists, state ACTIVE" in check for check in preflight.checks)
    assert any("holds resourcemanager.projects.delete" in check for check in preflight.checks)
    assert fake.calls == [RM + "projects.get", RM + "projects.testIamPermissions"]
    assert fake.projects[A_PROJECT].state == "ACTIVE"


async def test_preflight_lists_every_problem(fake: ResourceManagerFake) -> None:
    fake.add_project(DNS_PROJECT, permissions=frozenset({GET}))
    async with decommissioner(fake, DNS_PROJECT) as provider:
        preflight = await provider.preflight()
    assert not preflight.ok and not preflight.reversible
    assert len(preflight.problems) == 2
    assert "hosts the Cloud DNS zone" in preflight.problems[0]
    assert "lacks resourcemanager.projects.delete" in preflight.problems[1]


async def test_preflight_refuses_protected_and_missing_projects(fake: ResourceManagerFake) -> None:
    fake.add_project(B_PROJECT)
    async with decommissioner(fake, B_PROJECT) as provider:
        protected = await provider.preflight()
    assert not protected.ok and "protected_projects" in protected.problems[0]

    async with decommissioner(fake, "no-such-project") as provider:
        missing = await provider.preflight()
    assert not missing.ok
    assert missing.problems == (
        "project no-such-project does not exist or the caller can't see it (resourcemanager.projects.get denied)",
    )


async def test_delete_waits_for_the_operation_and_is_idempotent() -> None:
    async with ResourceManagerFake(operation_polls=3) as fake:
        fake.add_project(A_PROJECT)
        progress: list[str] = []
        async with decommissioner(fake, on_progress=progress.append) as provider:
            result = await provider.delete()
            assert fake.projects[A_PROJECT].state == "DELETE_REQUESTED"
            assert result.done and result.state == "DELETE_REQUESTED"
            assert result.operation is not None and result.operation.startswith("operations/")
            assert result.reversible_until is not None
            assert abs(result.reversible_until - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
            assert "gcloud projects undelete a-project-123" in result.detail
            assert fake.calls.count(RM + "operations.get") == 3
            assert len(progress) == 3

            calls_before = len(fake.calls)
            again = await provider.delete()
        assert again.state == "DELETE_REQUESTED" and again.done
        assert "already DELETE_REQUESTED" in again.detail
        assert again.reversible_until == result.reversible_until
        assert fake.calls[calls_before:] == [RM + "projects.get"]  # no second DELETE
        assert fake.calls.count(RM + "projects.delete") == 1


async def test_undelete_restores_the_project(fake: ResourceManagerFake) -> None:
    fake.add_project(A_PROJECT)
    async with decommissioner(fake) as provider:
        await provider.delete()
        restored = await provider.undo()
        assert fake.projects[A_PROJECT].state == "ACTIVE"
        assert restored.done and restored.state == "ACTIVE"
        assert "billing is not re-attached" in restored.detail

        again = await provider.undo()
    assert again.state == "ACTIVE" and "nothing to undo" in again.detail
    assert fake.calls.count(RM + "projects.undelete") == 1


async def test_permission_denied_names_the_missing_permission(fake: ResourceManagerFake) -> None:
    fake.add_project(A_PROJECT, permissions=frozenset({GET}))
    async with decommissioner(fake) as provider:
        with pytest.raises(DecommissionRefused, match=r"permission resourcemanager\.projects\.delete denied"):
            await provider.delete()
        fake.projects[A_PROJECT].state = "DELETE_REQUESTED"
        with pytest.raises(DecommissionRefused, match=r"permission resourcemanager\.projects\.undelete denied"):
            await provider.undo()
    assert fake.projects[A_PROJECT].state == "DELETE_REQUESTED"


@pytest.mark.parametrize("project", [B_PROJECT, DNS_PROJECT])
async def test_wrong_project_is_refused_before_any_call(fake: ResourceManagerFake, project: str) -> None:
    fake.add_project(project, permissions=frozenset({GET, DELETE}))
    async with decommissioner(fake, project) as provider:
        with pytest.raises(DecommissionRefused, match="will not delete it"):
            await provider.delete()
    assert fake.calls == []
    assert fake.projects[project].state == "ACTIVE"


async def test_lien_is_a_refusal(fake: ResourceManagerFake) -> None:
    fake.add_project(A_PROJECT).lien = True
    async with decommissioner(fake) as provider:
        with pytest.raises(DecommissionRefused, match="FAILED_PRECONDITION A lien"):
            await provider.delete()


async def test_unknown_project_is_a_refusal(fake: ResourceManagerFake) -> None:
    async with decommissioner(fake) as provider:
        with pytest.raises(DecommissionRefused, match="does not exist or the caller can't see it"):
            await provider.delete()


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_transient_errors_are_retryable(fake: ResourceManagerFake, status: int) -> None:
    fake.add_project(A_PROJECT)
    fake.fail_next(status)
    async with decommissioner(fake) as provider:
        with pytest.raises(DecommissionUnavailable, match=str(status)):
            await provider.delete()
        result = await provider.delete()  # what a Temporal retry does
    assert result.state == "DELETE_REQUESTED"


async def test_an_operation_past_its_deadline_is_retryable_and_the_retry_is_idempotent() -> None:
    async with ResourceManagerFake(operation_polls=1000) as fake:
        fake.add_project(A_PROJECT)
        async with decommissioner(fake, operation_timeout=timedelta(milliseconds=200)) as provider:
            with pytest.raises(DecommissionUnavailable, match="not done after"):
                await provider.delete()
            fake.operation_polls = 0
            for operation in fake._operations.values():
                operation.finish()  # Google finished it later
            result = await provider.delete()
        assert result.state == "DELETE_REQUESTED"
        assert fake.calls.count(RM + "projects.delete") == 1


async def test_missing_credentials_header_is_rejected_by_the_fake(fake: ResourceManagerFake) -> None:
    """The fake insists on a bearer token, so the provider's auth is exercised for real."""
    from google.auth.credentials import AnonymousCredentials

    fake.add_project(A_PROJECT)
    section = GcpProjectDecommission(kind="gcp-project", project_id=A_PROJECT, api_endpoint=fake.endpoint)
    async with GcpProjectDecommissioner(section, credentials=AnonymousCredentials()) as provider:
        with pytest.raises(DecommissionRefused, match="401"):
            await provider.delete()


async def test_the_fake_fails_the_test_on_a_request_off_googles_schema() -> None:
    fake = ResourceManagerFake()
    await fake.__aenter__()
    fake.add_project(A_PROJECT)
    async with httpx.AsyncClient(headers={"Authorization": "Bearer t"}) as client:
        response = await client.post(
            f"{fake.endpoint}/v3/projects/{A_PROJECT}:testIamPermissions", json={"perms": [DELETE]}
        )
    assert response.status_code == 400
    with pytest.raises(AssertionError, match="perms"):
        await fake.__aexit__(None, None, None)


async def test_a_transport_error_quoting_the_bearer_token_is_reported_without_it() -> None:
    token = "ya29.resource-manager-token-3c7a"
    async with header_echoing_server("Authorization") as url:
        section = GcpProjectDecommission(kind="gcp-project", project_id=A_PROJECT, api_endpoint=url)
        credentials = google.oauth2.credentials.Credentials(token=token)
        async with GcpProjectDecommissioner(section, credentials=credentials) as provider:
            with pytest.raises(DecommissionUnavailable) as failed:
                await provider.delete()
    assert token in str(failed.value.__cause__)
    assert token not in str(failed.value) and "RemoteProtocolError" in str(failed.value)


async def test_a_refused_grant_is_a_refusal_and_a_metadata_blip_is_retryable(fake: ResourceManagerFake) -> None:
    fake.add_project(A_PROJECT)
    section = GcpProjectDecommission(kind="gcp-project", project_id=A_PROJECT, api_endpoint=fake.endpoint)
    async with TokenEndpoint(lambda n: (400, {"error": "invalid_grant", "error_description": "Invalid JWT"})) as ep:
        refused_key = google.oauth2.service_account.Credentials.from_service_account_info(
            service_account_info(ep.url), scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        async with GcpProjectDecommissioner(section, credentials=refused_key) as provider:
            with pytest.raises(DecommissionRefused, match=r"unusable: RefreshError \(invalid_grant\)") as refused:
                await provider.delete()
    assert not refused.value.retryable
    closed = port_free_on(["127.0.0.1"])
    async with GcpProjectDecommissioner(
        section, credentials=MetadataServerCredentials(f"http://127.0.0.1:{closed}")
    ) as provider:
        with pytest.raises(DecommissionUnavailable, match="metadata server is unreachable") as blip:
            await provider.delete()
    assert blip.value.retryable
    assert fake.calls == [] and fake.projects[A_PROJECT].state == "ACTIVE"


async def test_closing_the_provider_closes_its_token_refresh_session(fake: ResourceManagerFake) -> None:
    fake.add_project(A_PROJECT)
    section = GcpProjectDecommission(kind="gcp-project", project_id=A_PROJECT, api_endpoint=fake.endpoint)
    async with TokenEndpoint() as ep:
        key = google.oauth2.service_account.Credentials.from_service_account_info(
            service_account_info(ep.url), scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        provider = GcpProjectDecommissioner(section, credentials=key)
        preflight = await provider.preflight()
        assert preflight.ok and ep.grants == 1 and ep.open_connections == 1
        await provider.aclose()
        assert await ep.wait_connections_closed() == 0


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("<html><body>Service Unavailable</body></html>", "text/html", "with a body that is not JSON"),
        ('["not", "an", "object"]', "application/json", "answered a JSON list, not an object"),
        ('{"projectId": "a-project-123", "state": "ACTIVE"}', "application/json", "without a resource name"),
    ],
)
async def test_an_unexpected_answer_is_retryable_and_deletes_nothing(
    fake: ResourceManagerFake, body: str, content_type: str, message: str
) -> None:
    fake.add_project(A_PROJECT)
    fake.answer_raw_next(body, content_type=content_type)
    async with decommissioner(fake) as provider:
        with pytest.raises(DecommissionUnavailable, match=message) as failed:
            await provider.delete()
        assert failed.value.retryable
        assert fake.projects[A_PROJECT].state == "ACTIVE" and fake.calls == [RM + "projects.get"]
        result = await provider.delete()  # what a Temporal retry does
    assert result.state == "DELETE_REQUESTED"
