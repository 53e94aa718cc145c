"""Kong's own DNS client code under Debian's nginx + lua module, one nginx per client and settings.

The Lua tree is ``../shared/kong-lua`` (Kong's files, unmodified; see its README) unless
``CUTOVER_KONG_LUA`` names another folder laid out the same way (e.g. built from a Kong checkout).
Only the glue in ``lua/cutover_conformance.lua`` is the project's: it hands a kong.conf-style table to
Kong's ``kong/tools/dns.lua`` and answers what ``toip`` returns.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sandbox.bind import terminate
from sandbox.free_ports import free_port

REPO = Path(__file__).resolve().parents[2]
GLUE = Path(__file__).resolve().parent / "lua"
KONG_LUA_ENV = "CUTOVER_KONG_LUA"
SKIP_ENV = "CUTOVER_SKIP_KONG_CONFORMANCE"
DEBIAN_PACKAGES = (
    "nginx-core",
    "libnginx-mod-http-lua",
    "lua-resty-core",
    "lua-resty-lrucache",
    "lua-penlight",
    "lua-cjson",
    "lua-filesystem",  # penlight's pl.path needs it, and Kong's legacy client requires pl.path
)
NGINX = "/usr/sbin/nginx"
MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so", "/usr/lib/nginx/modules/ngx_http_lua_module.so")
LUA_SHARE = "/usr/share/lua/5.1"
KONG_FILES = (
    "kong/tools/dns.lua",
    "kong/resty/dns/client.lua",
    "kong/dns/client.lua",
    "kong/resty/mlcache/init.lua",
    "resty/dns/resolver.lua",
)


def kong_lua_dir() -> Path:
    """Where Kong's Lua files are read from."""
    return Path(os.environ.get(KONG_LUA_ENV) or REPO.parent / "shared" / "kong-lua").resolve()


def kong_commit(lua: Path) -> str:
    """The Kong commit the tree holds, as its README records it."""
    readme = lua / "README.md"
    found = re.search(r"\b[0-9a-f]{40}\b", readme.read_text()) if readme.exists() else None
    return found.group(0) if found else f"unknown (no commit recorded in {readme})"


def missing_requirements(lua: Path) -> list[str]:
    """Everything the suite needs that is not there, with how to get it."""
    missing = []
    if not os.access(NGINX, os.X_OK) or not all(os.path.exists(m) for m in MODULES):
        missing.append(f"nginx with the lua module ({NGINX}, {', '.join(MODULES)})")
    for lib in ("resty/core.lua", "resty/lrucache.lua", "pl/tablex.lua"):
        if not os.path.exists(f"{LUA_SHARE}/{lib}"):
            missing.append(f"{LUA_SHARE}/{lib}")
    for lib, package in (("cjson.so", "lua-cjson"), ("lfs.so", "lua-filesystem")):
        if not glob.glob(f"/usr/lib/*/lua/5.1/{lib}"):
            missing.append(f"{lib} ({package})")
    for name in KONG_FILES:
        if not (lua / name).exists():
            missing.append(f"Kong's {lua / name} (set {KONG_LUA_ENV} to a folder laid out like shared/kong-lua)")
    return missing


def has_search_domains(path: str = "/etc/resolv.conf") -> bool:
    """True when resolv.conf lists search domains, which the legacy client tries after a failed bare name."""
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if re.match(r"\s*(search|domain)\s+\S", line):
                return True
    return False


def _nginx_conf(directory: Path, port: int, lua: Path, new_client: bool) -> str:
    cpath = ";".join(
        f"{d}/?.so" for d in sorted({os.path.dirname(p) for p in glob.glob("/usr/lib/*/lua/5.1/cjson.so")})
    )
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    # Kong's nginx template declares kong_dns_cache only with new_dns_client = on (5m default size).
    shm = "lua_shared_dict kong_dns_cache 5m;" if new_client else ""
    return f"""{user}
worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log notice;
load_module {MODULES[0]};
load_module {MODULES[1]};
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {directory}/tmp;
    proxy_temp_path {directory}/tmp;
    fastcgi_temp_path {directory}/tmp;
    uwsgi_temp_path {directory}/tmp;
    scgi_temp_path {directory}/tmp;
    lua_package_path '{GLUE}/?.lua;{lua}/?.lua;{lua}/?/init.lua;{LUA_SHARE}/?.lua;{LUA_SHARE}/?/init.lua;;';
    lua_package_cpath '{cpath};;';
    lua_socket_log_errors off;
    lua_shared_dict kong_locks 8m;
    {shm}
    init_by_lua_block {{ require("cutover_conformance").init("{directory}/kong_conf.json") }}
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 100000;
        location = /resolve {{ content_by_lua_block {{ require("cutover_conformance").resolve() }} }}
        location = /info {{ content_by_lua_block {{ require("cutover_conformance").info() }} }}
    }}
}}
"""


def kong_conf(nameserver: str, settings: dict[str, Any]) -> dict[str, Any]:
    """A kong.conf as conf_loader parses it: Kong 3.x defaults, the nameserver, and ``settings`` on top."""
    conf: dict[str, Any] = {
        "dns_resolver": [nameserver],
        "dns_hostsfile": "/etc/hosts",
        "dns_order": ["LAST", "SRV", "A", "CNAME"],
        "dns_valid_ttl": None,
        "dns_stale_ttl": 3600,
        "dns_cache_size": 10000,
        "dns_not_found_ttl": 30,
        "dns_error_ttl": 1,
        "dns_no_sync": False,
        "resolver_address": [nameserver],
        "resolver_hosts_file": "/etc/hosts",
        "resolver_family": ["A", "SRV"],
        "resolver_valid_ttl": None,
        "resolver_stale_ttl": 3600,
        "resolver_error_ttl": 1,
        "resolver_lru_cache_size": 10000,
    }
    conf.update(settings)
    return conf


@dataclass
class KongNginx:
    """One nginx running Kong's client with one kong.conf."""

    name: str
    new_client: bool
    conf: dict[str, Any]
    directory: Path
    lua: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        """Write the configuration, start nginx and wait until Kong's client answers."""
        self.port = free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "tmp").mkdir(exist_ok=True)
        (self.directory / "kong_conf.json").write_text(json.dumps(self.conf))
        (self.directory / "nginx.conf").write_text(_nginx_conf(self.directory, self.port, self.lua, self.new_client))
        with open(self.directory / "stdout.log", "ab") as out:
            self.process = subprocess.Popen(
                [NGINX, "-p", str(self.directory), "-c", str(self.directory / "nginx.conf")],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                self.info = httpx.get(f"http://127.0.0.1:{self.port}/info", timeout=1).json()
                if self.info.get("client") == ("new" if self.new_client else "legacy"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"nginx {self.name} did not start with Kong's client:\n{self.log()[-3000:]}")

    def log(self) -> str:
        """nginx's error log and output, for failure messages."""
        parts = [p.read_text(errors="replace") for p in (self.directory / "stdout.log", self.directory / "error.log")]
        return "\n".join(p for p in parts if p)

    def stop(self) -> None:
        """Fast shutdown (SIGTERM), SIGKILL after 5 s."""
        if self.process is not None:
            terminate(self.process)
