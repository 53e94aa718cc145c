"""The conformance scenarios: what changes in DNS, when, and which Kong settings each client runs with.

Short TTLs keep the whole run under a minute: record TTL ``T`` = 2 s, ``dns_stale_ttl`` /
``resolver_stale_ttl`` ``S`` = 5 s, ``dns_not_found_ttl`` ``NF`` = 14 s, valid TTL ``V`` = 5 s. Every
scenario uses its own name, so all of them run at once against one BIND. Times are seconds from the
run's common t0.

Timing is chosen so that nothing races: polls fall on a 0.3 s grid and every change is made half
way between two polls (``on_half_grid``), so no refresh query can meet a change; and no duration
that ends a cache entry (T, T + S, NF, NF + S, V, 1 s error TTL, 8 s) is a multiple of 0.3 s, so an
entry filled by one poll never expires at the very moment of a later poll. Otherwise Kong's and
the emulator's caches (filled a few ms apart) could fall on either side of such a moment.

Settings groups (one nginx per client and group, and one emulator resolver beside each):

* ``main``: Kong's defaults but ``T``/``S``/``NF`` as above. Busy: many names are resolved and
  refreshed, which matters for the new client's shared cache (expired entries of idle names are
  freed by other writes).
* ``quiet``: the same settings, new client only, with nothing but its idle names and a TTL-0 name.
* ``valid``: ``dns_valid_ttl`` / ``resolver_valid_ttl`` = ``V``, and AAAA enabled (``dns_order``
  ``LAST,SRV,A,AAAA,CNAME``, ``resolver_family`` ``A,AAAA,SRV``).
* ``outage``: the ``main`` settings, with the nameserver behind a relay that a scenario takes down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from models.kong import KongDnsSettings
from models.plan import CutoverPlan
from tests.conftest import base_plan_data
from workflows import planning

ZONE = "example.test"
OLD, NEW, V6 = "127.0.0.2", "127.0.0.3", "::1"
T, S, NF, V = 2, 5, 14, 5
ERROR_TTL = 1
POLL = 0.3
"""Seconds between two polls of a name (every observer of a scenario is polled at the same instant)."""
TOLERANCE = 0.5
"""How far apart Kong's and the emulator's switch times may be.

Both caches are filled and refreshed by the same polls and their expiries never coincide with a poll
(see above), so a switch lands on the same poll in both; 0.5 s leaves one poll interval (0.3 s) for
the event loop's jitter on a shared machine, and stays far below every window the scenarios measure
(the shortest, a 503 window, lasts about 2 s)."""

Client = Literal["legacy", "new"]
Op = tuple[str, str, int, str | None]
"""``(action, label, ttl, "TYPE data")``; action ``replace``, ``add`` or ``delete``."""

MAIN: dict[str, Any] = {"dns_stale_ttl": S, "dns_not_found_ttl": NF, "dns_error_ttl": ERROR_TTL}
MAIN |= {"resolver_stale_ttl": S, "resolver_error_ttl": ERROR_TTL}
GROUPS: dict[str, dict[str, Any]] = {
    "main": MAIN,
    "quiet": MAIN,
    "valid": MAIN
    | {
        "dns_valid_ttl": V,
        "resolver_valid_ttl": V,
        "dns_order": ["LAST", "SRV", "A", "AAAA", "CNAME"],
        "resolver_family": ["A", "AAAA", "SRV"],
    },
    "outage": MAIN,
}
INSTANCES: tuple[tuple[str, Client], ...] = (
    ("main", "legacy"),
    ("main", "new"),
    ("quiet", "new"),
    ("valid", "legacy"),
    ("valid", "new"),
    ("outage", "legacy"),
    ("outage", "new"),
)


@dataclass(frozen=True)
class Step:
    """Changes at one moment: BIND updates, and/or the outage relay going down (before) or up (after)."""

    at: float
    what: str
    ops: tuple[Op, ...] = ()
    relay: Literal["down", "up"] | None = None


@dataclass(frozen=True)
class Scenario:
    """One name, its changes, and how it is observed: polled over a window, or probed at chosen moments."""

    id: str
    title: str
    label: str
    groups: dict[Client, str]
    steps: tuple[Step, ...]
    poll: tuple[float, float] | None = None
    probes: tuple[float, ...] = ()
    expect: dict[str, Any] = field(default_factory=dict)

    @property
    def clients(self) -> tuple[Client, ...]:
        """The clients this scenario runs on."""
        return tuple(self.groups)


def on_half_grid(at: float) -> float:
    """The first moment half way between two polls, at or after ``at``."""
    return round((math.ceil(at / POLL - 0.5) + 0.5) * POLL, 3)


def a_to_cname(label: str) -> tuple[Op, ...]:
    """The cname strategy's flip: the A record becomes a CNAME to B's name."""
    return (("delete", label, 0, "A"), ("add", label, T, "CNAME b-project"))


def cname_to_a(label: str) -> tuple[Op, ...]:
    """A straight rollback: the CNAME becomes A's address again."""
    return (("delete", label, 0, "CNAME"), ("add", label, T, f"A {OLD}"))


