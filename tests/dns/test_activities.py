"""The DNS activities in Temporal's ActivityEnvironment: results, heartbeats, error mapping, no secret leaks."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import google.oauth2.credentials
import pytest
from temporalio.activity import _Definition
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.dns import DnsActivities
from models.dns import ApplyInput, DnsChange, PropagationInput, ResolveInput, SnapshotInput
from providers.google_auth import load_credentials
from providers.secrets import EnvSecrets
from sandbox.bind import BindPair
from tests.dns.conftest import (
    A_PROJECT,
    ALIAS,
    B_PROJECT,
    cloud_section,
    count_queries,
    rr,
    secrets_for,
    section_for,
    world,
)
from tests.dns.google_keys import TokenEndpoint, service_account_info, write_key
from tests.fakes.clouddns import FakeCloudDns

A_300 = rr(A_PROJECT, "A", 300, "127.0.0.2")
A_TO_B = rr(A_PROJECT, "CNAME", 30, B_PROJECT)
FLIP = DnsChange(name=A_PROJECT, expected=(A_300,), desired=(A_TO_B,), reason="flip to B")


def environment() -> tuple[ActivityEnvironment, list[Any]]:
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.extend(details)
    return env, beats


def test_activity_names_are_the_workflow_contract():
    names = [_Definition.must_from_callable(fn).name for fn in DnsActivities().activities()]

    assert names == ["dns_snapshot", "dns_apply", "dns_verify_propagation", "dns_resolve"]


async def test_snapshot_flip_prove_and_resolve(bind: BindPair):
    activities = DnsActivities(secrets=secrets_for(bind))
    env, beats = environment()
    section = section_for(bind)

    snapshot = await env.run(activities.snapshot, SnapshotInput(dns=section, name=A_PROJECT))
    change = DnsChange(name=A_PROJECT, expected=snapshot.rrsets, desired=(A_TO_B,), reason="flip")
    result = await env.run(activities.apply, ApplyInput(dns=section, change=change))
    report = await env.run(
        activities.verify_propagation,
        PropagationInput(dns=section, name=A_PROJECT, desired=(A_TO_B,), min_serial=result.serial_after),
    )
    resolved = await env.run(activities.resolve, ResolveInput(dns=section, names=(ALIAS,)))

    assert snapshot.rrsets == (A_300,) and result.outcome == "applied"
    assert world(bind.primary, A_PROJECT) == world(bind.secondary, A_PROJECT) == {"CNAME": (30, (B_PROJECT,))}
    assert report.in_sync and beats[-1] == "2/2 in sync"
    assert resolved.addresses[ALIAS] == ("127.0.0.3",)
    everything = "".join(m.model_dump_json() for m in (snapshot, result, report, resolved)) + repr(beats)
    assert bind.secret not in everything


async def test_verify_propagation_heartbeats_the_laggard_and_stops_when_cancelled(bind_lagging: BindPair):
    pair = bind_lagging
    activities = DnsActivities(secrets=secrets_for(pair))
    env, beats = environment()
    two_beats = asyncio.Event()

    def record(*details: Any) -> None:
        beats.extend(details)
        if len(beats) >= 2:
            two_beats.set()

    env.on_heartbeat = record
    section = section_for(pair, propagation_timeout="30s")
    result = await env.run(activities.apply, ApplyInput(dns=section, change=FLIP))

    task = asyncio.ensure_future(
        env.run(
            activities.verify_propagation,
            PropagationInput(dns=section, name=A_PROJECT, desired=(A_TO_B,), min_serial=result.serial_after),
        )
    )
    await asyncio.wait_for(two_beats.wait(), timeout=10)
    env.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert beats[0].startswith(f"1/2 in sync; {pair.secondary.address} at serial 1, want 2")
    assert pair.secret not in repr(beats)


async def test_propagation_timeout_is_non_retryable_and_names_the_laggard(bind_lagging: BindPair):
    pair = bind_lagging
    activities = DnsActivities(secrets=secrets_for(pair))
    env, _ = environment()
    section = section_for(pair, propagation_timeout="500ms")
    result = await env.run(activities.apply, ApplyInput(dns=section, change=FLIP))

    with pytest.raises(ApplicationError) as caught:
        await env.run(
            activities.verify_propagation,
            PropagationInput(dns=section, name=A_PROJECT, desired=(A_TO_B,), min_serial=result.serial_after),
        )

    assert caught.value.type == "PropagationTimeout" and caught.value.non_retryable
    assert pair.secondary.address in str(caught.value)


async def test_provider_errors_become_typed_application_errors_without_secrets(bind: BindPair):
    env, _ = environment()
    section = section_for(bind)
    wrong = "d3Jvbmctc2VjcmV0LWZvci10aGUtdXBkYXRlLWtleQ=="

    with pytest.raises(ApplicationError) as bad_secret:
        await env.run(DnsActivities(secrets=secrets_for(bind, wrong)).apply, ApplyInput(dns=section, change=FLIP))
    with pytest.raises(ApplicationError) as missing:
        await env.run(DnsActivities(secrets=EnvSecrets({})).apply, ApplyInput(dns=section, change=FLIP))
    bind.primary.stop()
    with pytest.raises(ApplicationError) as down:
        await env.run(DnsActivities(secrets=secrets_for(bind)).apply, ApplyInput(dns=section, change=FLIP))

    assert (bad_secret.value.type, bad_secret.value.non_retryable) == ("DnsAuthError", True)
    assert (missing.value.type, missing.value.non_retryable) == ("ConfigError", True)
    assert (down.value.type, down.value.non_retryable) == ("DnsUnavailable", False)
    for error in (bad_secret.value, missing.value, down.value):
        assert wrong not in str(error) and bind.secret not in str(error)
    assert "CUTOVER_TSIG_SECRET" in str(missing.value)


async def test_cloud_dns_conflict_through_the_activity(clouddns: FakeCloudDns):
    activities = DnsActivities(
        secrets=EnvSecrets({}), credentials=google.oauth2.credentials.Credentials(token="test-token")
    )
    env, _ = environment()
    clouddns.before_change = lambda body: clouddns.edit(A_PROJECT, "A", 300, ["127.0.0.9"])

    with pytest.raises(ApplicationError) as caught:
        await env.run(activities.apply, ApplyInput(dns=cloud_section(clouddns), change=FLIP))

    assert (caught.value.type, caught.value.non_retryable) == ("PreconditionFailed", True)
    assert clouddns.rrset(A_PROJECT, "A")["rrdatas"] == ["127.0.0.9"]  # type: ignore[index]
    assert "test-token" not in str(caught.value)


async def test_google_credentials_are_loaded_once_off_the_event_loop_and_reused(clouddns: FakeCloudDns, tmp_path):
    loads: list[tuple[str | None, str, int]] = []
    loop_thread = threading.get_ident()

    async with TokenEndpoint() as endpoint:
        key = write_key(tmp_path, service_account_info(endpoint.url))

        def loader(env: str | None, purpose: str, secrets: EnvSecrets | None) -> Any:
            loads.append((env, purpose, threading.get_ident()))
            return load_credentials(env, purpose, secrets)

        activities = DnsActivities(secrets=EnvSecrets({"CLOUD_DNS_KEY": str(key)}), credentials_loader=loader)
        section = cloud_section(clouddns)
        section = section.model_copy(
            update={"provider": section.provider.model_copy(update={"credentials_env": "CLOUD_DNS_KEY"})}
        )
        clouddns.token = "token-1"  # the first (and only) token the endpoint hands out
        env, _ = environment()
        snapshot = await env.run(activities.snapshot, SnapshotInput(dns=section, name=A_PROJECT))
        result = await env.run(activities.apply, ApplyInput(dns=section, change=FLIP))

    assert snapshot.rrsets == (A_300,) and result.outcome == "applied"
    assert [(env, purpose) for env, purpose, _ in loads] == [("CLOUD_DNS_KEY", "dns.provider.credentials_env")]
    assert loads[0][2] != loop_thread  # the key file was read in a thread
    assert endpoint.grants == 1  # the second activity reused the cached token


async def test_the_proof_starts_from_the_read_back_the_workflow_hands_it(
    bind: BindPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the activity: the primary is asked its SOA only, the secondary is read; a wrong read-back lags."""
    activities = DnsActivities(secrets=secrets_for(bind))
    env, _ = environment()
    section = section_for(bind)
    result = await env.run(activities.apply, ApplyInput(dns=section, change=FLIP))
    asked = count_queries(monkeypatch)
    proof = PropagationInput(
        dns=section, name=A_PROJECT, desired=(A_TO_B,), min_serial=result.serial_after, read_back=result.readback
    )
    report = await env.run(activities.verify_propagation, proof)
    assert report.in_sync
    assert [rdtype for server, rdtype in asked.elements() if server == bind.primary.address] == ["SOA"]
    assert "ANY" in [rdtype for server, rdtype in asked.elements() if server == bind.secondary.address]
    # A read-back that does not hold the desired data is what the primary answers at that serial: it lags.
    wrong = proof.model_copy(
        update={"read_back": (A_300,), "dns": section.model_copy(update={"propagation_timeout": timedelta(seconds=1)})}
    )
    with pytest.raises(ApplicationError, match="still lag"):
        await env.run(activities.verify_propagation, wrong)
