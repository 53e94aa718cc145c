"""Load the worker policy: a YAML file the operator owns (``--policy PATH`` or ``CUTOVER_POLICY``), or ``dev``.

The file is read like a plan (size, depth, alias and duplicate-key caps: providers/input_files.py)
and validated whole, every problem listed. ``approvals.allowed_signers_file`` is a convenience: the
OpenSSH ``allowed_signers`` file it names (relative to the policy file) is read into
``approvals.allowed_signers``. ``CUTOVER_POLICY=dev`` selects the built-in loopback-only policy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from models.input_file import MAX_BYTES, InputFileError
from models.policy import WorkerPolicy
from providers.input_files import read_document

POLICY_VARIABLE = "CUTOVER_POLICY"
DEV = "dev"


class PolicyFileError(ValueError):
    """The policy can't be loaded; the message lists every problem."""


def policy_source(argument: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """Where the policy comes from: the ``--policy`` argument, else ``CUTOVER_POLICY``, else None."""
    environ = os.environ if environ is None else environ
    return argument or environ.get(POLICY_VARIABLE) or None


def load_policy(source: str) -> WorkerPolicy:
    """The policy at ``source`` (a path), or the built-in one for ``dev``.

    Raises:
        PolicyFileError: unreadable, not a mapping, or invalid (every problem listed).
    """
    if source == DEV:
        return WorkerPolicy.dev()
    try:
        data = read_document(source)
    except InputFileError as exc:
        raise PolicyFileError(f"policy: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyFileError(f"policy {source}: the file must hold a mapping (endpoints:, secrets:, ...)")
    problems: list[str] = []
    if "dev_loopback_only" in data:
        problems.append("dev_loopback_only: not settable in a file (use CUTOVER_POLICY=dev for the laptop policy)")
        data.pop("dev_loopback_only")
    data.setdefault("name", source)
    approvals = data.get("approvals")
    if isinstance(approvals, dict) and "allowed_signers_file" in approvals:
        file = approvals.pop("allowed_signers_file")
        try:
            lines = _allowed_signers(Path(source).parent, file)
        except PolicyFileError as exc:
            problems.append(str(exc))
        else:
            approvals["allowed_signers"] = [*approvals.get("allowed_signers", []), *lines]
    try:
        policy = WorkerPolicy.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(policy)"
            problems.append(f"{where}: {error['msg']}")
        policy = None
    if problems or policy is None:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise PolicyFileError(f"policy {source}: {len(problems)} problem(s):\n{listed}")
    return policy


def _allowed_signers(base: Path, file: Any) -> list[str]:
    """The signer lines of an OpenSSH allowed_signers file (comments and blank lines dropped)."""
    if not isinstance(file, str) or not file:
        raise PolicyFileError("approvals.allowed_signers_file: must be a path")
    path = base / file
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise PolicyFileError(
            f"approvals.allowed_signers_file: cannot read {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    if len(data) > MAX_BYTES:
        raise PolicyFileError(f"approvals.allowed_signers_file: {path} is larger than {MAX_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyFileError(f"approvals.allowed_signers_file: {path} is not UTF-8 text") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
