"""One conformance run per session (about 50 s), shared by every test of this folder.

Without nginx's lua module, Debian's Lua libraries or Kong's Lua tree the suite fails with what is
missing and how to install it (``make setup``); a developer may skip it locally with
``CUTOVER_SKIP_KONG_CONFORMANCE=1``, never CI. The terminal summary names the Kong commit that ran
and prints each scenario's timeline for Kong's clients.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.kong_conformance.kong_nginx import DEBIAN_PACKAGES, SKIP_ENV, kong_lua_dir, missing_requirements
from tests.kong_conformance.runner import ConformanceRun, running
from tests.kong_conformance.scenarios import TOLERANCE
from tests.kong_conformance.timelines import describe, disagreements

_RESULT: list[ConformanceRun] = []


@pytest.fixture(scope="session")
async def conformance() -> AsyncIterator[ConformanceRun]:
    """Every scenario, run once against Kong's real client code and the emulator."""
    missing = missing_requirements(kong_lua_dir())
    if missing:
        reason = (
            "Kong DNS conformance suite cannot run, missing: " + "; ".join(missing) + ". `make setup` installs "
            f"the Debian packages ({' '.join(DEBIAN_PACKAGES)})."
        )
        if os.environ.get(SKIP_ENV) == "1" and not os.environ.get("CI"):
            pytest.skip(reason + f" Skipped because {SKIP_ENV}=1.")
        pytest.fail(reason + f" (Only a local run may skip it, with {SKIP_ENV}=1.)", pytrace=False)
    async with running() as run:
        _RESULT.append(run)
        yield run


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print which Kong ran and what each of its clients did (the figures of docs/kong.md)."""
    if not _RESULT:
        return
    run = _RESULT[0]
    write = terminalreporter.write_line
    write("")
    write(
        f"Kong DNS conformance: Kong commit {run.kong_commit} ({run.kong_lua}), nginx {run.nginx.get('nginx')}, "
        f"ngx_lua {run.nginx.get('ngx_lua')}; {len(run.runs)} scenarios in {run.seconds:.1f} s"
        + ("; names with a trailing dot (resolv.conf has search domains)" if run.fqdn else "")
    )
    for scenario_id, result in run.runs.items():
        agree = all(
            not disagreements(result.of("kong", c), result.of("emu", c), TOLERANCE) for c in result.scenario.clients
        )
        write(f"  {scenario_id} ({'emulator agrees' if agree else 'EMULATOR DISAGREES'}): {result.scenario.title}")
        for client in result.scenario.clients:
            write(f"    Kong {client:6s} {describe(result.of('kong', client))}")
