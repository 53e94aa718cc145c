"""Build the DNS provider a plan names, with secrets resolved on the worker (never carried by the plan)."""

from __future__ import annotations

import dns.asyncresolver
import google.auth.credentials
import httpx

from models.names import split_host_port
from models.plan import CloudDnsProvider, DnsSection, Rfc2136Provider
from providers.dns.base import DnsProvider
from providers.dns.clouddns import GoogleCloudDnsProvider
from providers.dns.rfc2136 import Rfc2136DnsProvider
from providers.google_auth import GoogleAuth, load_credentials
from providers.netguard import check_google_endpoint, guarded_transport
from providers.secrets import Destination, EnvSecrets
from providers.tls import default_trust

CLOUD_DNS_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def build_dns_provider(
    section: DnsSection,
    *,
    secrets: EnvSecrets,
    transport: httpx.AsyncBaseTransport | None = None,
    credentials: google.auth.credentials.Credentials | None = None,
    resolver: dns.asyncresolver.Resolver | None = None,
    read_only: bool = False,
) -> DnsProvider:
    """The provider for ``section``, to be used as an async context manager (it may hold an HTTP client).

    Args:
        section: the plan's ``dns`` section.
        secrets: where the TSIG secret / key-file path variables are read.
        transport: httpx transport for Cloud DNS (tests); default: the network.
        credentials: Google credentials (tests); default: ``credentials_env`` or Application Default Credentials.
        resolver: recursive resolver for names outside the zone; default: the worker's.
        read_only: reads only (``starter.py traffic``): no TSIG secret, and Cloud DNS without the worker's
            credentials, so a read never needs the worker's write secrets.

    Raises:
        ConfigError: a secret variable the plan names is not set, or holds an unusable value.
        PolicyViolation: the worker policy refuses the server, the endpoint or the secret's destination.
    """
    provider = section.provider
    guard = secrets.guard
    if isinstance(provider, Rfc2136Provider):
        host, port = split_host_port(provider.server, 53)
        guard.check_server("dns_server", host, port, "dns.provider.server")
        secret = None
        if provider.tsig_secret_env and not read_only:
            secret = secrets.require(
                provider.tsig_secret_env,
                "dns.provider.tsig_secret_env",
                Destination("dns_server", server=(host, port)),
            )
        return Rfc2136DnsProvider(
            provider,
            tsig_secret=secret,
            nameservers=section.nameservers,
            resolver=resolver,
            guard=guard,
            read_only=read_only,
        )
    assert isinstance(provider, CloudDnsProvider)
    check_google_endpoint(guard, "dns", provider.api_endpoint, "dns.provider.api_endpoint")
    if credentials is None:
        if read_only:
            credentials = google.auth.credentials.AnonymousCredentials()  # type: ignore[no-untyped-call]
        else:
            credentials = load_credentials(
                provider.credentials_env,
                "dns.provider.credentials_env",
                secrets,
                Destination("google", url=provider.api_endpoint, api="dns"),
            )
    client = httpx.AsyncClient(
        base_url=provider.api_endpoint,
        auth=GoogleAuth(credentials),
        transport=transport or guarded_transport(guard, default_trust()),
        timeout=CLOUD_DNS_TIMEOUT,
        verify=default_trust(),
    )
    return GoogleCloudDnsProvider(provider, client, nameservers=section.nameservers, resolver=resolver, guard=guard)
