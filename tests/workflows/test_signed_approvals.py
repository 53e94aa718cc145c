"""Signed approvals and four-eyes rules inside the workflow (time-skipping server, the world faked by name).

The rules reach a run as they do in production: the worker policy's ``policy_check`` (the real pure
rules, in the fake world) returns them in ``verifying``, and ``Run.approval_rules`` reads them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from temporalio.client import WorkflowUpdateFailedError
from temporalio.worker import Worker

from cli.signing import start_memo
from models.approval_rules import ApprovalRules
from models.approval_signature import approval_message, fingerprint, public_key_blob, sign, start_message
from models.policy import WorkerPolicy
from models.workflow import ApproveRequest, CutoverStatus
from tests.approvals.sshkeys import keygen_sign, make_key
from tests.security.cases import reference_policy
from tests.temporal_env import venv_binary
from tests.workflows.fake_world import FakeWorld
from tests.workflows.helpers import activities_for, failure_of, make, until_phase
from worker import workflow_runner
from workflows.registry import WORKFLOWS

ROOT = Path(__file__).resolve().parents[2]
ALICE = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x0a" * 32)
BOB = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x0b" * 32)
MALLORY = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x0c" * 32)


def signer_line(name: str, key: ed25519.Ed25519PrivateKey) -> str:
    return f"{name} ssh-ed25519 {base64.b64encode(public_key_blob(key.public_key())).decode()}"


SIGNERS = (signer_line("alice", ALICE), signer_line("bob", BOB))
FOUR_EYES = ApprovalRules(
    require_signed_approvals=True, allowed_signers=SIGNERS, distinct_approvers=True, approver_not_starter=True
)


def under_rules(world: FakeWorld, rules: ApprovalRules) -> FakeWorld:
    """The world's worker policy: the reference policy (the base plan allowed) with these approval rules."""
    world.policy = WorkerPolicy.model_validate({**reference_policy(), "approvals": rules.model_dump(mode="json")})
    return world


@asynccontextmanager
async def started(env, world: FakeWorld, plan, rules: ApprovalRules, memo: dict[str, Any] | None = None):
    queue = str(uuid.uuid4())
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=activities_for(env, under_rules(world, rules)),
        workflow_runner=workflow_runner(),
    ):
        workflow_id = f"cutover-{uuid.uuid4()}"
        handle = await env.client.start_workflow(
            "CutoverWorkflow",
            plan,
            id=workflow_id,
            task_queue=queue,
            result_type=CutoverStatus,
            memo=memo if memo is not None else {},
        )
        yield handle


def signed(handle, gate: str, by: str, key, digest: str, *, run_id: str | None = None, for_gate: str | None = None):
    message = approval_message(handle.id, run_id or handle.result_run_id, for_gate or gate, digest)
    return ApproveRequest(gate=gate, by=by, digest=digest, signature=sign(key, message))


def signed_start(handle_id: str, digest: str, by: str, key, at: datetime) -> dict[str, str]:
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = sign(key, start_message(handle_id, digest, by, stamp))
    return {"started_by": by, "started_at": stamp, "start_signature": signature}


async def rejected(handle, request: ApproveRequest) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update("approve", request)
    return str(info.value.cause)


async def test_signed_approvals_accepted_and_every_bad_one_refused_with_the_reason(ts_env):
    world = FakeWorld()
    plan = make(flip_gate=True, decommission_gate=True)
    digest = plan.digest()
    starter = {"started_by": "carol"}  # not an allowed signer: carol may start, not approve
    rules = FOUR_EYES.model_copy(update={"require_signed_approvals": True, "approver_not_starter": False})
    async with started(ts_env, world, plan, rules, starter) as handle:
        await until_phase(ts_env, handle, "awaiting-flip-approval")
        unsigned = ApproveRequest(gate="flip", by="alice", digest=digest)
        assert "requires signed approvals and this one is unsigned" in await rejected(handle, unsigned)
        wrong_key = signed(handle, "flip", "alice", MALLORY, digest)
        assert "not the key of 'alice'" in await rejected(handle, wrong_key)
        other_run = signed(handle, "flip", "alice", ALICE, digest, run_id=str(uuid.uuid4()))
        assert "does not match" in await rejected(handle, other_run)
        other_gate = signed(handle, "flip", "alice", ALICE, digest, for_gate="decommission")
        assert "does not match" in await rejected(handle, other_gate)
        # A signal gets no answer: the same refusals land in the status, with the reason.
        await handle.signal("approve", unsigned)
        await handle.signal("approve", wrong_key)

        good = signed(handle, "flip", "alice", ALICE, digest)
        assert await handle.execute_update("approve", good, result_type=str) == "flip approved by alice"
        assert "already approved by alice" in await rejected(handle, good)

        await until_phase(ts_env, handle, "awaiting-decommission-approval")
        same_person = signed(handle, "decommission", "alice", ALICE, digest)
        assert "distinct_approvers: alice" in await rejected(handle, same_person)
        await handle.execute_update("approve", signed(handle, "decommission", "bob", BOB, digest))
        status = await handle.result()
    assert status.phase == "completed"
    alice_fp = fingerprint(public_key_blob(ALICE.public_key()))
    assert [(a.gate, a.by, a.key_fingerprint) for a in status.approvals] == [
        ("flip", "alice", alice_fp),
        ("decommission", "bob", fingerprint(public_key_blob(BOB.public_key()))),
    ]
    ignored = [(m.by, m.reason) for m in status.ignored]
    assert any(by == "alice" and "unsigned" in reason for by, reason in ignored), ignored
    assert any(by == "alice" and "not the key of 'alice'" in reason for by, reason in ignored), ignored


