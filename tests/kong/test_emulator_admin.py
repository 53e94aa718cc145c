"""The emulator's Admin API: Kong's defaults, errors and modes, every exchange checked against Kong's spec."""

from __future__ import annotations

import re

import httpx
import pytest

from sandbox.kong import running_emulator
from sandbox.kong.declarative import DeclarativeConfigError
from tests.kong.fixtures import sandbox_config
from tests.kong.openapi import Exchange, RecordingTransport, kong_spec


async def test_node_info_status_and_dns_status(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443), workers=3) as kong:
        async with httpx.AsyncClient(base_url=kong.admin_url, transport=recorder) as http:
            info = (await http.get("/")).json()
            status = (await http.get("/status")).json()
            dns_status = await http.get("/status/dns")
            kong.update_dns_settings({"dns_valid_ttl": 7})
            with_valid = (await http.get("/")).json()["configuration"]
    conf = info["configuration"]
    assert (info["version"], info["edition"], conf["role"], conf["database"]) == (
        "3.9.1",
        "community",
        "traditional",
        "postgres",
    )
    assert "dns_valid_ttl" not in conf and "resolver_valid_ttl" not in conf  # NONE settings are absent
    assert (conf["dns_stale_ttl"], conf["dns_order"], conf["new_dns_client"]) == (
        3600,
        ["LAST", "SRV", "A", "CNAME"],
        False,
    )
    assert len(info["pids"]["workers"]) == 3
    assert status["database"] == {"reachable": True} and "configuration_hash" not in status
    assert dns_status.status_code == 501 and dns_status.json() == {
        "message": "not implemented with the legacy DNS client"
    }
    assert with_valid["dns_valid_ttl"] == 7


@pytest.mark.parametrize(("mode", "role"), [("db-less", "traditional"), ("data-plane", "data_plane")])
async def test_read_only_modes_answer_writes_with_405_code_12(
    recorder: RecordingTransport, mode: str, role: str
) -> None:
    async with running_emulator(config=sandbox_config(8443), mode=mode) as kong:
        async with httpx.AsyncClient(base_url=kong.admin_url, transport=recorder) as http:
            info = (await http.get("/")).json()
            status = (await http.get("/status")).json()
            created = await http.post("/services", json={"name": "x", "host": "x.example.test"})
            patched = await http.patch("/services/orders-api", json={"host": "origin-api.example.test"})
            listed = await http.get("/services")
    assert (info["configuration"]["role"], info["configuration"]["database"]) == (role, "off")
    assert re.fullmatch(r"[0-9a-f]{32}", status["configuration_hash"]) and "database" not in status
    assert created.status_code == 405 and created.json() == {
        "code": 12,
        "name": "operation unsupported",
        "message": "cannot create 'services' entities when not using a database",
    }
    assert patched.status_code == 405 and patched.json()["message"].startswith("cannot update 'services'")
    assert listed.status_code == 200 and listed.json()["data"][0]["name"] == "orders-api"


async def test_service_crud_defaults_and_errors(recorder: RecordingTransport) -> None:
    async with running_emulator() as kong:
        async with httpx.AsyncClient(base_url=kong.admin_url, transport=recorder) as http:
            created = await http.post("/services", json={"name": "svc", "url": "http://api.example.test:8080/p"})
            by_name = await http.get("/services/svc")
            by_id = await http.get(f"/services/{created.json()['id']}")
            bad = await http.patch("/services/svc", json={"port": 70000, "protocol": "ftp", "colour": "blue"})
            duplicate = await http.post("/services", json={"name": "svc", "host": "other.example.test"})
            missing_host = await http.post("/services", json={"name": "nohost"})
            route = await http.post("/services/svc/routes", json={"name": "r", "paths": ["/svc"]})
            pointless_route = await http.post("/services/svc/routes", json={"name": "r2"})
            referenced = await http.delete("/services/svc")
            await http.delete(f"/routes/{route.json()['id']}")
            deleted = await http.delete("/services/svc")
            gone = await http.get("/services/svc")
            upserted = await http.put("/services/put-me", json={"host": "put.example.test"})
            wrong_method = await http.delete("/services")
            unknown = await http.get("/nothing-here")
    service = created.json()
    assert created.status_code == 201
    assert {k: service[k] for k in ("protocol", "host", "port", "path", "retries", "connect_timeout", "enabled")} == {
        "protocol": "http",
        "host": "api.example.test",
        "port": 8080,
        "path": "/p",
        "retries": 5,
        "connect_timeout": 60000,
        "enabled": True,
    }
    assert service["tls_verify"] is None and service["tags"] is None and service["created_at"] == service["updated_at"]
    assert by_name.json() == by_id.json() == service
    assert bad.status_code == 400 and bad.json()["code"] == 2 and bad.json()["name"] == "schema violation"
    assert set(bad.json()["fields"]) == {"port", "protocol", "colour"}
    assert bad.json()["message"].startswith("3 schema violations (")
    assert duplicate.status_code == 409 and duplicate.json()["code"] == 5
    assert missing_host.json()["fields"] == {"host": "required field missing"}
    assert route.status_code == 201 and route.json()["preserve_host"] is False and route.json()["strip_path"] is True
    assert pointless_route.status_code == 400 and "@entity" in pointless_route.json()["fields"]
    assert referenced.status_code == 400 and referenced.json()["name"] == "foreign key violation"
    assert (deleted.status_code, gone.status_code, gone.json()) == (204, 404, {"message": "Not found"})
    assert upserted.status_code == 200 and upserted.json()["name"] == "put-me"
    assert (wrong_method.status_code, wrong_method.json()) == (405, {"message": "Method not allowed"})
    assert unknown.status_code == 404


