"""``python starter.py campaign ...``: validate, dry-run, start and drive a campaign of many cutovers.

    campaign validate FILE [--json]     every problem, exit 2; or the digests (--json: the campaign with its
                                        plan files inlined, the input of ``temporal workflow start``)
    campaign plan FILE                  dry run of every cutover: one table of changes, waits, risks; wave digests
    campaign start FILE                 prints the workflow id (campaign-<name>) and what to run next
    campaign status FILE-or-ID [--json]
    campaign approve FILE-or-ID --gate wave-N-flip|wave-N-decommission --by NAME [--campaign FILE | --digest D]
    campaign pause|resume|abort FILE-or-ID --reason R [--by NAME]

FILE-or-ID is the campaign file, its workflow id (``campaign-fleet-1``) or its name (``fleet-1``).
Plan files are read with the plan loader (``starter.read_plan_data``), relative to the campaign file.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

import starter
from models.campaign import (
    CAMPAIGN_ID_PREFIX,
    Campaign,
    CampaignInvalid,
    describe_campaign_problems,
    file_references,
    inline_files,
    reference_problem,
)
from models.campaign_status import CAMPAIGN_NAME_ATTRIBUTE, CAMPAIGN_WORKFLOW_TYPE, CampaignStatus, OperatorRequest
from models.durations import format_duration
from models.input_file import InputFileError
from models.plan import CutoverPlan
from models.policy import WorkerPolicy
from models.policy_rules import check_plan
from models.workflow import PHASE_ATTRIBUTE, ApproveRequest, CutoverStatus
from settings import TemporalSettings
from workflows.campaign_logic import WAVE_GATE
from workflows.campaign_render import details_markdown

EXIT_INVALID = 2
DRY_RUNS_AT_ONCE = 10


class LoadedCampaign:
    """A campaign file that validated: the campaign, and its data with every plan file inlined."""

    def __init__(self, path: str, campaign: Campaign, resolved: dict[str, Any]) -> None:
        self.path = path
        self.campaign = campaign
        self.resolved = resolved


def load_campaign(path: str) -> LoadedCampaign:
    """Read and validate a campaign file and the plan files it names; exit 2 with every problem."""
    try:
        data = starter.read_plan_data(path)
    except InputFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID) from None
    base = Path(path).resolve().parent
    loaded: dict[str, Any] = {}
    problems: list[str] = []
    unread: list[str] = []
    for reference in file_references(data):
        problem = reference_problem(reference)
        target = (base / reference).resolve()
        if problem is None and not target.is_relative_to(base):
            problem = f"{reference!r} leads outside the campaign file's directory (a symbolic link?)"
        if problem is None:
            try:
                loaded[reference] = starter.read_plan_data(str(target))
            except InputFileError as exc:
                problem = str(exc)
        if problem is not None:
            problems.append(f"{reference}: {problem}")
            unread.append(reference)
    resolved = inline_files(data, loaded)
    plans = data.get("plans") if isinstance(data, dict) else None
    sources = {i: p for i, p in enumerate(plans or []) if isinstance(p, str)}
    try:
        campaign = Campaign.from_data(resolved, sources)
    except CampaignInvalid as exc:
        problems += [p for p in exc.problems if not any(f"({ref})" in p.split(":")[0] for ref in unread)]
    if problems:
        print(f"{path}: {describe_campaign_problems(problems)}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID)
    return LoadedCampaign(path, campaign, resolved)


def check_plans_against_policy(loaded: LoadedCampaign, policy: WorkerPolicy | None) -> None:
    """Every plan of the campaign against the worker policy; exit 2 listing every violation of every plan."""
    problems = [
        f"plans[{index}] ({plan.name}): {violation.describe()}"
        for index, plan in enumerate(loaded.campaign.plans)
        for violation in check_plan(plan, policy).violations
    ]
    if problems:
        print(f"{loaded.path}: {describe_campaign_problems(problems)}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID)


def is_file(target: str) -> bool:
    """Whether a FILE-or-ID argument names a file."""
    return Path(target).is_file()


def campaign_id(target: str) -> str:
    """The workflow id for a campaign file, a workflow id or a campaign name."""
    if is_file(target):
        return load_campaign(target).campaign.workflow_id
    return target if target.startswith(CAMPAIGN_ID_PREFIX) else CAMPAIGN_ID_PREFIX + target


def describe_campaign(loaded: LoadedCampaign) -> str:
    """What validate prints: the waves with their digests, notes, and the campaign's digest."""
    campaign = loaded.campaign
    settings = campaign.settings
    lines = [
        f"{loaded.path}: valid. campaign {campaign.name} (workflow id {campaign.workflow_id}): "
        f"{len(campaign.plans)} cutovers in {len(campaign.waves)} waves, at most {settings.max_in_flight} in flight, "
        f"approvals per wave: {settings.approvals.per_wave}, on stop: {settings.on_stop}",
    ]
    for number, names in enumerate(campaign.waves, 1):
        shown = ", ".join(names[:10]) + (f" +{len(names) - 10} more" if len(names) > 10 else "")
        lines.append(f"  wave {number}: {len(names)} cutover(s), digest {campaign.wave_digest(number)}: {shown}")
    lines += [f"  note: {note}" for note in campaign.notes]
    lines.append(f"campaign digest {campaign.digest()}")
    return "\n".join(lines)


