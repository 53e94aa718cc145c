"""The BIND configuration compose mounts: rendered as the containers render it, checked by BIND itself,
and run on loopback (addresses translated) to see signed UPDATEs, NOTIFY and TSIG transfers work."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.xfr
import dns.zone
import pytest
import yaml

from sandbox.bind import named_binary, soa_serial
from sandbox.free_ports import free_port
from tests.deploy.compose import DEPLOY, DEPLOY_PLANS, Compose
from tests.deploy.local import LocalService, read_env_file

ZONE = "example.test"
BIND_SERVICES = ("bind-primary", "bind-secondary")


def bind_service(compose: Compose, name: str, tmp_path: Path, secrets_dir: Path) -> LocalService:
    return LocalService(compose, name, tmp_path, secrets_dir)


def run_entrypoint(service: LocalService, **env: str) -> subprocess.CompletedProcess[str]:
    """The service's entrypoint (deploy/bind/entrypoint.sh) with `true` in place of named."""
    entrypoint = service.compose.service(service.name)["entrypoint"]
    script = service.path(entrypoint[1])
    return service.run([*entrypoint, "true"], env=service.env(script=script, extra=env))


def config_path(service: LocalService) -> str:
    """The named.conf the service's command starts named with."""
    return service.compose.argument(service.name, "-c")


@pytest.fixture
def rendered(compose, tmp_path, secrets_dir) -> dict[str, LocalService]:
    """Both BIND services after their entrypoint ran (key rendered, primary's zone seeded)."""
    services = {}
    for name in BIND_SERVICES:
        service = bind_service(compose, name, tmp_path, secrets_dir)
        result = run_entrypoint(service)
        assert result.returncode == 0, result.stderr
        services[name] = service
    return services


def test_entrypoint_renders_the_key_from_the_environment_readable_by_bind_only(rendered, secrets_dir):
    secret = read_env_file(secrets_dir / "tsig.env")["CUTOVER_TSIG_SECRET"]
    for service in rendered.values():
        key_file = service.path("/run/cutover/update-key.conf")
        text = key_file.read_text()
        assert f'secret "{secret}";' in text and "@CUTOVER_TSIG_SECRET@" not in text
        assert key_file.stat().st_mode & 0o777 == 0o640


def test_entrypoint_seeds_the_primary_zone_once_and_keeps_what_cutover_changed(rendered):
    primary = rendered["bind-primary"]
    zone_file = primary.path("/var/lib/bind/example.test.db")
    assert zone_file.read_text() == (DEPLOY / "bind" / "example.test.db").read_text()
    zone_file.write_text(zone_file.read_text().replace("CNAME a-project", "CNAME b-project"))
    result = run_entrypoint(primary)
    assert result.returncode == 0 and "keeping" in result.stdout
    assert "CNAME b-project" in zone_file.read_text()
    assert not rendered["bind-secondary"].path("/var/lib/bind/example.test.db").exists()


@pytest.mark.parametrize(
    ("secret", "message"),
    [("", "CUTOVER_TSIG_SECRET is not set"), ('x"; }; include "/etc/shadow', "must be base64")],
)
def test_entrypoint_refuses_a_missing_or_unsafe_secret(compose, tmp_path, secrets_dir, secret, message):
    service = bind_service(compose, "bind-primary", tmp_path, secrets_dir)
    result = run_entrypoint(service, CUTOVER_TSIG_SECRET=secret)
    assert result.returncode == 2 and message in result.stderr
    assert not service.path("/run/cutover/update-key.conf").exists()


def checked_config(service: LocalService, tmp_path: Path) -> Path:
    """The service's named.conf with its container paths translated (keys, zone files)."""
    conf_mount, conf_file = service.compose.locate(service.name, config_path(service))
    path = tmp_path / f"{service.name}.conf"
    path.write_text(service.translate((conf_mount.host_path / conf_file).read_text()))
    return path


def test_named_checkconf_and_named_checkzone_accept_the_files(rendered, tmp_path):
    for service in rendered.values():
        result = subprocess.run(
            ["named-checkconf", "-z", str(checked_config(service, tmp_path))], capture_output=True, text=True
        )
        assert result.returncode == 0, f"{service.name}: {result.stdout}{result.stderr}"
    result = subprocess.run(
        ["named-checkzone", ZONE, str(DEPLOY / "bind" / "example.test.db")], capture_output=True, text=True
    )
    assert result.returncode == 0 and "loaded serial 1" in result.stdout, result.stdout + result.stderr


def canonical(path: Path) -> str:
    result = subprocess.run(["named-checkconf", "-p", str(path)], capture_output=True, text=True, check=True)
    return re.sub(r"\s+", " ", result.stdout)


def test_primary_notifies_the_secondary_which_transfers_with_the_key_the_plans_use(rendered, compose, tmp_path):
    provider = yaml.safe_load((DEPLOY_PLANS / "cname.yaml").read_text())["dns"]["provider"]
    key = f'key "{provider["tsig_key_name"]}" {{ algorithm "hmac-sha256";'
    primary = canonical(checked_config(rendered["bind-primary"], tmp_path))
    secondary = canonical(checked_config(rendered["bind-secondary"], tmp_path))
    assert key in primary and key in secondary
    assert 'listen-on { "any"; }' in primary and 'listen-on { "any"; }' in secondary  # port 53, as exposed
    assert "notify explicit;" in primary and f"also-notify {{ {compose.static_ip('bind-secondary')}; }}" in primary
    assert 'allow-transfer { key "update-key"; }' in primary
    assert 'grant "update-key" zonesub "ANY";' in primary and "type primary;" in primary
    assert f'primaries {{ {compose.static_ip("bind-primary")} key "update-key"; }}' in secondary
    assert "type secondary;" in secondary and "notify no;" in secondary


