"""``python starter.py codec-server``: the web UI and the ``temporal`` CLI read encrypted payloads through it.

It implements Temporal's remote codec protocol: ``POST .../encode`` and ``POST .../decode`` take and
return a ``Payloads`` message as protobuf JSON (only the last path segment counts, so it can be
mounted under any prefix; the UI adds ``?preserveStorageRefs=true``). The web UI calls it from the
browser with ``Content-Type`` and ``X-Namespace`` headers (plus ``Authorization`` when it passes the
user's token), so it answers CORS preflights for the UI origins it is told about, and no others.

Whoever can reach it can decrypt: it listens on 127.0.0.1 by default (run it next to your browser,
where the key is), and ``CUTOVER_CODEC_AUTH`` makes it require that exact ``Authorization`` header
(``temporal ... --codec-auth``).
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from connection.codec import EncryptionCodec, PayloadKeyError, keys_from_env

log = logging.getLogger("cutover.codec_server")
MAX_BODY = 4 * 1024 * 1024
"""Temporal's gRPC message limit: no real history batch is larger."""
ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization, Authorization-Extras"
AUTH_ENV = "CUTOVER_CODEC_AUTH"


class CodecServer(ThreadingHTTPServer):
    """An HTTP server carrying the codec, the allowed UI origins and the optional auth header value."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], codec: EncryptionCodec, origins: Sequence[str], auth: str | None
    ) -> None:
        super().__init__(address, _Handler)
        self.codec = codec
        self.origins = frozenset(o.rstrip("/") for o in origins)
        self.auth = auth


class _Handler(BaseHTTPRequestHandler):
    server: CodecServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _cors(self) -> dict[str, str]:
        origin = (self.headers.get("Origin") or "").rstrip("/")
        if not origin or origin not in self.server.origins:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    def _reply(self, status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        for name, value in self._cors().items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_OPTIONS(self) -> None:
        """CORS preflight: allowed only for the configured UI origins."""
        cors = self._cors()
        if not cors:
            self._reply(403, b"origin not allowed: start the codec server with --ui-origin <the web UI's URL>\n")
            return
        self.send_response(204)
        for name, value in cors.items():
            self.send_header(name, value)
        self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        """Encode or decode one ``Payloads`` message."""
        action = urlsplit(self.path).path.rstrip("/").rsplit("/", 1)[-1]
        if action not in ("encode", "decode"):
            self._reply(404, b"use POST .../encode or .../decode\n")
            return
        if self.server.auth is not None and not hmac.compare_digest(
            (self.headers.get("Authorization") or "").encode(), self.server.auth.encode()
        ):
            self._reply(401, b"missing or wrong Authorization header\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, b"body too large\n")
            return
        try:
            payloads = json_format.Parse(self.rfile.read(length), Payloads())
        except (json_format.ParseError, UnicodeDecodeError):
            self._reply(400, b"body is not a Payloads message in protobuf JSON\n")
            return
        codec = self.server.codec
        try:
            out = [codec.encode_one(p) if action == "encode" else codec.decode_one(p) for p in payloads.payloads]
        except PayloadKeyError as exc:
            self._reply(400, f"{exc}\n".encode())
            return
        body = json_format.MessageToJson(Payloads(payloads=out)).encode()
        self._reply(200, body, "application/json")


def build_server(
    codec: EncryptionCodec, host: str, port: int, origins: Sequence[str], auth: str | None = None
) -> CodecServer:
    """A codec server bound to host:port (port 0 picks a free one), not yet serving."""
    return CodecServer((host, port), codec, origins, auth)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``codec-server`` sub-command's arguments."""
    p = sub.add_parser("codec-server", help="serve /encode and /decode for the web UI and the temporal CLI")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1: only this machine)")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument(
        "--ui-origin",
        action="append",
        default=[],
        help="web UI origin allowed by CORS, e.g. http://localhost:8233 (repeatable; default: TEMPORAL_UI_URL)",
    )


def serve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """Run the codec server until interrupted; exit 2 when no usable key is configured."""
    env = os.environ if environ is None else environ
    try:
        keys = keys_from_env(env)
    except PayloadKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not keys:
        print(
            "error: set CUTOVER_PAYLOAD_KEYS (or CUTOVER_PAYLOAD_KEYS_FILE): the codec server needs the keys",
            file=sys.stderr,
        )
        return 2
    origins = list(args.ui_origin)
    if not origins and env.get("TEMPORAL_UI_URL"):
        parts = urlsplit(env["TEMPORAL_UI_URL"])
        origins.append(f"{parts.scheme}://{parts.netloc}")
    server = build_server(EncryptionCodec(keys), args.host, args.port, origins, env.get(AUTH_ENV) or None)
    host, port = server.server_address[:2]
    print(f"codec server on http://{host!s}:{port}/ (CORS for {', '.join(origins) or 'no web UI origin'})", flush=True)
    print(f"  temporal workflow show -w <id> --codec-endpoint http://{host!s}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
