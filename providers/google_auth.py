"""google-auth credentials for httpx: google-auth has no httpx transport, so apply its headers here.

Credentials come from Application Default Credentials, or from a service-account key file whose path
an environment variable names (the plan's ``credentials_env``). Tests pass their own credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator

import google.auth
import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.service_account
import httpx

from providers.errors import ConfigError
from providers.secrets import EnvSecrets

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


class GoogleAuth(httpx.Auth):
    """Refresh the token when needed and add ``Authorization`` to every request."""

    def __init__(self, credentials: google.auth.credentials.Credentials) -> None:
        self._credentials = credentials
        self._refresh_request = google.auth.transport.requests.Request()

    def _apply(self, request: httpx.Request) -> None:
        headers: dict[str, str] = {}
        self._credentials.before_request(  # type: ignore[no-untyped-call]
            self._refresh_request, request.method, str(request.url), headers
        )
        request.headers.update(headers)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Apply credentials (may refresh the token, blocking)."""
        self._apply(request)
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Apply credentials; a token refresh runs in a thread so the event loop keeps going."""
        await asyncio.to_thread(self._apply, request)
        yield request


def load_credentials(
    credentials_env: str | None, purpose: str, secrets: EnvSecrets | None = None
) -> google.auth.credentials.Credentials:
    """Credentials from the key file named by ``credentials_env``, or Application Default Credentials.

    Raises:
        ConfigError: when neither is available, saying how to provide them.
    """
    try:
        if credentials_env:
            path = (secrets or EnvSecrets()).require(credentials_env, purpose)
            return google.oauth2.service_account.Credentials.from_service_account_file(  # type: ignore[no-any-return,no-untyped-call]
                path, scopes=[CLOUD_PLATFORM]
            )
        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
        return credentials
    except (google.auth.exceptions.DefaultCredentialsError, OSError, ValueError) as exc:
        raise ConfigError(
            f"no Google credentials for {purpose}: {exc}. Run the worker with Application Default "
            "Credentials (workload identity, `gcloud auth application-default login`) or name a key file "
            "in credentials_env"
        ) from exc


def describe_auth_error(exc: google.auth.exceptions.GoogleAuthError) -> str:
    """``RefreshError (invalid_grant)``: the class name and the OAuth error code, never ``str(exc)``.

    google-auth's messages may quote the token endpoint's whole answer or a transport failure's text
    (which can repeat request headers); the OAuth ``error`` code (RFC 6749 §5.2) is all that is kept.
    """
    name = type(exc).__name__
    for arg in exc.args[1:2]:
        if isinstance(arg, dict) and isinstance(arg.get("error"), str) and arg["error"].isidentifier():
            return f"{name} ({arg['error']})"
    return name