def loopback_config(service: LocalService, tmp_path: Path, port: int, other_port: int) -> Path:
    """The service's named.conf on 127.0.0.1 ports: only addresses, ports and state paths translated."""
    text = checked_config(service, tmp_path).read_text()
    workdir = tmp_path / f"{service.name}-run"
    workdir.mkdir()
    translations = {
        "listen-on { any; };": f"listen-on port {port} {{ 127.0.0.1; }};",
        'directory "/var/cache/bind";': (
            f'directory "{workdir}"; pid-file "{workdir}/named.pid"; session-keyfile "{workdir}/session.key";'
        ),
    }
    if service.name == "bind-primary":
        translations["also-notify { 10.231.53.11; };"] = f"also-notify {{ 127.0.0.1 port {other_port}; }};"
    else:
        translations["primaries { 10.231.53.10 key update-key; };"] = (
            f"primaries {{ 127.0.0.1 port {other_port} key update-key; }};"
        )
    for old, new in translations.items():
        assert text.count(old) == 1, f"{service.name}'s config no longer has {old!r}: update this translation"
        text = text.replace(old, new)
    path = workdir / "named.conf"
    path.write_text(text)
    return path


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def named_argv(service: LocalService, config: Path) -> list[str]:
    """The service's own named command with the translated config.

    `-u bind` stays when the test runs as root, as in the container (the entrypoint then handed the
    zone directory to bind); otherwise it goes, since only root can switch users, and the entrypoint
    changed no ownership either.
    """
    command = service.compose.command(service.name)
    argv = [named_binary(), *command[1:]]
    argv[argv.index("-c") + 1] = str(config)
    if os.getuid() != 0:
        index = argv.index("-u")
        del argv[index : index + 2]
    return argv


@pytest.fixture
def shared_root():
    """A scratch directory user bind can traverse (pytest's own are private to the test user)."""
    root = Path(tempfile.mkdtemp(prefix="cutover-deploy-bind-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_the_pair_takes_signed_updates_notifies_and_transfers_only_with_the_key(compose, secrets_dir, shared_root):
    secret = read_env_file(secrets_dir / "tsig.env")["CUTOVER_TSIG_SECRET"]
    ports = {"bind-primary": free_port(), "bind-secondary": free_port()}
    processes: list[subprocess.Popen[bytes]] = []
    logs: dict[str, Path] = {}
    try:
        for name, other in (("bind-primary", "bind-secondary"), ("bind-secondary", "bind-primary")):
            service = bind_service(compose, name, shared_root, secrets_dir)
            result = run_entrypoint(service)
            assert result.returncode == 0, result.stderr
            config = loopback_config(service, shared_root, ports[name], ports[other])
            if os.getuid() == 0:
                shutil.chown(config.parent, "bind", "bind")
            logs[name] = config.parent / "named.log"
            with open(logs[name], "wb") as log:
                processes.append(
                    subprocess.Popen(
                        named_argv(service, config), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
            assert wait_for(lambda port=ports[name]: soa_serial("127.0.0.1", port, ZONE) == 1), logs[name].read_text()
        # What the cname strategy does: a-project becomes a CNAME, signed with the plans' key.
        keyring = dns.tsigkeyring.from_text({"update-key": ("hmac-sha256", secret)})
        update = dns.update.UpdateMessage(f"{ZONE}.", keyring=keyring, keyalgorithm=dns.tsig.HMAC_SHA256)
        update.delete("a-project", "A")
        update.add("a-project", 5, "CNAME", "b-project")
        response = dns.query.tcp(update, "127.0.0.1", port=ports["bind-primary"], timeout=3)
        assert response.rcode() == dns.rcode.NOERROR, logs["bind-primary"].read_text()[-2000:]
        assert wait_for(lambda: soa_serial("127.0.0.1", ports["bind-secondary"], ZONE) == 2, timeout=3), logs[
            "bind-secondary"
        ].read_text()[-2000:]
        query = dns.message.make_query(f"a-project.{ZONE}.", "CNAME")
        answer = dns.query.udp(query, "127.0.0.1", port=ports["bind-secondary"], timeout=2)
        assert [r.to_text() for rrset in answer.answer for r in rrset] == [f"b-project.{ZONE}."]
        # Unsigned: no update, no transfer.
        unsigned = dns.update.UpdateMessage(f"{ZONE}.")
        unsigned.add("intruder", 5, "A", "192.0.2.1")
        assert dns.query.tcp(unsigned, "127.0.0.1", port=ports["bind-primary"], timeout=3).rcode() == dns.rcode.REFUSED
        with pytest.raises(dns.xfr.TransferError):
            dns.zone.from_xfr(dns.query.xfr("127.0.0.1", ZONE, port=ports["bind-primary"], timeout=3))
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
