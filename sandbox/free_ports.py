"""Free loopback ports for servers started later, picked where outgoing connections never land.

A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, the same range it uses
for the local end of every outgoing connection. Between picking such a port and the server binding
it (seconds, for Temporal's dev server), any connection the tests make can take it, and the server
dies with "address already in use" (seen in CI). Ports below the ephemeral range are never given to
outgoing connections, so a port picked there stays free unless another program picks the same one:
picking at random among ~20,000 makes that unlikely, and every pick is still checked by binding.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Sequence

LOOPBACK = "127.0.0.1"
_LOWEST = 10000
_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
_DEFAULT_EPHEMERAL_START = 32768
_TRIES = 200
_random = random.SystemRandom()


def pick_range() -> tuple[int, int]:
    """Where to pick: ``[low, high)`` outside the kernel's ephemeral range when there is room for it.

    Below the range (Linux's default 32768-60999 leaves 10000-32767); above it when the range starts
    low (some containers start it at 1024); anywhere when it covers almost everything.
    """
    try:
        with open(_RANGE_FILE, encoding="ascii") as handle:
            first, last = (int(part) for part in handle.read().split()[:2])
    except (OSError, ValueError):
        first, last = _DEFAULT_EPHEMERAL_START, 60999
    if first > _LOWEST + 1000:
        return _LOWEST, first
    if last < 65535 - 1000:
        return last + 1, 65536
    return _LOWEST, 65536


def bindable(host: str, port: int, *, udp: bool = False) -> bool:
    """True when ``port`` can be bound on ``host`` for TCP (and UDP when asked) right now."""
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if udp else [])
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def port_free_on(addresses: Sequence[str], *, udp: bool = False) -> int:
    """A port free on every address (TCP, and UDP when asked), outside the ephemeral range (:func:`pick_range`)."""
    low, high = pick_range()
    for _ in range(_TRIES):
        port = _random.randrange(low, high)
        if all(bindable(address, port, udp=udp) for address in addresses):
            return port
    raise RuntimeError(f"no free port on {', '.join(addresses)} between {low} and {high - 1}")


def free_tcp_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host``."""
    return port_free_on([host])


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (DNS servers listen on both)."""
    return port_free_on([LOOPBACK], udp=True)
