"""The emulator's proxy against a real BIND and real HTTPS runtimes: which IP Kong uses, and when.

Records are flipped with plain dnspython UPDATEs; the file-log JSON lines (``tries[].ip``) show
which backend each request reached. TTLs are 1-2 s and ``dns_stale_ttl`` 3 s to keep this fast.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from sandbox.bind import BindPair, signed_update
from sandbox.kong import running_emulator
from sandbox.pki import Pki
from tests.kong.fixtures import A_IP, B_IP, runtimes_ab, sandbox_config

ZONE = "example.test."


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def watch(proxy: str, until: float, interval: float = 0.1, connections: int = 1) -> list[tuple[float, str]]:
    """Request through Kong every ``interval`` until ``until``, in turn over ``connections`` connections
    (each pinned to one worker); (send time, runtime that answered)."""
    seen: list[tuple[float, str]] = []
    clients = [httpx.AsyncClient(base_url=proxy, timeout=5) for _ in range(connections)]
    try:
        turn = 0
        while time.monotonic() < until:
            sent = time.monotonic()
            response = await clients[turn % connections].get("/orders/v1/items")
            turn += 1
            seen.append((sent, response.json().get("served_by", str(response.status_code))))
            await asyncio.sleep(interval)
    finally:
        for client in clients:
            await client.aclose()
    return seen


async def dns_cache(admin_url: str) -> dict[str, Any]:
    """The emulator's per-worker DNS cache (emulator-control API, not Kong's)."""
    async with httpx.AsyncClient() as client:
        return dict((await client.get(f"{admin_url}/_emulator/dns-cache")).json())


def switch_time(seen: list[tuple[float, str]]) -> float:
    """When B first answered; every later answer must be B too."""
    first_b = next(i for i, (_, who) in enumerate(seen) if who == "B")
    assert all(who == "B" for _, who in seen[first_b:]), seen
    return seen[first_b][0]


async def test_cname_flip_switches_each_worker_after_the_ttl_serving_stale_once(
    bind: BindPair, pki: Pki, tmp_path: Path
) -> None:
    await signed_update(bind, ZONE, ("replace", "origin-api", 2, "CNAME a-project"))
    log = tmp_path / "file-log.json"
    async with runtimes_ab(pki) as (a, b):
        config = sandbox_config(a.port, host="origin-api.example.test")
        async with running_emulator(
            config=config, dns=("127.0.0.1", bind.primary.port), log=log, upstream_ca=pki.ca, workers=2
        ) as kong:
            assert kong.proxy_url
            first = time.monotonic()
            for _ in range(2):  # one connection per worker (nginx pins a connection): each caches CNAME:origin-api
                async with httpx.AsyncClient(base_url=kong.proxy_url) as client:
                    assert (await client.get("/orders/v1/items")).json()["served_by"] == "A"
            await signed_update(bind, ZONE, ("replace", "origin-api", 2, "CNAME b-project"))
            seen = await watch(kong.proxy_url, first + 3.2, connections=2)
            cache = await dns_cache(kong.admin_url)
    expiry = first + 2
    assert all(who == "A" for sent, who in seen if sent < expiry - 0.05), seen
    stale = [who for sent, who in seen if expiry + 0.05 < sent < switch_time(seen)]
    assert stale and set(stale) == {"A"}  # the first request per worker after expiry gets the stale answer
    assert expiry <= switch_time(seen) <= expiry + 0.6
    assert [w["entries"]["CNAME:origin-api.example.test"]["records"] for w in cache["workers"]] == [
        ["b-project.example.test"],
        ["b-project.example.test"],
    ]
    lines = log_lines(log)
    assert {line["tries"][-1]["ip"] for line in lines} == {A_IP, B_IP}
    assert b.state.by_host[f"origin-api.example.test:{b.port}"] > 0
    assert b.state.by_sni["origin-api.example.test"] > 0


async def test_legacy_client_keeps_the_old_a_record_until_ttl_plus_stale_ttl_when_it_becomes_a_cname(
    bind: BindPair, pki: Pki, tmp_path: Path
) -> None:
    await signed_update(bind, ZONE, ("replace", "a-project", 1, "A 127.0.0.2"))
    log = tmp_path / "file-log.json"
    async with runtimes_ab(pki) as (a, _):
        async with running_emulator(
            config=sandbox_config(a.port),
            dns=("127.0.0.1", bind.primary.port),
            log=log,
            upstream_ca=pki.ca,
            dns_settings={"dns_stale_ttl": 3},
        ) as kong:
            assert kong.proxy_url
            async with httpx.AsyncClient(base_url=kong.proxy_url) as client:
                first = time.monotonic()
                assert (await client.get("/orders/v1/items")).json()["served_by"] == "A"
            await signed_update(
                bind, ZONE, ("delete", "a-project", 0, "A"), ("replace", "a-project", 1, "CNAME b-project")
            )
            seen = await watch(kong.proxy_url, first + 2.5, interval=0.2)
            cache = await dns_cache(kong.admin_url)
            seen += await watch(kong.proxy_url, first + 5.0, interval=0.2)
    entries = cache["workers"][0]["entries"]
    assert entries["A:a-project.example.test"]["records"] == [A_IP] and entries["A:a-project.example.test"]["stale"]
    assert entries["CNAME:a-project.example.test"]["records"] == ["b-project.example.test"]
    assert entries["A:b-project.example.test"]["records"] == [B_IP]
    evicted = first + 1 + 3  # TTL + dns_stale_ttl
    assert all(who == "A" for sent, who in seen if sent < evicted - 0.05), seen  # well past the 1 s TTL
    assert evicted <= switch_time(seen) <= evicted + 0.5
    lines = log_lines(log)
    assert lines[-1]["tries"][0]["ip"] == B_IP and lines[-1]["service"]["host"] == "a-project.example.test"


async def test_new_dns_client_follows_the_cname_after_the_ttl(bind: BindPair, pki: Pki, tmp_path: Path) -> None:
    await signed_update(bind, ZONE, ("replace", "a-project", 1, "A 127.0.0.2"))
    async with runtimes_ab(pki) as (a, _):
        async with running_emulator(
            config=sandbox_config(a.port),
            dns=("127.0.0.1", bind.primary.port),
            upstream_ca=pki.ca,
            dns_settings={"new_dns_client": True, "resolver_stale_ttl": 3},
            workers=2,
        ) as kong:
            assert kong.proxy_url
            async with httpx.AsyncClient(base_url=kong.proxy_url) as client:
                first = time.monotonic()
                assert (await client.get("/orders/v1/items")).json()["served_by"] == "A"
                dns_status = await client.get(f"{kong.admin_url}/status/dns")
            await signed_update(
                bind, ZONE, ("delete", "a-project", 0, "A"), ("replace", "a-project", 1, "CNAME b-project")
            )
            seen = await watch(kong.proxy_url, first + 2.2)
    assert dns_status.status_code == 200
    assert first + 1 <= switch_time(seen) <= first + 1.5  # shared cache: one stale answer, then B for all workers


async def test_dns_valid_ttl_overrides_the_record_ttl(bind: BindPair, pki: Pki) -> None:
    await signed_update(bind, ZONE, ("replace", "origin-api", 1, "CNAME a-project"))
    async with runtimes_ab(pki) as (a, _):
        async with running_emulator(
            config=sandbox_config(a.port, host="origin-api.example.test"),
            dns=("127.0.0.1", bind.primary.port),
            upstream_ca=pki.ca,
            dns_settings={"dns_valid_ttl": 3},
        ) as kong:
            assert kong.proxy_url
            async with httpx.AsyncClient(base_url=kong.proxy_url) as client:
                first = time.monotonic()
                assert (await client.get("/orders/v1/items")).json()["served_by"] == "A"
                legacy_dns_status = await client.get(f"{kong.admin_url}/status/dns")
            await signed_update(bind, ZONE, ("replace", "origin-api", 1, "CNAME b-project"))
            seen = await watch(kong.proxy_url, first + 3.7, interval=0.15)
    assert legacy_dns_status.status_code == 501
    assert all(who == "A" for sent, who in seen if sent < first + 2.95), seen  # the 1 s record TTL does not matter
    assert first + 3 <= switch_time(seen) <= first + 3.5


async def test_retries_record_tries_and_upstream_status_and_tls_verify_uses_kongs_sni(
    bind: BindPair, pki: Pki, tmp_path: Path
) -> None:
    log = tmp_path / "file-log.json"
    async with runtimes_ab(pki, b_cert="B-narrow") as (a, _):
        config = {
            "_format_version": "3.0",
            "services": [
                {
                    "name": "via-upstream",
                    "protocol": "https",
                    "host": "orders.upstream",
                    "path": "/orders/v1",
                    "tls_verify": True,
                    "routes": [{"name": "up", "paths": ["/up"]}],
                },
                {
                    "name": "dead",
                    "url": f"https://127.0.0.4:{a.port}/orders/v1",
                    "retries": 2,
                    "routes": [{"name": "dead", "paths": ["/dead"]}],
                },
                {
                    "name": "narrow-cert",
                    "url": f"https://a-project.example.test:{a.port}/orders/v1",
                    "tls_verify": True,
                    "retries": 1,
                    "routes": [{"name": "narrow", "paths": ["/narrow"]}],
                },
                {
                    "name": "nowhere",
                    "url": "https://nowhere.example.test/orders/v1",
                    "routes": [{"name": "nowhere", "paths": ["/nowhere"]}],
                },
            ],
            "upstreams": [
                {
                    "name": "orders.upstream",
                    "targets": [
                        {"target": f"127.0.0.4:{a.port}", "weight": 100},
                        {"target": f"b-project.example.test:{a.port}", "weight": 100},
                    ],
                }
            ],
        }
        await signed_update(bind, ZONE, ("replace", "a-project", 300, "A 127.0.0.3"))  # a-project now reaches B-narrow
        async with running_emulator(
            config=config, dns=("127.0.0.1", bind.primary.port), log=log, upstream_ca=pki.ca
        ) as kong:
            assert kong.proxy_url
            async with httpx.AsyncClient(base_url=kong.proxy_url, headers={"Authorization": "Bearer x"}) as client:
                via_upstream = await client.get("/up/items?x=1")
                dead = await client.get("/dead/items")
                narrow = await client.get("/narrow/items")
                nowhere = await client.get("/nowhere/items")
                unmatched = await client.get("/elsewhere")
    assert via_upstream.status_code == 200 and via_upstream.json()["served_by"] == "B"
    assert via_upstream.json()["path"] == "/orders/v1/items?x=1"  # route prefix stripped, Service path added
    assert via_upstream.json()["host"] == f"b-project.example.test:{a.port}"  # the target's name
    assert via_upstream.json()["sni"] == "b-project.example.test"
    assert dead.status_code == 502
    assert dead.json() == {"message": "An invalid response was received from the upstream server"}
    assert narrow.status_code == 502  # B's certificate lacks a-project: Kong's verification fails, like nginx
    assert (nowhere.status_code, nowhere.json()["message"]) == (503, "name resolution failed")
    assert (unmatched.status_code, unmatched.json()["message"]) == (404, "no Route matched with those values")
    up, dead_line, narrow_line, nowhere_line, unmatched_line = log_lines(log)
    assert up["upstream_status"] == "502, 200" and up["source"] == "upstream"
    assert [(t["ip"], t.get("state"), t.get("code")) for t in up["tries"]] == [
        ("127.0.0.4", "failed", 502),
        (B_IP, None, None),
    ]
    assert up["request"]["headers"]["authorization"] == "REDACTED"
    assert up["request"]["querystring"] == {"x": "1"} and up["upstream_uri"] == "/orders/v1/items?x=1"
    assert up["response"]["status"] == 200 and up["response"]["size"] > 0
    assert set(up["latencies"]) == {"kong", "proxy", "request", "receive"} and up["latencies"]["proxy"] >= 0
    assert up["service"]["name"] == "via-upstream" and up["route"]["paths"] == ["/up"]
    assert isinstance(up["started_at"], int) and up["started_at"] > 1_600_000_000_000
    assert up["client_ip"] == "127.0.0.1" and up["workspace_name"] == "default"
    assert dead_line["upstream_status"] == "502, 502, 502" and dead_line["source"] == "kong"
    assert len(dead_line["tries"]) == 3 and {t["ip"] for t in dead_line["tries"]} == {"127.0.0.4"}
    assert narrow_line["upstream_status"] == "502, 502" and narrow_line["tries"][0]["ip"] == B_IP
    assert nowhere_line["upstream_status"] == "" and nowhere_line["tries"] == []
    assert "service" not in unmatched_line and unmatched_line["response"]["status"] == 404
