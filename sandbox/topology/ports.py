"""Every listening port of the topology, fixed (the demo's) or free ones picked on loopback (tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.free_ports import bindable, free_port, free_tcp_port, port_free_on
from sandbox.topology.config import LOOPBACK, RUNTIME_ADDRESSES, TopologyError


@dataclass(frozen=True)
class Ports:
    """Every listening port of the topology (A and B share ``runtime`` on different addresses)."""

    temporal: int = 7233
    temporal_ui: int = 8233
    bind_primary: int = 5353
    bind_secondary: int = 5354
    kong_admin: int = 8001
    kong_proxy: int = 8000
    runtime: int = 8443
    receiver: int = 8088

    @classmethod
    def auto(cls) -> Ports:
        """Free loopback ports for everything (tests, several topologies side by side)."""
        taken: set[int] = set()

        def pick(choose: Callable[[], int]) -> int:
            for _ in range(50):
                port = choose()
                if port not in taken:
                    taken.add(port)
                    return port
            raise TopologyError("no free loopback port found")

        return cls(
            temporal=pick(free_tcp_port),
            temporal_ui=pick(free_tcp_port),
            bind_primary=pick(free_port),
            bind_secondary=pick(free_port),
            kong_admin=pick(free_tcp_port),
            kong_proxy=pick(free_tcp_port),
            runtime=pick(free_runtime_port),
            receiver=pick(free_tcp_port),
        )

    def busy(self) -> list[str]:
        """One line per port some other program holds (empty when all are free)."""
        labels = {
            "temporal": "Temporal frontend (gRPC)",
            "temporal_ui": "Temporal web UI",
            "bind_primary": "BIND primary",
            "bind_secondary": "BIND secondary",
            "kong_admin": "Kong Admin API",
            "kong_proxy": "Kong proxy",
            "receiver": "decommission receiver",
        }
        problems = []
        for name, label in labels.items():
            port = getattr(self, name)
            udp = name.startswith("bind_")
            if not bindable(LOOPBACK, port, udp=udp):
                problems.append(f"port {port} ({label}) on {LOOPBACK} is in use")
        for runtime, address in RUNTIME_ADDRESSES.items():
            if not bindable(address, self.runtime):
                problems.append(f"port {self.runtime} (runtime {runtime}) on {address} is in use")
        return problems


def free_runtime_port() -> int:
    """A port free on both 127.0.0.2 and 127.0.0.3 (A and B listen on the same port)."""
    return port_free_on([RUNTIME_ADDRESSES["A"], RUNTIME_ADDRESSES["B"]])


async def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts a TCP connection at ``host:port``."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
