"""Service-account keys and a token endpoint for tests: real RSA keys, real JWT grants, on loopback.

google-auth signs a JWT with the key and POSTs it to the key's ``token_uri``; :class:`TokenEndpoint`
is that endpoint on 127.0.0.1, answering what the test says (a token, a 400 ``invalid_grant``...).
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import google.auth.credentials
import google.auth.exceptions
import google.auth.transport
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

Answer = Callable[[int], tuple[int, dict[str, Any]]]
"""Given the request number (1-based), the status and JSON body to answer."""


def service_account_info(token_uri: str, email: str = "cutover@test-project.iam.gserviceaccount.com") -> dict[str, Any]:
    """A complete service-account key (fresh 2048-bit RSA key) whose tokens come from ``token_uri``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4",
        "private_key": pem,
        "client_email": email,
        "client_id": "112233445566778899001",
        "token_uri": token_uri,
    }


def write_key(directory: Path, info: dict[str, Any]) -> Path:
    """The key as a file, the way a worker gets it (path in the variable the plan names)."""
    path = directory / "key.json"
    path.write_text(json.dumps(info))
    return path


class TokenEndpoint:
    """An OAuth 2.0 token endpoint on 127.0.0.1 that counts grants and answers what ``answer`` says."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer = answer or (lambda n: (200, {"access_token": f"token-{n}", "expires_in": 3600}))
        self.grants = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._connections: list[asyncio.BaseTransport] = []

    @property
    def open_connections(self) -> int:
        """Client connections still open (a requests.Session keeps them alive until it is closed)."""
        return sum(1 for transport in self._connections if not transport.is_closing())

    async def wait_connections_closed(self, timeout: float = 1.0) -> int:
        """Wait until every client connection is closed, or ``timeout``; the number still open."""
        for _ in range(max(1, round(timeout / 0.02))):
            if not self.open_connections:
                break
            await asyncio.sleep(0.02)
        return self.open_connections

    async def _token(self, request: web.Request) -> web.Response:
        if request.transport is not None and request.transport not in self._connections:
            self._connections.append(request.transport)
        form = await request.post()
        assert form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer", form
        self.grants += 1
        status, body = self.answer(self.grants)
        return web.json_response(body, status=status)

    async def __aenter__(self) -> TokenEndpoint:
        app = web.Application()
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/token"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class MetadataServerCredentials(google.auth.credentials.Credentials):
    """Workload-identity credentials: tokens from a GCE-style metadata server at ``root`` (GKE, Cloud Run).

    ``refresh`` does what ``google.auth.compute_engine.Credentials`` does, against a root the test
    chooses (google-auth fixes its metadata host at import time): a real GET through google-auth's
    requests transport, and a transport failure re-raised as ``RefreshError`` from it.
    """

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = root

    def refresh(self, request: google.auth.transport.Request) -> None:
        """Fetch a token from the metadata server."""
        url = f"{self.root}/computeMetadata/v1/instance/service-accounts/default/token"
        try:
            response = request(url=url, method="GET", headers={"Metadata-Flavor": "Google"})
        except google.auth.exceptions.TransportError as exc:
            raise google.auth.exceptions.RefreshError(exc) from exc
        if response.status != 200:
            raise google.auth.exceptions.RefreshError(f"metadata server answered {response.status}")
        body = json.loads(response.data)
        self.token = body["access_token"]
        self.expiry = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(
            seconds=int(body["expires_in"])
        )
