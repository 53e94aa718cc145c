"""What an operator sees of a campaign: the exact commands it waits for, and its Markdown current details.

The details are one small table per wave (pending / in flight by phase / completed / rolled back /
failed), the cutovers that failed with their verdicts, what needs a human, and the commands. Lists of
names are cut short so that a campaign of hundreds of cutovers stays readable (and small).
"""

from __future__ import annotations

import json

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.campaign_status import UNSUCCESSFUL, CampaignStatus, CutoverEntry
    from workflows.campaign_logic import awaiting_wave_gates

NAMES_PER_CELL = 8
FAILURES_SHOWN = 20


def _update(workflow_id: str, name: str, payload: dict[str, str]) -> str:
    return (
        f"temporal workflow update execute -w {workflow_id} --name {name} "
        f"--input '{json.dumps(payload, separators=(',', ':'))}'"
    )


def commands(status: CampaignStatus) -> dict[str, str]:
    """The plain ``temporal`` commands for what the campaign can take now, keyed by what they do."""
    wid = status.workflow_id
    if status.phase in ("completed", "aborted", "failed"):
        return {}
    out: dict[str, str] = {}
    if status.abort is None and 1 <= status.current_wave <= len(status.waves):
        wave = status.waves[status.current_wave - 1]
        for gate in wave.gates:
            if gate.approval is None:
                out[f"approve {gate.gate}"] = _update(
                    wid, "approve", {"gate": gate.gate, "by": "<you>", "digest": wave.digest}
                )
    if status.abort is None:
        if status.stopped is not None:
            out["resume"] = _update(wid, "resume", {"by": "<you>", "reason": "..."})
        else:
            out["pause"] = _update(wid, "pause", {"by": "<you>", "reason": "..."})
        out["abort"] = _update(wid, "abort", {"by": "<you>", "reason": "..."})
    return out


def _names(entries: list[CutoverEntry]) -> str:
    if not entries:
        return "–"
    shown = ", ".join(e.name for e in entries[:NAMES_PER_CELL])
    return shown + (f" +{len(entries) - NAMES_PER_CELL} more" if len(entries) > NAMES_PER_CELL else "")


def _by_phase(entries: list[CutoverEntry]) -> str:
    if not entries:
        return "–"
    phases: dict[str, list[CutoverEntry]] = {}
    for entry in entries:
        phases.setdefault(entry.phase or "starting", []).append(entry)
    return "; ".join(f"{phase}: {_names(group)}" for phase, group in phases.items())


def wave_table(status: CampaignStatus, number: int) -> list[str]:
    """One wave: a heading with its state and digest, and its table."""
    wave = status.waves[number - 1]
    entries = status.wave_entries(number)
    if wave.ended_at is not None:
        state = "done"
    elif wave.started_at is not None:
        state = "running"
    else:
        state = "not started"
    gates = ", ".join(
        f"{g.gate} approved by {g.approval.by}" if g.approval else f"{g.gate} not approved" for g in wave.gates
    )
    by_state = {s: [e for e in entries if e.state == s] for s in ("pending", "completed", "rolled-back", "failed")}
    pending = by_state["pending"] + [e for e in entries if e.state == "not-started"]
    return [
        f"### Wave {number}: {state} ({len(entries)} cutovers, digest `{wave.digest[:12]}`)"
        + (f"; {gates}" if gates else ""),
        "",
        "| pending | in flight (by phase) | completed | rolled back | failed |",
        "|---|---|---|---|---|",
        f"| {_names(pending)} | {_by_phase([e for e in entries if e.state == 'in-flight'])} | "
        f"{_names(by_state['completed'])} | {_names(by_state['rolled-back'])} | {_names(by_state['failed'])} |",
        "",
    ]


def details_markdown(status: CampaignStatus) -> str:
    """The campaign's current details for the web UI (``temporal workflow metadata`` in a terminal)."""
    counts = status.counts()
    lines = [
        f"## Campaign {status.name}: **{status.phase}** (wave {status.current_wave} of {len(status.waves)})",
        f"{counts['completed']} completed, {counts['in-flight']} in flight, {counts['pending']} pending, "
        f"{counts['rolled-back']} rolled back, {counts['failed']} failed; at most {status.max_in_flight} in flight; "
        f"digest `{status.digest[:12]}`",
        "",
    ]
    if status.abort is not None:
        lines += [
            f"**Aborting** ({status.abort.by}: {status.abort.reason}): no cutover starts; "
            "those before their point of no return are aborted, the others finish.",
            "",
        ]
    elif status.stopped is not None:
        kind = "Line stopped" if status.stopped.automatic else f"Paused by {status.stopped.by}"
        lines += [f"**{kind}**: {status.stopped.reason}. No new cutover starts until `resume` (or `abort`).", ""]
    for gate in awaiting_wave_gates(status):
        lines += [f"**Waiting for approval of {gate.gate}**: cutovers of wave {status.current_wave} wait for it.", ""]
    if status.next_wave_at is not None:
        lines += [f"Next wave at {status.next_wave_at:%H:%M:%S} UTC (pause_between_waves).", ""]
    for number in range(1, len(status.waves) + 1):
        lines += wave_table(status, number)
    failing = [e for e in status.cutovers if e.state in UNSUCCESSFUL]
    if failing:
        lines.append("### Did not complete")
        for entry in failing[:FAILURES_SHOWN]:
            verdict = f"; verdict {entry.verdict}" if entry.verdict else ""
            lines.append(f"- `{entry.workflow_id}` {entry.state}: {entry.error or '?'}{verdict}")
        if len(failing) > FAILURES_SHOWN:
            lines.append(f"- … and {len(failing) - FAILURES_SHOWN} more (query `status`)")
        lines.append("")
    unread = [e for e in status.in_flight() if e.read_problem]
    if unread:
        lines.append("### Status not readable (still counted in flight; read again at every poll)")
        lines += [f"- `{e.workflow_id}`: {e.read_problem}" for e in unread[:FAILURES_SHOWN]]
        lines.append("")
    humans = [e for e in status.in_flight() if e.needs_human]
    if humans:
        lines.append("### Needs a human")
        lines += [f"- `{e.workflow_id}`: {e.needs_human}" for e in humans[:FAILURES_SHOWN]]
        lines.append("")
    if status.commands:
        lines.append("### Commands")
        for what, command in status.commands.items():
            lines += [f"{what}:", "```", command, "```"]
    return "\n".join(lines)
