"""Ports picked for servers started later sit outside the kernel's ephemeral range and are free."""

from __future__ import annotations

import socket

import pytest

from sandbox import free_ports
from sandbox.free_ports import bindable, free_port, free_tcp_port, port_free_on
from sandbox.topology.ports import Ports, free_runtime_port


def ephemeral_range() -> tuple[int, int]:
    with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
        first, last = handle.read().split()[:2]
    return int(first), int(last)


def test_picked_ports_are_never_ones_an_outgoing_connection_could_take():
    first, last = ephemeral_range()
    picked = [free_port() for _ in range(20)] + [free_tcp_port() for _ in range(20)] + [free_runtime_port()]
    picked += [p for p in vars(Ports.auto()).values()]
    assert all(not first <= port <= last for port in picked), ((first, last), picked)
    assert all(bindable("127.0.0.1", port) for port in picked[:40])
    assert all(bindable("127.0.0.1", port, udp=True) for port in picked[:20])


def test_a_port_in_use_is_not_picked(monkeypatch):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        assert not bindable("127.0.0.1", held)
        choices = iter([held, held, held + 1])
        monkeypatch.setattr(free_ports._random, "randrange", lambda low, high: next(choices))
        assert port_free_on(["127.0.0.1"]) != held


def test_no_free_port_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(free_ports, "bindable", lambda *args, **kwargs: False)
    with pytest.raises(RuntimeError, match=r"no free port on 127\.0\.0\.2, 127\.0\.0\.3"):
        port_free_on(["127.0.0.2", "127.0.0.3"])


@pytest.mark.parametrize(
    ("kernel", "expected"),
    [("32768\t60999\n", (10000, 32768)), ("1024\t40000\n", (40001, 65536)), ("1024\t65000\n", (10000, 65536))],
)
def test_the_range_follows_the_kernel_s(monkeypatch, tmp_path, kernel, expected):
    """Below the ephemeral range, above it when it starts low, anywhere when it covers everything."""
    ranges = tmp_path / "ip_local_port_range"
    ranges.write_text(kernel)
    monkeypatch.setattr(free_ports, "_RANGE_FILE", str(ranges))
    assert free_ports.pick_range() == expected
    monkeypatch.setattr(free_ports, "_RANGE_FILE", str(tmp_path / "missing"))
    assert free_ports.pick_range() == (10000, 32768)