async def start_campaign(client: Client, settings: TemporalSettings, loaded: LoadedCampaign) -> str:
    """Start the campaign as ``campaign-<name>``, with its name, phase, summary and details for the UI."""
    campaign = loaded.campaign
    waves = "\n".join(
        f"- wave {n}: {len(names)} cutover(s), digest `{campaign.wave_digest(n)[:12]}`"
        for n, names in enumerate(campaign.waves, 1)
    )
    await client.start_workflow(
        CAMPAIGN_WORKFLOW_TYPE,
        args=[loaded.resolved],
        id=campaign.workflow_id,
        task_queue=settings.task_queue,
        static_summary=f"campaign {campaign.name}: {len(campaign.plans)} cutovers in {len(campaign.waves)} waves",
        static_details=f"Campaign digest `{campaign.digest()}`\n\n{waves}",
        memo={"campaign_digest": campaign.digest()},
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SearchAttributeKey.for_keyword(CAMPAIGN_NAME_ATTRIBUTE), campaign.name),
                SearchAttributePair(SearchAttributeKey.for_keyword(PHASE_ATTRIBUTE), "running"),
            ]
        ),
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    return campaign.workflow_id


async def dry_run_all(
    client: Client, settings: TemporalSettings, plans: tuple[CutoverPlan, ...]
) -> dict[str, CutoverStatus | str]:
    """The dry run of every plan (the ``plan`` command's CutoverWorkflow), a few at a time: status or error."""
    semaphore = asyncio.Semaphore(DRY_RUNS_AT_ONCE)
    stamp = int(time.time())

    async def one(plan: CutoverPlan) -> CutoverStatus | str:
        async with semaphore:
            workflow_id = f"{plan.workflow_id}-plan-{stamp}"
            await starter.start(client, settings, plan.model_copy(update={"dry_run": True}), workflow_id=workflow_id)
            handle = client.get_workflow_handle(workflow_id, result_type=CutoverStatus)
            try:
                result: CutoverStatus = await handle.result()
                return result
            except WorkflowFailureError as exc:
                try:
                    status: CutoverStatus = await handle.query("status", result_type=CutoverStatus)
                    return status
                except RPCError:
                    return str(exc.cause)

    results = await asyncio.gather(*(one(p) for p in plans))
    return {p.name: r for p, r in zip(plans, results, strict=True)}