async def test_the_starter_may_not_approve_and_an_unknown_starter_is_refused_before_any_change(ts_env):
    world = FakeWorld()
    plan = make(flip_gate=True)
    digest = plan.digest()
    workflow_id_memo: dict[str, Any] = {}
    async with started(ts_env, world, plan, FOUR_EYES, workflow_id_memo) as handle:
        error = await failure_of(handle)
    assert "refused before any change" in str(error) and "approver_not_starter" in str(error)
    assert "started_by" in str(error)
    assert "dns_apply" not in world.calls

    world = FakeWorld()
    queue = str(uuid.uuid4())
    workflow_id = f"cutover-{uuid.uuid4()}"
    now = await ts_env.get_current_time()  # the test server's clock, which earlier tests moved on
    async with Worker(
        ts_env.client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=activities_for(ts_env, under_rules(world, FOUR_EYES)),
        workflow_runner=workflow_runner(),
    ):
        handle = await ts_env.client.start_workflow(
            "CutoverWorkflow",
            plan,
            id=workflow_id,
            task_queue=queue,
            result_type=CutoverStatus,
            memo=signed_start(workflow_id, digest, "alice", ALICE, now),
        )
        await until_phase(ts_env, handle, "awaiting-flip-approval")
        assert "approver_not_starter: alice" in await rejected(handle, signed(handle, "flip", "alice", ALICE, digest))
        await handle.execute_update("approve", signed(handle, "flip", "bob", BOB, digest))
        assert (await handle.result()).phase == "completed"


def test_signature_fields_survive_the_plain_cli_quoting():
    # The exact shell of docs/operations.md: the armored signature with its line breaks removed, in JSON.
    signature = sign(ALICE, approval_message("w", "r", "flip", "d"))
    one_line = signature.replace("\n", "")
    payload = json.loads(json.dumps({"gate": "flip", "by": "alice", "digest": "d", "signature": one_line}))
    assert ApproveRequest.model_validate(payload).signature == one_line


async def test_starter_and_plain_cli_sign_the_way_the_docs_say(ts_env, tmp_path):
    """starter.py approve --sign-with, and ssh-keygen -Y sign + temporal workflow update execute."""
    key = make_key(tmp_path, "alice")
    bob = make_key(tmp_path, "bob")
    rules = ApprovalRules(
        require_signed_approvals=True,
        allowed_signers=(f"alice {key.public_line}", f"bob {bob.public_line}"),
        distinct_approvers=True,
    )
    world = FakeWorld()
    plan = make(flip_gate=True, decommission_gate=True)
    digest = plan.digest()
    address = ts_env.client.service_client.config.target_host
    env = {"TEMPORAL_ADDRESS": address, "TEMPORAL_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin:/bin"}
    async with started(ts_env, world, plan, rules, start_memo("carol", "x", digest, None)) as handle:
        await until_phase(ts_env, handle, "awaiting-flip-approval")
        approved = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "starter.py", "approve", handle.id, "--gate", "flip", "--by", "alice",
             "--digest", digest, "--sign-with", str(key.private)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert approved.returncode == 0, approved.stderr
        assert "flip approved by alice" in approved.stdout

        await until_phase(ts_env, handle, "awaiting-decommission-approval")
        temporal = venv_binary("temporal")
        described = await asyncio.to_thread(
            subprocess.run,
            [temporal, "workflow", "describe", "-w", handle.id, "-o", "json", "--address", address],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        run_id = json.loads(described.stdout)["workflowExecutionInfo"]["execution"]["runId"]
        assert run_id == handle.result_run_id
        message = approval_message(handle.id, run_id, "decommission", digest)
        printed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "starter.py", "approve", handle.id, "--gate", "decommission", "--digest", digest,
             "--print-message"],
            cwd=ROOT, env=env, capture_output=True, timeout=60,
        )  # fmt: skip
        assert printed.stdout == message, "--print-message prints exactly the bytes to sign"
        signature = keygen_sign(bob, message, tmp_path).replace("\n", "")
        payload = json.dumps({"gate": "decommission", "by": "bob", "digest": digest, "signature": signature})
        update = await asyncio.to_thread(
            subprocess.run,
            [temporal, "workflow", "update", "execute", "-w", handle.id, "--run-id", run_id, "--name", "approve",
             "--input", payload, "--address", address],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert update.returncode == 0, update.stderr
        status = await handle.result()
    assert status.phase == "completed"
    assert [(a.gate, a.by) for a in status.approvals] == [("flip", "alice"), ("decommission", "bob")]
    assert all(a.key_fingerprint and a.key_fingerprint.startswith("SHA256:") for a in status.approvals)
