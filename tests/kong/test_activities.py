"""The Kong activities in Temporal's ActivityEnvironment, against the emulator over loopback HTTP."""

from __future__ import annotations

import httpx
import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.kong import KongActivities
from models.kong import KongInspectInput, RepointInput, RestoreServiceInput
from providers.secrets import EnvSecrets
from sandbox.kong import running_emulator
from tests.kong.fixtures import sandbox_config, section
from tests.kong.openapi import RecordingTransport

TOKEN = "emulator-admin-token-for-activity-tests"


def test_activity_names_are_the_workflow_contract() -> None:
    names = [activity._Definition.must_from_callable(fn).name for fn in KongActivities().activities()]
    assert names == ["kong_inspect", "kong_repoint_service", "kong_restore_service", "kong_await_data_planes"]


async def test_inspect_repoint_restore_through_activities(recorder: RecordingTransport) -> None:
    secrets = EnvSecrets({"KONG_ADMIN_TOKEN": TOKEN})
    kong_activities = KongActivities(secrets=secrets, transport=recorder)
    env = ActivityEnvironment()
    async with running_emulator(config=sandbox_config(8443), admin_token=TOKEN) as kong:
        plan_kong = section(kong, token_env="KONG_ADMIN_TOKEN")
        inspection = await env.run(
            kong_activities.inspect,
            KongInspectInput(
                kong=plan_kong, strategy="alias", record="origin-api.example.test.", target="b-project.example.test."
            ),
        )
        repointed = await env.run(
            kong_activities.repoint_service,
            RepointInput(kong=plan_kong, expected=inspection.service, new_host="origin-api.example.test."),
        )
        assert kong.store.service("orders-api")["host"] == "origin-api.example.test" == repointed.host
        restored = await env.run(
            kong_activities.restore_service,
            RestoreServiceInput(kong=plan_kong, original=inspection.service, repointed_host="origin-api.example.test."),
        )
    assert restored.host == "a-project.example.test" == kong.store.service("orders-api")["host"]
    assert inspection.shape_after.host_header == "origin-api.example.test:8443"
    dumped = inspection.model_dump_json() + repointed.model_dump_json()
    assert TOKEN not in dumped  # no secret in any result


async def test_errors_leave_as_typed_application_errors(recorder: RecordingTransport) -> None:
    env = ActivityEnvironment()
    async with running_emulator(config=sandbox_config(8443), mode="db-less") as kong:
        kong_activities = KongActivities(secrets=EnvSecrets({}), transport=recorder)
        plan_kong = section(kong)
        inspection = await env.run(
            kong_activities.inspect,
            KongInspectInput(
                kong=plan_kong, strategy="alias", record="origin-api.example.test.", target="b-project.example.test."
            ),
        )
        with pytest.raises(ApplicationError) as read_only:
            await env.run(
                kong_activities.repoint_service,
                RepointInput(kong=plan_kong, expected=inspection.service, new_host="origin-api.example.test"),
            )
        kong.admin_api.failures.append(_rule(count=10, status=503))
        with pytest.raises(ApplicationError) as unavailable:
            await env.run(
                kong_activities.inspect,
                KongInspectInput(kong=plan_kong, strategy="cname", record="a-project.example.test.", target="b."),
            )
        kong.admin_api.failures.clear()
        changed = inspection.service.model_copy(update={"entity": {**inspection.service.entity, "port": 1}})
        with pytest.raises(ApplicationError) as conflict:
            await env.run(
                kong_activities.restore_service,
                RestoreServiceInput(kong=plan_kong, original=changed, repointed_host="origin-api.example.test"),
            )
        konnect = section(kong, admin_url="https://eu.api.konghq.com/v2/control-planes/x")
        with pytest.raises(ApplicationError) as unsupported:
            await env.run(
                kong_activities.inspect,
                KongInspectInput(kong=konnect, strategy="cname", record="a-project.example.test.", target="b."),
            )
        with pytest.raises(ApplicationError) as no_token:
            await env.run(
                kong_activities.inspect,
                KongInspectInput(
                    kong=section(kong, token_env="CUTOVER_UNSET_TOKEN"), strategy="cname", record="a.", target="b."
                ),
            )
    assert (read_only.value.type, read_only.value.non_retryable) == ("GatewayReadOnly", True)
    assert "Control Plane" in read_only.value.message
    assert (unavailable.value.type, unavailable.value.non_retryable) == ("GatewayUnavailable", False)
    assert (conflict.value.type, conflict.value.non_retryable) == ("GatewayConflict", True)
    assert (unsupported.value.type, unsupported.value.non_retryable) == ("GatewayUnsupported", True)
    assert (no_token.value.type, no_token.value.non_retryable) == ("ConfigError", True)


async def test_unreachable_admin_api_is_retryable() -> None:
    env = ActivityEnvironment()
    async with running_emulator() as gone:
        url = gone.admin_url
    transport = httpx.AsyncHTTPTransport()
    kong_activities = KongActivities(transport=transport)
    plan_kong = section(gone, admin_url=url)
    with pytest.raises(ApplicationError) as raised:
        await env.run(
            kong_activities.inspect,
            KongInspectInput(kong=plan_kong, strategy="cname", record="a-project.example.test.", target="b."),
        )
    await transport.aclose()
    assert raised.value.type == "GatewayUnavailable" and not raised.value.non_retryable


def _rule(**kwargs):
    from sandbox.kong.admin import FailureRule

    return FailureRule(**kwargs)
