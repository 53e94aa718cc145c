"""Readiness against real local HTTPS runtimes with trustme certificates: Kong's Host and SNI, or nothing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from models.kong import KongRequestShape
from models.plan import ReadinessSection
from models.readiness import ReadinessInput
from providers.readiness import probe_readiness
from sandbox.free_ports import port_free_on
from sandbox.pki import IssuedCert, Pki
from sandbox.runtime import RunningRuntime, running_runtime
from tests.kong.fixtures import A_IP, B_IP, runtimes_ab

HOST = "a-project.example.test"


def shape(port: int, host: str = HOST, tls_verify: bool | None = True) -> KongRequestShape:
    """What Kong sends to B for the sandbox Service (https, port 8443-like, not default: ``:port`` in Host)."""
    return KongRequestShape(scheme="https", host_header=f"{host}:{port}", sni=host, port=port, tls_verify=tls_verify)


def readiness(pki: Pki, port: int, ip: str = B_IP, **overrides: Any) -> ReadinessSection:
    data: dict[str, Any] = {
        "url": f"https://{ip}:{port}/orders/v1/health",
        "successes": 3,
        "interval": "50ms",
        "timeout": "3s",
        "request_timeout": "1s",
        "ca_bundle": str(pki.ca),
    }
    data.update(overrides)
    return ReadinessSection.model_validate(data)


async def test_b_accepting_kongs_host_and_sni_is_ready(pki: Pki) -> None:
    progress: list[str] = []
    async with runtimes_ab(pki) as (_, b):
        report = await probe_readiness(
            ReadinessInput(readiness=readiness(pki, b.port), shape=shape(b.port)), on_progress=progress.append
        )
        stats = b.state.stats()
    assert report.ready, report.failures()
    assert (report.host_header, report.sni, report.attempts, report.consecutive_successes) == (
        f"{HOST}:{b.port}",
        HOST,
        3,
        3,
    )
    status, certificate = report.checks
    assert status.sent == {
        "url": f"https://{B_IP}:{b.port}/orders/v1/health",
        "Host": f"{HOST}:{b.port}",
        "SNI": HOST,
        "method": "GET",
    }
    assert "3 expected answers in a row after 3 attempts (200, 200, 200); last from 127.0.0.3" == status.received
    assert certificate.ok and report.certificate is not None and report.certificate.covers_name
    assert HOST in report.certificate.sans and "cutover sandbox" in report.certificate.issuer
    assert progress[0] == "probe 1/61: 200 from 127.0.0.3 (1/3 in a row)"
    assert stats["by_host"] == {f"{HOST}:{b.port}": 3} and stats["by_sni"][HOST] == 3


async def test_b_without_the_name_answers_404_and_is_reported(pki: Pki) -> None:
    async with runtimes_ab(pki, b_hosts=("b-project.example.test",)) as (_, b):
        report = await probe_readiness(
            ReadinessInput(readiness=readiness(pki, b.port, timeout="300ms", interval="100ms"), shape=shape(b.port))
        )
    assert not report.ready
    status = report.checks[0]
    assert not status.ok and status.received.startswith("0 expected answers in a row after")
    assert "404" in status.received
    # B's answer body ("... does not serve host ...") never reaches the report, which lands in history.
    assert "does not serve host" not in status.received and "body" not in status.received
    assert f"B answered 404 for Host {HOST}:{b.port}: B does not serve that name" in status.detail
    assert report.failures()[0].startswith(f"B answers Kong's Host {HOST}:{b.port}: B answered 404")


async def test_certificate_lacking_the_old_name_is_reported_as_what_it_is(pki: Pki) -> None:
    async with runtimes_ab(pki, b_cert="B-narrow") as (_, b):
        report = await probe_readiness(ReadinessInput(readiness=readiness(pki, b.port), shape=shape(b.port)))
        relaxed = await probe_readiness(
            ReadinessInput(readiness=readiness(pki, b.port), shape=shape(b.port, tls_verify=False))
        )
        unset = await probe_readiness(
            ReadinessInput(readiness=readiness(pki, b.port), shape=shape(b.port, tls_verify=None))
        )
    assert not report.ready
    status, certificate = report.checks
    assert status.ok  # B answers the Host; it's the certificate that breaks Kong
    assert not certificate.ok and certificate.sent["SNI"] == HOST
    assert "covers b-project.example.test but not a-project.example.test" in certificate.detail
    assert "Kong's TLS handshake with B fails" in certificate.detail
    assert report.certificate is not None and not report.certificate.covers_name
    assert report.certificate.sans == ("b-project.example.test",)
    assert relaxed.ready and "does not block" in relaxed.checks[1].detail
    assert not unset.ready  # unset tls_verify defers to nginx's proxy_ssl_verify: treated as verifying


async def test_expired_certificate_is_reported(pki: Pki) -> None:
    async with runtimes_ab(pki, b_cert="B-expired") as (_, b):
        report = await probe_readiness(ReadinessInput(readiness=readiness(pki, b.port), shape=shape(b.port)))
    assert not report.ready and "expired on 2021-01-01" in report.checks[1].detail


async def test_flapping_backend_needs_n_consecutive_successes(pki: Pki) -> None:
    async with runtimes_ab(pki) as (_, b):
        b.state.set_flap([200, 503, 200, 200, 503, 200, 200, 200])
        report = await probe_readiness(ReadinessInput(readiness=readiness(pki, b.port), shape=shape(b.port)))
    assert report.ready and (report.attempts, report.consecutive_successes) == (8, 3)
    assert "(200, 503, 200, 200, 503, 200, 200, 200)" in report.checks[0].received


async def test_timeout_ends_the_probe_with_the_reason(pki: Pki) -> None:
    async with runtimes_ab(pki) as (_, b):
        b.state.fail(503)
        started = time.monotonic()
        report = await probe_readiness(
            ReadinessInput(readiness=readiness(pki, b.port, timeout="500ms", interval="100ms"), shape=shape(b.port))
        )
    assert time.monotonic() - started < 1.5
    assert not report.ready and 4 <= report.attempts <= 6
    assert "B answered 503, expected 200" in report.checks[0].detail and "gave up after" in report.checks[0].detail


async def test_unreachable_b_is_a_failed_report_not_an_error(pki: Pki) -> None:
    port = port_free_on([B_IP])
    report = await probe_readiness(
        ReadinessInput(readiness=readiness(pki, port, timeout="200ms", interval="100ms"), shape=shape(port))
    )
    assert not report.ready and report.attempts >= 2
    assert "could not be reached: ConnectError" in report.checks[0].detail
    assert report.checks[1].received.startswith("no TLS handshake") and report.certificate is None


async def test_parity_probe_compares_a_and_b(pki: Pki) -> None:
    async with runtimes_ab(pki) as (a, b):
        section = readiness(pki, b.port, parity_url=f"https://127.0.0.2:{a.port}/orders/v1/health")
        same = await probe_readiness(ReadinessInput(readiness=section, shape=shape(b.port)))
        a.state.fail(503)
        different = await probe_readiness(ReadinessInput(readiness=section, shape=shape(b.port)))
    assert same.ready and same.checks[2].name == "A and B answer the same status class" and same.checks[2].ok
    assert not different.ready
    parity = different.checks[2]
    assert not parity.ok and parity.received == "A: 503 from 127.0.0.2; B: 200"


ALIAS = "origin-api.example.test"


def parity(pki: Pki, a: RunningRuntime, b: RunningRuntime) -> ReadinessInput:
    """The alias strategy's readiness input: B is probed with the alias, and A must accept it too."""
    section = readiness(pki, b.port, parity_url=f"https://127.0.0.2:{a.port}/orders/v1/health")
    return ReadinessInput(readiness=section, shape=shape(b.port, ALIAS), parity_hosts=(ALIAS,))


