"""Where the worker and the starter find Temporal, and how they prove who they are to it.

The connection comes from the Temporal SDK's environment configuration (``temporalio.envconfig``),
so the names are the ones the ``temporal`` CLI reads:

- ``TEMPORAL_ADDRESS`` (default ``localhost:7233``), ``TEMPORAL_NAMESPACE`` (``default``),
  ``TEMPORAL_API_KEY`` (turns TLS on; Temporal Cloud);
- ``TEMPORAL_TLS`` (``true``/``false``), ``TEMPORAL_TLS_SERVER_CA_CERT_PATH``/``_DATA``,
  ``TEMPORAL_TLS_SERVER_NAME``, and for mTLS ``TEMPORAL_TLS_CLIENT_CERT_PATH``/``_DATA`` with
  ``TEMPORAL_TLS_CLIENT_KEY_PATH``/``_DATA``;
- ``TEMPORAL_GRPC_META_<NAME>`` (extra gRPC headers);
- a TOML profile file: ``TEMPORAL_CONFIG_FILE`` (default ``~/.config/temporalio/temporal.toml``) and
  ``TEMPORAL_PROFILE`` (default ``default``); the environment overrides the profile.

cutover's own: ``CUTOVER_TASK_QUEUE`` (``cutover``), ``TEMPORAL_UI_URL`` (default: the dev server's
UI, port + 1000) and ``CUTOVER_PAYLOAD_KEYS`` (payload encryption, see ``connection.codec``). Both
sides use the pydantic data converter, so plans travel as plain JSON unless the keys are set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS, DataSource
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from connection.codec import PayloadKeyError, data_converter_from_env
from connection.errors import TemporalConfigError, describe_connect_failure
from models.campaign_status import CAMPAIGN_NAME_ATTRIBUTE, CAMPAIGN_WAVE_ATTRIBUTE
from models.workflow import PHASE_ATTRIBUTE, RECORD_ATTRIBUTE, TASK_QUEUE

SEARCH_ATTRIBUTES = (PHASE_ATTRIBUTE, RECORD_ATTRIBUTE, CAMPAIGN_NAME_ATTRIBUTE, CAMPAIGN_WAVE_ATTRIBUTE)
"""Keyword attributes: a run's phase and record; a campaign's name and wave (on the campaign and its cutovers)."""
DEFAULT_ADDRESS = "localhost:7233"

__all__ = [
    "SEARCH_ATTRIBUTES",
    "TemporalConfigError",
    "TemporalSettings",
    "search_attribute_commands",
]


@dataclass(frozen=True)
class TemporalSettings:
    """How to reach Temporal: address, namespace, credentials (API key, TLS) and the data converter."""

    address: str = DEFAULT_ADDRESS
    namespace: str = "default"
    task_queue: str = TASK_QUEUE
    ui_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    tls: bool | TLSConfig = False
    """False: plaintext; True: TLS with the system's roots; a TLSConfig: CA, server name, client cert."""
    rpc_metadata: Mapping[str, str] = field(default_factory=dict, repr=False)
    data_converter: DataConverter | None = field(default=None, repr=False)
    """None: the pydantic converter, encrypting when ``CUTOVER_PAYLOAD_KEYS`` is set (see from_env)."""
    source: str = "defaults"
    """Where the connection settings came from, for error messages."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TemporalSettings:
        """Read the settings the way the Temporal CLI does (profile file, then environment).

        Raises:
            TemporalConfigError: a profile, file or variable is unusable; the message names it.
        """
        env = dict(os.environ if environ is None else environ)
        config_file = env.get("TEMPORAL_CONFIG_FILE")
        if config_file and not Path(config_file).expanduser().exists():
            raise TemporalConfigError(f"TEMPORAL_CONFIG_FILE: {config_file} does not exist")
        try:
            profile = ClientConfigProfile.load(override_env_vars=env)
        except Exception as exc:  # the SDK's native loader raises plain RuntimeErrors
            raise TemporalConfigError(f"Temporal client configuration: {exc}") from None
        if (env.get("TEMPORAL_TLS_DISABLE_HOST_VERIFICATION") or "").lower() in ("1", "true"):
            raise TemporalConfigError(
                "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION is not honoured by the Python SDK (it would verify anyway): "
                "set TEMPORAL_TLS_SERVER_NAME to a name in the server's certificate instead"
            )
        # As the SDK's to_client_connect_config: an API key turns TLS on unless a TLS section says otherwise.
        tls: bool | TLSConfig = profile.api_key is not None
        if profile.tls is not None:
            tls = _read_tls(profile.tls)
        return cls(
            address=profile.address or DEFAULT_ADDRESS,
            namespace=profile.namespace or "default",
            task_queue=env.get("CUTOVER_TASK_QUEUE") or TASK_QUEUE,
            ui_url=env.get("TEMPORAL_UI_URL"),
            api_key=profile.api_key,
            tls=tls,
            rpc_metadata=dict(profile.grpc_meta),
            data_converter=_converter(env),
            source=_describe_source(env),
        )

    def override(self, *, address: str | None = None, namespace: str | None = None) -> TemporalSettings:
        """The same settings with command-line flags applied (flags win over the environment)."""
        return replace(self, address=address or self.address, namespace=namespace or self.namespace)

    def workflow_url(self, workflow_id: str) -> str:
        """Link to the workflow in the Temporal web UI."""
        base = self.ui_url
        if not base:
            host, _, port = self.address.rpartition(":")
            base = f"http://{host or 'localhost'}:{int(port) + 1000}" if port.isdigit() else "http://localhost:8233"
        return f"{base.rstrip('/')}/namespaces/{self.namespace}/workflows/{workflow_id}"

    def describe(self) -> str:
        """One line about the connection, never a secret: for logs and error messages."""
        if isinstance(self.tls, TLSConfig):
            mode = "mTLS" if self.tls.client_cert else "TLS"
            if self.tls.server_root_ca_cert:
                mode += " with its own CA"
        else:
            mode = "TLS" if self.tls else "plaintext"
        auth = ", API key" if self.api_key else ""
        return f"{self.address} (namespace {self.namespace}, {mode}{auth}; settings from {self.source})"

    async def connect(self, runtime: Runtime | None = None) -> Client:
        """A client with cutover's data converter.

        Raises:
            TemporalConfigError: the server can't be reached or refused the handshake; the message says
                which setting to look at, not a stack trace.
        """
        converter = self.data_converter or _converter({})
        try:
            return await Client.connect(
                self.address,
                namespace=self.namespace,
                api_key=self.api_key,
                tls=self.tls,
                rpc_metadata=dict(self.rpc_metadata),
                data_converter=converter,
                runtime=runtime,
            )
        except RuntimeError as exc:
            raise TemporalConfigError(describe_connect_failure(self.describe(), self.tls, str(exc))) from None


def _converter(env: Mapping[str, str]) -> DataConverter:
    try:
        return data_converter_from_env(env)
    except PayloadKeyError as exc:
        raise TemporalConfigError(str(exc)) from None


def _read_source(source: DataSource | None, variable: str) -> bytes | None:
    if source is None:
        return None
    if isinstance(source, Path):
        try:
            return source.read_bytes()
        except OSError as exc:
            raise TemporalConfigError(f"{variable}: cannot read {source}: {exc.strerror}") from None
    return source.encode() if isinstance(source, str) else source


def _read_tls(tls: ClientConfigTLS) -> bool | TLSConfig:
    """The profile's TLS section with its files read now, so a missing file is named before connecting."""
    if tls.disabled:
        return False
    client_cert = _read_source(tls.client_cert, "TEMPORAL_TLS_CLIENT_CERT_PATH (or the profile's tls.client_cert)")
    client_key = _read_source(tls.client_private_key, "TEMPORAL_TLS_CLIENT_KEY_PATH (or the profile's tls.client_key)")
    if bool(client_cert) != bool(client_key):
        missing = "TEMPORAL_TLS_CLIENT_KEY_PATH" if client_cert else "TEMPORAL_TLS_CLIENT_CERT_PATH"
        raise TemporalConfigError(f"mTLS needs both a client certificate and its key: {missing} (or _DATA) is not set")
    return TLSConfig(
        server_root_ca_cert=_read_source(
            tls.server_root_ca_cert, "TEMPORAL_TLS_SERVER_CA_CERT_PATH (or the profile's tls.server_ca_cert)"
        ),
        domain=tls.server_name,
        client_cert=client_cert,
        client_private_key=client_key,
    )


