"""Fixtures for readiness: the sandbox CA with A/B certificates, and variants of B's certificate."""

from __future__ import annotations

import datetime as dt

import pytest

from sandbox.pki import SANDBOX_NAMES, Pki, issue


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A, B (both cover a-project and origin-api), B-narrow (only b-project), A-narrow (only a-project),
    B-expired (all names, expired)."""
    directory = tmp_path_factory.mktemp("pki")
    main = issue(
        directory,
        {**SANDBOX_NAMES, "B-narrow": ("b-project.example.test",), "A-narrow": ("a-project.example.test",)},
    )
    expired = issue(
        directory,
        {"B-expired": SANDBOX_NAMES["B"]},
        not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
    )
    return Pki(ca=main.ca, certs={**main.certs, **expired.certs})