async def test_alias_strategy_a_accepting_the_alias_is_ready(pki: Pki) -> None:
    async with runtimes_ab(pki) as (a, b):
        report = await probe_readiness(parity(pki, a, b))
        stats = a.state.stats()
    assert report.ready, report.failures()
    by_name = {check.name: check for check in report.checks}
    accepts = by_name[f"A accepts Host {ALIAS}:{a.port}"]
    assert accepts.ok and accepts.received == "200 from 127.0.0.2"
    assert accepts.sent == {
        "url": f"https://127.0.0.2:{a.port}/orders/v1/health",
        "Host": f"{ALIAS}:{a.port}",
        "SNI": ALIAS,
        "method": "GET",
    }
    certificate = by_name[f"A certificate for {ALIAS}"]
    assert certificate.ok and certificate.sent["url"] == f"127.0.0.2:{a.port}" and ALIAS in certificate.received
    assert stats["by_host"][f"{ALIAS}:{a.port}"] >= 2 and stats["by_sni"][ALIAS] >= 2  # parity + acceptance probes


async def test_alias_strategy_a_certificate_without_the_alias_is_not_ready(pki: Pki) -> None:
    async with runtimes_ab(pki, a_cert="A-narrow") as (a, b):
        report = await probe_readiness(parity(pki, a, b))
    assert not report.ready
    by_name = {check.name: check for check in report.checks}
    assert by_name[f"A accepts Host {ALIAS}:{a.port}"].ok  # A serves the name...
    certificate = by_name[f"A certificate for {ALIAS}"]  # ...but its certificate lacks it
    assert not certificate.ok
    assert "A's certificate covers a-project.example.test but not origin-api.example.test" in certificate.detail
    assert report.failures() == [f"A certificate for {ALIAS}: {certificate.detail}"]
    assert by_name[f"B certificate for {ALIAS}"].ok


