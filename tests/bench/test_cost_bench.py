"""bench.cost's pure parts: the shape it copies from histories, how a profile is grouped, DNS counts."""

from __future__ import annotations

import cProfile
import json
import pstats
from datetime import timedelta
from typing import Any

import dns.message
import dns.update
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory

from bench.cost import add_queries, combined, dns_query_lines, history_counts, median_shape, render, shape_warnings
from bench.cost_worker import QueryCounter
from bench.null_workflow import NullShape
from bench.profile_view import OTHER, REPO_ROOT, by_component, component_of, label


def history(*kinds: EventType.ValueType, timers: tuple[float, ...] = (), cancelled: int = 0) -> WorkflowHistory:
    events = [HistoryEvent(event_id=i + 1, event_type=kind) for i, kind in enumerate(kinds)]
    for index, seconds in enumerate([*timers, *([3600.0] * cancelled)]):
        event = HistoryEvent(event_id=len(events) + 1, event_type=EventType.EVENT_TYPE_TIMER_STARTED)
        event.timer_started_event_attributes.timer_id = str(index)
        event.timer_started_event_attributes.start_to_fire_timeout.FromTimedelta(timedelta(seconds=seconds))
        events.append(event)
        if index < len(timers):
            fired = HistoryEvent(event_id=len(events) + 1, event_type=EventType.EVENT_TYPE_TIMER_FIRED)
            fired.timer_fired_event_attributes.timer_id = str(index)
            events.append(fired)
    return WorkflowHistory("cutover-x", events)


def test_a_history_is_counted_by_item_with_its_timers_in_order():
    made = history(
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
        EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
        EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
        EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
        EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
        EventType.EVENT_TYPE_MARKER_RECORDED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        timers=(20, 5.5),
        cancelled=1,
    )
    for event in made.events[:2]:  # the start's summary is the client's; the activity's is a command's
        event.user_metadata.summary.data = b'"Read the record"'
    patch = HistoryEvent(event_id=99, event_type=EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES)
    patch.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields[
        "TemporalChangeVersion"
    ].data = b'["phase-upsert-on-change"]'
    made = WorkflowHistory(made.workflow_id, [*made.events, patch])  # the SDK's own, with a marker: not counted
    assert history_counts(made) == {
        "activities": 2,
        "children": 1,
        "updates": 1,
        "signals": 0,
        "upserts": 2,
        "memos": 1,
        "markers": 1,
        "summaries": 1,
        "workflow_tasks": 1,
        "events": 16,
        "timers_cancelled": 1,
        "timer_seconds": [20.0, 5.5],
    }


def test_the_null_shape_is_the_median_run():
    same = {"children": 2, "signals": 0, "timers_cancelled": 2, "upserts": 10, "memos": 1, "markers": 3}
    runs = [
        {"activities": a, "updates": u, "timer_seconds": t, "summaries": a + 4, **same}
        for a, u, t in ((19, 2, [20.0]), (21, 3, [20.0, 5.0, 9.0]), (20, 2, [20.0, 9.0]))
    ]
    shape = median_shape(runs)
    assert (shape.activities, shape.children, shape.updates, shape.signals) == (20, 2, 2, 0)
    assert shape.timer_seconds == [20.0, 9.0] and shape.timers_cancelled == 2
    assert (shape.summaries, shape.upserts, shape.memos, shape.markers) == (24, 10, 1, 3)
    bare = shape.bare()  # the literal shape: the same activities, timers, children and messages only
    assert (bare.activities, bare.timer_seconds, bare.children, bare.updates) == (20, [20.0, 9.0], 2, 2)
    assert (bare.summaries, bare.upserts, bare.memos, bare.markers) == (0, 0, 0, 0)


def test_profile_rows_go_to_their_component():
    assert component_of(("~", 0, "<method 'do_handshake' of '_ssl._SSLSocket' objects>")) == "TLS (ssl)"
    assert component_of(("/v/site-packages/httpcore/_async/connection.py", 1, "f")).startswith("HTTP client")
    assert component_of(("/v/site-packages/dns/message.py", 1, "f")) == "DNS (dnspython)"
    assert component_of(("/v/site-packages/pydantic/main.py", 1, "f")) == "pydantic"
    assert component_of(("/v/site-packages/temporalio/worker/workflow_sandbox/_importer.py", 1, "f")).endswith(
        "sandbox"
    )
    assert component_of((f"{REPO_ROOT}/providers/dns/base.py", 1, "f")) == "cutover: providers"
    assert component_of(("/usr/lib/python3.11/functools.py", 1, "f")) == OTHER
    assert label((f"{REPO_ROOT}/providers/dns/base.py", 12, "query")) == "providers/dns/base.py:12(query)"
    assert label(("/v/lib/python3.11/site-packages/httpx/_client.py", 3, "send")) == "httpx/_client.py:3(send)"


