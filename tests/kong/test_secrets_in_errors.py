"""No secret in an error message: a malformed secret is refused by name, a transport failure never quotes a header.

The transport cases use a real broken proxy (:func:`header_echoing_server`) that answers with a
malformed header line repeating the secret header it received; h11's protocol error then quotes the
secret, and the provider's error must not.
"""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.kong import KongActivities
from models.kong import KongInspectInput
from models.plan import KongSection
from providers.errors import ConfigError, GatewayUnavailable
from providers.gateway.kong_admin import ADMIN_TOKEN_HEADER, KongAdminClient
from providers.secrets import EnvSecrets
from tests.kong.fixtures import header_echoing_server

TOKEN = "kong-admin-token-4f9c2b7e1d"


def kong_section(url: str) -> KongSection:
    return KongSection.model_validate({"admin_url": url, "service": "orders-api", "token_env": "KONG_TOKEN"})


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (TOKEN + "\n", "a line feed (LF)"),
        (TOKEN + "\r\n", "a carriage return (CR)"),
        ("kong-admin\x07token-4f9c", "the control character U+0007"),
        ("\tkong-admin-token-4f9c", "a tab"),
    ],
)
def test_a_secret_with_a_control_character_is_refused_by_name(value: str, named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        EnvSecrets({"KONG_TOKEN": value}).require("KONG_TOKEN", "kong.token_env")
    message = str(refused.value)
    assert message.startswith(f"environment variable KONG_TOKEN (named by kong.token_env) contains {named}")
    assert "kong-admin" not in message and "4f9c" not in message


def test_a_token_with_a_trailing_newline_stops_the_kong_client_without_the_token() -> None:
    with pytest.raises(ConfigError) as refused:
        KongAdminClient(kong_section("http://127.0.0.1:1"), secrets=EnvSecrets({"KONG_TOKEN": TOKEN + "\n"}))
    assert "KONG_TOKEN" in str(refused.value) and TOKEN not in str(refused.value)


def test_a_non_ascii_header_secret_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as refused:
        KongAdminClient(kong_section("http://127.0.0.1:1"), secrets=EnvSecrets({"KONG_TOKEN": "tök-4f9c2b7e1d"}))
    assert "KONG_TOKEN" in str(refused.value) and "non-ASCII" in str(refused.value)
    assert "4f9c" not in str(refused.value) and "ö" not in str(refused.value)


async def test_a_transport_error_quoting_the_token_is_reported_without_it() -> None:
    async with header_echoing_server(ADMIN_TOKEN_HEADER) as url:
        client = KongAdminClient(
            kong_section(url), secrets=EnvSecrets({"KONG_TOKEN": TOKEN}), get_attempts=1, retry_backoff=0
        )
        async with client:
            with pytest.raises(GatewayUnavailable) as failed:
                await client.get_service()
    assert TOKEN in str(failed.value.__cause__)  # the third-party error does quote it...
    assert TOKEN not in str(failed.value)  # ...ours does not
    assert str(failed.value) == (
        f"the Kong Admin API exchange failed during reading Service orders-api (GET /services/orders-api) "
        f"({url}/services/orders-api): RemoteProtocolError"
    )


async def test_the_activity_error_carries_no_token_either() -> None:
    async with header_echoing_server(ADMIN_TOKEN_HEADER) as url:
        activities = KongActivities(secrets=EnvSecrets({"KONG_TOKEN": TOKEN}))
        with pytest.raises(ApplicationError) as failed:
            await ActivityEnvironment().run(
                activities.inspect,
                KongInspectInput(kong=kong_section(url), strategy="cname", record="a.example.test.", target="b."),
            )
    assert failed.value.type == "GatewayUnavailable" and not failed.value.non_retryable
    assert TOKEN not in str(failed.value) and TOKEN not in repr(failed.value.details)
