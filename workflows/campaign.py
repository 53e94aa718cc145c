"""CampaignWorkflow: many cutovers in waves, each a CutoverWorkflow child, with stop-the-line and wave gates.

One loop: start what may start (wave by wave, at most ``max_in_flight``, never two on one record or
Kong Service), approve the gates of cutovers whose wave a human approved, stop the line when
``stop_on`` trips, read the phases of the cutovers in flight every ``poll_interval``, and wake early
on any message or child ending. Children are abandoned on close (``ParentClosePolicy.ABANDON``) so a
continue-as-new doesn't touch them; a new run follows them by reading their status. Decisions are in
``workflows/campaign_logic.py``, rendering in ``workflows/campaign_render.py``. No I/O here.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    import pydantic

    from activities.campaign import brief_of
    from models.campaign import Campaign, CampaignInvalid
    from models.campaign_status import (
        CAMPAIGN_NAME_ATTRIBUTE,
        CAMPAIGN_WAVE_ATTRIBUTE,
        CAMPAIGN_WORKFLOW_TYPE,
        CONTINUE_AFTER_BYTES,
        AbortRecord,
        BriefsInput,
        BriefsResult,
        CampaignCarry,
        CampaignStatus,
        ChildApproval,
        ChildApprovalResult,
        CutoverEntry,
        StopRecord,
    )
    from models.durations import format_duration
    from models.workflow import (
        PHASE_ATTRIBUTE,
        RECORD_ATTRIBUTE,
        WORKFLOW_TYPE,
        ApprovalRecord,
        CutoverStatus,
    )
    from workflows import campaign_logic as logic
    from workflows.activity_refs import CAMPAIGN_APPROVE_CUTOVER, CAMPAIGN_READ_CUTOVERS
    from workflows.campaign_messages import CampaignMessages
    from workflows.campaign_render import commands, details_markdown
    from workflows.errors import describe_failure

READ_CUTOVERS = CAMPAIGN_READ_CUTOVERS
APPROVE_CUTOVER = CAMPAIGN_APPROVE_CUTOVER
PHASE = SearchAttributeKey.for_keyword(PHASE_ATTRIBUTE)
RECORD = SearchAttributeKey.for_keyword(RECORD_ATTRIBUTE)
CAMPAIGN = SearchAttributeKey.for_keyword(CAMPAIGN_NAME_ATTRIBUTE)
WAVE = SearchAttributeKey.for_keyword(CAMPAIGN_WAVE_ATTRIBUTE)
IDLE_WAKE = timedelta(days=1)
READ_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10))
READ_RACE_PATCH = "campaign-read-never-overrides"
"""A read that failed, or raced a child's own result, no longer ends a cutover (``logic.read_ending``)."""