def plan_table(loaded: LoadedCampaign, results: dict[str, CutoverStatus | str]) -> str:
    """One table of every cutover's dry run (changes, waits, risks), the risks in full, and the wave digests."""
    campaign = loaded.campaign
    rows = [("wave", "cutover", "record -> target", "result", "changes", "waits", "risks")]
    risks: dict[str, list[str]] = {}
    refused: list[str] = []
    for number, names in enumerate(campaign.waves, 1):
        for name in names:
            plan, result = campaign.plan(name), results[name]
            move = f"{plan.dns.record} -> {plan.dns.target}"
            if isinstance(result, str):
                rows.append((str(number), name, move, "ERROR (below)", "-", "-", "-"))
                refused.append(f"  {name}: {result}")
                continue
            changes = ", ".join(dict.fromkeys(c.phase for c in result.planned_changes)) or "-"
            waits = " + ".join(format_duration(timedelta(seconds=round(w.seconds))) for w in result.waits) or "-"
            outcome = "ok" if result.phase == "planned" else "REFUSED (below)"
            if result.phase != "planned":
                refused.append(f"  {name}: {result.error or result.phase}")
            rows.append((str(number), name, move, outcome, changes, waits, str(len(result.risks))))
            for risk in result.risks:
                risks.setdefault(risk, []).append(name)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    if refused:
        lines += ["", "refused (nothing was changed):", *refused]
    if risks:
        lines += ["", "risks (and the cutovers they concern):"]
        for risk, concerned in risks.items():
            who = ", ".join(concerned[:10]) + (f" +{len(concerned) - 10} more" if len(concerned) > 10 else "")
            lines.append(f"  - {risk} [{who}]")
    lines += ["", "wave digests (approve with these):"]
    for number in range(1, len(campaign.waves) + 1):
        lines.append(f"  wave {number}: {campaign.wave_digest(number)}")
    lines.append(f"campaign digest {campaign.digest()}")
    return "\n".join(lines)


# --- commands ------------------------------------------------------------------------------------


def _update_command(workflow_id: str, name: str, payload: dict[str, str]) -> str:
    return f"temporal workflow update execute -w {workflow_id} --name {name} --input '{json.dumps(payload)}'"


def print_started(loaded: LoadedCampaign, settings: TemporalSettings) -> None:
    """The workflow id, then what to run next (the plain ``temporal`` commands and the starter's)."""
    campaign = loaded.campaign
    wid = campaign.workflow_id
    print(wid)
    print(f"  web UI:  {settings.workflow_url(wid)}")
    print(f"  status:  python starter.py campaign status {wid}   (or temporal workflow query -w {wid} --name status)")
    print(f"  list its cutovers: temporal workflow list --query \"{CAMPAIGN_NAME_ATTRIBUTE}='{campaign.name}'\"")
    kinds = [k for k in ("flip", "decommission") if getattr(campaign.settings.approvals, k)]
    for kind in kinds:
        payload = {"gate": f"wave-1-{kind}", "by": "<you>", "digest": campaign.wave_digest(1)}
        print(f"  approve wave 1's {kind} when asked: {_update_command(wid, 'approve', payload)}")
        print(f"    or: python starter.py campaign approve {wid} --gate wave-1-{kind} --campaign {loaded.path}")
    print(f"  pause:   {_update_command(wid, 'pause', {'by': '<you>', 'reason': '...'})}")
    print(f"  resume:  {_update_command(wid, 'resume', {'by': '<you>', 'reason': '...'})}")
    print(f"  abort:   {_update_command(wid, 'abort', {'by': '<you>', 'reason': '...'})}")


async def wave_digest_from_status(client: Client, workflow_id: str, gate: str) -> str | None:
    """Without --digest or --campaign, show the wave and have a human confirm its digest (as ``approve`` does)."""
    status: CampaignStatus = await client.get_workflow_handle(workflow_id).query("status", result_type=CampaignStatus)
    match = WAVE_GATE.match(gate)
    number = int(match.group(1)) if match else 0
    if not 1 <= number <= len(status.waves):
        print(f"error: {gate!r} is not a gate of {workflow_id} ({len(status.waves)} waves)", file=sys.stderr)
        return None
    wave = status.waves[number - 1]
    if not sys.stdin.isatty():
        print(
            f"error: pass --campaign FILE (the campaign you reviewed) or --digest (wave {number}'s digest); "
            f"this campaign's wave {number} digest is {wave.digest}",
            file=sys.stderr,
        )
        return None
    print(f"wave {number} of {workflow_id}: {', '.join(wave.cutovers)}; digest {wave.digest}")
    prompt = f"approve {gate}? type the first 8 characters of wave {number}'s digest to confirm: "
    if not await starter.digest_typed(prompt, wave.digest):
        return None
    return wave.digest


