r"""A Kong Gateway 3.9 **emulator** for tests and the demo. It is not Kong.

Kong cannot be installed on the project's machines, so this package imitates the parts of Kong
that a DNS cutover depends on, closely enough to test cutover against and to demo it, and no more.
The facts it follows are in shared/reference/kong.md (section numbers below). Start it with::

    python -m sandbox.kong --admin 127.0.0.1:8001 --proxy 127.0.0.1:8000 --dns 127.0.0.1:5353 \\
        --config services.yaml --log file-log.json

or in-process with ``async with running_emulator(...) as kong``.

Covered:

* Admin API (§2): ``GET /`` with ``configuration`` (``role``, ``database``, ``dns_*`` and
  ``resolver_*``; settings at NONE are absent), ``/status`` (``configuration_hash`` on DB-less
  nodes and data planes), ``/status/ready``, ``/status/dns`` (501 on the legacy client); CRUD on
  services, routes, upstreams and targets by id or name, with Kong's defaults, ``url`` shorthand,
  pagination, target port 8000 when omitted, 409 on duplicates, and Kong's error bodies
  ``{code, name, message, fields}``. Responses are checked against Kong's published OpenAPI spec in
  tests/kong. Optional RBAC token in ``Kong-Admin-Token`` (or another ``admin_token_header``;
  missing: 401, wrong: 403) and workspace prefixes.
* Modes (§2.8): ``traditional`` (writable), ``db-less`` and ``data-plane`` (writes: 405 code 12),
  ``control-plane`` (writable, no proxy). A Status API listener (``--status``) as on data planes.
* Declarative config (``_format_version: "3.0"``, services with nested routes, top-level routes,
  upstreams with nested targets): the same file seeds real Kong.
* Proxy data plane (§1.2-§1.5, §4.2, §5): route matching by hosts, path prefixes and methods;
  Service host or Upstream targets (weighted round robin; per-worker address lists renewed by the
  balancer's timer at their records' expiry); each client connection served by one worker for its
  life; DNS through ``--dns`` with the legacy client's per-worker cache (``--workers N``) or the
  new client's shared cache (``--new-dns-client``), both held to Kong's own client code by
  tests/kong_conformance (rules and Kong's line numbers in dns_legacy.py and dns_new.py); a failed
  lookup answers 503 for NXDOMAIN/empty, 500 otherwise;
  Host and SNI = ``$upstream_host`` (``preserve_host``, ``host_header``, ``:port`` unless default);
  ``tls_verify`` against ``--upstream-ca``; retries of connection failures per Service ``retries``;
  Kong's 502/503/504 bodies; one file-log JSON line per request (``upstream_status``, ``tries[]``,
  ``latencies``, ``service``, ``route``, ``source``...).

Not covered: plugins (file-log is built in), consumers, certificates/SNIs entities, ``POST /config``,
``/upstreams/{u}/health``, health checks (stored, not applied), CP->DP config propagation (two
emulators are two independent nodes), hybrid clustering endpoints, Konnect, stream (TCP/UDP)
routing, HTTPS on the proxy listener, expression/regex router priorities beyond longest-prefix,
/etc/hosts, search domains, LRU limits, ``dns_no_sync``, the legacy client's ``short:`` name cache.

Not Kong's API, for tests and the demo only: ``/_emulator/...`` on the Admin listener
(``POST fail``, ``POST dns-settings``, ``POST dns-cache/reset``, ``GET dns-cache``, ``POST mode``,
``GET state``). The product never imports this package.
"""

from sandbox.kong.emulator import KongEmulator, running_emulator

__all__ = ["KongEmulator", "running_emulator"]
