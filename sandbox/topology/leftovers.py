"""Processes a killed earlier run left behind, told apart from unrelated programs that reuse their pids."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from sandbox.topology.config import TopologyError


def _cwd_of(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def process_identity(pid: int) -> dict[str, Any] | None:
    """What tells this process from a later one that reuses its pid: start time (clock ticks since boot) and argv.

    None when the process is gone.
    """
    try:
        fields_after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return None
    # /proc/PID/stat field 22 (starttime); fields_after_name starts at field 3 (state).
    return {"start": int(fields_after_name[19]), "argv": [a.decode(errors="replace") for a in cmdline if a][:8]}


def _same_process(pid: int, recorded: Any, root: Path) -> bool:
    """True when ``pid`` is still the process the record names (never a recycled pid of another program)."""
    if isinstance(recorded, dict) and "start" in recorded:
        return process_identity(pid) == {"start": recorded.get("start"), "argv": recorded.get("argv")}
    cwd = _cwd_of(pid)  # a record of an older version: the working directory is the only clue
    return cwd is not None and (cwd == root or root in cwd.parents)


def kill_leftovers(workdir: Path) -> list[int]:
    """Stop the processes an earlier run in ``workdir`` left behind (it was killed before cleaning up).

    ``pids.json`` names the process that ran the topology (``owner``) and its components, each with
    its identity (start time and argv, :func:`process_identity`). While the owner lives, the directory
    belongs to a running sandbox: :class:`TopologyError`, nothing is touched. Otherwise each recorded
    process that is still the same process (same start time and argv: a pid reused by an unrelated
    program is never touched) is killed with its whole process group.
    """
    record = workdir / "pids.json"
    try:
        data = json.loads(record.read_text())
    except (OSError, json.JSONDecodeError):
        return []
    owner = data.get("owner") if isinstance(data, dict) else None
    owner_identity = data.get("owner_identity") if isinstance(data, dict) else None
    if isinstance(owner, int) and owner != os.getpid() and _alive(owner):
        if owner_identity is None or process_identity(owner) == owner_identity:
            raise TopologyError(
                f"{workdir} is in use by a running sandbox (process {owner}): stop it first (Ctrl-C), "
                "or choose another --workdir"
            )
    processes = data.get("processes", {}) if isinstance(data, dict) else {}
    identities = data.get("identities", {}) if isinstance(data, dict) else {}
    root = workdir.resolve()
    killed = []
    for pid in {p for p in processes.values() if isinstance(p, int)}:
        if not _same_process(pid, identities.get(str(pid)) if isinstance(identities, dict) else None, root):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
            killed.append(pid)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in killed):
        time.sleep(0.05)
    return killed
