"""docker-compose.yml as data, for tests that keep it in step with the sandbox (no Docker engine needed).

:class:`Compose` reads the file with PyYAML (anchors and ``<<`` merges resolved) and answers the
questions the tests ask: a service's command, environment (``${VAR:-default}`` resolved to the
default, as compose does without the variable), env files, mounts, static address, exposed ports.

:func:`compose_plan_values` derives the address-like values of the sandbox plan templates
(sandbox/plans/*.yaml, ``sandbox.topology.Topology.plan_values``) from the compose file itself, and
:func:`render_compose_plan` renders a template with them: the compose plans in deploy/plans are that
rendering, so they differ from the sandbox's only in those values.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from sandbox import pki
from sandbox.topology import PLANS_DIR, Topology

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DEPLOY = REPO / "deploy"
DEPLOY_PLANS = DEPLOY / "plans"
STRATEGIES: tuple[Literal["cname", "alias"], ...] = ("cname", "alias")

ADDRESS_KEYS = frozenset(
    {
        "bind_primary",
        "bind_secondary",
        "kong_admin_url",
        "runtime_a_url",
        "runtime_b_url",
        "ca_bundle",
        "file_log",
        "decommission_url",
    }
)
"""Placeholders of the sandbox plan templates that say where things are; only these may differ."""

_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """``${VAR:-default}`` -> ``default`` (what compose uses when VAR is unset); ``${VAR}`` -> ''."""
    return _VARIABLE.sub(lambda match: match.group(2) or "", value)


def port_of(address: str) -> int:
    """The port of ``host:port``."""
    return int(address.rsplit(":", 1)[1])


@dataclass(frozen=True)
class Mount:
    """One entry of a service's ``volumes``."""

    source: str
    """A named volume, or a host path relative to the repository (``./deploy/init.sh``)."""
    target: str
    read_only: bool
    kind: Literal["volume", "bind"]

    @property
    def host_path(self) -> Path:
        """The file or directory a bind mount shows (bind mounts only)."""
        assert self.kind == "bind", f"{self.source} is a named volume"
        return (REPO / self.source).resolve()


class Compose:
    """The parsed compose file."""

    def __init__(self, data: dict[str, Any], path: Path = COMPOSE_FILE) -> None:
        self.data = data
        self.path = path
        self.services: dict[str, dict[str, Any]] = data["services"]

    @classmethod
    def load(cls, path: Path = COMPOSE_FILE) -> Compose:
        """Read and parse the file."""
        return cls(yaml.safe_load(path.read_text()), path)

    def service(self, name: str) -> dict[str, Any]:
        """One service's definition, or an error naming the services there are."""
        if name not in self.services:
            raise KeyError(f"docker-compose.yml has no service {name!r} (it has {', '.join(sorted(self.services))})")
        return self.services[name]

    def command(self, name: str) -> list[str]:
        """The service's command as a list of strings."""
        command = self.service(name).get("command", [])
        return [str(part) for part in (command.split() if isinstance(command, str) else command)]

    def argument(self, name: str, flag: str) -> str:
        """The value following ``flag`` in the service's command."""
        command = self.command(name)
        if flag not in command:
            raise KeyError(f"{name}'s command has no {flag}: {command}")
        return command[command.index(flag) + 1]

    def environment(self, name: str) -> dict[str, str]:
        """The service's ``environment`` (interpolated), without env files."""
        environment = self.service(name).get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        return {key: interpolate(str(value)) for key, value in environment.items()}

    def env_files(self, name: str) -> list[str]:
        """The service's ``env_file`` entries, relative to the repository."""
        files = self.service(name).get("env_file", [])
        return [files] if isinstance(files, str) else list(files)

    def mounts(self, name: str) -> list[Mount]:
        """The service's ``volumes`` (short syntax)."""
        mounts = []
        for entry in self.service(name).get("volumes", []):
            parts = entry.split(":")
            source, target = parts[0], parts[1]
            kind: Literal["volume", "bind"] = "bind" if source.startswith((".", "/")) else "volume"
            mounts.append(Mount(source, target, len(parts) > 2 and "ro" in parts[2].split(","), kind))
        return mounts

    def locate(self, name: str, container_path: str) -> tuple[Mount, str]:
        """The mount of ``name`` holding ``container_path``, and the path inside it ('' for its root)."""
        best: tuple[Mount, str] | None = None
        for mount in self.mounts(name):
            target = mount.target.rstrip("/")
            if container_path == target or container_path.startswith(target + "/"):
                if best is None or len(target) > len(best[0].target.rstrip("/")):
                    best = (mount, container_path[len(target) :].lstrip("/"))
        if best is None:
            raise LookupError(f"{container_path} is on no volume of {name} (its mounts: {self.mounts(name)})")
        return best

    def mount_of_volume(self, name: str, volume: str) -> Mount:
        """Where service ``name`` mounts the named volume ``volume``."""
        for mount in self.mounts(name):
            if mount.kind == "volume" and mount.source == volume:
                return mount
        raise LookupError(f"{name} does not mount the volume {volume!r}")

    def static_ip(self, name: str) -> str:
        """The service's fixed address on the ``cutover`` network."""
        networks = self.service(name).get("networks", {})
        address = networks.get("cutover", {}).get("ipv4_address") if isinstance(networks, dict) else None
        if not address:
            raise LookupError(f"{name} has no fixed ipv4_address on the cutover network")
        return str(address)

    def static_ips(self) -> dict[str, str]:
        """Fixed address -> service."""
        found = {}
        for name, service in self.services.items():
            networks = service.get("networks", {})
            if isinstance(networks, dict) and (networks.get("cutover") or {}).get("ipv4_address"):
                found[str(networks["cutover"]["ipv4_address"])] = name
        return found

    def exposed(self, name: str) -> set[int]:
        """The container ports the service declares (``expose``)."""
        return {int(str(port).split("/")[0]) for port in self.service(name).get("expose", [])}

    def healthcheck(self, name: str) -> list[str]:
        """The healthcheck's exec form without the ``CMD`` marker."""
        test = self.service(name)["healthcheck"]["test"]
        assert test[0] == "CMD", f"{name}'s healthcheck is not an exec-form CMD: {test}"
        return [str(part) for part in test[1:]]