@workflow.defn(name=CAMPAIGN_WORKFLOW_TYPE)
class CampaignWorkflow(CampaignMessages):
    """Run a campaign. Signals/updates: ``approve``, ``pause``, ``resume``, ``abort``; query: ``status``."""

    @workflow.init
    def __init__(self, campaign: dict[str, Any], carried: dict[str, Any] | None = None) -> None:
        self._raw = campaign
        self._invalid: str | None = None
        try:
            self._campaign = Campaign.from_data(campaign)
            self._carry = CampaignCarry.model_validate(carried or {})
        except (CampaignInvalid, pydantic.ValidationError) as exc:
            # Raised from run(): an exception in init leaves the SDK's run coroutine unawaited.
            self._invalid = str(exc)
            self._status = CampaignStatus(name="?", workflow_id=workflow.info().workflow_id, digest="", phase="failed")
            return
        self._status = self._carry.state or logic.new_status(self._campaign, workflow.info().workflow_id)
        self._resources = {p.name: self._campaign.resources(p.name) for p in self._campaign.plans}
        self._handles: dict[str, workflow.ChildWorkflowHandle[Any, Any]] = {}
        self._wake = False
        self._next_read = workflow.now()
        self._attempted: set[tuple[str, str]] = set()
        self._watchers: set[asyncio.Future[None]] = set()
        """The tasks awaiting the children this run started (kept referenced until the run ends)."""

    # --- run ------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, campaign: dict[str, Any], carried: dict[str, Any] | None = None) -> CampaignStatus:
        """Run the waves until every cutover ended, or the campaign is aborted."""
        if self._invalid is not None:
            if workflow.unsafe.is_replaying():
                raise RuntimeError(f"this campaign no longer validates with this worker's code: {self._invalid}")
            raise ApplicationError(f"invalid campaign: {self._invalid}", type="InvalidCampaign", non_retryable=True)
        status = self._status
        if self._carry.state is None:
            self._event(f"started: {len(status.cutovers)} cutovers in {len(status.waves)} waves")
        else:
            self._event(f"run {status.runs}: continued as new, following {len(status.in_flight())} cutover(s)")
        self._upsert(CAMPAIGN, status.name)
        try:
            await self._loop()
        except asyncio.CancelledError:
            status.abort = status.abort or AbortRecord(
                by="cancellation", reason="the campaign was cancelled", at=workflow.now()
            )
            await asyncio.shield(asyncio.ensure_future(self._send_aborts(f"campaign {status.name} was cancelled")))
            raise
        return await self._finish()

    async def _loop(self) -> None:
        status, campaign = self._status, self._campaign
        while True:
            self._wake = False
            if status.abort is not None:
                await self._send_aborts(f"campaign {status.name} aborted by {status.abort.by}: {status.abort.reason}")
            elif status.stopped is None or not status.stopped.automatic:
                reason = logic.stop_reason(status, campaign)
                if reason:
                    await self._stop_the_line(reason)
            if status.abort is not None and not status.in_flight() and not self._unread():
                return
            if logic.wave_over(status) and not self._unread():
                if status.current_wave:
                    wave = status.waves[status.current_wave - 1]
                    wave.ended_at = wave.ended_at or workflow.now()
                if status.current_wave == len(status.waves):
                    return
                if status.stopped is None and self._soaked():
                    self._start_wave(status.current_wave + 1)
            await self._start_cutovers()
            await self._approve_gates()
            self._refresh()
            if self._history_full():
                await self._continue_as_new()
            await self._sleep()
            if (status.in_flight() or self._unread()) and workflow.now() >= self._next_read:
                await self._read()

    def _unread(self) -> list[CutoverEntry]:
        """Ended cutovers whose final status (verdict, error) has not been read yet."""
        return [e for e in self._status.cutovers if e.state in ("rolled-back", "failed") and not e.final]

    async def _sleep(self) -> None:
        """Until a message or a child ending wakes the loop, the next read is due, or the next wave may start."""
        now = workflow.now()
        deadlines = []
        if self._status.in_flight() or self._unread():
            deadlines.append(self._next_read)
        if self._status.next_wave_at is not None:
            deadlines.append(self._status.next_wave_at)
        # Nothing to read or to start (paused, or waiting for a human): wake once a day anyway. It costs
        # five events a day, and no wait is open-ended (a time-skipping test server would otherwise
        # jump straight to the workflow's execution timeout).
        deadlines.append(now + IDLE_WAKE)
        timeout = min(deadlines) - now
        if timeout <= timedelta(0):
            return
        try:
            await workflow.wait_condition(
                lambda: self._wake, timeout=timeout, timeout_summary="next read of the cutovers"
            )
        except TimeoutError:
            pass

    def _soaked(self) -> bool:
        """True when the next wave may start (after ``pause_between_waves`` since the last one ended)."""
        status, pause = self._status, self._campaign.settings.pause_between_waves
        if status.current_wave == 0 or pause is None:
            return True
        if status.next_wave_at is None:
            status.next_wave_at = workflow.now() + pause
            self._event(f"wave {status.current_wave} done: the next wave starts after {format_duration(pause)}")
        if workflow.now() < status.next_wave_at:
            return False
        status.next_wave_at = None
        return True

    def _start_wave(self, number: int) -> None:
        status = self._status
        status.current_wave = number
        status.waves[number - 1].started_at = workflow.now()
        self._event(f"wave {number} started ({len(status.waves[number - 1].cutovers)} cutovers)")
        self._upsert(WAVE, str(number))

    async def _finish(self) -> CampaignStatus:
        status = self._status
        if status.current_wave:
            wave = status.waves[status.current_wave - 1]
            wave.ended_at = wave.ended_at or workflow.now()
        for entry in status.cutovers:
            if entry.state == "pending":
                entry.state = "not-started"
        incomplete = [e for e in status.cutovers if e.state != "completed"]
        if status.abort is not None:
            phase, error_type = "aborted", "CampaignAborted"
            status.error = f"aborted by {status.abort.by}: {status.abort.reason}"
        elif incomplete:
            phase, error_type = "failed", "CampaignIncomplete"
            names = ", ".join(f"{e.name} ({e.state})" for e in incomplete[:20])
            status.error = f"{len(incomplete)} of {len(status.cutovers)} cutovers did not complete: {names}"
        else:
            phase, error_type = "completed", ""
        self._event(f"{phase}" + (f": {status.error}" if status.error else ""))
        status.phase = phase
        self._refresh()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if error_type:
            raise ApplicationError(status.error or phase, type=error_type, non_retryable=True)
        return status

    def _history_full(self) -> bool:
        """Past the events or bytes a run may hold (or Temporal suggests it): time to continue as new."""
        info = workflow.info()
        length = info.get_current_history_length()
        # A fresh run holds a few events: never continue before this run has done something.
        return length >= 50 and (
            info.is_continue_as_new_suggested()
            or length >= self._carry.continue_after_events
            or info.get_current_history_size() >= CONTINUE_AFTER_BYTES
        )

    async def _continue_as_new(self) -> None:
        status = self._status
        await workflow.wait_condition(workflow.all_handlers_finished)
        status.runs += 1
        carry = CampaignCarry(state=status, continue_after_events=self._carry.continue_after_events)
        workflow.continue_as_new(args=[self._raw, carry.model_dump(mode="json")])

    # --- cutovers -------------------------------------------------------------------------------

    async def _start_cutovers(self) -> None:
        names = logic.startable(self._status, self._resources)
        if names:
            await asyncio.gather(*(self._start(name) for name in names))

    async def _start(self, name: str) -> None:
        status, plan = self._status, self._campaign.plan(name)
        entry = status.entry(name)
        entry.state, entry.started_at = "in-flight", workflow.now()
        self._next_read = min(self._next_read, workflow.now() + self._campaign.settings.poll_interval)
        summary = f"campaign {status.name} wave {entry.wave}: {plan.dns.record} -> {plan.dns.target}"
        try:
            handle = await workflow.start_child_workflow(
                WORKFLOW_TYPE,
                plan.model_dump(mode="json"),
                id=entry.workflow_id,
                result_type=dict,
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(RECORD, plan.dns.record),
                        SearchAttributePair(CAMPAIGN, status.name),
                        SearchAttributePair(WAVE, str(entry.wave)),
                    ]
                ),
                memo={"plan_digest": entry.plan_digest, "ticket": plan.ticket or "", "campaign": status.name},
                static_summary=summary[:190],
                static_details=f"Cutover `{plan.name}` of campaign `{status.name}` (wave {entry.wave}), "
                f"plan digest `{entry.plan_digest}`; its gates are approved by the campaign per wave.",
            )
        except WorkflowAlreadyStartedError:
            logic.end(entry, "failed", f"could not start: {entry.workflow_id} is already running", workflow.now())
            entry.final = True
            return
        self._handles[name] = handle
        self._watchers.add(asyncio.ensure_future(self._await_end(entry, handle)))

    async def _await_end(self, entry: CutoverEntry, handle: workflow.ChildWorkflowHandle[Any, Any]) -> None:
        try:
            result = await handle
        except FailureError as exc:
            state, error = logic.ending_of_failure(exc)
            logic.end(entry, state, error, workflow.now())
            self._next_read = workflow.now()  # read its verdict now: the details show why it failed
        else:
            try:
                logic.apply_brief(entry, brief_of(entry.workflow_id, CutoverStatus.model_validate(result), "COMPLETED"))
            except pydantic.ValidationError:
                self._warn(f"{entry.workflow_id} completed with a result this worker can't read (newer code?)")
            logic.end(entry, "completed", None, workflow.now())
            entry.final = True
        self._wake = True

    async def _read(self) -> None:
        """Read the phases of the cutovers in flight (and the final status of those that just failed)."""
        status = self._status
        targets = status.in_flight() + self._unread()
        self._attempted.clear()
        request = BriefsInput(
            workflow_ids=tuple(e.workflow_id for e in targets), known={e.workflow_id: e.fingerprint for e in targets}
        )
        try:
            raw = await workflow.execute_activity(
                READ_CUTOVERS.name,
                request,
                result_type=dict,
                start_to_close_timeout=timedelta(minutes=1),
                schedule_to_close_timeout=timedelta(minutes=3),
                retry_policy=READ_RETRY,
                summary=f"Read {len(targets)} cutover(s)",
            )
            briefs = BriefsResult.model_validate(raw).briefs
        except (ActivityError, pydantic.ValidationError) as exc:
            self._warn(f"reading the cutovers failed (retried at the next read): {describe_failure(exc)}")
            self._next_read = workflow.now() + self._campaign.settings.poll_interval
            return
        by_id = {e.workflow_id: e for e in targets}
        # Before this patch a read whose status query timed out could mark a cutover that had just
        # completed "failed" (bench.campaign, 3 of 200); open campaigns replay the old rule.
        careful = bool(briefs) and workflow.patched(READ_RACE_PATCH)
        for brief in briefs:
            entry = by_id[brief.workflow_id]
            logic.apply_brief(entry, brief)
            watched = entry.name in self._handles
            if careful:
                ending = logic.read_ending(entry, brief, watched=watched)
            else:
                ending = logic.ending_of_brief(brief)
                ending = ending if entry.state != "in-flight" or not watched else None
            if ending is not None:
                logic.end(entry, ending[0], ending[1], workflow.now())
        for entry in targets:
            if entry.state != "in-flight":
                entry.final = True
        self._next_read = logic.next_read(status, workflow.now(), self._campaign.settings.poll_interval)

    # --- gates and stop-the-line ----------------------------------------------------------------

    async def _approve_gates(self) -> None:
        due = [d for d in logic.approvals_due(self._status) if (d[0].name, d[1]) not in self._attempted]
        if due:
            await asyncio.gather(*(self._approve(entry, kind, approval) for entry, kind, approval in due))

    async def _approve(self, entry: CutoverEntry, kind: str, approval: ApprovalRecord) -> None:
        self._attempted.add((entry.name, kind))
        request = ChildApproval(
            workflow_id=entry.workflow_id,
            gate=kind,
            by=approval.by,
            digest=entry.plan_digest,
            comment=f"campaign {self._status.name}: {approval.gate} approved by {approval.by}",
        )
        try:
            raw = await workflow.execute_activity(
                APPROVE_CUTOVER.name,
                request,
                result_type=dict,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(minutes=2),
                retry_policy=READ_RETRY,
                summary=f"Approve {kind} of {entry.workflow_id} ({approval.gate}, {approval.by})"[:190],
            )
            result = ChildApprovalResult.model_validate(raw)
        except (ActivityError, pydantic.ValidationError) as exc:
            self._warn(
                f"approving {kind} of {entry.workflow_id} failed (retried after the next read): {describe_failure(exc)}"
            )
            return
        if result.approved:
            entry.approved_gates.append(kind)
            entry.gates_awaited = [g for g in entry.gates_awaited if g != kind]
        else:
            entry.needs_human = f"the campaign's approval of its {kind} gate was refused: {result.message}"

    async def _stop_the_line(self, reason: str) -> None:
        status = self._status
        previous = f" (it was paused by {status.stopped.by}: {status.stopped.reason})" if status.stopped else ""
        status.stopped = StopRecord(by="stop_on", reason=reason + previous, at=workflow.now(), automatic=True)
        self._event(f"line stopped: {reason}")
        if status.on_stop == "abort":
            await self._send_aborts(f"campaign {status.name} stopped the line: {reason}")

    async def _send_aborts(self, reason: str) -> None:
        """Abort every cutover in flight before its point of no return; the others finish."""
        targets = [e for e in self._status.in_flight() if e.abort_sent is None and not e.point_of_no_return_passed]
        for entry in targets:
            entry.abort_sent = reason
        await asyncio.gather(*(self._signal_abort(entry, reason) for entry in targets))

    async def _signal_abort(self, entry: CutoverEntry, reason: str) -> None:
        handle = self._handles.get(entry.name) or workflow.get_external_workflow_handle(entry.workflow_id)
        by = self._status.abort.by if self._status.abort else f"campaign {self._status.name}"
        try:
            await handle.signal("abort", {"by": by, "reason": reason})
        except FailureError as exc:
            self._warn(f"could not send abort to {entry.workflow_id}: {describe_failure(exc)}")

    # --- status (the messages and the query are in CampaignMessages) ----------------------------

    def _upsert(self, key: SearchAttributeKey[str], value: str) -> None:
        """Upsert a search attribute only when it changes (a continued run already carries the old values)."""
        if workflow.info().typed_search_attributes.get(key) != value:
            workflow.upsert_search_attributes([key.value_set(value)])

    def _refresh(self) -> None:
        status = self._status
        status.phase = logic.phase_of(status)
        self._upsert(PHASE, status.phase)
        status.commands = commands(status)
        workflow.set_current_details(details_markdown(status))
