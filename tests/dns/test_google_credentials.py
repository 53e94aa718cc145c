"""Google credentials: loading a key file, and errors that never quote the key (real RSA keys, real files)."""

from __future__ import annotations

import json
from pathlib import Path

import google.oauth2.service_account
import pytest

from providers.errors import ConfigError
from providers.google_auth import load_credentials
from providers.secrets import EnvSecrets
from tests.dns.google_keys import service_account_info, write_key

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
