"""The cutover command line: validate, plan, start, approve, abort, watch.

    python starter.py validate PLAN [--policy POLICY]   every problem, exit 2; or the digest, exit 0
    python starter.py plan PLAN               dry run through the worker: changes, waits, risks, digest
    python starter.py start PLAN [--wait] [--by NAME] [--sign-with KEY]
                                              prints the workflow id, UI link and approve command
    python starter.py approve ID --gate flip|decommission --by NAME [--plan PLAN | --digest D]
                              [--sign-with ~/.ssh/id_ed25519 | --signature-file FILE | --print-message]
    python starter.py abort ID --reason R [--by NAME]
    python starter.py status ID [--json]
    python starter.py watch ID                live view until the run ends; exit code = outcome (cli/watch.py)
    python starter.py list [--phase P]
    python starter.py traffic PLAN --since 10m
    python starter.py campaign validate|plan|start|status|approve|pause|resume|abort FILE-or-ID   (docs/campaigns.md)
    python starter.py codec-server [--port 8081] [--ui-origin http://localhost:8233]

PLAN is YAML or JSON. ``validate`` checks the plan against a worker policy with ``--policy`` and,
without one, against every rule that needs none (docs/security.md); ``start`` and ``plan`` apply the
same checks first. Read-only commands (``validate``, ``traffic``) never need the worker's secrets.
Temporal settings come from the variables the ``temporal`` CLI reads (TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE; see settings.py) and
CUTOVER_TASK_QUEUE. Everything here is also reachable with the plain ``temporal`` CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.service import RPCError

from cli import codec_server
from cli.approve_digest import digest_for_run, run_digest
from cli.live import approve_command as _approve_command
from cli.signing import SigningError, sign_approval, start_memo
from cli.watch import EXIT_INTERRUPTED, watch
from models.approval_signature import approval_message
from models.durations import parse_duration
from models.input_file import InputFileError
from models.plan import CutoverPlan, describe_problems
from models.policy import WorkerPolicy
from models.policy_rules import PolicyReport, check_plan
from models.workflow import (
    PHASE_ATTRIBUTE,
    RECORD_ATTRIBUTE,
    WORKFLOW_TYPE,
    AbortRequest,
    ApproveRequest,
    CutoverStatus,
)
from providers.dns.factory import build_dns_provider
from providers.errors import CutoverError
from providers.input_files import read_document
from providers.policy_file import PolicyFileError, load_policy
from providers.secrets import EnvSecrets
from providers.telemetry.report import traffic_report
from settings import TemporalConfigError, TemporalSettings

EXIT_INVALID = 2


def read_plan_data(path: str) -> Any:
    """Parse a YAML or JSON plan file into plain data, refusing hostile documents (size, depth, aliases, duplicates).

    Raises:
        InputFileError: with the one reason the file is refused.
    """
    return read_document(path)


def load_plan(path: str) -> CutoverPlan:
    """Read and validate a plan; exit 2 with every problem listed when it is invalid."""
    try:
        data = read_plan_data(path)
        return CutoverPlan.model_validate(data)
    except InputFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except ValidationError as exc:
        print(f"{path}: {describe_problems(exc)}", file=sys.stderr)
    raise SystemExit(EXIT_INVALID)


def load_policy_option(source: str | None) -> WorkerPolicy | None:
    """The policy ``--policy`` names (``dev`` for the built-in one), or None; exit 2 when it is invalid."""
    if source is None:
        return None
    try:
        return load_policy(source)
    except PolicyFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(EXIT_INVALID)


def check_against_policy(path: str, plan: CutoverPlan, policy: WorkerPolicy | None) -> PolicyReport:
    """Every policy violation of ``plan``; exit 2 listing them, as for an invalid plan."""
    report = check_plan(plan, policy)
    if report.violations:
        print(f"{path}: {report.describe()}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID)
    return report


def approve_command(workflow_id: str, gate: str, digest: str) -> str:
    """The exact CLI command (plain temporal CLI) to approve a gate (add "signature" when the worker requires it)."""
    return _approve_command(workflow_id, gate, digest)


def render_status(status: CutoverStatus) -> str:
    """Human-readable status: phase, gates, timeline, undos, verdict, waits, what's left."""
    out = [
        f"{status.workflow_id}: {status.phase}" + (" (dry run)" if status.dry_run else ""),
        f"  {status.record} -> {status.target} ({status.strategy}), plan digest {status.plan_digest}",
    ]
    if status.gates_awaited:
        out.append(f"  awaiting approval: {', '.join(status.gates_awaited)}")
        for gate in status.gates_awaited:
            out.append(f"    {approve_command(status.workflow_id, gate, status.plan_digest)}")
    if status.error:
        out.append(f"  reason: {status.error}")
    if status.planned_changes:
        out.append("  changes, in order:")
        out += [f"    {i}. [{c.phase}] {c.description}" for i, c in enumerate(status.planned_changes, 1)]
    if status.waits:
        out.append("  waits:")
        out += [f"    - {w.phase}: {w.seconds:.0f} s: {w.reason}" for w in status.waits]
    if status.cache_bound:
        out.append(f"  Kong cache bound: {status.cache_bound.seconds} s")
        out += [f"    - {line}" for line in status.cache_bound.reasoning]
    if status.risks:
        out.append("  risks:")
        out += [f"    - {r}" for r in status.risks]
    if status.timeline:
        out.append("  timeline:")
        for step in status.timeline:
            mark = {True: "ok ", False: "ERR", None: "..."}[step.ok]
            out.append(f"    {step.started_at:%H:%M:%S} {mark} [{step.phase}] {step.step}: {step.result}")
    if status.compensations:
        out.append("  undo steps:")
        out += [f"    - {c.id}: {c.description} [{c.state}] {c.detail}" for c in status.compensations]
    if status.last_verdict:
        v = status.last_verdict
        out.append(f"  last verdict: {v.status}: {v.reason}; {v.share.describe()}")
    if status.approvals:
        out += [
            f"  approved {a.gate} by {a.by} via {a.via} at {a.at:%H:%M:%S}"
            + (f" (signed, key {a.key_fingerprint})" if a.key_fingerprint else "")
            for a in status.approvals
        ]
    if status.ignored:
        out += [f"  ignored {m.name} from {m.by}: {m.reason}" for m in status.ignored]
    if status.warnings:
        out.append("  warnings:")
        out += [f"    - {w}" for w in status.warnings]
    if status.left_changed:
        out.append("  LEFT CHANGED:")
        out += [f"    - {item}" for item in status.left_changed]
    if status.manual_steps:
        out.append("  to finish by hand:")
        out += [f"    - {item}" for item in status.manual_steps]
    return "\n".join(out)