def test_a_real_profile_sums_to_its_own_time():
    profile = cProfile.Profile()
    profile.enable()
    sorted(str(i) for i in range(20000))
    profile.disable()
    stats = pstats.Stats(profile)
    grouped = dict(by_component(stats))
    own: float = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    assert abs(sum(grouped.values()) - own) < 1e-9
    assert grouped[OTHER] > 0


def test_dns_messages_are_counted_by_sender_and_type_and_rendered_per_cutover(tmp_path):
    counter = QueryCounter(tmp_path / "queries.json")
    for rdtype in ("SOA", "A", "SOA"):
        counter.count(dns.message.make_query("orders.example.test.", rdtype))
    counter.count(dns.update.UpdateMessage("example.test."))
    counter.dump()
    counts = json.loads((tmp_path / "queries.json").read_text())
    assert counts == {"(outside activities)": {"A": 1, "SOA": 2, "UPDATE": 1}}
    counter.dump()
    assert json.loads((tmp_path / "queries.json").read_text()) == {}  # each dump starts afresh
    lines = dns_query_lines({"dns_apply": {"SOA": 8, "UPDATE": 2}, "dns_resolve": {"A": 4}}, 2)
    assert lines == [
        "  DNS messages the worker sent per cutover: 7.0",
        "      5.0  dns_apply: SOA 4.0, UPDATE 1.0",
        "      2.0  dns_resolve: A 2.0",
    ]


def phase(cpu: float, completed: int = 2) -> dict[str, Any]:
    return {"worker_cpu": cpu, "temporal_cpu": 1.0, "wall": 60.0, "completed": completed, "not_completed": []}


def test_the_ratio_is_the_rounds_real_cpu_over_their_null_cpu_each_round_shown() -> None:
    rounds: list[dict[str, Any]] = [
        {"real": phase(1.2), "null": phase(0.5), "bare": phase(0.4), "load_average": 0.5},
        {"real": phase(1.0), "null": phase(0.6), "bare": phase(0.5), "load_average": 1.5},
    ]
    queries: dict[str, dict[str, int]] = {}
    add_queries(queries, {"dns_apply": {"SOA": 4}})
    add_queries(queries, {"dns_apply": {"SOA": 4, "A": 2}})
    result = {
        "count": 2,
        "rounds": rounds,
        **{kind: combined([r[kind] for r in rounds]) for kind in ("real", "null", "bare")},
        "shape": NullShape(activities=1, timer_seconds=[1.0], summaries=3).__dict__,
        "real_history": {},
        "null_history": {},
        "bare_history": {},
        "idle_worker_cpu_per_s": 0.0,
        "dns_queries": queries,
        "profiles": None,
    }
    lines = render(result)
    assert (
        "  round 1: real 0.600 s (60 s), null 0.250 s (60 s) -> x2.40, issue's shape 0.200 s -> x3.00; "
        "load average after 0.50"
    ) in lines
    assert (
        "  round 2: real 0.500 s (60 s), null 0.300 s (60 s) -> x1.67, issue's shape 0.250 s -> x2.00; "
        "load average after 1.50"
    ) in lines
    total = next(line for line in lines if line.startswith("  worker CPU per cutover:"))
    assert total.startswith(
        "  worker CPU per cutover: real 0.550 s, null 0.275 s -> x2.00 (PASS, target <= x2); "
        "against the issue's shape 0.225 s -> x2.44 (MISS)"
    )
    assert "  completed: real 4/4, null 4/4, issue's shape 4/4" in lines
    assert "      2.5  dns_apply: SOA 2.0, A 0.5" in lines  # 10 messages over 4 runs


def test_a_null_history_that_is_not_its_shape_is_reported() -> None:
    shape = NullShape(activities=20, summaries=30, upserts=11, markers=8).__dict__
    null = {"activities": 20, "summaries": 28, "upserts": 11, "markers": 8}
    bare = {"activities": 20, "summaries": 0, "upserts": 8, "markers": 0}
    assert shape_warnings(shape, null, bare) == [
        "  WARNING: null workflows made 28 summaries, the shape asked 30",
        "  WARNING: issue's shape workflows made 8 upserts, the shape asked 0",
    ]
    assert shape_warnings(shape, {**null, "summaries": 30}, {**bare, "upserts": 0}) == []
