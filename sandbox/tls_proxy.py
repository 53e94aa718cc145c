"""A TLS-terminating loopback proxy in front of the Temporal dev server, which has no TLS flags of its own.

It plays a secured Temporal frontend (self-hosted with TLS, or mTLS as Temporal Cloud's certificate
namespaces): it terminates TLS with a certificate from a trustme CA, offers ALPN ``h2`` (gRPC), can
require a client certificate signed by a given CA, and forwards the decrypted bytes to the dev
server. Runs its own event loop in a thread so subprocesses (worker, starter, the ``temporal`` CLI)
can use it while the caller's loop is busy.

    with TlsProxy(("127.0.0.1", dev_port), server_ca, client_ca=None) as proxy:
        proxy.address    # "127.0.0.1:<port>"
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from concurrent.futures import Future
from types import TracebackType

import trustme

SERVER_NAME = "temporal.sandbox.test"
"""The name in the proxy's certificate: clients set TEMPORAL_TLS_SERVER_NAME to it."""


class TlsProxy:
    """TLS (or mTLS with ``client_ca``) on 127.0.0.1, plaintext to ``upstream``."""

    def __init__(self, upstream: tuple[str, int], server_ca: trustme.CA, client_ca: trustme.CA | None = None) -> None:
        self.upstream = upstream
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["h2"])
        server_ca.issue_cert(SERVER_NAME, "127.0.0.1").configure_cert(self.context)
        if client_ca is not None:
            client_ca.configure_trust(self.context)
            self.context.verify_mode = ssl.CERT_REQUIRED
        self.handshake_failures: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tls-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def address(self) -> str:
        """host:port for TEMPORAL_ADDRESS."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> TlsProxy:
        self._thread.start()
        started: Future[asyncio.Server] = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self._server = started.result(timeout=10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> asyncio.Server:
        # The handshake runs in the connection handler, so a refused client is recorded, not logged as an
        # unhandled error by asyncio.
        return await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):  # the pipes see EOF and end by themselves
            writer.close()
        # Every connection handler ends (or is cancelled) before the loop stops: a handler left pending
        # is destroyed with the loop and leaves its sockets unclosed, which a later test reports.
        handlers = {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await writer.start_tls(self.context)
        except (ssl.SSLError, OSError) as exc:
            self.handshake_failures.append(str(exc))
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)
        finally:
            self._writers -= {writer, up_writer}
            for end in (writer, up_writer):
                end.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ssl.SSLError, OSError):
        # A client certificate refused after the TLS 1.3 handshake surfaces here, on the first read.
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
