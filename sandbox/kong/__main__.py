"""Command line: ``python -m sandbox.kong --admin HOST:PORT --proxy HOST:PORT --dns HOST:PORT ...``.

Prints one JSON line ``{"event": "ready", "admin": "http://...", "proxy": "http://...", ...}`` on
stdout once every listener is bound (port 0 picks a free port), then serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from sandbox.kong.declarative import DeclarativeConfigError
from sandbox.kong.emulator import MODES, KongEmulator


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected host:port")
    return host.strip("[]"), int(port)


def _optional_address(text: str) -> tuple[str, int] | None:
    return None if text == "off" else _address(text)


def parser() -> argparse.ArgumentParser:
    """The emulator's flags."""
    p = argparse.ArgumentParser(prog="python -m sandbox.kong", description="Kong Gateway emulator (not Kong).")
    p.add_argument("--admin", type=_address, default=("127.0.0.1", 8001), help="Admin API listen host:port")
    p.add_argument("--proxy", type=_optional_address, default=("127.0.0.1", 8000), help="proxy host:port or off")
    p.add_argument("--status", type=_optional_address, default=None, help="Status API host:port (data planes)")
    p.add_argument("--dns", type=_address, default=None, help="nameserver host:port Kong's DNS client queries")
    p.add_argument("--config", help="declarative config (_format_version 3.0) to seed entities")
    p.add_argument("--log", help="file-log output: one JSON line per proxied request")
    p.add_argument("--mode", choices=MODES, default="traditional")
    p.add_argument("--workers", type=int, default=1, help="nginx workers (one legacy DNS cache each)")
    p.add_argument("--admin-token-env", help="environment variable holding the required Kong-Admin-Token")
    p.add_argument("--upstream-ca", help="CA bundle for Services with tls_verify=true")
    p.add_argument("--new-dns-client", action="store_true", help="new_dns_client=on (shared cache)")
    p.add_argument("--dns-valid-ttl", type=int)
    p.add_argument("--dns-stale-ttl", type=int)
    p.add_argument("--dns-not-found-ttl", type=int)
    p.add_argument("--dns-error-ttl", type=int)
    p.add_argument("--dns-order", help="e.g. LAST,SRV,A,CNAME")
    p.add_argument("--resolver-valid-ttl", type=int)
    p.add_argument("--resolver-stale-ttl", type=int)
    p.add_argument("--resolver-error-ttl", type=int)
    return p


def dns_settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """Kong config keys given on the command line."""
    keys = (
        "dns_valid_ttl",
        "dns_stale_ttl",
        "dns_not_found_ttl",
        "dns_error_ttl",
        "dns_order",
        "resolver_valid_ttl",
        "resolver_stale_ttl",
        "resolver_error_ttl",
    )
    settings: dict[str, Any] = {key: getattr(args, key) for key in keys if getattr(args, key) is not None}
    if args.new_dns_client:
        settings["new_dns_client"] = True
    return settings


async def serve(args: argparse.Namespace) -> int:
    """Start, announce, serve until a signal."""
    token = None
    if args.admin_token_env:
        token = os.environ.get(args.admin_token_env)
        if not token:
            print(f"error: --admin-token-env {args.admin_token_env} is not set", file=sys.stderr)
            return 2
    try:
        emulator = KongEmulator(
            admin=args.admin,
            proxy=args.proxy,
            status=args.status,
            dns=args.dns,
            config=args.config,
            log=args.log,
            mode=args.mode,
            workers=args.workers,
            admin_token=token,
            dns_settings=dns_settings_from(args),
            upstream_ca=args.upstream_ca,
        )
    except (DeclarativeConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    await emulator.start()
    print(json.dumps(emulator.ready_line()), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await emulator.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    return asyncio.run(serve(parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
