"""google-auth credentials for httpx: google-auth has no httpx transport, so apply its headers here.

Credentials come from Application Default Credentials, or from a service-account key file whose path
an environment variable names (the plan's ``credentials_env``). Tests pass their own credentials.
Activities load them through :class:`GoogleCredentials` (once per ``credentials_env``, in a thread),
and map google-auth failures with :func:`is_transport_problem` (retryable) and describe them with
:func:`describe_auth_error` (never ``str(exc)``, which may quote a token endpoint's answer).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, Callable, Generator

import google.auth
import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.service_account
import httpx
import requests

from providers.errors import ConfigError
from providers.secrets import Destination, EnvSecrets

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
ADC_VARIABLE = "GOOGLE_APPLICATION_CREDENTIALS"


class GoogleAuth(httpx.Auth):
    """Refresh the token when needed and add ``Authorization`` to every request.

    Token refreshes go through a ``requests.Session`` this object owns: call :meth:`close` when the
    HTTP client using it is closed (providers do it in ``aclose``), or its connections stay open.
    """

    def __init__(self, credentials: google.auth.credentials.Credentials) -> None:
        self._credentials = credentials
        self._session = requests.Session()
        self._refresh_request = google.auth.transport.requests.Request(session=self._session)

    def close(self) -> None:
        """Close the token-refresh session's connections."""
        self._session.close()

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


CredentialsLoader = Callable[[str | None, str, EnvSecrets | None], google.auth.credentials.Credentials]
"""``load_credentials``'s signature: (credentials_env, purpose, secrets) -> credentials; blocking.

The destination check is not the loader's: :meth:`GoogleCredentials.get` makes it at every use,
cached credentials included."""


class GoogleCredentials:
    """The Google credentials of one activities object: loaded once per ``credentials_env``, off the event loop.

    Loading may read a key file or ask the metadata server (ADC), and the credentials object caches
    its access token, so loading it again for every activity would block the event loop and fetch a
    new token each time. Failures are not cached: a fixed environment works on the next attempt.

    Args:
        secrets: where ``credentials_env`` is read (default: the worker's environment).
        loader: how credentials are loaded (default :func:`load_credentials`); runs in a thread.
    """

    def __init__(self, secrets: EnvSecrets | None = None, *, loader: CredentialsLoader | None = None) -> None:
        self._secrets = secrets
        self._loader: CredentialsLoader = loader or load_credentials
        self._loaded: dict[str | None, google.auth.credentials.Credentials] = {}
        self._lock: asyncio.Lock | None = None

    async def get(
        self, credentials_env: str | None, purpose: str, destination: Destination | None = None
    ) -> google.auth.credentials.Credentials:
        """The credentials for ``credentials_env`` (None: Application Default Credentials), for ``destination``.

        Raises:
            PolicyViolation: the worker policy does not bind ``credentials_env`` to this Google API (checked at
                every call: cached credentials are not a way around it).
            ConfigError: as :func:`load_credentials`.
        """
        if credentials_env and self._secrets is not None:
            self._secrets.check(credentials_env, purpose, destination)
        secrets = self._secrets.bound(destination) if self._secrets is not None else None
        if credentials_env in self._loaded:
            return self._loaded[credentials_env]
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if credentials_env not in self._loaded:
                self._loaded[credentials_env] = await asyncio.to_thread(self._loader, credentials_env, purpose, secrets)
            return self._loaded[credentials_env]


def load_credentials(
    credentials_env: str | None,
    purpose: str,
    secrets: EnvSecrets | None = None,
    destination: Destination | None = None,
) -> google.auth.credentials.Credentials:
    """Credentials from the key file named by ``credentials_env``, or Application Default Credentials.

    Blocking (file reads, and ADC may ask the metadata server): call it in a thread from async code.
    Error messages never quote the variable's value or google-auth's own text, which repeats file
    names: a user who puts the key JSON itself in the variable would see the key in the error.

    Raises:
        ConfigError: when neither is available, saying how to provide them.
    """
    how = (
        "Run the worker with Application Default Credentials (workload identity, `gcloud auth "
        "application-default login`) or name a variable holding a key file's path in credentials_env"
    )
    if credentials_env:
        path = (secrets or EnvSecrets()).require(credentials_env, purpose, destination)
        if path.lstrip().startswith("{"):
            raise ConfigError(
                f"environment variable {credentials_env} (named by {purpose}) holds JSON, not a path: it must hold "
                "the path of the service-account key file; put the key in a file only the worker can read and set "
                f"{credentials_env} to that file's path"
            )
        try:
            return google.oauth2.service_account.Credentials.from_service_account_file(  # type: ignore[no-any-return,no-untyped-call]
                path, scopes=[CLOUD_PLATFORM]
            )
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(
                f"the key file named by {credentials_env} ({purpose}) can't be read: {reason}. {how}"
            ) from exc
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            raise ConfigError(
                f"the file named by {credentials_env} ({purpose}) is not a usable service-account key "
                f"({type(exc).__name__}): it must be the JSON key file with client_email, private_key and "
                f"token_uri. {how}"
            ) from exc
    try:
        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
    except (google.auth.exceptions.GoogleAuthError, OSError, ValueError) as exc:
        raise ConfigError(f"no Google credentials for {purpose}: {_adc_reason(exc)}. {how}") from exc
    return credentials


def _adc_reason(exc: BaseException) -> str:
    """google-auth's first message, with the value of GOOGLE_APPLICATION_CREDENTIALS replaced by the name.

    ADC's messages quote that variable's value ("File {value} was not found"), which is the key JSON
    itself when a user put the key in the variable instead of a path.
    """
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    first = exc.args[0] if exc.args and isinstance(exc.args[0], str) else type(exc).__name__
    value = os.environ.get(ADC_VARIABLE, "")
    if value:
        if value.lstrip().startswith("{"):
            return (
                f"{ADC_VARIABLE} holds JSON, not a path: it must hold the path of a credentials file "
                f"({type(exc).__name__})"
            )
        first = first.replace(value, f"${ADC_VARIABLE}")
    first = first.splitlines()[0].rstrip(".") if first.strip() else ""
    return first or type(exc).__name__


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


def is_transport_problem(exc: google.auth.exceptions.GoogleAuthError) -> bool:
    """True when getting a token failed for a reason retrying can fix, not because the credentials are bad.

    google-auth says so in three ways: a ``TransportError`` (the token endpoint unreachable), a
    ``RefreshError`` it marks ``retryable`` (5xx or ``temporarily_unavailable`` from the token
    endpoint), or a ``RefreshError`` raised from a ``TransportError`` (a metadata-server blip on GKE
    or Cloud Run). A 4xx answer such as ``invalid_grant`` is none of these: the credentials are bad.
    """
    if isinstance(exc, google.auth.exceptions.TransportError):
        return True
    return isinstance(exc, google.auth.exceptions.RefreshError) and (
        bool(getattr(exc, "retryable", False)) or isinstance(exc.__cause__, google.auth.exceptions.TransportError)
    )
