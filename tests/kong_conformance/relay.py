"""A UDP relay in front of BIND that a scenario can take down and bring back.

"Nameserver down" must start before the record changes and end after, atomically for every client:
killing BIND right after a change races the clients' refreshes (one that lands in between sees the
new answer early). Closing the relay's port makes every query fail with "connection refused" at once
(the ICMP answer, as for a dead server), while BIND already holds the change; reopening it serves
BIND's answers again. The data always comes from BIND.
"""

from __future__ import annotations

import asyncio
import contextlib


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, answered: asyncio.Future[bytes]) -> None:
        self.answered = answered

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.answered.done():
            self.answered.set_result(data)


class _Front(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay.spawn(data, addr)


class UdpRelay:
    """Forwards each query on 127.0.0.1:``port`` to ``upstream`` and the answer back."""

    def __init__(self, port: int, upstream: tuple[str, int]) -> None:
        self.port, self.upstream = port, upstream
        self._front: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def up(self) -> None:
        """Listen (again)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Front(self), local_addr=("127.0.0.1", self.port))
        self._front = transport

    def down(self) -> None:
        """Close the port: queries are refused from now on."""
        if self._front is not None:
            self._front.close()
            self._front = None

    def spawn(self, data: bytes, client: tuple[str, int]) -> None:
        """Relay one query in the background."""
        task = asyncio.get_running_loop().create_task(self._forward(data, client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, data: bytes, client: tuple[str, int]) -> None:
        front = self._front
        if front is None:
            return
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[bytes] = loop.create_future()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Upstream(answered), remote_addr=self.upstream)
        try:
            transport.sendto(data)
            answer = await asyncio.wait_for(answered, 3)
        except TimeoutError:
            return
        finally:
            transport.close()
        if not front.is_closing():
            front.sendto(answer, client)

    async def close(self) -> None:
        """Stop listening and drop queries in flight."""
        self.down()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
