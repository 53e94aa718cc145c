"""CampaignWorkflow on the time-skipping server: real CutoverWorkflow children against a fake fleet.

What is asserted is what an operator or the outside world sees: the children's start and close
times and search attributes (from Temporal), the fake records and Kong Services, the children's own
approvals, and the campaign's status query.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError, CancelledError

from models.campaign import Campaign
from models.campaign_status import CampaignStatus
from models.workflow import ApproveRequest
from tests.workflows.fake_fleet import (
    FleetWorld,
    campaign_data,
    campaign_running,
    campaign_status,
    child_times,
    cutover_status,
    most_at_once,
    never_started,
    plan_data,
    unique,
    until_attributes,
    until_campaign,
)
from tests.workflows.stalls import quiet, result_or_stall


async def test_waves_run_in_order_never_more_than_max_in_flight(ts_env):
    name = unique("waves")
    apis = [f"{name}-{i}" for i in range(1, 8)]
    world = FleetWorld(apis)
    data = campaign_data(name, apis, [1, 2, "rest"], max_in_flight=2)
    async with campaign_running(ts_env, world, data) as handle:
        status = await result_or_stall(ts_env, handle)
    assert status.phase == "completed", status.error
    assert [w.cutovers for w in status.waves] == [apis[:1], apis[1:3], apis[3:]]
    assert all(e.state == "completed" and e.phase == "completed" for e in status.cutovers)
    for api in apis:
        assert world.records[f"{api}.example.test."][0].type == "CNAME", "every record was flipped"

    times = await child_times(ts_env, [f"cutover-{api}" for api in apis])
    waves = [[times[f"cutover-{api}"] for api in wave.cutovers] for wave in status.waves]
    for earlier, later in itertools.pairwise(waves):
        assert max(end for _, end in earlier) <= min(start for start, _ in later), "a wave starts after the last"
    assert most_at_once(list(times.values())) == 2, "max_in_flight 2 is held, and used"
    for api in apis:
        described = (await ts_env.client.get_workflow_handle(f"cutover-{api}").describe()).raw_description
        assert not described.pending_children, f"cutover-{api} closed before its locks ended"

    described = await ts_env.client.get_workflow_handle("cutover-" + apis[4]).describe()
    attributes = described.typed_search_attributes
    assert attributes.get(SearchAttributeKey.for_keyword("CampaignName")) == name
    assert attributes.get(SearchAttributeKey.for_keyword("CampaignWave")) == "3"
    campaign = (await handle.describe()).typed_search_attributes
    assert campaign.get(SearchAttributeKey.for_keyword("CutoverPhase")) == "completed"
    assert campaign.get(SearchAttributeKey.for_keyword("CampaignWave")) == "3"


async def test_an_invalid_campaign_fails_at_once_with_every_problem(ts_env):
    name = unique("bad")
    world = FleetWorld([])
    data = campaign_data(name, [f"{name}-1", f"{name}-2"], [1, 5], max_in_flight=0)
    data["plans"][1]["dns"]["record"] = data["plans"][0]["dns"]["record"]
    async with campaign_running(ts_env, world, data) as handle:
        with pytest.raises(WorkflowFailureError) as info:
            await result_or_stall(ts_env, handle)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidCampaign"
    assert "max_in_flight" in cause.message and "a record moves once per campaign" in cause.message


# --- wave gates --------------------------------------------------------------------------------------


def awaiting(status) -> bool:
    return status.phase == "awaiting-wave-approval"


async def test_a_wave_approval_is_bound_to_the_wave_digest_and_approves_each_cutover(ts_env):
    name = unique("gates")
    apis = [f"{name}-{i}" for i in range(1, 4)]
    world = FleetWorld(apis)
    data = campaign_data(name, apis, [1, "rest"], approvals={"per_wave": "flip"})
    reviewed = Campaign.from_data(data)
    changed = copy.deepcopy(data)
    changed["plans"][0]["dns"]["final_ttl"] = 600
    other = Campaign.from_data(changed)
    assert other.wave_digest(1) != reviewed.wave_digest(1) and other.wave_digest(2) == reviewed.wave_digest(2)
    async with campaign_running(ts_env, world, data) as handle:
        status = await until_campaign(ts_env, handle, awaiting, "waiting for wave 1's flip approval")
        assert status.waves[0].digest == reviewed.wave_digest(1)
        assert reviewed.wave_digest(1) in status.commands["approve wave-1-flip"]
        assert status.entry(apis[0]).gates_awaited == ["flip"]
        assert world.records[f"{apis[0]}.example.test."][0].type == "A", "nothing flips before the approval"

        with pytest.raises(WorkflowUpdateFailedError) as stale:
            await handle.execute_update(
                "approve", ApproveRequest(gate="wave-1-flip", by="mallory", digest=other.wave_digest(1))
            )
        assert "does not match wave 1's digest" in str(stale.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as early:
            await handle.execute_update(
                "approve", ApproveRequest(gate="wave-2-flip", by="alice", digest=reviewed.wave_digest(2))
            )
        assert "wave 2 has not started" in str(early.value.cause)
        await handle.signal("approve", ApproveRequest(gate="wave-1-flip", by="eve", digest=other.wave_digest(1)))
        answer = await handle.execute_update(
            "approve",
            ApproveRequest(gate="wave-1-flip", by="alice", digest=reviewed.wave_digest(1)),
            result_type=str,
        )
        assert answer.startswith("wave-1-flip approved by alice")

        status = await until_campaign(ts_env, handle, lambda s: s.current_wave == 2 and awaiting(s), "at wave 2's gate")
        assert [(m.name, m.by) for m in status.ignored] == [("approve", "eve")]
        assert "does not match" in status.ignored[0].reason
        first = await cutover_status(ts_env, f"cutover-{apis[0]}")
        assert [(a.gate, a.by, a.via) for a in first.approvals] == [("flip", "alice", "update")]
        assert first.approvals[0].comment and "wave-1-flip" in first.approvals[0].comment
        await handle.signal("approve", ApproveRequest(gate="wave-2-flip", by="bob", digest=reviewed.wave_digest(2)))
        status = await result_or_stall(ts_env, handle)
        for api in apis[1:]:
            approvals = (await cutover_status(ts_env, f"cutover-{api}")).approvals
            assert [(a.gate, a.by) for a in approvals] == [("flip", "bob")]
    assert status.phase == "completed"
    assert [(a.gate, a.by, a.via) for a in status.approvals] == [
        ("wave-1-flip", "alice", "update"),
        ("wave-2-flip", "bob", "signal"),
    ]


async def test_malformed_messages_never_freeze_the_campaign(ts_env):
    name = unique("noise")
    apis = [f"{name}-1"]
    world = FleetWorld(apis)
    data = campaign_data(name, apis, ["rest"], approvals={"per_wave": "flip"})
    digest = Campaign.from_data(data).wave_digest(1)
    async with campaign_running(ts_env, world, data) as handle:
        await until_campaign(ts_env, handle, awaiting, "at the flip gate")
        await handle.signal("approve")
        await handle.signal("approve", args=[{"gate": "wave-1-flip"}, {"by": "x"}])
        await handle.signal("approve", "not an object")
        await handle.signal("pause", {"by": "carol"})
        await handle.signal("abort", args=[1, 2, 3])
        await handle.signal("resume", {"by": "dave", "reason": "nothing is paused"})
        with pytest.raises(WorkflowUpdateFailedError) as bare:
            await handle.execute_update("approve", args=[])
        assert "no payload: send one JSON object" in str(bare.value.cause)
        status = await until_campaign(ts_env, handle, lambda s: len(s.ignored) == 6, "recording six ignored signals")
        reasons = [(m.name, m.reason) for m in status.ignored]
        assert reasons[0][0] == "approve" and reasons[0][1].startswith("no payload: send one JSON object, e.g.")
        assert reasons[1] == ("approve", "2 payloads: send exactly one JSON object")
        assert reasons[2][0] == "approve" and reasons[2][1].startswith("malformed")
        assert reasons[3] == ("pause", "pause needs 'by' and 'reason'")
        assert reasons[4] == ("abort", "3 payloads: send exactly one JSON object")
        assert reasons[5] == ("resume", "the campaign is not paused")
        assert status.phase == "awaiting-wave-approval" and status.stopped is None and status.abort is None
        await handle.execute_update("approve", ApproveRequest(gate="wave-1-flip", by="alice", digest=digest))
        assert (await result_or_stall(ts_env, handle)).phase == "completed"


# --- stop-the-line, resume, abort --------------------------------------------------------------------


@pytest.mark.parametrize("then", ["resume", "abort"])
async def test_the_first_rollback_stops_the_line_until_resume_or_abort(ts_env, then):
    name = unique("line")
    apis = [f"{name}-{i}" for i in range(1, 7)]
    world = FleetWorld(apis)
    world.unhealthy = {f"svc-{apis[1]}"}
    data = campaign_data(name, apis, [1, "rest"], max_in_flight=2)
    async with campaign_running(ts_env, world, data) as handle:
        status = await until_campaign(ts_env, handle, lambda s: s.phase == "paused", "stopping the line")
        assert status.stopped is not None and apis[1] in status.stopped.reason
        status = await until_campaign(ts_env, handle, lambda s: s.entry(apis[1]).final, "the end of the rollback")
        failing = status.entry(apis[1])
        assert failing.state == "rolled-back" and "unhealthy" in (failing.error or "")
        assert failing.verdict is not None and failing.verdict.startswith("unhealthy"), "its verdict is shown"
        assert status.stopped is not None and status.stopped.automatic and apis[1] in status.stopped.reason
        assert world.records[f"{apis[1]}.example.test."][0].type == "A", "the failing cutover rolled back"
        pending = [e.name for e in status.cutovers if e.state == "pending"]
        assert apis[-1] in pending, "no new cutover starts once the line stopped"
        assert set(status.commands) >= {"resume", "abort"}
        details = (await handle.describe()).typed_search_attributes
        assert details.get(SearchAttributeKey.for_keyword("CutoverPhase")) == "paused"

        await until_campaign(ts_env, handle, lambda s: not s.in_flight(), "the cutovers in flight to end")
        await asyncio.sleep(1.0)
        status = await campaign_status(handle)
        assert status.phase == "paused" and [e.name for e in status.cutovers if e.state == "pending"] == pending
        for api in pending:
            assert await never_started(ts_env, f"cutover-{api}")

        if then == "resume":
            answer = await handle.execute_update("resume", {"by": "bob", "reason": "B fixed"}, result_type=str)
            assert "acknowledged 1" in answer
            with pytest.raises(WorkflowFailureError) as info:
                await result_or_stall(ts_env, handle)
            status = await campaign_status(handle)
            assert isinstance(info.value.cause, ApplicationError) and info.value.cause.type == "CampaignIncomplete"
            assert status.phase == "failed" and status.acknowledged == [apis[1]]
            assert [e.state for e in status.cutovers].count("completed") == 5
            assert status.error == f"1 of 6 cutovers did not complete: {apis[1]} (rolled-back)"
        else:
            await handle.signal("abort", {"by": "carol", "reason": "B is broken everywhere"})
            with pytest.raises(WorkflowFailureError) as info:
                await result_or_stall(ts_env, handle)
            status = await campaign_status(handle)
            assert isinstance(info.value.cause, ApplicationError) and info.value.cause.type == "CampaignAborted"
            assert status.phase == "aborted" and status.error == "aborted by carol: B is broken everywhere"
            assert {status.entry(api).state for api in pending} == {"not-started"}
            for api in pending:
                assert await never_started(ts_env, f"cutover-{api}")


async def test_abort_aborts_cutovers_before_their_point_of_no_return_and_lets_the_others_finish(ts_env):
    name = unique("abort")
    early, unsure, waiting = (f"{name}-{i}" for i in range(1, 4))
    world = FleetWorld([early, unsure, waiting])
    world.decommission_seconds = 3.0
    world.inconclusive = {f"svc-{unsure}"}
    data = campaign_data(
        name, [early, unsure, waiting], ["rest"], max_in_flight=2, approvals={"per_wave": "decommission"}
    )
    digest = Campaign.from_data(data).wave_digest(1)
    async with campaign_running(ts_env, world, data) as handle:
        await until_campaign(
            ts_env,
            handle,
            lambda s: awaiting(s) and s.entry(unsure).gates_awaited == ["decommission"],
            "both cutovers at the decommission gate",
        )
        await handle.execute_update("approve", ApproveRequest(gate="wave-1-decommission", by="alice", digest=digest))
        status = await until_campaign(ts_env, handle, lambda s: bool(s.entry(unsure).needs_human), "flagging a human")
        assert "inconclusive traffic verdict" in (status.entry(unsure).needs_human or "")
        for _ in range(200):
            first = await cutover_status(ts_env, f"cutover-{early}")
            if first.phase == "decommissioning":
                break
            await asyncio.sleep(0.05)
        second = await cutover_status(ts_env, f"cutover-{unsure}")
        assert first.point_of_no_return_passed and second.gates_awaited == ("decommission",)
        await handle.execute_update("abort", {"by": "carol", "reason": "stop everything"})
        with pytest.raises(WorkflowFailureError):
            await result_or_stall(ts_env, handle)
        status = await campaign_status(handle)
        second = await cutover_status(ts_env, f"cutover-{unsure}")
    assert status.phase == "aborted"
    assert [status.entry(n).state for n in (early, unsure, waiting)] == ["completed", "rolled-back", "not-started"]
    assert second.error == f"aborted by carol: campaign {name} aborted by carol: stop everything"
    assert world.records[f"{early}.example.test."][0].type == "CNAME", "past its point of no return: finished"
    assert world.records[f"{unsure}.example.test."][0].type == "A", "before it: rolled back"


# --- one cutover per record and Kong Service; continue-as-new -----------------------------------------


async def test_cutovers_sharing_a_kong_service_never_run_at_once(ts_env):
    name = unique("shared")
    apis = [f"{name}-{i}" for i in range(1, 4)]
    world = FleetWorld(apis)
    world.hosts["svc-shared"] = "unused"
    data = campaign_data(name, apis, ["rest"], max_in_flight=3)
    for plan in data["plans"][:2]:
        plan["kong"]["service"] = "svc-shared"
    world.record_as_host = True
    campaign = Campaign.from_data(data)
    assert campaign.notes == (f"{apis[0]}, {apis[1]} share Kong Service svc-shared: they run one after another",)
    async with campaign_running(ts_env, world, data) as handle:
        status = await result_or_stall(ts_env, handle)
    assert status.phase == "completed"
    times = await child_times(ts_env, [f"cutover-{api}" for api in apis])
    first, second, third = (times[f"cutover-{api}"] for api in apis)
    assert most_at_once([first, second]) == 1, "the two cutovers of one Service never ran at once"
    assert most_at_once([first, third]) == 2, "the third, on its own Service, ran alongside the first"


async def test_continue_as_new_keeps_the_status_and_the_cutovers(ts_env):
    """Runs continue as new every few reads while cutovers are in flight.

    A cutover started by the first run ends after that run closed: its report to the closed run keeps
    the Java test server's time lock for good (temporalio/sdk-java#1540), so the waits after it pass
    in real time. This campaign's waits are a few real seconds (TTL 1 s, no margin, Kong's stale TTL 0,
    reads every second). The test server also breaks a run that continues as new while a query waits
    for its workflow task (see ``until_attributes``): the gates are awaited through the search
    attributes, the status is queried once the first run has continued, and the result is read from
    the latest run, not followed from the first.
    """
    name = unique("long")
    apis = [f"{name}-{i}" for i in range(1, 4)]
    world = FleetWorld(apis, ttl=1, stale_ttl=0)
    data = campaign_data(name, apis, [1, "rest"], approvals={"per_wave": "flip"}, poll_interval="1s")
    data["plans"] = [plan_data(api, ttl=1) for api in apis]
    for plan in data["plans"]:
        plan["dns"]["wait_margin"] = "0s"
    campaign = Campaign.from_data(data)
    async with campaign_running(ts_env, world, data, {"continue_after_events": 50}) as handle:
        first_run = (await handle.describe()).run_id
        await until_attributes(ts_env, handle, "awaiting-wave-approval", 1)
        await handle.execute_update(
            "approve", ApproveRequest(gate="wave-1-flip", by="alice", digest=campaign.wave_digest(1))
        )
        await until_attributes(ts_env, handle, "awaiting-wave-approval", 2)
        before = await campaign_status(handle)
        assert before.runs > 1, "the first run continued as new while its cutover was in flight"
        await handle.execute_update(
            "approve", ApproveRequest(gate="wave-2-flip", by="bob", digest=campaign.wave_digest(2))
        )
        latest = ts_env.client.get_workflow_handle(handle.id, result_type=CampaignStatus)
        status = await result_or_stall(ts_env, latest)
    assert status.runs >= before.runs and any("continued as new" in e.text for e in status.events)
    assert status.phase == "completed" and all(e.state == "completed" for e in status.cutovers)
    assert [(a.gate, a.by) for a in status.approvals] == [("wave-1-flip", "alice"), ("wave-2-flip", "bob")]
    for entry in before.wave_entries(1):
        assert status.entry(entry.name).model_dump() == entry.model_dump()
    assert [e.text for e in status.events[: len(before.events)]] == [e.text for e in before.events]
    history = await ts_env.client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
    assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    for api in apis:
        assert world.records[f"{api}.example.test."][0].type == "CNAME"


async def test_cancelling_the_campaign_aborts_its_cutovers_before_their_point_of_no_return(ts_env):
    name = unique("cancel")
    apis = [f"{name}-{i}" for i in range(1, 3)]
    world = FleetWorld(apis)
    # Reads 10 minutes apart: none starts between the check that the campaign is quiet and the cancel.
    # The gates wait on past their timeout: time skips in steps of 10 minutes until the test sees them.
    data = campaign_data(name, apis, ["rest"], approvals={"per_wave": "flip"}, poll_interval="10m")
    for plan in data["plans"]:
        plan["approvals"]["on_timeout"] = "wait"
    async with campaign_running(ts_env, world, data) as handle:
        await until_campaign(
            ts_env, handle, lambda s: all(e.gates_awaited == ["flip"] for e in s.cutovers), "both at the flip gate"
        )
        await quiet(handle)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as info:
            await result_or_stall(ts_env, handle)
        assert isinstance(info.value.cause, CancelledError)
        children = []
        for api in apis:
            with pytest.raises(WorkflowFailureError):  # the campaign does not wait for their rollbacks
                await result_or_stall(ts_env, ts_env.client.get_workflow_handle(f"cutover-{api}"))
            children.append(await cutover_status(ts_env, f"cutover-{api}"))
    assert [c.phase for c in children] == ["rolled-back", "rolled-back"]
    assert all(c.error and c.error.endswith("was cancelled") for c in children), [c.error for c in children]
    for api in apis:
        assert world.records[f"{api}.example.test."][0].type == "A", "nothing flipped"


async def test_waves_soak_between_them_and_on_stop_abort_aborts_the_cutovers_in_flight(ts_env):
    name = unique("soak")
    first, bad, unsure = (f"{name}-{i}" for i in range(1, 4))
    world = FleetWorld([first, bad, unsure])
    world.unhealthy = {f"svc-{bad}"}
    world.inconclusive = {f"svc-{unsure}"}
    # bad's verdict comes a second after unsure's: the abort finds unsure waiting at its gate, not in an
    # activity it would cancel (see tests/workflows/stalls.py: quiet).
    world.monitor_seconds_by_service = {f"svc-{bad}": 1.0}
    data = campaign_data(name, [first, bad, unsure], [1, "rest"], on_stop="abort", pause_between_waves="30m")
    async with campaign_running(ts_env, world, data) as handle:
        with pytest.raises(WorkflowFailureError):
            await result_or_stall(ts_env, handle)
        status = await campaign_status(handle)
        times = await child_times(ts_env, [f"cutover-{n}" for n in (first, bad, unsure)])
    assert times[f"cutover-{bad}"][0] - times[f"cutover-{first}"][1] >= timedelta(minutes=30), "wave 2 soaked first"
    assert any("the next wave starts after 30m" in e.text for e in status.events)
    aborted = status.entry(unsure)
    assert aborted.state == "rolled-back" and aborted.abort_sent and "stopped the line" in aborted.abort_sent
    assert status.stopped is not None and bad in status.stopped.reason and unsure not in status.stopped.reason
    assert world.records[f"{unsure}.example.test."][0].type == "A", "aborted before its point of no return"
    assert status.phase == "failed" and status.error == (
        f"2 of 3 cutovers did not complete: {bad} (rolled-back), {unsure} (rolled-back)"
    )
