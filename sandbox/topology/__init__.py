"""The whole sandbox on loopback, one OS process per component: what the demo, e2e tests and benchmarks run on.

Components (each its own process group, output in ``<workdir>/logs/<name>.log``):

========================  ==============================  ==========================================
component                 default address                 what it is
========================  ==============================  ==========================================
``temporal``              127.0.0.1:7233, UI :8233        ``temporal server start-dev`` on a SQLite file
``bind-primary``          127.0.0.1:5353                  BIND 9 primary for ``example.test`` (TSIG)
``bind-secondary``        127.0.0.1:5354                  BIND 9 secondary (NOTIFY + IXFR)
``runtime-A``             127.0.0.2:8443                  project A (``python -m sandbox.runtime``)
``runtime-B``             127.0.0.3:8443                  project B, same port, certificate for Kong's names
``kong``                  admin :8001, proxy :8000        the Kong emulator, file-log JSON
``receiver``              127.0.0.1:8088                  decommission webhook ("delete project A") + notices
``worker``                -                               ``python worker.py --policy sandbox/policy.yaml``
========================  ==============================  ==========================================

``Topology(workdir, ports="auto")`` picks free ports (tests); the default ports are the demo's and a
busy one fails fast, naming it. The work directory is wiped at start (a second run starts clean) and
processes a killed earlier run left behind are stopped first. Everything stops on ``stop()`` (also on
cancellation: Ctrl-C in the demo), and an ``atexit`` hook kills whatever is still running if the
event loop never got there.

Timings (:class:`Timings`) are short so a whole cutover fits in about a minute, while every phase
still shows: records have a 20 s TTL before the cutover, Kong's ``dns_stale_ttl`` is 5 s instead of
Kong's default 3600 s (with 3600 the A->CNAME flip of the cname strategy would keep A's address for
an hour, see kong.md §1.5).
"""

from sandbox.topology.config import (
    DECOMMISSION_AUTH_ENV,
    LOOPBACK,
    MARKER,
    NOTIFY_URL_ENV,
    PLANS_DIR,
    REPO_ROOT,
    RUNTIME_ADDRESSES,
    RUNTIME_HOSTS,
    SANDBOX_POLICY,
    SEARCH_ATTRIBUTES,
    SERVICES_YAML,
    TSIG_ENV,
    TSIG_KEY_NAME,
    ZONE,
    PortBusyError,
    Timings,
    TopologyError,
    zone_records,
)
from sandbox.topology.core import ComponentInfo, Topology
from sandbox.topology.layout import Layout
from sandbox.topology.leftovers import kill_leftovers, process_identity
from sandbox.topology.ports import Ports
from sandbox.topology.process import Component, venv_binary, wait_until

__all__ = [
    "DECOMMISSION_AUTH_ENV",
    "LOOPBACK",
    "MARKER",
    "NOTIFY_URL_ENV",
    "PLANS_DIR",
    "REPO_ROOT",
    "RUNTIME_ADDRESSES",
    "RUNTIME_HOSTS",
    "SANDBOX_POLICY",
    "SEARCH_ATTRIBUTES",
    "SERVICES_YAML",
    "TSIG_ENV",
    "TSIG_KEY_NAME",
    "ZONE",
    "Component",
    "ComponentInfo",
    "Layout",
    "PortBusyError",
    "Ports",
    "Timings",
    "Topology",
    "TopologyError",
    "kill_leftovers",
    "process_identity",
    "venv_binary",
    "wait_until",
    "zone_records",
]
