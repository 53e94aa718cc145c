"""TemporalSettings.from_env reads what the temporal CLI reads (envconfig), and names every unusable setting."""

from __future__ import annotations

import os

import pytest
import trustme
from temporalio.service import TLSConfig

from settings import TemporalConfigError, TemporalSettings

PROFILES = """
[profile.default]
address = "localhost:7233"

[profile.cloud]
address = "payments.a1b2c.tmprl.cloud:7233"
namespace = "payments.a1b2c"
api_key = "not-a-real-key"

[profile.mtls]
address = "payments.a1b2c.tmprl.cloud:7233"
namespace = "payments.a1b2c"
[profile.mtls.tls]
client_cert_path = "CERT"
client_key_path = "KEY"
"""


@pytest.fixture
def profiles(tmp_path):
    cert = trustme.CA().issue_cert("worker@cutover.test")
    (tmp_path / "c.pem").write_bytes(cert.cert_chain_pems[0].bytes())
    (tmp_path / "c.key").write_bytes(cert.private_key_pem.bytes())
    path = tmp_path / "temporal.toml"
    path.write_text(PROFILES.replace("CERT", str(tmp_path / "c.pem")).replace("KEY", str(tmp_path / "c.key")))
    return path


def test_defaults_are_the_dev_server(tmp_path):
    settings = TemporalSettings.from_env({"TEMPORAL_CONFIG_FILE": os.devnull})
    assert (settings.address, settings.namespace, settings.tls, settings.api_key) == (
        "localhost:7233",
        "default",
        False,
        None,
    )


def test_profiles_and_environment(profiles):
    cloud = TemporalSettings.from_env({"TEMPORAL_CONFIG_FILE": str(profiles), "TEMPORAL_PROFILE": "cloud"})
    assert cloud.address == "payments.a1b2c.tmprl.cloud:7233" and cloud.namespace == "payments.a1b2c"
    assert cloud.api_key == "not-a-real-key" and cloud.tls is True, "an API key turns TLS on"
    assert "not-a-real-key" not in cloud.describe() and "not-a-real-key" not in repr(cloud)

    mtls = TemporalSettings.from_env({"TEMPORAL_CONFIG_FILE": str(profiles), "TEMPORAL_PROFILE": "mtls"})
    assert isinstance(mtls.tls, TLSConfig) and mtls.tls.client_cert and mtls.tls.client_private_key
    assert "mTLS" in mtls.describe()

    overridden = TemporalSettings.from_env(
        {
            "TEMPORAL_CONFIG_FILE": str(profiles),
            "TEMPORAL_PROFILE": "cloud",
            "TEMPORAL_NAMESPACE": "other.a1b2c",
            "TEMPORAL_GRPC_META_X_TEAM": "payments",
            "CUTOVER_TASK_QUEUE": "cutover-payments",
        }
    )
    assert overridden.namespace == "other.a1b2c", "the environment overrides the profile"
    assert overridden.rpc_metadata == {"x-team": "payments"} and overridden.task_queue == "cutover-payments"
    assert overridden.override(address="127.0.0.1:1").address == "127.0.0.1:1"

    plain_tls = TemporalSettings.from_env({"TEMPORAL_CONFIG_FILE": str(profiles), "TEMPORAL_TLS": "true"})
    assert isinstance(plain_tls.tls, TLSConfig) and plain_tls.tls.server_root_ca_cert is None


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"TEMPORAL_PROFILE": "nope"}, "Profile 'nope' not found"),
        ({"TEMPORAL_CONFIG_FILE": "/nonexistent/temporal.toml"}, "TEMPORAL_CONFIG_FILE: /nonexistent/temporal.toml"),
        ({"TEMPORAL_TLS_CLIENT_CERT_PATH": "/nonexistent/c.pem"}, "TEMPORAL_TLS_CLIENT_CERT_PATH"),
        ({"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/nonexistent/ca.pem"}, "cannot read /nonexistent/ca.pem"),
        ({"TEMPORAL_TLS_DISABLE_HOST_VERIFICATION": "true"}, "TEMPORAL_TLS_SERVER_NAME"),
        ({"CUTOVER_PAYLOAD_KEYS": "k=c2hvcnQ="}, "5 bytes, AES-256 needs 32"),
    ],
)
def test_unusable_settings_are_named(profiles, env, words):
    env = {"TEMPORAL_CONFIG_FILE": str(profiles), **env}
    with pytest.raises(TemporalConfigError) as info:
        TemporalSettings.from_env(env)
    assert words in str(info.value)


def test_mtls_needs_both_halves(profiles, tmp_path):
    env = {"TEMPORAL_CONFIG_FILE": str(profiles), "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "c.pem")}
    with pytest.raises(TemporalConfigError, match="both a client certificate and its key"):
        TemporalSettings.from_env(env)