def _kong_settings() -> KongDnsSettings:
    return KongDnsSettings(
        client="legacy", valid_ttl=None, stale_ttl=S, not_found_ttl=NF, error_ttl=ERROR_TTL, source="conformance"
    )


def two_step_times(label: str) -> tuple[str, float, float]:
    """The temporary name, and when the project's two-step rollback restores A and deletes it (flip at 0).

    Computed with the project's own ``planning`` functions at the suite's settings, exactly as the
    workflow waits: restore at flip + ``negative_entry_expiry`` + margin, delete the temporary name
    ``stale_cname_window`` + margin after the restore.
    """
    data = base_plan_data()
    data["dns"] |= {"record": f"{label}.{ZONE}.", "cutover_ttl": T, "final_ttl": 300, "wait_margin": "1s"}
    plan = CutoverPlan.model_validate(data)
    settings = _kong_settings()
    margin = plan.dns.wait_margin.total_seconds()
    restore = planning.negative_entry_expiry(plan, settings).total_seconds() + margin
    delete = restore + planning.stale_cname_window(plan, settings).total_seconds() + margin
    temporary = planning.rollback_name(plan).split(".", 1)[0]
    return temporary, restore, delete


RETARGET = 8.0
"""When the rollback scenarios undo the flip: after the legacy client switched (T + S after its last refresh)."""


def _two_step(scenario_id: str, label: str, title: str, delete_after_restore: float | None) -> Scenario:
    temporary, restore, delete = two_step_times(label)
    if delete_after_restore is not None:
        delete = restore + delete_after_restore
    return Scenario(
        scenario_id,
        title,
        label,
        {"legacy": "main", "new": "main"},
        (
            Step(0, f"{label}: A -> CNAME b-project", a_to_cname(label)),
            Step(
                RETARGET,
                f"create {temporary} A {OLD}; {label}: CNAME -> {temporary}",
                (
                    ("add", temporary, T, f"A {OLD}"),
                    ("delete", label, 0, "CNAME"),
                    ("add", label, T, f"CNAME {temporary}"),
                ),
            ),
            Step(restore, f"{label}: CNAME {temporary} -> A {OLD}", cname_to_a(label)),
            Step(delete, f"delete {temporary}", (("delete", temporary, 0, None),)),
        ),
        poll=(-4, delete + T + S + 2),
        expect={"restore": restore, "delete": delete},
    )


OUTAGE_END = 10.5
"""When the outage relay comes back."""
IDLE_FIRST = -1.0
IDLE_DELAYS = (4.0, 8.0)
"""One lookup at -1 s, the flip at 0, then one request D s after the lookup: D = 4 is inside T + S, 8 is past it."""


def _idle(kind: str, flip: tuple[Op, ...], groups: dict[Client, str], prefix: str = "idle") -> list[Scenario]:
    out = []
    for delay in IDLE_DELAYS:
        label = f"{prefix}-{kind}-{delay:g}"
        ops = tuple((action, label if name == "@" else name, ttl, data) for action, name, ttl, data in flip)
        out.append(
            Scenario(
                f"{prefix}-{kind}-d{delay:g}",
                f"idle worker, {kind} flip; lookup at {IDLE_FIRST:g} s, next request {delay:g} s later",
                label,
                groups,
                (Step(0, f"{label}: {kind} flip", ops),),
                probes=(IDLE_FIRST, IDLE_FIRST + delay, IDLE_FIRST + delay + POLL),
                expect={"delay": delay},
            )
        )
    return out