async def test_targets_default_port_duplicates_and_lookup_by_host_port(recorder: RecordingTransport) -> None:
    async with running_emulator() as kong:
        async with httpx.AsyncClient(base_url=kong.admin_url, transport=recorder) as http:
            upstream = await http.post("/upstreams", json={"name": "orders.upstream"})
            no_port = await http.post("/upstreams/orders.upstream/targets", json={"target": "b-project.example.test"})
            duplicate = await http.post(
                "/upstreams/orders.upstream/targets", json={"target": "b-project.example.test:8000"}
            )
            with_port = await http.post(
                "/upstreams/orders.upstream/targets", json={"target": "a-project.example.test:443", "weight": 50}
            )
            by_target = await http.get("/upstreams/orders.upstream/targets/a-project.example.test:443")
            reweighted = await http.patch(
                "/upstreams/orders.upstream/targets/a-project.example.test:443", json={"weight": 0}
            )
            listed = await http.get("/upstreams/orders.upstream/targets")
            removed = await http.delete(f"/upstreams/orders.upstream/targets/{no_port.json()['id']}")
            after = await http.get("/upstreams/orders.upstream/targets")
    assert upstream.status_code == 201 and upstream.json()["slots"] == 10000 and upstream.json()["host_header"] is None
    assert no_port.json()["target"] == "b-project.example.test:8000"  # Kong's DEFAULT_PORT (kong.md §2.4)
    assert no_port.json()["weight"] == 100 and isinstance(no_port.json()["created_at"], float)
    assert duplicate.status_code == 409 and duplicate.json()["name"] == "unique constraint violation"
    assert by_target.json()["id"] == with_port.json()["id"]
    assert reweighted.json()["weight"] == 0
    assert [t["target"] for t in listed.json()["data"]] == ["b-project.example.test:8000", "a-project.example.test:443"]
    assert removed.status_code == 204 and len(after.json()["data"]) == 1


async def test_pagination_follows_kongs_offset(recorder: RecordingTransport) -> None:
    async with running_emulator() as kong:
        async with httpx.AsyncClient(base_url=kong.admin_url, transport=recorder) as http:
            for index in range(3):
                await http.post("/services", json={"name": f"s{index}", "host": f"s{index}.example.test"})
            first = (await http.get("/services", params={"size": 2})).json()
            rest = (await http.get("/services", params={"size": 2, "offset": first["offset"]})).json()
    assert [s["name"] for s in first["data"]] == ["s0", "s1"] and first["next"].startswith("/services?offset=")
    assert [s["name"] for s in rest["data"]] == ["s2"] and rest["next"] is None and "offset" not in rest


async def test_emulator_controls_change_dns_settings_and_mode(recorder: RecordingTransport) -> None:
    async with running_emulator(config=sandbox_config(8443)) as kong:
        async with httpx.AsyncClient(base_url=kong.admin_url) as control:
            changed = await control.post("/_emulator/dns-settings", json={"dns_stale_ttl": 9, "new_dns_client": True})
            refused = await control.post("/_emulator/dns-settings", json={"dns_colour": 1})
            switched = await control.post("/_emulator/mode", json={"mode": "db-less"})
        async with httpx.AsyncClient(base_url=kong.admin_url, transport=recorder) as http:
            conf = (await http.get("/")).json()["configuration"]
            dns_status = await http.get("/status/dns")
    assert changed.json()["dns_stale_ttl"] == 9 and refused.status_code == 400
    assert switched.json()["mode"] == "db-less"
    assert (conf["dns_stale_ttl"], conf["new_dns_client"], conf["database"]) == (9, True, "off")
    assert dns_status.status_code == 200 and dns_status.json()["worker"]["count"] == 1


def test_the_spec_check_has_teeth() -> None:
    spec = kong_spec()
    bad_service = Exchange("GET", "", "/services/x", None, 200, {"id": "x", "host": "h", "port": "eighty"})
    bad_patch = Exchange("PATCH", "", "/services/x", {"retries": "many"}, 200, {"id": "x"})
    bad_target = Exchange("POST", "", "/upstreams/u/targets", {"weight": 70000}, 201, {"id": "t"})
    assert any("'eighty' is not of type 'integer'" in p for p in spec.validate_exchange(bad_service))
    assert any("'many' is not of type 'integer'" in p for p in spec.validate_exchange(bad_patch))
    assert any("70000 is greater than the maximum" in p for p in spec.validate_exchange(bad_target))
    good_patch = Exchange("PATCH", "", "/default/services/x", {"host": "h"}, 200, {"id": "x", "path": None})
    assert spec.validate_exchange(good_patch) == []  # partial PATCH, workspace prefix, null fields


def test_declarative_config_problems_are_listed_together() -> None:
    config = {
        "_format_version": "1.0",
        "services": [{"name": "bad", "host": "not a host", "routes": [{"paths": ["/x"]}]}],
        "upstreams": [{"name": "u.example.test", "targets": [{"target": "ok.example.test", "weight": -1}]}],
        "plugins": [],
    }
    with pytest.raises(DeclarativeConfigError) as error:
        from sandbox.kong.declarative import load_declarative
        from sandbox.kong.store import Store

        load_declarative(Store(), config)
    message = str(error.value)
    assert "_format_version" in message and "plugins" in message
    assert "services[0] (bad)" in message and "targets[0]" in message
