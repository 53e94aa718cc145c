"""The sandbox's fixed names, paths and timings: what plans, the worker and the zone are rendered from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SANDBOX_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = SANDBOX_DIR.parent
PLANS_DIR = SANDBOX_DIR / "plans"
SERVICES_YAML = SANDBOX_DIR / "services.yaml"
SANDBOX_POLICY = SANDBOX_DIR / "policy.yaml"
"""The worker policy of the sandbox: loopback destinations, the sandbox's three secrets bound to them."""
MARKER = ".cutover-sandbox"
"""File that marks a directory as a sandbox work directory, the only kind :class:`Topology` wipes."""

ZONE = "example.test"
LOOPBACK = "127.0.0.1"
RUNTIME_ADDRESSES = {"A": "127.0.0.2", "B": "127.0.0.3"}
RUNTIME_HOSTS = {
    "A": ("a-project.example.test", "origin-api.example.test"),
    "B": ("b-project.example.test", "a-project.example.test", "origin-api.example.test"),
}
"""Host names each runtime answers; B also serves the names Kong sends before and after the flip."""
SEARCH_ATTRIBUTES = ("CutoverPhase", "CutoverRecord", "CampaignName", "CampaignWave")
TSIG_KEY_NAME = "update-key"
TSIG_ENV = "CUTOVER_TSIG_SECRET"
DECOMMISSION_AUTH_ENV = "CUTOVER_DECOMMISSION_AUTH"
NOTIFY_URL_ENV = "CUTOVER_NOTIFY_URL"
WORKER_READY = "worker polling task queue"


class TopologyError(RuntimeError):
    """A component could not be started or stopped; the message names it and quotes its log."""


class PortBusyError(TopologyError):
    """A fixed port is taken by another program."""


@dataclass(frozen=True)
class Timings:
    """Short timings so a whole cutover takes about a minute while every phase still shows.

    ``record_ttl`` and ``kong_dns_stale_ttl`` shape the world (zone file, Kong's DNS cache); the rest
    fill the plan templates of sandbox/plans/.
    """

    record_ttl: int = 20
    """TTL of a-project, b-project and origin-api in the zone before the cutover (the "old" TTL)."""
    kong_dns_stale_ttl: int = 5
    """Kong's ``dns_stale_ttl`` (Kong's default is 3600 s)."""
    kong_dns_not_found_ttl: int = 30
    """Kong's ``dns_not_found_ttl``: how long Kong caches "no such record" (Kong's default, 30 s)."""
    cutover_ttl: int = 5
    final_ttl: int = 60
    wait_margin: str = "2s"
    readiness_interval: str = "1s"
    readiness_successes: int = 3
    monitor_window: str = "20s"
    poll_interval: str = "2s"
    min_requests: int = 50
    quiet_period: str = "10s"
    drain_timeout: str = "2m"
    approval_timeout: str = "1h"


def zone_records(ttl: int) -> str:
    """The sandbox zone's records (sandbox/bind.py adds SOA and NS): A's and B's names with ``ttl``."""
    return (
        "ns1         A     127.0.0.1\n"
        "ns2         A     127.0.0.1\n"
        f"a-project   {ttl}  A 127.0.0.2\n"
        f"b-project   {ttl}  A 127.0.0.3\n"
        f"origin-api  {ttl}  CNAME a-project\n"
    )
