"""The cache-bound arithmetic (models/kong.py, models/kong_hazards.py) against what Kong's own code did.

For every conformance scenario that flips a name, the bound cutover computes at the suite's settings
must hold the moment Kong's client switched (never earlier than Kong), and be at most ``MARGIN``
above it (not uselessly pessimistic). The earliest decommission time must come after the last
request an idle worker sent to the old address.
"""

from __future__ import annotations

import pytest

from models.kong import QUERY_ALLOWANCE, KongDnsSettings, compute_cache_bound
from models.kong_hazards import earliest_decommission
from tests.kong_conformance.runner import ConformanceRun, Point
from tests.kong_conformance.scenarios import ERROR_TTL, IDLE_FIRST, NEW, NF, OLD, Client, S, T, V
from tests.kong_conformance.timelines import switch_time

pytestmark = pytest.mark.e2e
MARGIN = T + QUERY_ALLOWANCE + 1
"""How far above Kong's switch the bound may be: the bound assumes the entry was refreshed just before
the flip (up to T) and a slow refresh query (q); in these runs the query takes milliseconds."""


def settings(client: Client, valid: int | None = None) -> KongDnsSettings:
    return KongDnsSettings(
        client=client,
        valid_ttl=valid,
        stale_ttl=S,
        not_found_ttl=NF if client == "legacy" else ERROR_TTL,
        error_ttl=ERROR_TTL,
        source="conformance settings",
    )


CASES = [
    ("a-to-cname", "a-to-cname", None),
    ("alias-flip", "cname-to-cname", None),
    ("ip-change", "cname-to-cname", None),  # record TTL only, like an alias flip
    ("valid-ttl", "cname-to-cname", V),
]


@pytest.mark.parametrize(("scenario_id", "flip", "valid"), CASES)
@pytest.mark.parametrize("client", ["legacy", "new"])
async def test_kong_switches_within_the_computed_bound_and_not_much_earlier(
    conformance: ConformanceRun, scenario_id: str, flip: str, valid: int | None, client: Client
) -> None:
    result = conformance.runs[scenario_id]
    flipped = sorted(result.events)[0][0]
    seen = switch_time(result.of("kong", client), NEW)
    assert seen is not None
    observed = seen - flipped
    bound = compute_cache_bound(settings(client, valid), record_ttl=T, flip=flip)  # type: ignore[arg-type]
    assert observed <= bound.seconds, f"Kong's {client} client switched {observed:.1f} s after the flip: {bound}"
    assert bound.seconds - observed <= MARGIN, f"bound {bound.seconds} s, Kong switched after {observed:.1f} s"


def last_old(points: list[Point]) -> float:
    return max(p.t for p in points if p.label == OLD)


@pytest.mark.parametrize("kind", ["alias", "ip", "cname"])
@pytest.mark.parametrize("client", ["legacy", "new"])
async def test_no_idle_worker_uses_the_old_address_after_the_earliest_decommission(
    conformance: ConformanceRun, kind: str, client: Client
) -> None:
    flip = "a-to-cname" if kind == "cname" else "cname-to-cname"
    bound = compute_cache_bound(settings(client), record_ttl=T, flip=flip)  # type: ignore[arg-type]
    timing = earliest_decommission(settings(client), bound, record_ttl=T, margin_seconds=0)
    for delay in (4, 8):
        result = conformance.runs[f"idle-{kind}-d{delay}"]
        flipped = sorted(result.events)[0][0]
        assert last_old(result.of("kong", client)) - flipped <= timing.seconds_after_flip
    quiet = conformance.runs["quiet-alias-d4"]
    late = last_old(quiet.of("kong", "new")) - sorted(quiet.events)[0][0]
    assert 0 < late <= timing.seconds_after_flip
    # The idle lookup happened 1 s before the flip: its stale answer may be used until T + S after it.
    assert late <= IDLE_FIRST + T + S + QUERY_ALLOWANCE