async def run(args: argparse.Namespace, settings: TemporalSettings) -> int:
    """Dispatch one ``campaign`` sub-command."""
    command = args.campaign_command
    if command in ("validate", "plan", "start"):
        loaded = load_campaign(args.target)
        check_plans_against_policy(loaded, starter.load_policy_option(args.policy))
    if command == "validate":
        print(json.dumps(loaded.resolved, indent=2, default=str) if args.json else describe_campaign(loaded))
        return 0
    client = await settings.connect()
    if command == "plan":
        print(f"dry run of {len(loaded.campaign.plans)} cutovers: reading DNS, Kong and B; nothing will be changed")
        results = await dry_run_all(client, settings, loaded.campaign.plans)
        print(plan_table(loaded, results))
        planned = all(not isinstance(r, str) and r.phase == "planned" for r in results.values())
        return 0 if planned else 1
    if command == "start":
        try:
            await start_campaign(client, settings, loaded)
        except WorkflowAlreadyStartedError:
            print(f"error: {loaded.campaign.workflow_id} is already running", file=sys.stderr)
            return 1
        print_started(loaded, settings)
        return 0
    workflow_id = campaign_id(args.target)
    handle = client.get_workflow_handle(workflow_id)
    if command == "status":
        status: CampaignStatus = await handle.query("status", result_type=CampaignStatus)
        print(status.model_dump_json(indent=2) if args.json else details_markdown(status))
        return 0
    request: ApproveRequest | OperatorRequest
    if command == "approve":
        reviewed = args.campaign or (args.target if is_file(args.target) else None)
        digest = args.digest
        match = WAVE_GATE.match(args.gate)
        if digest is None and reviewed is not None and match is not None:
            number = int(match.group(1))
            campaign = load_campaign(reviewed).campaign
            digest = campaign.wave_digest(number) if 1 <= number <= len(campaign.waves) else "no-such-wave"
        if match is None:
            digest = digest or "-"  # the campaign refuses the gate and says which gates it has
        if digest is None:
            digest = await wave_digest_from_status(client, workflow_id, args.gate)
            if digest is None:
                return EXIT_INVALID
        request = ApproveRequest(gate=args.gate, by=args.by, digest=digest, comment=args.comment)
    else:
        request = OperatorRequest(by=args.by, reason=args.reason)
    if getattr(args, "signal", False):
        await handle.signal(command, request)
        print(f"{command} signal sent (signals get no answer: check `campaign status` for ignored messages)")
        return 0
    return await starter.send_update(handle, command, request)


def add_parser(sub: Any) -> None:
    """``campaign`` and its sub-commands, on starter.py's sub-parsers."""
    parser = sub.add_parser(
        "campaign", help="many cutovers in waves: validate|plan|start|status|approve|pause|resume|abort"
    )
    commands = parser.add_subparsers(dest="campaign_command", required=True)
    p = commands.add_parser("validate", help="check a campaign file; every problem, exit 2")
    p.add_argument("target", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the campaign with its plan files inlined")
    planning = commands.add_parser("plan", help="dry run of every cutover: changes, waits, risks; wave digests")
    starting = commands.add_parser("start", help="start the campaign; prints its workflow id")
    for parser_ in (planning, starting):
        parser_.add_argument("target", metavar="FILE")
    for parser_ in (p, planning, starting):
        parser_.add_argument(
            "--policy",
            help="check every plan against this worker policy (docs/security.md); default: the rules that need none",
        )
    p = commands.add_parser("status", help="waves, cutovers by state and phase, what it waits for")
    p.add_argument("target", metavar="FILE-or-ID")
    p.add_argument("--json", action="store_true")
    p = commands.add_parser("approve", help="approve a wave's gate (update; --signal to send a signal)")
    p.add_argument("target", metavar="FILE-or-ID")
    p.add_argument("--gate", required=True, help="wave-N-flip or wave-N-decommission")
    p.add_argument("--by", default=getpass.getuser())
    p.add_argument("--digest", help="the wave's digest you reviewed (printed by validate, plan and status)")
    p.add_argument("--campaign", help="the campaign file you reviewed (its wave digest is approved)")
    p.add_argument("--comment")
    p.add_argument("--signal", action="store_true")
    for name, what, reason_required in (
        ("pause", "start no new cutover until resume (those in flight finish)", True),
        ("resume", "carry on after a pause or a stopped line", False),
        ("abort", "start nothing more; abort cutovers before their point of no return", True),
    ):
        p = commands.add_parser(name, help=what)
        p.add_argument("target", metavar="FILE-or-ID")
        p.add_argument("--reason", required=reason_required)
        p.add_argument("--by", default=getpass.getuser())
        p.add_argument("--signal", action="store_true")
