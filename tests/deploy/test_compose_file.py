"""docker-compose.yml is a valid Compose file whose start order, mounts, addresses and secrets hold together.

No Docker engine runs here: the file is checked against the Compose specification's JSON schema
shipped by Debian's docker-compose package, and by `docker-compose config` (offline).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft201909Validator

from sandbox.topology import Ports
from tests.deploy.compose import COMPOSE_FILE, DEPLOY, REPO, Compose
from tests.deploy.local import read_env_file

COMPOSE_SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
MAKE_SETUP = (
    "run `make setup`: it installs Debian's docker-compose package, which ships the Compose "
    "specification's JSON schema and the docker-compose binary these tests use"
)


def compose_binary() -> str:
    found = shutil.which("docker-compose")
    assert found, f"docker-compose is not installed: {MAKE_SETUP}"
    return found


def compose_schema_problems(document: object) -> list[str]:
    """Every place ``document`` breaks the Compose specification's JSON schema."""
    assert COMPOSE_SCHEMA.exists(), f"{COMPOSE_SCHEMA} is missing: {MAKE_SETUP}"
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    # It declares draft 2019-09 as "http://json-schema.org/draft/2019-09/schema#", a spelling
    # jsonschema's lookup does not know; use that draft's validator by name.
    assert "draft/2019-09/" in schema["$schema"], schema["$schema"]
    Draft201909Validator.check_schema(schema)
    errors = sorted(Draft201909Validator(schema).iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors]


def test_compose_file_matches_the_compose_specification_schema():
    problems = compose_schema_problems(yaml.safe_load(COMPOSE_FILE.read_text()))
    assert not problems, "docker-compose.yml does not match the Compose schema:\n" + "\n".join(problems)


def test_the_schema_check_catches_what_compose_would_reject():
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    document["services"]["worker"]["healthcheck"]["start_interval"] = "1s"  # newer than this schema
    document["services"]["kong"]["ports"] = "8000:8000"
    problems = compose_schema_problems(document)
    assert any(p.startswith("services/worker/healthcheck") for p in problems), problems
    assert any(p.startswith("services/kong/ports") for p in problems), problems


def copy_for_config(destination: Path, secrets: bool) -> Path:
    """The compose file and what it names, in a scratch project directory (secrets made fresh there)."""
    shutil.copy(COMPOSE_FILE, destination / "docker-compose.yml")
    shutil.copytree(DEPLOY, destination / "deploy", ignore=shutil.ignore_patterns("secrets"))
    shutil.copy(REPO / "Dockerfile", destination / "Dockerfile")
    (destination / "sandbox").mkdir()
    shutil.copy(REPO / "sandbox" / "services.yaml", destination / "sandbox" / "services.yaml")
    if secrets:
        subprocess.run(["sh", "deploy/make-secrets.sh"], cwd=destination, check=True, capture_output=True)
    return destination / "docker-compose.yml"