def _describe_source(env: Mapping[str, str]) -> str:
    config_file = env.get("TEMPORAL_CONFIG_FILE")
    profile = env.get("TEMPORAL_PROFILE")
    parts = [f"profile {profile or 'default'} of {config_file}"] if config_file or profile else []
    if any(name.startswith("TEMPORAL_") for name in env):
        parts.append("TEMPORAL_* environment")
    return " and ".join(parts) or "defaults"


def search_attribute_commands() -> str:
    """What to run when the search attributes are missing, for the dev server, a cluster and Temporal Cloud."""
    flags = " ".join(f"--search-attribute {name}=Keyword" for name in SEARCH_ATTRIBUTES)
    names = " ".join(f"--name {name}" for name in SEARCH_ATTRIBUTES)
    cloud = " ".join(f"--sa {name}=Keyword" for name in SEARCH_ATTRIBUTES)
    return (
        f"  dev server:      temporal server start-dev {flags}\n"
        f"  cluster:         temporal operator search-attribute create {names} --type Keyword\n"
        f"  Temporal Cloud:  the namespace's page in the Cloud UI, or tcld namespace search-attributes add "
        f"--namespace <namespace>.<account> {cloud}\n"
        "  or run the worker once with --register-search-attributes (not on Temporal Cloud)"
    )
