"""Google credentials: loading a key file, and errors that never quote the key (real RSA keys, real files)."""

from __future__ import annotations

import json
from pathlib import Path

import google.auth.exceptions
import google.oauth2.service_account
import pytest

from providers.dns.factory import build_dns_provider
from providers.errors import ConfigError, DnsAuthError, DnsUnavailable
from providers.google_auth import load_credentials
from providers.secrets import EnvSecrets
from sandbox.free_ports import port_free_on
from tests.dns.conftest import A_PROJECT, cloud_section
from tests.dns.google_keys import MetadataServerCredentials, TokenEndpoint, service_account_info, write_key
from tests.fakes.clouddns import FakeCloudDns

PURPOSE = "dns.provider.credentials_env"


def fragments(text: str, size: int = 12) -> set[str]:
    """Every ``size``-character window of ``text`` that is not only spaces, punctuation or PEM framing."""
    windows = {text[i : i + size] for i in range(len(text) - size + 1)}
    return {w for w in windows if sum(c.isalnum() for c in w) >= size // 2 and "PRIVATE KEY" not in w}


def assert_quotes_nothing_of(message: str, secret: str) -> None:
    leaked = [w for w in fragments(secret) if w in message]
    assert not leaked, f"the message quotes the key: {leaked[:3]}"


def test_a_key_file_path_gives_service_account_credentials(tmp_path: Path) -> None:
    path = write_key(tmp_path, service_account_info("http://127.0.0.1:1/token"))
    credentials = load_credentials("GOOGLE_KEY_FILE", PURPOSE, EnvSecrets({"GOOGLE_KEY_FILE": str(path)}))
    assert isinstance(credentials, google.oauth2.service_account.Credentials)
    assert credentials.service_account_email == "cutover@test-project.iam.gserviceaccount.com"


def test_the_key_json_itself_in_the_variable_is_refused_without_quoting_it() -> None:
    key_json = json.dumps(service_account_info("https://oauth2.googleapis.com/token"))
    with pytest.raises(ConfigError) as refused:
        load_credentials("GOOGLE_KEY_FILE", PURPOSE, EnvSecrets({"GOOGLE_KEY_FILE": key_json}))
    message = str(refused.value)
    assert "GOOGLE_KEY_FILE" in message and "must hold the path of the service-account key file" in message
    assert_quotes_nothing_of(message, key_json)


def test_a_missing_or_unreadable_key_file_gives_the_reason_not_the_name(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent" / "key.json")
    with pytest.raises(ConfigError) as absent:
        load_credentials("GOOGLE_KEY_FILE", PURPOSE, EnvSecrets({"GOOGLE_KEY_FILE": missing}))
    assert "GOOGLE_KEY_FILE" in str(absent.value) and "No such file or directory" in str(absent.value)
    directory = str(tmp_path)
    with pytest.raises(ConfigError, match="Is a directory"):
        load_credentials("GOOGLE_KEY_FILE", PURPOSE, EnvSecrets({"GOOGLE_KEY_FILE": directory}))


def test_a_file_that_is_not_a_key_is_refused_without_quoting_it(tmp_path: Path) -> None:
    info = service_account_info("https://oauth2.googleapis.com/token")
    del info["client_email"]
    path = write_key(tmp_path, info)
    with pytest.raises(ConfigError) as refused:
        load_credentials("GOOGLE_KEY_FILE", PURPOSE, EnvSecrets({"GOOGLE_KEY_FILE": str(path)}))
    assert "is not a usable service-account key (MalformedError)" in str(refused.value)
    assert_quotes_nothing_of(str(refused.value), info["private_key"])
    path.write_text("not json at all")
    with pytest.raises(ConfigError, match=r"not a usable service-account key \(JSONDecodeError\)"):
        load_credentials("GOOGLE_KEY_FILE", PURPOSE, EnvSecrets({"GOOGLE_KEY_FILE": str(path)}))


def test_adc_pointed_at_the_key_json_is_refused_without_quoting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    key_json = json.dumps(service_account_info("https://oauth2.googleapis.com/token"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", key_json)
    with pytest.raises(ConfigError) as refused:
        load_credentials(None, PURPOSE)
    assert "GOOGLE_APPLICATION_CREDENTIALS holds JSON, not a path" in str(refused.value)
    assert_quotes_nothing_of(str(refused.value), key_json)


def test_adc_pointed_at_a_missing_file_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "nope.json"))
    with pytest.raises(ConfigError) as refused:
        load_credentials(None, PURPOSE)
    assert "File $GOOGLE_APPLICATION_CREDENTIALS was not found" in str(refused.value)


# --- token failures through the Cloud DNS provider (H4) ---------------------------------------------


def service_account(endpoint: TokenEndpoint) -> google.oauth2.service_account.Credentials:
    return google.oauth2.service_account.Credentials.from_service_account_info(
        service_account_info(endpoint.url), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )


async def test_a_refused_grant_is_an_auth_error(clouddns: FakeCloudDns) -> None:
    async with TokenEndpoint(lambda n: (400, {"error": "invalid_grant", "error_description": "Invalid JWT"})) as ep:
        async with build_dns_provider(
            cloud_section(clouddns), secrets=EnvSecrets({}), credentials=service_account(ep)
        ) as provider:
            with pytest.raises(DnsAuthError) as refused:
                await provider.snapshot(A_PROJECT)
    assert not refused.value.retryable and ep.grants == 1
    assert "RefreshError (invalid_grant)" in str(refused.value) and "Invalid JWT" not in str(refused.value)
    assert clouddns.requests == []


async def test_a_metadata_server_blip_is_retryable(clouddns: FakeCloudDns) -> None:
    closed = port_free_on(["127.0.0.1"])
    credentials = MetadataServerCredentials(f"http://127.0.0.1:{closed}")
    async with build_dns_provider(cloud_section(clouddns), secrets=EnvSecrets({}), credentials=credentials) as provider:
        with pytest.raises(DnsUnavailable) as blip:
            await provider.snapshot(A_PROJECT)
    refresh_error = blip.value.__cause__
    assert isinstance(refresh_error, google.auth.exceptions.RefreshError)
    assert blip.value.retryable and isinstance(refresh_error.__cause__, google.auth.exceptions.TransportError)
    assert "metadata server is unreachable or failing (RefreshError)" in str(blip.value)


async def test_a_failing_token_endpoint_is_retryable(clouddns: FakeCloudDns) -> None:
    async with TokenEndpoint(lambda n: (503, {"error": "temporarily_unavailable"})) as ep:
        async with build_dns_provider(
            cloud_section(clouddns), secrets=EnvSecrets({}), credentials=service_account(ep)
        ) as provider:
            with pytest.raises(DnsUnavailable) as failing:
                await provider.snapshot(A_PROJECT)
    assert failing.value.retryable and ep.grants == 3  # google-auth's own retries, then ours (Temporal's)
    assert "RefreshError (temporarily_unavailable)" in str(failing.value)


async def test_a_working_token_endpoint_gives_a_token_the_api_accepts(clouddns: FakeCloudDns) -> None:
    clouddns.token = "token-1"
    async with TokenEndpoint() as ep:
        async with build_dns_provider(
            cloud_section(clouddns), secrets=EnvSecrets({}), credentials=service_account(ep)
        ) as provider:
            snapshot = await provider.snapshot(A_PROJECT)
    assert snapshot.rrsets and ep.grants == 1


async def test_closing_the_provider_closes_its_token_refresh_session(clouddns: FakeCloudDns) -> None:
    clouddns.token = "token-1"
    async with TokenEndpoint() as ep:
        provider = build_dns_provider(cloud_section(clouddns), secrets=EnvSecrets({}), credentials=service_account(ep))
        await provider.snapshot(A_PROJECT)
        assert ep.open_connections == 1  # requests keeps the token endpoint's connection alive
        await provider.aclose()
        assert await ep.wait_connections_closed() == 0
