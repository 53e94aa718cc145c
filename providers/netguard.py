"""The network guard: every connection a provider makes goes only where the worker policy allows.

A host name in a plan is checked twice. As written, against the policy's allow-list for that kind
of destination (:meth:`NetworkGuard.check_url`, :meth:`NetworkGuard.check_server`); and when the
connection is made, on every address it resolves to (:meth:`NetworkGuard.resolve`): a name that
resolves to a metadata server, link-local or loopback address (unless the policy allows the class)
is refused, and the connection goes to the address that was checked, not to whatever a second
lookup returns (no DNS-rebinding window). HTTP clients get this through :func:`guarded_transport`,
an httpx transport whose connection pool uses :class:`GuardedBackend` to open its sockets; TLS still
verifies the certificate against the host name. DNS servers are addresses already; the DNS
providers pass them through :meth:`NetworkGuard.check_address` before the first query.

Without a policy (tests, providers built by hand) only the rules that need none apply: metadata,
link-local, unspecified and multicast addresses are refused, loopback is allowed.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from models.address_guard import address_refusal, host_refusal, is_loopback_host
from models.names import url_host
from models.policy import WorkerPolicy, server_entry_matches, url_entry_matches
from providers.errors import PolicyViolation


class NetworkGuard:
    """Where connections may go, from the worker policy (None: the rules that need no policy)."""

    def __init__(self, policy: WorkerPolicy | None = None) -> None:
        self.policy = policy
        self.allow_loopback = policy.network.allow_loopback if policy else True
        self.allow_link_local = policy.network.allow_link_local if policy else False

    def check_host(self, host: str, field: str) -> None:
        """Refuse a host as written that always means a forbidden place (an address, ``metadata...``).

        Raises:
            PolicyViolation: naming the plan field.
        """
        problem = host_refusal(host, allow_loopback=self.allow_loopback, allow_link_local=self.allow_link_local)
        if problem:
            raise PolicyViolation(f"{field}: {problem}")

    def _allow_lists_for(self, host: str, field: str, what: str) -> WorkerPolicy | None:
        """Check ``host`` by the address rules and the dev policy; the policy whose allow-lists decide, or None.

        None when no policy is loaded, or when the dev policy (loopback only) has already decided.

        Raises:
            PolicyViolation: the address rules refuse ``host``, or the dev policy refuses a non-loopback ``what``.
        """
        self.check_host(host, field)
        policy = self.policy
        if policy is None:
            return None
        if policy.dev_loopback_only:
            if not is_loopback_host(host):
                raise PolicyViolation(f"{field}: the dev policy allows loopback {what} only")
            return None
        return policy

    def check_url(self, kind: str, url: str, field: str) -> None:
        """Refuse ``url`` unless it is in the policy's allow-list for ``kind`` (and its host may be reached).

        Raises:
            PolicyViolation: naming the plan field and the allow-list.
        """
        host = url_host(url)
        policy = self._allow_lists_for(host, field, "destinations")
        if policy is None:
            return
        entries: Iterable[str] = getattr(policy.endpoints, kind)
        if not any(url_entry_matches(entry, url) for entry in entries):
            raise PolicyViolation(f"{field}: {host} is not in the worker policy's {kind} allow-list")

    def check_server(self, kind: str, host: str, port: int, field: str) -> None:
        """Refuse a DNS server (``dns_servers``, ``nameservers``) the policy does not list.

        ``nameservers`` absent from the policy allows any server the address rules allow.

        Raises:
            PolicyViolation: naming the field.
        """
        policy = self._allow_lists_for(host, field, "servers")
        if policy is None:
            return
        entries = policy.endpoints.dns_servers if kind == "dns_server" else policy.endpoints.nameservers
        if entries is not None and not any(server_entry_matches(entry, host, port) for entry in entries):
            raise PolicyViolation(f"{field}: {host}:{port} is not in the worker policy's {kind}s allow-list")

    def check_address(self, address: str, what: str) -> None:
        """Refuse one resolved address (a DNS server, a connection's peer).

        Raises:
            PolicyViolation: saying what the address was for.
        """
        problem = address_refusal(address, allow_loopback=self.allow_loopback, allow_link_local=self.allow_link_local)
        if problem:
            raise PolicyViolation(f"{what}: {problem}")

    async def resolve(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        """Every address ``host`` resolves to, each checked; refuse the name if any is forbidden.

        Raises:
            PolicyViolation: an address is forbidden (the name is refused as a whole: one forbidden
                answer among allowed ones is a rebinding attempt, not an accident).
            OSError: the name does not resolve (``socket.gaierror``).
        """
        host = host.strip("[]")
        self.check_host(host, f"connection to {host}")
        loop = asyncio.get_running_loop()
        lookup = loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        infos = await (asyncio.wait_for(lookup, timeout) if timeout else lookup)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            self.check_address(address, f"connection to {host} (resolved to {address})")
        return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard checked (resolved once, pinned)."""

    def __init__(self, guard: NetworkGuard) -> None:
        self._guard = guard
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve ``host``, check every address, connect to the first that answers."""
        try:
            addresses = await self._guard.resolve(host, port, timeout)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}") from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        """Never: cutover talks TCP only."""
        raise httpcore.ConnectError("unix sockets are not a cutover destination")

    async def sleep(self, seconds: float) -> None:
        """As the default backend."""
        await self._backend.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (exception mapping, HTTP/1.1), its pool opening sockets through the guard."""

    def __init__(self, guard: NetworkGuard, verify: ssl.SSLContext) -> None:
        super().__init__(verify=verify, trust_env=False)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=verify,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(guard),
        )


def guarded_transport(guard: NetworkGuard, verify: ssl.SSLContext) -> httpx.AsyncBaseTransport:
    """An httpx transport whose every connection goes through ``guard`` (certificates checked with ``verify``)."""
    return _GuardedTransport(guard, verify)


async def open_guarded_connection(
    guard: NetworkGuard, host: str, port: int, *, ssl_context: ssl.SSLContext, server_hostname: str, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` over TLS to a checked address of ``host`` (certificate inspection)."""
    addresses = await guard.resolve(host, port, timeout)
    last: OSError | None = None
    for address in addresses:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(address, port, ssl=ssl_context, server_hostname=server_hostname), timeout
            )
        except OSError as exc:
            last = exc
    assert last is not None
    raise last


def check_google_endpoint(guard: NetworkGuard, api: str, endpoint: str, field: str) -> None:
    """Google credentials go only to Google's official endpoint for ``api``, or the one the policy names.

    Raises:
        PolicyViolation: another endpoint (the credentials could delete projects wherever they land).
    """
    policy = guard.policy
    guard.check_host(url_host(endpoint), field)
    if policy is None:
        # Providers built without a policy (tests against local fakes, library use) check addresses only;
        # the worker never runs without one, and `validate`/policy_check apply the official-endpoint rule.
        return
    allowed = policy.endpoints.google.endpoint(api)
    if endpoint.rstrip("/").lower() != allowed.rstrip("/").lower():
        raise PolicyViolation(
            f"{field}: Google credentials go only to {allowed} for the {api} API (the official endpoint, or the one "
            "the worker policy names), not to another endpoint"
        )
    if policy.dev_loopback_only and not is_loopback_host(url_host(endpoint)):
        raise PolicyViolation(f"{field}: the dev policy reaches no Google API (loopback destinations only)")
