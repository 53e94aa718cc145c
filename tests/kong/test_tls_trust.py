"""One CA-bundle helper for every HTTPS client: a bad bundle is a ConfigError naming the plan field.

The helper is checked on its own and through each client that uses it (Kong Admin API, webhook
decommission, readiness), with real files: a missing path, a file that is not PEM, the sandbox CA.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from models.plan import KongSection, WebhookDecommission
from models.readiness import ReadinessInput
from providers.decommission.webhook import DeletionContext, WebhookDecommissioner
from providers.errors import ConfigError
from providers.gateway.kong_admin import KongAdminClient
from providers.readiness import probe_readiness
from providers.secrets import EnvSecrets
from providers.tls import verify_context
from sandbox.pki import Pki
from tests.kong.fixtures import runtimes_ab
from tests.readiness.test_readiness import readiness, shape


@pytest.fixture
def not_pem(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("this is not a certificate\n")
    return str(path)


def test_verify_context_trusts_the_bundle_or_the_system_roots(pki: Pki) -> None:
    default = verify_context(None, "kong.ca_bundle")
    assert verify_context("", "kong.ca_bundle") is default, "httpx's default trust, built once"
    assert default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname
    assert len(default.get_ca_certs()) > 50, "certifi's roots"
    context = verify_context(str(pki.ca), "kong.ca_bundle")
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert any("cutover sandbox" in str(ca.get("subject")) for ca in context.get_ca_certs())
    assert verify_context(str(pki.ca), "readiness.ca_bundle") is context, "shared while the file is unchanged"


def test_a_changed_bundle_is_loaded_again(pki: Pki, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(pki.ca.read_bytes())
    before = verify_context(str(bundle), "kong.ca_bundle")
    bundle.write_bytes(pki.ca.read_bytes() + b"\n")  # a rotation: new content, new size
    after = verify_context(str(bundle), "kong.ca_bundle")
    assert after is not before
    assert any("cutover sandbox" in str(ca.get("subject")) for ca in after.get_ca_certs())


def test_verify_context_names_the_field_and_the_reason(tmp_path: Path, not_pem: str) -> None:
    missing = str(tmp_path / "absent.pem")
    with pytest.raises(ConfigError) as absent:
        verify_context(missing, "readiness.ca_bundle")
    assert str(absent.value) == f"readiness.ca_bundle {missing}: cannot load it (No such file or directory)"
    with pytest.raises(ConfigError, match=r"^monitor\.source\.ca_bundle .*: cannot load it as a PEM CA bundle"):
        verify_context(not_pem, "monitor.source.ca_bundle")


def test_every_client_refuses_an_unusable_bundle_naming_its_own_field(not_pem: str) -> None:
    kong = KongSection.model_validate({"admin_url": "https://127.0.0.1:1", "service": "s", "ca_bundle": not_pem})
    with pytest.raises(ConfigError, match=r"^kong\.ca_bundle "):
        KongAdminClient(kong, secrets=EnvSecrets({}))
    webhook = WebhookDecommission.model_validate(
        {"kind": "webhook", "url": "https://127.0.0.1:1/decommission", "ca_bundle": not_pem}
    )
    with pytest.raises(ConfigError, match=r"^decommission\.ca_bundle "):
        WebhookDecommissioner(webhook, DeletionContext(workflow_id="wf"))._verify()


async def test_readiness_refuses_an_unusable_bundle(pki: Pki, not_pem: str) -> None:
    async with runtimes_ab(pki) as (_, b):
        section = readiness(pki, b.port, ca_bundle=not_pem, successes=1)
        with pytest.raises(ConfigError, match=r"^readiness\.ca_bundle "):
            await probe_readiness(ReadinessInput(readiness=section, shape=shape(b.port)))