def file_log_path() -> str:
    """The path Kong's file-log plugin writes to (deploy/kong/file-log.yaml), as Kong sees it."""
    config = yaml.safe_load((DEPLOY / "kong" / "file-log.yaml").read_text())
    (plugin,) = [p for p in config["plugins"] if p["name"] == "file-log"]
    return str(plugin["config"]["path"])


def compose_plan_values(compose: Compose) -> dict[str, str]:
    """The address-like template values for the compose network, derived from docker-compose.yml."""
    kong_log_mount, kong_log_file = compose.locate("kong", file_log_path())
    worker_log_mount = compose.mount_of_volume("worker", kong_log_mount.source)
    decommission_path = urlsplit(Topology(REPO / ".unused").decommission_url).path
    receiver_port = port_of(compose.environment("runtime-a")["CUTOVER_RECEIVER_LISTEN"])
    (dns_port_primary,) = compose.exposed("bind-primary")
    (dns_port_secondary,) = compose.exposed("bind-secondary")

    def runtime_url(service: str) -> str:
        return f"https://{compose.static_ip(service)}:{port_of(compose.argument(service, '--listen'))}"

    return {
        "bind_primary": f"{compose.static_ip('bind-primary')}:{dns_port_primary}",
        "bind_secondary": f"{compose.static_ip('bind-secondary')}:{dns_port_secondary}",
        "kong_admin_url": f"http://kong:{port_of(compose.environment('kong')['KONG_ADMIN_LISTEN'])}",
        "runtime_a_url": runtime_url("runtime-a"),
        "runtime_b_url": runtime_url("runtime-b"),
        "ca_bundle": f"{compose.mount_of_volume('worker', 'ca').target}/{pki.CA_CERT}",
        "file_log": f"{worker_log_mount.target}/{kong_log_file}",
        "decommission_url": f"http://{compose.static_ip('runtime-a')}:{receiver_port}{decommission_path}",
    }


def sandbox_plan_values(workdir: Path) -> dict[str, str]:
    """What the sandbox topology (default ports and timings) fills the templates with."""
    return Topology(workdir).plan_values()


def render_compose_plan_text(strategy: Literal["cname", "alias"], compose: Compose, workdir: Path) -> str:
    """sandbox/plans/<strategy>.yaml with the sandbox's values except the compose addresses."""
    values = {**sandbox_plan_values(workdir), **compose_plan_values(compose)}
    return string.Template((PLANS_DIR / f"{strategy}.yaml").read_text()).substitute(values)


def render_compose_plan(strategy: Literal["cname", "alias"], compose: Compose, workdir: Path) -> dict[str, Any]:
    """The compose plan as data."""
    data = yaml.safe_load(render_compose_plan_text(strategy, compose, workdir))
    assert isinstance(data, dict), f"sandbox/plans/{strategy}.yaml does not render to a mapping"
    return data
