"""Build the DNS provider a plan names, with secrets resolved on the worker (never carried by the plan)."""

from __future__ import annotations

import dns.asyncresolver
import google.auth.credentials
import httpx

from models.plan import CloudDnsProvider, DnsSection, Rfc2136Provider
from providers.dns.base import DnsProvider
from providers.dns.clouddns import GoogleCloudDnsProvider
from providers.dns.rfc2136 import Rfc2136DnsProvider
from providers.google_auth import GoogleAuth, load_credentials
from providers.secrets import EnvSecrets
from providers.tls import default_trust

CLOUD_DNS_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def build_dns_provider(
    section: DnsSection,
    *,
    secrets: EnvSecrets,
    transport: httpx.AsyncBaseTransport | None = None,
    credentials: google.auth.credentials.Credentials | None = None,
    resolver: dns.asyncresolver.Resolver | None = None,
) -> DnsProvider:
    """The provider for ``section``, to be used as an async context manager (it may hold an HTTP client).

    Args:
        section: the plan's ``dns`` section.
        secrets: where the TSIG secret / key-file path variables are read.
        transport: httpx transport for Cloud DNS (tests); default: the network.
        credentials: Google credentials (tests); default: ``credentials_env`` or Application Default Credentials.
        resolver: recursive resolver for names outside the zone; default: the worker's.

    Raises:
        ConfigError: a secret variable the plan names is not set, or holds an unusable value.
    """
    provider = section.provider
    if isinstance(provider, Rfc2136Provider):
        secret = (
            secrets.require(provider.tsig_secret_env, "dns.provider.tsig_secret_env")
            if provider.tsig_secret_env
            else None
        )
        return Rfc2136DnsProvider(provider, tsig_secret=secret, nameservers=section.nameservers, resolver=resolver)
    assert isinstance(provider, CloudDnsProvider)
    if credentials is None:
        credentials = load_credentials(provider.credentials_env, "dns.provider.credentials_env", secrets)
    client = httpx.AsyncClient(
        base_url=provider.api_endpoint,
        auth=GoogleAuth(credentials),
        transport=transport,
        timeout=CLOUD_DNS_TIMEOUT,
        verify=default_trust(),
    )
    return GoogleCloudDnsProvider(provider, client, nameservers=section.nameservers, resolver=resolver)
