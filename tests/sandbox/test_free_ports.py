"""Ports picked for servers started later sit below the kernel's ephemeral range and are free."""

from __future__ import annotations

import socket

import pytest

from sandbox import free_ports
from sandbox.free_ports import bindable, free_port, free_tcp_port, port_free_on
from sandbox.topology.ports import Ports, free_runtime_port


def ephemeral_start() -> int:
    with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
        return int(handle.read().split()[0])


def test_picked_ports_are_never_ones_an_outgoing_connection_could_take():
    start = ephemeral_start()
    picked = [free_port() for _ in range(20)] + [free_tcp_port() for _ in range(20)] + [free_runtime_port()]
    picked += [p for p in vars(Ports.auto()).values()]
    assert all(free_ports._LOWEST <= port < start for port in picked), (start, picked)
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
