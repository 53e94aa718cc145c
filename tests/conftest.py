"""Shared fixtures: a real BIND pair per test, the TSIG secret in the environment, sample plans."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from models.plan import CutoverPlan
from providers.telemetry import line_index
from sandbox.bind import BindPair, bind_pair

TSIG_ENV = "CUTOVER_TSIG_SECRET"


@pytest.fixture(autouse=True)
def _fresh_worker_memos(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts like a fresh worker: no indexed log lines (a later test's file can reuse an inode)."""
    monkeypatch.setattr(line_index, "SHARED", line_index.LineIndex())


@pytest.fixture
def bind() -> Iterator[BindPair]:
    """A fresh BIND primary + secondary (NOTIFY on) serving example.test with the sandbox records."""
    with bind_pair() as pair:
        yield pair


@pytest.fixture
def bind_lagging() -> Iterator[BindPair]:
    """A BIND pair whose primary does not NOTIFY: the secondary lags until the test sends a NOTIFY."""
    with bind_pair(notify=False) as pair:
        yield pair


@pytest.fixture
def tsig_secret(bind: BindPair, monkeypatch: pytest.MonkeyPatch) -> str:
    """Put the pair's TSIG secret where the worker reads it (never in a plan)."""
    monkeypatch.setenv(TSIG_ENV, bind.secret)
    return bind.secret


def base_plan_data(**sections: Any) -> dict[str, Any]:
    """A complete, valid plan as plain data (the sandbox topology); sections override top-level keys."""
    data: dict[str, Any] = {
        "name": "orders-api",
        "strategy": "cname",
        "dns": {
            "provider": {
                "kind": "rfc2136",
                "server": "127.0.0.1:5353",
                "zone": "example.test.",
                "tsig_key_name": "update-key",
                "tsig_secret_env": TSIG_ENV,
            },
            "nameservers": ["127.0.0.1:5353", "127.0.0.1:5354"],
            "record": "a-project.example.test.",
            "target": "b-project.example.test.",
            "cutover_ttl": 30,
            "final_ttl": 300,
        },
        "kong": {"admin_url": "http://127.0.0.1:8001", "service": "orders-api"},
        "readiness": {
            "url": "https://127.0.0.3:8443/orders/v1/health",
            "parity_url": "https://127.0.0.2:8443/orders/v1/health",
            "interval": "1s",
            "timeout": "30s",
        },
        "monitor": {
            "source": {"kind": "kong-file-log", "path": "/var/log/kong/file-log.json"},
            "window": "10m",
            "poll_interval": "15s",
        },
        "approvals": {"flip": True, "decommission": True, "timeout": "24h", "on_timeout": "abort"},
        "decommission": {"kind": "none"},
    }
    data.update(copy.deepcopy(sections))
    return data


def plan_for_bind(pair: BindPair, **sections: Any) -> dict[str, Any]:
    """The base plan pointed at a running BIND pair."""
    data = base_plan_data(**sections)
    data["dns"]["provider"]["server"] = pair.primary.address
    data["dns"]["nameservers"] = pair.nameservers
    return data


@pytest.fixture
def make_plan() -> Callable[..., CutoverPlan]:
    """Build a validated plan from the base data with overrides."""

    def build(**sections: Any) -> CutoverPlan:
        return CutoverPlan.model_validate(base_plan_data(**sections))

    return build