async def record_and_target_addresses(plan: CutoverPlan) -> tuple[list[str], list[str]]:
    """Addresses of the record (A's, before a flip) and of the target (B's), from the authoritative servers.

    A name that can't be resolved gives an empty list: the report then says the share is unknown
    rather than failing the whole check.
    """
    # Read-only: no TSIG secret, no worker credentials (a user runs this, not the worker).
    async with build_dns_provider(plan.dns, secrets=EnvSecrets({}), read_only=True) as provider:
        try:
            resolved = await provider.resolve([plan.dns.record, plan.dns.target])
        except CutoverError as exc:
            print(f"warning: could not resolve A/B addresses ({exc}); traffic share unknown", file=sys.stderr)
            return [], []
    record = list(resolved.addresses.get(plan.dns.record, ()))
    target = list(resolved.addresses.get(plan.dns.target, ()))
    return ([] if record == target else record), target


async def start(
    client: Client,
    settings: TemporalSettings,
    plan: CutoverPlan,
    *,
    workflow_id: str | None = None,
    started_by: str | None = None,
    sign_with: str | None = None,
) -> str:
    """Start a run with UI summary/details, memo (digest, ticket, starter) and the CutoverRecord attribute.

    The memo names the starter (``started_by``, signed with ``sign_with``) so the worker's
    ``approver_not_starter`` rule knows who may not approve (models/approval_checks.py).
    """
    workflow_id = workflow_id or plan.workflow_id
    digest = plan.digest()
    starter_memo = start_memo(started_by or _whoami(), workflow_id, digest, sign_with)
    details = (
        f"**{plan.strategy}** cutover of `{plan.dns.record}` to `{plan.dns.target}`\n\n"
        f"- Kong: `{plan.kong.admin_url}` Service `{plan.kong.service}`\n"
        f"- DNS: {plan.dns.provider.kind}, TTL {plan.dns.cutover_ttl} s during the cutover, "
        f"{plan.dns.final_ttl} s after\n"
        f"- Decommission: {plan.decommission.kind}\n"
        f"- Plan digest: `{digest}`" + (f"\n- Ticket: {plan.ticket}" if plan.ticket else "")
    )
    await client.start_workflow(
        WORKFLOW_TYPE,
        plan,
        id=workflow_id,
        task_queue=settings.task_queue,
        static_summary=f"{'Dry run: ' if plan.dry_run else ''}cutover {plan.dns.record} -> {plan.dns.target}"[:190],
        static_details=details,
        memo={"plan_digest": digest, "ticket": plan.ticket or "", **starter_memo},
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(SearchAttributeKey.for_keyword(RECORD_ATTRIBUTE), plan.dns.record)]
        ),
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    return workflow_id