def scenarios() -> list[Scenario]:
    """Every scenario of the suite."""
    both_main: dict[Client, str] = {"legacy": "main", "new": "main"}
    both_valid: dict[Client, str] = {"legacy": "valid", "new": "valid"}
    both_outage: dict[Client, str] = {"legacy": "outage", "new": "outage"}
    alias_flip: tuple[Op, ...] = (("delete", "@", 0, "CNAME"), ("add", "@", T, "CNAME b-project"))
    ip_change: tuple[Op, ...] = (("delete", "@", 0, "A"), ("add", "@", T, f"A {NEW}"))
    cname_flip: tuple[Op, ...] = (("delete", "@", 0, "A"), ("add", "@", T, "CNAME b-project"))
    found = [
        Scenario(
            "a-to-cname",
            "A record becomes a CNAME to B",
            "s1",
            both_main,
            (Step(0, "s1: A -> CNAME b-project", a_to_cname("s1")),),
            poll=(-4, 12),
        ),
        Scenario(
            "rollback-early",
            f"A -> CNAME, straight back to A {RETARGET:g} s later",
            "s2b",
            both_main,
            (
                Step(0, "s2b: A -> CNAME b-project", a_to_cname("s2b")),
                Step(RETARGET, "s2b: CNAME -> A (rollback)", cname_to_a("s2b")),
            ),
            poll=(-4, RETARGET + NF + 4),
        ),
        _two_step("two-step", "s2c", "the project's two-step rollback (planning.TwoStepRollback)", None),
        _two_step(
            "two-step-early-delete", "s2d", "two-step rollback deleting the temporary name 1 s after the restore", 1.0
        ),
        Scenario(
            "alias-flip",
            "alias CNAME a-project -> CNAME b-project",
            "s3",
            both_main,
            (
                Step(
                    0,
                    "s3: CNAME a-project -> CNAME b-project",
                    (("delete", "s3", 0, "CNAME"), ("add", "s3", T, "CNAME b-project")),
                ),
            ),
            poll=(-4, 8),
        ),
        Scenario(
            "ip-change",
            "A record changes its address",
            "s4",
            both_main,
            (Step(0, "s4: A .2 -> A .3", (("delete", "s4", 0, "A"), ("add", "s4", T, f"A {NEW}"))),),
            poll=(-4, 8),
        ),
        Scenario(
            "created-late",
            "name queried while it does not exist, created at 0",
            "s5",
            both_main,
            (Step(0, "create s5 A .2", (("add", "s5", T, f"A {OLD}"),)),),
            poll=(-4, 16),
        ),
        Scenario(
            "ttl-zero",
            "TTL 0 answers, address changes at 0",
            "ttl0",
            {"legacy": "main", "new": "quiet"},
            (Step(0, "ttl0: A .2 -> A .3 (TTL 0)", (("delete", "ttl0", 0, "A"), ("add", "ttl0", 0, f"A {NEW}"))),),
            poll=(-3, 6),
        ),
        Scenario(
            "ipv6-default", "AAAA-only name, default dns_order / resolver_family", "v6only", both_main, (), poll=(0, 2)
        ),
        Scenario(
            "ipv6-enabled", "AAAA-only name, AAAA in dns_order / resolver_family", "v6only", both_valid, (), poll=(0, 2)
        ),
        Scenario(
            "valid-ttl",
            f"A address change with dns_valid_ttl / resolver_valid_ttl {V}",
            "valid",
            both_valid,
            (Step(0, "valid: A .2 -> A .3", (("delete", "valid", 0, "A"), ("add", "valid", T, f"A {NEW}"))),),
            poll=(-(V + 0.5), V + 4),
        ),
        Scenario(
            "outage",
            f"address change while the nameserver is down (back at +{OUTAGE_END:g} s)",
            "o1",
            both_outage,
            (
                Step(
                    0,
                    "nameserver down; o1: A .2 -> A .3 (TTL 2), o2: A .2 -> A .3 (TTL 8)",
                    (
                        ("delete", "o1", 0, "A"),
                        ("add", "o1", T, f"A {NEW}"),
                        ("delete", "o2", 0, "A"),
                        ("add", "o2", 8, f"A {NEW}"),
                    ),
                    relay="down",
                ),
                Step(OUTAGE_END, "nameserver back", relay="up"),
            ),
            poll=(-4, OUTAGE_END + 5),
        ),
        Scenario(
            "outage-short",
            "the same outage and change (made by 'outage'); o2 has TTL 8 and is first "
            "fetched at -1 s, so the server is back inside its stale window",
            "o2",
            both_outage,
            (),
            poll=(-1, OUTAGE_END + 5),
        ),
    ]
    found += _idle("alias", alias_flip, both_main)
    found += _idle("ip", ip_change, both_main)
    found += _idle("cname", cname_flip, both_main)
    found += _idle("alias", alias_flip, {"new": "quiet"}, prefix="quiet")
    return found


def zone_records() -> str:
    """The zone at the start: every scenario's name as it is before t0."""
    lines = ["ns1 A 127.0.0.1", "ns2 A 127.0.0.1", f"a-project {T} A {OLD}", f"b-project {T} A {NEW}"]
    lines += [f"{label} {T} A {OLD}" for label in ("s1", "s2b", "s2c", "s2d", "s4", "valid", "o1")]
    lines += [f"s3 {T} CNAME a-project", f"v6only {T} AAAA {V6}", f"ttl0 0 A {OLD}", f"o2 8 A {OLD}"]
    for delay in IDLE_DELAYS:
        lines += [f"idle-alias-{delay:g} {T} CNAME a-project", f"quiet-alias-{delay:g} {T} CNAME a-project"]
        lines += [f"idle-ip-{delay:g} {T} A {OLD}", f"idle-cname-{delay:g} {T} A {OLD}"]
    return "\n".join(lines) + "\n"