def test_docker_compose_config_accepts_the_file_once_the_secrets_exist(tmp_path):
    binary = compose_binary()
    compose_file = copy_for_config(tmp_path, secrets=True)
    result = subprocess.run(
        [binary, "-f", str(compose_file), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"docker-compose config rejected docker-compose.yml:\n{result.stderr}"
    services = subprocess.run(
        [binary, "-f", str(compose_file), "--profile", "starter", "config", "--services"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert set(services) == set(Compose.load(compose_file).services)


def test_docker_compose_config_names_the_missing_secrets_file(tmp_path):
    binary = compose_binary()
    compose_file = copy_for_config(tmp_path, secrets=False)
    result = subprocess.run(
        [binary, "-f", str(compose_file), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "deploy/secrets/" in result.stderr and ".env" in result.stderr


def test_start_order_waits_for_health_and_one_shot_completion(compose: Compose):
    problems = []
    for name, service in compose.services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions, not a plain list"
        for dependency, spec in depends_on.items():
            if dependency not in compose.services:
                problems.append(f"{name} depends on {dependency}, which does not exist")
                continue
            condition = spec["condition"]
            target = compose.services[dependency]
            if condition == "service_healthy" and "healthcheck" not in target:
                problems.append(f"{name} waits for {dependency} to be healthy, but it has no healthcheck")
            if condition == "service_completed_successfully" and target.get("restart") != "no":
                problems.append(f"{name} waits for one-shot {dependency}, which must not restart")
            if condition == "service_started":
                problems.append(f"{name} only waits for {dependency} to start: use a healthcheck")
    assert not problems, "\n".join(problems)
    # Long-running services restart; the one-shots are exactly init and kong-migrations.
    one_shots = {name for name, s in compose.services.items() if s.get("restart") == "no"}
    assert one_shots == {"init", "kong-migrations"}


def test_start_order_has_no_cycle_and_the_worker_comes_last(compose: Compose):
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        assert name not in visiting, f"depends_on cycle through {name}"
        visiting.add(name)
        for dependency in compose.service(name).get("depends_on", {}):
            visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in compose.services:
        visit(name)
    needed_by_worker = {"temporal", "kong", "bind-primary", "bind-secondary", "runtime-a", "runtime-b"}
    assert needed_by_worker <= set(compose.service("worker")["depends_on"])
    # Everything the worker's plans reach is up (transitively, init and the migrations too) first.
    for name in needed_by_worker | {"init", "kong-migrations", "kong-db"}:
        assert order.index(name) < order.index("worker"), f"{name} must start before the worker"


def test_fixed_addresses_are_unique_inside_the_subnet_and_outside_the_dynamic_range(compose: Compose):
    (pool,) = compose.data["networks"]["cutover"]["ipam"]["config"]
    subnet, dynamic = ipaddress.ip_network(pool["subnet"]), ipaddress.ip_network(pool["ip_range"])
    seen: dict[str, str] = {}
    for name, service in compose.services.items():
        networks = service.get("networks") or []
        assert set(networks) == {"cutover"}, f"{name} must be on the cutover network only"
        if isinstance(networks, dict) and networks["cutover"].get("ipv4_address"):
            address = ipaddress.ip_address(networks["cutover"]["ipv4_address"])
            assert address in subnet, f"{name}: {address} is outside {subnet}"
            assert address not in dynamic, (
                f"{name}: {address} is in the dynamic range {dynamic}; another container can take it"
            )
            assert str(address) not in seen, f"{name} and {seen.get(str(address))} share {address}"
            seen[str(address)] = name
    # The components reached by IP: BIND (Kong's resolver, NS records), A and B (A records), Kong's database.
    assert set(seen.values()) == {"bind-primary", "bind-secondary", "runtime-a", "runtime-b", "kong-db"}


def test_every_bind_mount_exists_and_every_named_volume_is_declared(compose: Compose):
    declared = set(compose.data["volumes"])
    used = set()
    for name in compose.services:
        for mount in compose.mounts(name):
            if mount.kind == "bind":
                assert mount.host_path.exists(), f"{name} mounts {mount.source}, which does not exist"
                assert mount.read_only, f"{name} mounts {mount.source} writable: repository files are read-only inputs"
            else:
                assert mount.source in declared, f"{name} uses the undeclared volume {mount.source}"
                used.add(mount.source)
    assert used == declared, f"declared but unused volumes: {declared - used}"


def test_env_files_are_exactly_what_make_secrets_writes(compose: Compose, secrets_dir: Path):
    written = {path.name for path in secrets_dir.iterdir()}
    named = {env_file for name in compose.services for env_file in compose.env_files(name)}
    assert named == {f"deploy/secrets/{file}" for file in written}
    for path in secrets_dir.iterdir():
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"


def test_each_secret_goes_only_to_the_services_that_use_it(compose: Compose):
    receivers = {
        env_file: sorted(name for name in compose.services if env_file in compose.env_files(name))
        for name in compose.services
        for env_file in compose.env_files(name)
    }
    assert receivers == {
        "deploy/secrets/tsig.env": ["bind-primary", "bind-secondary", "worker"],
        "deploy/secrets/decommission.env": ["runtime-a", "worker"],
    }


def test_make_secrets_writes_usable_values_and_never_overwrites(secrets_dir: Path):
    tsig = read_env_file(secrets_dir / "tsig.env")["CUTOVER_TSIG_SECRET"]
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", tsig), "a base64 256-bit TSIG secret"
    auth = read_env_file(secrets_dir / "decommission.env")["CUTOVER_DECOMMISSION_AUTH"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", auth)
    before = {path.name: path.read_text() for path in secrets_dir.iterdir()}
    result = subprocess.run(
        ["sh", str(DEPLOY / "make-secrets.sh"), str(secrets_dir)], capture_output=True, text=True, check=True
    )
    assert "keeping" in result.stdout
    assert {path.name: path.read_text() for path in secrets_dir.iterdir()} == before


def test_no_secret_value_is_written_into_the_compose_file(compose: Compose):
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"SECRET|TOKEN|AUTH", key):
                pytest.fail(f"{name} sets {key} in docker-compose.yml: secrets belong in deploy/secrets/*.env")
            if "PASSWORD" in key:
                assert re.fullmatch(r"\$\{\w+:-[^}]*\}", str(value)), (
                    f"{name}: {key} must be overridable (${{VAR:-...}})"
                )
    assert not re.search(r"[A-Za-z0-9+/]{40,}={0,2}", COMPOSE_FILE.read_text()), (
        "a key-like value in docker-compose.yml"
    )


def test_published_ports_are_loopback_only_and_those_of_the_sandbox(compose: Compose):
    published = {}
    for name, service in compose.services.items():
        for entry in service.get("ports", []):
            host, host_port, container_port = str(entry).split(":")
            assert host == "127.0.0.1", f"{name} publishes {entry} beyond the host's loopback"
            published[f"{host_port}/{container_port.split('/')[1] if '/' in container_port else 'tcp'}"] = name
            assert int(container_port.split("/")[0]) in compose.exposed(name), f"{name} publishes an unexposed port"
    ports = Ports()
    assert published[f"{ports.temporal}/tcp"] == "temporal" and published[f"{ports.temporal_ui}/tcp"] == "temporal"
    assert published[f"{ports.kong_admin}/tcp"] == "kong" and published[f"{ports.kong_proxy}/tcp"] == "kong"
    assert published[f"{ports.bind_primary}/udp"] == "bind-primary"
    assert published[f"{ports.bind_secondary}/udp"] == "bind-secondary"


def test_git_ignores_the_secret_files(secrets_dir: Path):
    rules = [line for line in (DEPLOY / "secrets" / ".gitignore").read_text().splitlines() if line and line[0] != "#"]

    def ignored(name: str) -> bool:
        verdict = False
        for rule in rules:  # gitignore: the last matching rule wins, "!" re-includes
            if fnmatch.fnmatch(name, rule.lstrip("!")):
                verdict = not rule.startswith("!")
        return verdict

    assert all(ignored(path.name) for path in secrets_dir.iterdir())
    assert not ignored(".gitignore")
