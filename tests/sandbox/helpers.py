"""Process checks shared by the sandbox tests: nothing the topology started may outlive it."""

from __future__ import annotations

import os
from pathlib import Path


def processes_in(workdir: Path) -> list[tuple[int, str]]:
    """Live processes whose working directory is inside ``workdir`` (every component runs there)."""
    root = workdir.resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if state != "Z" and (cwd == root or root in cwd.parents):
            found.append((int(entry.name), cmdline))
    return found


def alive(pid: int) -> bool:
    """True for a live, non-zombie process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
