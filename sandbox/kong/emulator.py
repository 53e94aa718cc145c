"""The emulated Kong node: configuration, mode, entity store, DNS caches, and its listeners."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox.kong.admin import AdminApi
from sandbox.kong.balancer import TargetAddresses
from sandbox.kong.declarative import load_declarative
from sandbox.kong.dns import DnsClients, DnsSettings, Nameserver
from sandbox.kong.metrics import KongMetrics
from sandbox.kong.proxy import ProxyDataPlane
from sandbox.kong.store import Store

VERSION = "3.9.1"
MODES = ("traditional", "db-less", "data-plane", "control-plane")
ROLE = {
    "traditional": "traditional",
    "db-less": "traditional",
    "data-plane": "data_plane",
    "control-plane": "control_plane",
}

Address = tuple[str, int]


class KongEmulator:
    """One emulated Kong node.

    Args:
        admin: Admin API listen address (port 0: any free port).
        proxy: proxy listen address, or None for no proxy (a Control Plane never proxies).
        status: Status API listen address (``status_listen``), or None.
        dns: nameserver the DNS client queries, ``(host, port)``; None: no Kong DNS cache, names are
            left to the system resolver when forwarding.
        config: declarative config (path, YAML text or mapping) to seed entities from.
        log: file-log path (one JSON line per proxied request), or None.
        mode: ``traditional``, ``db-less``, ``data-plane`` or ``control-plane``.
        workers: nginx workers; each has its own legacy DNS cache, requests round-robin over them.
        admin_token: when set, the Admin API requires it in ``admin_token_header``.
        admin_token_header: the RBAC header (Kong Enterprise ``rbac_auth_header``, default ``Kong-Admin-Token``).
        dns_settings: Kong config keys (``dns_valid_ttl``, ``dns_stale_ttl``, ``new_dns_client``, ...).
        upstream_ca: CA bundle used to verify backends of Services with ``tls_verify=true``.
    """

    def __init__(
        self,
        *,
        admin: Address = ("127.0.0.1", 0),
        proxy: Address | None = ("127.0.0.1", 0),
        status: Address | None = None,
        dns: Address | None = None,
        config: str | Path | Mapping[str, Any] | None = None,
        log: str | Path | None = None,
        mode: str = "traditional",
        workers: int = 1,
        admin_token: str | None = None,
        admin_token_header: str = "Kong-Admin-Token",
        dns_settings: Mapping[str, Any] | None = None,
        upstream_ca: str | Path | None = None,
        workspaces: tuple[str, ...] = ("default",),
    ) -> None:
        self.set_mode(mode)
        self.admin_address, self.proxy_address, self.status_address = admin, proxy, status
        self.dns_address = dns
        self.workers = max(1, workers)
        self.admin_token = admin_token
        self.admin_token_header = admin_token_header
        self.workspaces = workspaces
        self.node_id = str(uuid.uuid4())
        self.started = time.time()
        self.metrics = KongMetrics(self.node_id, VERSION)
        self.config_path = Path(config) if isinstance(config, str | Path) and Path(config).exists() else None
        self.store = Store()
        if config is not None:
            source: str | Mapping[str, Any]
            if isinstance(config, Mapping):
                source = config
            elif self.config_path is not None:
                source = self.config_path.read_text()
            else:
                source = str(config)
            load_declarative(self.store, source)
        self.dns_settings = DnsSettings()
        if dns_settings:
            self.dns_settings.update(dict(dns_settings))
        nameserver = Nameserver(dns[0], dns[1]) if dns else None
        self.dns = DnsClients(nameserver, self.dns_settings, self.workers)
        self.targets = TargetAddresses(self.dns)
        self.admin_api = AdminApi(self)
        self.proxy = ProxyDataPlane(self, Path(log) if log else None, Path(upstream_ca) if upstream_ca else None)
        self._runners: list[web.AppRunner] = []
        self.admin_port: int | None = None
        self.proxy_port: int | None = None
        self.status_port: int | None = None

    # -- lifecycle --

    async def _serve(self, app: web.Application, address: Address) -> int:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, address[0], address[1])
        await site.start()
        return int(runner.addresses[-1][1])

    async def start(self) -> None:
        """Open the listeners."""
        self.admin_port = await self._serve(self.admin_api.app(), self.admin_address)
        if self.status_address is not None:
            self.status_port = await self._serve(self.admin_api.status_app(), self.status_address)
        if self.proxy_address is not None and self.mode != "control-plane":
            self.proxy_port = await self._serve(self.proxy.app(), self.proxy_address)
            self.targets.start()

    async def stop(self) -> None:
        """Close listeners, pools, the log file and background DNS refreshes."""
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.proxy.close()
        await self.targets.close()
        await self.dns.close()

    # -- addresses --

    @property
    def admin_url(self) -> str:
        """``http://host:port`` of the Admin API."""
        return f"http://{self.admin_address[0]}:{self.admin_port}"

    @property
    def proxy_url(self) -> str | None:
        """``http://host:port`` of the proxy, if running."""
        return f"http://{self.proxy_address[0]}:{self.proxy_port}" if self.proxy_address and self.proxy_port else None

    @property
    def status_url(self) -> str | None:
        """``http://host:port`` of the Status API, if running."""
        return (
            f"http://{self.status_address[0]}:{self.status_port}" if self.status_address and self.status_port else None
        )

    def ready_line(self) -> dict[str, Any]:
        """What the process prints on stdout once listening."""
        return {
            "event": "ready",
            "emulator": "sandbox.kong",
            "version": VERSION,
            "mode": self.mode,
            "admin": self.admin_url,
            "proxy": self.proxy_url,
            "status": self.status_url,
            "dns": f"{self.dns_address[0]}:{self.dns_address[1]}" if self.dns_address else None,
            "log": str(self.proxy.log_path) if self.proxy.log_path else None,
            "workers": self.workers,
            "pid": os.getpid(),
        }

    # -- mode and settings --

    def set_mode(self, mode: str) -> None:
        """Switch the deployment mode (``traditional``, ``db-less``, ``data-plane``, ``control-plane``)."""
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        self.mode = mode

    def update_dns_settings(self, changes: Mapping[str, Any]) -> None:
        """Change DNS settings and clear the caches, as a config change plus ``kong reload`` would."""
        self.dns_settings.update(dict(changes))
        self.dns.reset()
        self.targets.reset()

    def dns_configuration(self) -> dict[str, Any]:
        """The ``dns_*``/``resolver_*`` keys of ``GET /`` ``configuration``; unset (NONE) ones are absent."""
        s = self.dns_settings
        server = [f"{self.dns_address[0]}:{self.dns_address[1]}"] if self.dns_address else None
        conf: dict[str, Any] = {
            "dns_hostsfile": "/etc/hosts",
            "dns_order": list(s.dns_order),
            "dns_stale_ttl": s.dns_stale_ttl,
            "dns_cache_size": 10000,
            "dns_not_found_ttl": s.dns_not_found_ttl,
            "dns_error_ttl": s.dns_error_ttl,
            "dns_no_sync": False,
            "new_dns_client": s.new_dns_client,
            "resolver_hosts_file": "/etc/hosts",
            "resolver_family": list(s.resolver_family),
            "resolver_stale_ttl": s.resolver_stale_ttl,
            "resolver_error_ttl": s.resolver_error_ttl,
            "resolver_lru_cache_size": 10000,
            "resolver_mem_cache_size": "5m",
        }
        if server:
            conf["dns_resolver"] = server
            conf["resolver_address"] = server
        if s.dns_valid_ttl is not None:
            conf["dns_valid_ttl"] = s.dns_valid_ttl
        if s.resolver_valid_ttl is not None:
            conf["resolver_valid_ttl"] = s.resolver_valid_ttl
        return conf

    def configuration(self) -> dict[str, Any]:
        """``GET /`` ``configuration``: the parts of Kong's parsed config the emulator models."""
        database = "off" if self.mode in ("db-less", "data-plane") else "postgres"
        conf: dict[str, Any] = {
            "role": ROLE[self.mode],
            "database": database,
            "admin_listen": [f"{self.admin_address[0]}:{self.admin_port}"],
            "proxy_listen": [self.proxy_url.removeprefix("http://")] if self.proxy_url else ["off"],
            "status_listen": [self.status_url.removeprefix("http://")] if self.status_url else ["off"],
            "nginx_worker_processes": str(self.workers),
            "db_update_frequency": 5,
            "proxy_access_log": "logs/access.log",
            **self.dns_configuration(),
        }
        if database == "off" and self.config_path is not None:
            conf["declarative_config"] = str(self.config_path)
        return conf

    def node_info(self) -> dict[str, Any]:
        """``GET /``."""
        plugins = ["file-log"] if self.proxy.log_path else []
        return {
            "tagline": "Welcome to kong",
            "version": VERSION,
            "edition": "community",
            "hostname": socket.gethostname(),
            "node_id": self.node_id,
            "timers": {"running": 0, "pending": 0},
            "plugins": {
                "available_on_server": {"file-log": {"version": VERSION, "priority": 9}},
                "enabled_in_cluster": plugins,
            },
            "lua_version": "emulated by sandbox.kong (not LuaJIT)",
            "configuration": self.configuration(),
            "pids": {"master": os.getpid(), "workers": [os.getpid() * 10 + i for i in range(self.workers)]},
        }

    def node_status(self) -> dict[str, Any]:
        """``GET /status``: ``configuration_hash`` instead of ``database`` on DB-less nodes and data planes."""
        handled = self.admin_api.requests
        status: dict[str, Any] = {
            "server": {
                "connections_accepted": handled,
                "connections_active": 1,
                "connections_handled": handled,
                "connections_reading": 0,
                "connections_waiting": 0,
                "connections_writing": 1,
                "total_requests": handled,
            },
            "memory": {
                "lua_shared_dicts": {
                    "kong": {"allocated_slabs": "0.04 MiB", "capacity": "5.00 MiB"},
                    "kong_db_cache": {"allocated_slabs": "0.76 MiB", "capacity": "128.00 MiB"},
                },
                "workers_lua_vms": [
                    {"http_allocated_gc": "50.00 MiB", "pid": pid} for pid in self.node_info()["pids"]["workers"]
                ],
            },
        }
        if self.mode in ("db-less", "data-plane"):
            status["configuration_hash"] = self.store.configuration_hash()
        else:
            status["database"] = {"reachable": True}
        return status

    def state(self) -> dict[str, Any]:
        """``GET /_emulator/state``."""
        return {
            **self.ready_line(),
            "event": "state",
            "dns_settings": self.dns_configuration(),
            "entities": {
                "services": len(self.store.services),
                "routes": len(self.store.routes),
                "upstreams": len(self.store.upstreams),
                "targets": len(self.store.targets),
            },
            "admin_requests": self.admin_api.requests,
            "connections": self.proxy.pinned(),
            "pending_failures": len(self.admin_api.failures),
        }


@contextlib.asynccontextmanager
async def running_emulator(**options: Any) -> AsyncIterator[KongEmulator]:
    """Run a :class:`KongEmulator` in this event loop until the block exits (tests)."""
    emulator = KongEmulator(**options)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()
