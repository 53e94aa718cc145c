"""Where each component of a topology listens and keeps its files, and the plans rendered from them."""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import yaml
from temporalio.client import Client

from sandbox import pki
from sandbox.topology.config import (
    DECOMMISSION_AUTH_ENV,
    LOOPBACK,
    NOTIFY_URL_ENV,
    PLANS_DIR,
    RUNTIME_ADDRESSES,
    TSIG_ENV,
    TSIG_KEY_NAME,
    Timings,
)
from sandbox.topology.ports import Ports
from settings import TemporalSettings


class Layout:
    """The addresses and files of a topology, fixed by its work directory, ports and timings (nothing runs).

    Args:
        workdir: the work directory.
        ports: ``"default"`` (the demo's fixed ports), ``"auto"`` (free ports) or explicit :class:`Ports`.
        timings: TTLs and plan timings.
    """

    def __init__(
        self,
        workdir: str | Path,
        *,
        ports: Ports | Literal["default", "auto"] = "default",
        timings: Timings | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.ports = Ports.auto() if ports == "auto" else Ports() if ports == "default" else ports
        self.timings = timings or Timings()

    @property
    def temporal_address(self) -> str:
        """``host:port`` of the Temporal frontend."""
        return f"{LOOPBACK}:{self.ports.temporal}"

    @property
    def temporal_db(self) -> Path:
        """The dev server's SQLite file (a restart keeps every workflow)."""
        return self.workdir / "temporal.db"

    @property
    def ui_url(self) -> str:
        """The Temporal web UI."""
        return f"http://{LOOPBACK}:{self.ports.temporal_ui}"

    def workflow_url(self, workflow_id: str, namespace: str = "default") -> str:
        """A workflow's page in the web UI."""
        return f"{self.ui_url}/namespaces/{namespace}/workflows/{workflow_id}"

    async def temporal_client(self) -> Client:
        """A new client connected the way the worker and starter connect (settings.py), to this dev server."""
        env = {"TEMPORAL_ADDRESS": self.temporal_address, "TEMPORAL_CONFIG_FILE": os.devnull}
        settings = TemporalSettings.from_env(env)
        return await settings.connect()

    @property
    def nameservers(self) -> list[str]:
        """``host:port`` of the BIND primary, then the secondary."""
        return [f"{LOOPBACK}:{self.ports.bind_primary}", f"{LOOPBACK}:{self.ports.bind_secondary}"]

    @property
    def kong_admin_url(self) -> str:
        """Kong's Admin API."""
        return f"http://{LOOPBACK}:{self.ports.kong_admin}"

    @property
    def kong_proxy_url(self) -> str:
        """Kong's proxy: where clients (the load) send requests."""
        return f"http://{LOOPBACK}:{self.ports.kong_proxy}"

    @property
    def file_log(self) -> Path:
        """Kong's file-log output, one JSON line per proxied request (the monitor's source)."""
        return self.workdir / "file-log.json"

    @property
    def ca_path(self) -> Path:
        """The sandbox CA that signed A's and B's certificates."""
        return self.workdir / "pki" / pki.CA_CERT

    def runtime_url(self, runtime: str) -> str:
        """``https://127.0.0.2:8443`` (A) or ``https://127.0.0.3:8443`` (B)."""
        return f"https://{RUNTIME_ADDRESSES[runtime]}:{self.ports.runtime}"

    def runtime_control_url(self, runtime: str, action: str) -> str:
        """A runtime's control endpoint: ``fail``, ``recover``, ``flap``, ``stats``, ``reset-stats``."""
        return f"{self.runtime_url(runtime)}/_runtime/{action}"

    def runtime_pid_file(self, runtime: str) -> Path:
        """Where the current pid of a runtime is kept (the receiver reads A's to stop it)."""
        return self.workdir / "run" / f"runtime-{runtime}.pid"

    @property
    def receiver_url(self) -> str:
        """The decommission receiver."""
        return f"http://{LOOPBACK}:{self.ports.receiver}"

    @property
    def decommission_url(self) -> str:
        """What the plan's webhook decommission calls to "delete project A"."""
        return f"{self.receiver_url}/projects/a-project"

    def plan_values(self) -> dict[str, str]:
        """The values substituted into the templates of sandbox/plans/."""
        t = self.timings
        values: dict[str, Any] = {
            "bind_primary": self.nameservers[0],
            "bind_secondary": self.nameservers[1],
            "tsig_key_name": TSIG_KEY_NAME,
            "tsig_secret_env": TSIG_ENV,
            "kong_admin_url": self.kong_admin_url,
            "runtime_a_url": self.runtime_url("A"),
            "runtime_b_url": self.runtime_url("B"),
            "ca_bundle": str(self.ca_path),
            "file_log": str(self.file_log),
            "decommission_url": self.decommission_url,
            "decommission_auth_env": DECOMMISSION_AUTH_ENV,
            "notify_url_env": NOTIFY_URL_ENV,
        }
        values.update({f.name: getattr(t, f.name) for f in fields(t)})
        return {key: str(value) for key, value in values.items()}

    def render_plan_text(self, strategy: Literal["cname", "alias"] = "cname") -> str:
        """The template sandbox/plans/<strategy>.yaml with this topology's addresses, comments kept."""
        template = PLANS_DIR / f"{strategy}.yaml"
        if not template.exists():
            raise ValueError(f"no plan template for strategy {strategy!r} ({template})")
        try:
            return string.Template(template.read_text()).substitute(self.plan_values())
        except KeyError as exc:
            raise ValueError(f"{template} uses an unknown placeholder {exc}") from exc

    def render_plan(self, strategy: Literal["cname", "alias"] = "cname", **overrides: Any) -> dict[str, Any]:
        """A CutoverPlan as plain data for this topology; ``overrides`` are merged in per section.

        Mappings merge recursively (``monitor={"window": "30s"}`` keeps the source), anything else
        replaces (``name="orders-2"``, ``approvals={"flip": False}``).
        """
        data = yaml.safe_load(self.render_plan_text(strategy))
        if not isinstance(data, dict):
            raise ValueError(f"sandbox/plans/{strategy}.yaml does not hold a mapping")
        return _merged(data, overrides)

    def write_plan(self, strategy: Literal["cname", "alias"] = "cname", **overrides: Any) -> Path:
        """Write the rendered plan to ``<workdir>/plans/<strategy>.yaml`` for ``python starter.py``."""
        path = self.workdir / "plans" / f"{strategy}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.render_plan_text(strategy)
        if overrides:
            text = yaml.safe_dump(self.render_plan(strategy, **overrides), sort_keys=False)
        path.write_text(text)
        return path


def _merged(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out
