"""Prove B accepts exactly what Kong will send it: Host header, TLS SNI, certificate, status.

Kong sends B ``Host: $upstream_host`` and the same name as SNI, and checks B's certificate against
that name when the Service has ``tls_verify=true`` (shared/reference/kong.md §5). A backend that
answers its own name but not Kong's (no domain mapping, a certificate for ``b-project`` only) is
the classic way a DNS cutover breaks, so readiness probes B directly, bypassing Kong, with
exactly that Host and SNI (httpx ``sni_hostname`` extension), and checks:

* ``successes`` expected statuses in a row within ``timeout`` (a flapping backend is not ready);
* B's certificate chains to the CA bundle (or system roots), has not expired and covers the SNI
  (providers/certificates.py);
* optionally, that A answers the same request with the same status class (parity), and that A
  accepts the extra Host names it will receive (alias strategy: the alias, right after the repoint).

An unready B is a result (``ready=False`` with every check explained), not an exception. Reports
carry statuses, addresses and certificate facts, never response bodies: a report lands in workflow
history and the web UI, and a health URL pointed somewhere it should not be (an admin API, a metadata
server) must not turn the report into a way of reading that place. Every connection goes through the
worker's network guard (providers/netguard.py): the URLs must be in the policy's ``readiness``
allow-list and reach no forbidden address.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from models.kong import host_header_for
from models.readiness import CertificateInfo, ProbeCheck, ReadinessInput, ReadinessReport
from providers.certificates import Patience, check_certificate
from providers.netguard import NetworkGuard, guarded_transport
from providers.tls import unverified_context

Progress = Callable[[str], None]
HISTORY_SHOWN = 30


@dataclass(frozen=True)
class Attempt:
    """One probe: what came back."""

    number: int
    status: int | None
    peer: str | None
    error: str | None

    def short(self) -> str:
        """``200`` or ``connect error``."""
        return str(self.status) if self.status is not None else (self.error or "error").split(":")[0]


def _host_only(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1 : host_header.index("]")]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


async def _send_until_answered(
    client: httpx.AsyncClient, url: str, host_header: str, sni: str | None, retry: Patience
) -> Attempt:
    """One request of a one-shot check, sent again while it gets no answer at all and ``retry`` allows."""
    attempt = await _send(client, url, host_header, sni, 1)
    while attempt.status is None and retry.allows_another():
        await asyncio.sleep(retry.interval)
        attempt = await _send(client, url, host_header, sni, attempt.number + 1)
    return attempt


async def _send(client: httpx.AsyncClient, url: str, host_header: str, sni: str | None, number: int) -> Attempt:
    extensions = {"sni_hostname": sni} if sni else {}
    request = client.build_request("GET", url, headers={"Host": host_header}, extensions=extensions)
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        return Attempt(number, None, None, f"{type(exc).__name__}: {exc}")
    stream = response.extensions.get("network_stream")
    address = stream.get_extra_info("server_addr") if stream is not None else None
    peer = str(address[0]) if address else None
    # The status is the fact; the body is never read into the report (it would land in history).
    await response.aclose()
    return Attempt(number, response.status_code, peer, None)


def _client(timeout: float, guard: NetworkGuard) -> httpx.AsyncClient:
    # Status probes judge HTTP only; the certificate check judges TLS (so a bad certificate is
    # reported once, as what it is, not as N connection errors).
    return httpx.AsyncClient(
        transport=guarded_transport(guard, unverified_context()),
        timeout=timeout,
        trust_env=False,
        follow_redirects=False,
    )


def _status_detail(last: Attempt, host_header: str, expect: list[int]) -> str:
    if last.status == 404:
        return (
            f"B answered 404 for Host {host_header}: B does not serve that name. Add it to B's domain mapping / "
            "virtual hosts before the cutover."
        )
    if last.status is not None:
        return f"B answered {last.status}, expected {', '.join(map(str, expect))}."
    return f"B could not be reached: {last.error}"


async def probe_readiness(
    request: ReadinessInput, *, on_progress: Progress | None = None, guard: NetworkGuard | None = None
) -> ReadinessReport:
    """Probe B with Kong's Host and SNI until ready or out of time, then check TLS and parity.

    Raises:
        PolicyViolation: a URL is not in the policy's ``readiness`` allow-list or reaches a forbidden address.
    """
    section, shape = request.readiness, request.shape
    guard = guard or NetworkGuard()
    guard.check_url("readiness", section.url, "readiness.url")
    if section.parity_url:
        guard.check_url("readiness", section.parity_url, "readiness.parity_url")
    started_wall = request.started_at or dt.datetime.now(dt.UTC)
    started = time.monotonic()
    deadline = (
        started + section.timeout.total_seconds() - max(0.0, (dt.datetime.now(dt.UTC) - started_wall).total_seconds())
    )
    interval = section.interval.total_seconds()
    request_timeout = section.request_timeout.total_seconds()
    url = section.url
    scheme = urlsplit(url).scheme
    host_header = shape.host_header
    sni = shape.sni if scheme == "https" else None
    if scheme == "https" and sni is None:
        sni = _host_only(host_header)
    estimate = max(1, math.ceil(section.timeout.total_seconds() / max(interval, 0.001)) + 1)
    sent = {"url": url, "Host": host_header, "SNI": sni or "(plain http)", "method": "GET"}
    checks: list[ProbeCheck] = []
    history: list[Attempt] = []
    consecutive = best = 0
    async with _client(request_timeout, guard) as client:
        while True:
            attempt = await _send(client, url, host_header, sni, len(history) + 1)
            history.append(attempt)
            consecutive = consecutive + 1 if attempt.status in section.expect_status else 0
            best = max(best, consecutive)
            if on_progress is not None:
                source = f" from {attempt.peer}" if attempt.peer else ""
                on_progress(
                    f"probe {attempt.number}/{estimate}: {attempt.short()}{source} "
                    f"({consecutive}/{section.successes} in a row)"
                )
            if consecutive >= section.successes or time.monotonic() + interval > deadline:
                break
            await asyncio.sleep(interval)
    ready_status = consecutive >= section.successes
    last = history[-1]
    sequence = ", ".join(a.short() for a in history[-HISTORY_SHOWN:])
    if len(history) > HISTORY_SHOWN:
        sequence = f"... {sequence}"
    received = f"{consecutive} expected answers in a row after {len(history)} attempts ({sequence})"
    if last.peer:
        received += f"; last from {last.peer}"
    if ready_status:
        detail = ""
    elif last.status in section.expect_status:
        detail = (
            f"not ready within {section.timeout}: needed {section.successes} expected answers in a row, "
            f"best run {best}."
        )
    else:
        detail = _status_detail(last, host_header, section.expect_status)
        if time.monotonic() + interval > deadline:
            detail += f" (gave up after {section.timeout}; best run {best} of {section.successes})"
    if shape.scheme in ("https", "http") and shape.scheme != scheme:
        detail = (detail + " " if detail else "") + (
            f"Note: Kong reaches B over {shape.scheme}, but readiness.url uses {scheme}."
        )
    checks.append(
        ProbeCheck(
            name=f"B answers Kong's Host {host_header}",
            ok=ready_status,
            sent=sent,
            received=received,
            detail=detail,
        )
    )

    certificate: CertificateInfo | None = None
    retry = Patience(deadline, interval)
    if scheme == "https" and sni:
        check, certificate = await check_certificate(
            url,
            sni,
            ca_bundle=section.ca_bundle,
            tls_verify=shape.tls_verify,
            timeout=request_timeout,
            guard=guard,
            retry=retry,
        )
        checks.append(check)

    checks.extend(await _parity_checks(request, host_header, sni, last, guard, retry))
    return ReadinessReport(
        ready=all(c.ok for c in checks),
        host_header=host_header,
        sni=sni,
        checks=tuple(checks),
        attempts=len(history),
        consecutive_successes=consecutive,
        elapsed_seconds=round(time.monotonic() - started, 3),
        certificate=certificate,
    )


async def _parity_checks(
    request: ReadinessInput,
    host_header: str,
    sni: str | None,
    b_last: Attempt,
    guard: NetworkGuard,
    retry: Patience,
) -> list[ProbeCheck]:
    """A answers like B, and A accepts every parity host as Host and SNI, with a certificate for it.

    Parity hosts are what Kong will send A before the flip (alias strategy: right after the repoint,
    A receives the alias as Host and SNI). They are checked even when they equal B's Host: B
    accepting the alias says nothing about A.
    """
    section, shape = request.readiness, request.shape
    checks: list[ProbeCheck] = []
    parity_hosts = list(
        dict.fromkeys(
            host_header_for(_host_only(h).rstrip("."), shape.port, shape.scheme) for h in request.parity_hosts if h
        )
    )
    if section.parity_url is None:
        for host in parity_hosts:
            checks.append(
                ProbeCheck(
                    name=f"A accepts Host {host}",
                    ok=False,
                    sent={"Host": host},
                    received="not probed",
                    detail=f"A's acceptance of {_host_only(host)} can't be verified: set readiness.parity_url (A's "
                    f"equivalent of readiness.url). After the repoint Kong sends Host {host} to A, and a 404 or a "
                    "certificate without that name breaks traffic before the flip.",
                )
            )
        return checks
    parity_url = section.parity_url
    parity_https = urlsplit(parity_url).scheme == "https"
    timeout = section.request_timeout.total_seconds()
    async with _client(timeout, guard) as client:
        a = await _send_until_answered(client, parity_url, host_header, sni if parity_https else None, retry)
    b_class = b_last.status // 100 if b_last.status else None
    a_class = a.status // 100 if a.status else None
    same = a_class is not None and a_class == b_class
    checks.append(
        ProbeCheck(
            name="A and B answer the same status class",
            ok=same,
            sent={"url": parity_url, "Host": host_header, "SNI": sni or "(plain http)", "method": "GET"},
            received=f"A: {a.short()}{' from ' + a.peer if a.peer else ''}; B: {b_last.short()}",
            detail=""
            if same
            else f"A answered {a.short()} and B {b_last.short()} to the same request: after the flip clients would "
            "see a different class of answer.",
        )
    )
    for host in parity_hosts:
        host_sni = _host_only(host) if parity_https else None
        async with _client(timeout, guard) as client:
            answer = await _send_until_answered(client, parity_url, host, host_sni, retry)
        ok = answer.status in section.expect_status
        if ok:
            detail = ""
        elif answer.status == 404:
            detail = (
                f"A answered 404 for Host {host}: A does not serve that name. After the repoint Kong sends Host "
                f"{host} to A: add it to A's domain mapping / virtual hosts before the cutover."
            )
        elif answer.status is not None:
            detail = (
                f"A answered {answer.status} for Host {host}, expected "
                f"{', '.join(map(str, section.expect_status))}: after the repoint Kong sends that name to A."
            )
        else:
            detail = f"A could not be reached with Host {host}: {answer.error}"
        checks.append(
            ProbeCheck(
                name=f"A accepts Host {host}",
                ok=ok,
                sent={"url": parity_url, "Host": host, "SNI": host_sni or "(plain http)", "method": "GET"},
                received=f"{answer.short()}{' from ' + answer.peer if answer.peer else ''}",
                detail=detail,
            )
        )
        if host_sni:
            check, _ = await check_certificate(
                parity_url,
                host_sni,
                ca_bundle=section.ca_bundle,
                tls_verify=shape.tls_verify,
                timeout=timeout,
                who="A",
                guard=guard,
                retry=retry,
            )
            checks.append(check)
    return checks