def _whoami() -> str:
    """The local user name, for the memo; containers with no passwd entry for the uid get "unknown"."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


async def digest_typed(prompt: str, digest: str) -> bool:
    """Have a human type the first 8 characters of ``digest``: proof they read what they approve."""
    answer = (await asyncio.to_thread(input, prompt)).strip()
    if len(answer) < 8 or not digest.startswith(answer):
        print("not confirmed: nothing was approved", file=sys.stderr)
        return False
    return True


async def send_update(handle: WorkflowHandle[Any, Any], name: str, request: Any) -> int:
    """Send update ``name`` and print its answer; a rejection goes to stderr and exits 1."""
    try:
        print(await handle.execute_update(name, request, result_type=str))
    except WorkflowUpdateFailedError as exc:
        print(f"rejected: {exc.cause}", file=sys.stderr)
        return 1
    return 0


async def confirm_digest(handle: WorkflowHandle[Any, Any], gate: str) -> str | None:
    """Without --digest or --plan, show what the run will do and have a human confirm its digest.

    The digest check exists so nobody approves a plan they haven't read: reading it silently from the
    run would defeat it. Non-interactive callers must pass --digest or --plan.
    """
    status: CutoverStatus = await handle.query("status", result_type=CutoverStatus)
    if not sys.stdin.isatty():
        print(
            f"error: pass --digest (the plan digest you reviewed) or --plan FILE; this run's plan digest is "
            f"{status.plan_digest}",
            file=sys.stderr,
        )
        return None
    print(render_status(status))
    prompt = f"approve gate {gate!r}? type the first 8 characters of the plan digest to confirm: "
    if not await digest_typed(prompt, status.plan_digest):
        return None
    return status.plan_digest


async def wait_and_print(client: Client, workflow_id: str) -> int:
    """Wait for the end, print the final status, exit 0 on completion and 1 otherwise."""
    handle = client.get_workflow_handle(workflow_id, result_type=CutoverStatus)
    try:
        status = await handle.result()
    except WorkflowFailureError as exc:
        print(f"{workflow_id} ended: {exc.cause}", file=sys.stderr)
        try:
            print(render_status(await handle.query("status", result_type=CutoverStatus)))
        except RPCError:
            pass
        return 1
    print(render_status(status))
    return 0


async def approve(client: Client, handle: WorkflowHandle[Any, Any], args: argparse.Namespace) -> int:
    """Approve a gate by update (or signal), signed when asked; the run id comes from the server."""
    digest = args.digest
    if digest is None and args.plan:
        plan = load_plan(args.plan)
        digest = digest_for_run(plan, await run_digest(handle))
        if digest != plan.digest():
            print(f"this run was started before the stable plan digest: approving its digest {digest}", file=sys.stderr)
    if digest is None:
        digest = await confirm_digest(handle, args.gate)
        if digest is None:
            return EXIT_INVALID
    signature = None
    if args.sign_with or args.print_message:
        run_id = (await handle.describe()).run_id
        # Address this very run: a signature for it must not land on a newer run of the same id.
        handle = client.get_workflow_handle(handle.id, run_id=run_id)
        if args.print_message:
            sys.stdout.write(approval_message(handle.id, run_id, args.gate, digest).decode())
            return 0
        signature = sign_approval(args.sign_with, handle.id, run_id, args.gate, digest)
    elif args.signature_file:
        try:
            signature = await asyncio.to_thread(Path(args.signature_file).read_text)
        except OSError as exc:
            print(f"error: cannot read {args.signature_file}: {exc.strerror}", file=sys.stderr)
            return EXIT_INVALID
    request = ApproveRequest(
        gate=args.gate,
        by=args.by,
        digest=digest,
        comment=args.comment,
        caches_cleared=True if args.caches_cleared else None,
        signature=signature,
    )
    if args.signal:
        await handle.signal("approve", request)
        print("approve signal sent (signals are not validated: check `status` for ignored messages)")
        return 0
    return await send_update(handle, "approve", request)


async def run_command(args: argparse.Namespace) -> int:
    """Dispatch one sub-command."""
    if args.command == "validate":
        plan = load_plan(args.plan)
        policy = load_policy_option(args.policy)
        checked = check_against_policy(args.plan, plan, policy)
        under = f"under the worker policy {policy.name}" if policy else "against the rules that need no policy"
        print(f"{args.plan}: valid ({under}). plan digest {plan.digest()}")
        forced = [
            gate
            for gate, plan_value, effective in (
                ("flip gate", plan.approvals.flip, checked.effective.flip_gate),
                ("decommission gate", plan.approvals.decommission, checked.effective.decommission_gate),
            )
            if effective and not plan_value
        ]
        if forced:
            print(f"  the policy forces: {', '.join(forced)}")
        return 0
    if args.command == "traffic":
        plan = load_plan(args.plan)
        a_addresses, b_addresses = await record_and_target_addresses(plan)
        report = await traffic_report(
            plan, parse_duration(args.since), a_addresses=a_addresses, b_addresses=b_addresses
        )
        report["addresses"] = {"record (A before the flip)": a_addresses, "target (B)": b_addresses}
        print(json.dumps(report, indent=2, default=str))
        return 0

    if args.command == "campaign":
        from cli import campaign

        return await campaign.run(args, TemporalSettings.from_env())
    if args.command in ("start", "plan"):
        check_against_policy(args.plan, load_plan(args.plan), load_policy_option(args.policy))
    settings = TemporalSettings.from_env()
    client = await settings.connect()
    if args.command == "start":
        plan = load_plan(args.plan)
        workflow_id = await start(client, settings, plan, started_by=args.by, sign_with=args.sign_with)
        print(f"started {workflow_id}")
        print(f"  web UI:  {settings.workflow_url(workflow_id)}")
        print(f"  status:  python starter.py status {workflow_id}")
        if plan.approvals.flip:
            print(f"  approve the flip when asked:\n    {approve_command(workflow_id, 'flip', plan.digest())}")
            print(f"    or: python starter.py approve {workflow_id} --gate flip --by <you> --plan {args.plan}")
        print(f"  abort:   python starter.py abort {workflow_id} --reason '...'")
        return await wait_and_print(client, workflow_id) if args.wait else 0
    if args.command == "plan":
        plan = load_plan(args.plan).model_copy(update={"dry_run": True})
        workflow_id = f"{plan.workflow_id}-plan-{int(time.time())}"
        await start(client, settings, plan, workflow_id=workflow_id)
        print(f"dry run {workflow_id}: reading DNS, Kong and B; nothing will be changed")
        return await wait_and_print(client, workflow_id)
    if args.command == "list":
        query = f"WorkflowType='{WORKFLOW_TYPE}'"
        if args.phase:
            query += f" AND {PHASE_ATTRIBUTE}='{args.phase}'"
        async for execution in client.list_workflows(query):
            attributes = execution.typed_search_attributes
            phase = attributes.get(SearchAttributeKey.for_keyword(PHASE_ATTRIBUTE)) or "-"
            record = attributes.get(SearchAttributeKey.for_keyword(RECORD_ATTRIBUTE)) or "-"
            status_name = execution.status.name if execution.status else "?"
            print(f"{execution.id:40} {status_name:12} {phase:32} {record}")
        return 0
    handle = client.get_workflow_handle(args.id)
    if args.command == "watch":
        return await watch(client, args.id, interval=args.interval)
    if args.command == "status":
        status = await handle.query("status", result_type=CutoverStatus)
        print(status.model_dump_json(indent=2) if args.json else render_status(status))
        return 0
    if args.command == "approve":
        return await approve(client, handle, args)
    if args.command == "abort":
        return await send_update(handle, "abort", AbortRequest(by=args.by, reason=args.reason))
    raise AssertionError(args.command)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by tests)."""
    parser = argparse.ArgumentParser(prog="starter.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    policy_help = "a worker policy file to check the plan against ('dev': the built-in loopback-only one)"
    p = sub.add_parser("validate", help="check a plan; every problem, exit 2")
    p.add_argument("plan")
    p.add_argument("--policy", help=policy_help)
    p = sub.add_parser("plan", help="dry run: print changes, waits, risks and the digest")
    p.add_argument("plan")
    p.add_argument("--policy", help=policy_help)
    p = sub.add_parser("start", help="start a cutover")
    p.add_argument("plan")
    p.add_argument("--policy", help=policy_help)
    p.add_argument("--wait", action="store_true", help="wait for the end and print the final status")
    p.add_argument("--by", default=getpass.getuser(), help="who starts (recorded in the memo as started_by)")
    p.add_argument("--sign-with", metavar="KEY", help="SSH private key signing the start (signed-approval policies)")
    p = sub.add_parser("approve", help="approve a gate (update; --signal to send a signal)")
    p.add_argument("id")
    p.add_argument("--gate", required=True, choices=["flip", "decommission"])
    p.add_argument("--by", default=getpass.getuser())
    p.add_argument("--digest", help="the plan digest you reviewed (printed by plan, start and status)")
    p.add_argument("--plan", help="the plan file you reviewed (its digest is approved)")
    p.add_argument("--comment")
    p.add_argument(
        "--caches-cleared",
        action="store_true",
        help="decommission gate: every Kong data plane was restarted (or reloaded) after the flip, as the plan says",
    )
    p.add_argument("--signal", action="store_true")
    signing = p.add_mutually_exclusive_group()
    signing.add_argument("--sign-with", metavar="KEY", help="SSH private key to sign the approval with (SSHSIG)")
    signing.add_argument("--signature-file", help="an armored signature made with ssh-keygen -Y sign")
    signing.add_argument(
        "--print-message", action="store_true", help="print the exact bytes to sign with ssh-keygen, and exit"
    )
    p = sub.add_parser("abort", help="roll back (until the point of no return)")
    p.add_argument("id")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", default=getpass.getuser())
    p = sub.add_parser("status", help="phase, timeline, undo steps, verdict")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("watch", help="live view of a run until it ends; exit 0 completed, 3 rolled back, 4 failed")
    p.add_argument("id")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between status reads (1)")
    p = sub.add_parser("list", help="cutover runs")
    p.add_argument("--phase")
    p = sub.add_parser("traffic", help="window summary and verdict from the plan's telemetry source, now")
    p.add_argument("plan")
    p.add_argument("--since", default="10m")
    from cli import campaign

    campaign.add_parser(sub)
    codec_server.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    args = build_parser().parse_args(argv)
    if args.command == "codec-server":
        return codec_server.serve(args)
    try:
        return asyncio.run(run_command(args))
    except (TemporalConfigError, SigningError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except RPCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except CutoverError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    code = main()
    # Skip interpreter teardown: the Temporal SDK's native runtime can abort it (sdk-python#300).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