async def test_alias_strategy_a_answering_404_for_the_alias_is_not_ready(pki: Pki) -> None:
    async with runtimes_ab(pki, a_hosts=("a-project.example.test",)) as (a, b):
        report = await probe_readiness(parity(pki, a, b))
    assert not report.ready
    by_name = {check.name: check for check in report.checks}
    accepts = by_name[f"A accepts Host {ALIAS}:{a.port}"]
    assert not accepts.ok and accepts.received == "404 from 127.0.0.2"
    assert f"A answered 404 for Host {ALIAS}:{a.port}: A does not serve that name" in accepts.detail
    assert by_name["A and B answer the same status class"].received.startswith("A: 404")
    assert by_name[f"A certificate for {ALIAS}"].ok  # the certificate was never the problem


async def test_parity_hosts_without_parity_url_fail_instead_of_passing_silently(pki: Pki) -> None:
    async with runtimes_ab(pki) as (_, b):
        report = await probe_readiness(
            ReadinessInput(readiness=readiness(pki, b.port), shape=shape(b.port, ALIAS), parity_hosts=(ALIAS,))
        )
    assert not report.ready
    unverified = report.checks[-1]
    assert (unverified.name, unverified.ok, unverified.received) == (
        f"A accepts Host {ALIAS}:{b.port}",
        False,
        "not probed",
    )
    assert unverified.detail.startswith(f"A's acceptance of {ALIAS} can't be verified: set readiness.parity_url")
    b_checks = [f"B answers Kong's Host {ALIAS}:{b.port}", f"B certificate for {ALIAS}"]
    assert [c.name for c in report.checks[:2]] == b_checks
    assert all(c.ok for c in report.checks[:2])


async def test_every_parity_host_is_checked_on_a(pki: Pki) -> None:
    async with runtimes_ab(pki) as (a, b):
        section = readiness(pki, b.port, parity_url=f"https://127.0.0.2:{a.port}/orders/v1/health")
        report = await probe_readiness(
            ReadinessInput(
                readiness=section, shape=shape(b.port, ALIAS), parity_hosts=(ALIAS, "extra.example.test", ALIAS)
            )
        )
    assert not report.ready
    by_name = {check.name: check for check in report.checks}
    assert by_name[f"A accepts Host {ALIAS}:{a.port}"].ok and by_name[f"A certificate for {ALIAS}"].ok
    extra = by_name[f"A accepts Host extra.example.test:{a.port}"]
    assert not extra.ok and "A does not serve that name" in extra.detail
    assert not by_name["A certificate for extra.example.test"].ok
    assert len(report.checks) == 2 + 1 + 4  # B status and certificate, parity, two hosts on A (twice deduplicated)


async def test_a_malformed_certificate_is_a_failed_check_not_an_error(pki: Pki, malformed: IssuedCert) -> None:
    port = port_free_on([B_IP])
    async with running_runtime(
        "B", host=B_IP, port=port, hosts=("a-project.example.test",), cert=malformed.cert, key=malformed.key
    ):
        report = await probe_readiness(ReadinessInput(readiness=readiness(pki, port), shape=shape(port)))
    assert not report.ready and report.certificate is None
    status, certificate = report.checks
    assert status.ok  # B answers; its certificate is what is broken
    assert not certificate.ok and certificate.received.startswith("a certificate that can't be parsed (ValueError")
    assert "B presented a malformed certificate for a-project.example.test" in certificate.detail


@contextlib.asynccontextmanager
async def late_forwarder(to_port: int, after: float) -> AsyncIterator[int]:
    """A port on A's address that refuses connections for ``after`` seconds, then forwards them to A."""
    port = port_free_on([A_IP])

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(A_IP, to_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def listen_later() -> asyncio.Server:
        await asyncio.sleep(after)
        return await asyncio.start_server(forward, A_IP, port)

    starting = asyncio.ensure_future(listen_later())
    try:
        yield port
    finally:
        server = await starting
        server.close()


async def test_a_one_shot_check_without_an_answer_is_tried_again_within_the_timeout(pki: Pki) -> None:
    # Under load a connection can go unanswered for a moment; the probe needs 3 successes in a row,
    # so one lost connection in the certificate or parity checks must not refuse a ready B.
    async with runtimes_ab(pki) as (a, b), late_forwarder(a.port, after=0.4) as port:
        section = readiness(pki, b.port, parity_url=f"https://{A_IP}:{port}/orders/v1/health")
        report = await probe_readiness(
            ReadinessInput(readiness=section, shape=shape(b.port, ALIAS), parity_hosts=(ALIAS,))
        )
    assert report.ready, report.failures()
    assert [c.name for c in report.checks][2:] == [
        "A and B answer the same status class",
        f"A accepts Host {ALIAS}:{b.port}",
        f"A certificate for {ALIAS}",
    ]


async def test_a_parity_target_that_never_answers_is_still_reported(pki: Pki) -> None:
    async with runtimes_ab(pki) as (_, b):
        dead = port_free_on([A_IP])
        section = readiness(pki, b.port, timeout="600ms", parity_url=f"https://{A_IP}:{dead}/orders/v1/health")
        started = time.monotonic()
        report = await probe_readiness(ReadinessInput(readiness=section, shape=shape(b.port)))
    assert not report.ready and time.monotonic() - started < 3
    assert report.checks[2].received.startswith("A: ConnectError")
