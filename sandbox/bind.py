"""Launch a real BIND 9 primary + secondary on loopback ports, for tests and the demo.

This is the outside world cutover changes, not part of cutover: it talks to named with plain
dnspython queries and never imports the product's DNS providers. The primary takes TSIG-signed RFC 2136
UPDATEs and NOTIFYs the secondary (unless ``notify=False``, which makes a lagging secondary for
tests); both run as child processes in a private directory and stop with the context manager.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from sandbox.free_ports import free_port

DEFAULT_ZONE = "example.test"
DEFAULT_RECORDS = """\
ns1         A     127.0.0.1
ns2         A     127.0.0.1
a-project   300   A 127.0.0.2
b-project   300   A 127.0.0.3
origin-api  300   CNAME a-project
"""


def zone_text(zone: str = DEFAULT_ZONE, records: str = DEFAULT_RECORDS, *, soa_minimum: int = 60) -> str:
    """A zone file with SOA, two NS and the given records."""
    return (
        f"$ORIGIN {zone}.\n$TTL 300\n"
        f"@ SOA ns1 hostmaster ( 1 3600 600 86400 {soa_minimum} )\n"
        "@ NS ns1\n@ NS ns2\n" + records
    )


def named_binary() -> str:
    """Path of named, or a clear error saying how to install it."""
    found = shutil.which("named") or ("/usr/sbin/named" if os.path.exists("/usr/sbin/named") else None)
    if not found:
        raise RuntimeError("BIND 9 is not installed: run `apt-get install -y bind9` (make test does it)")
    return found


def soa_serial(host: str, port: int, zone: str, timeout: float = 1.0) -> int | None:
    """The zone serial a server answers, or None when it doesn't answer authoritatively."""
    query = dns.message.make_query(zone + ".", dns.rdatatype.SOA)
    query.flags &= ~dns.flags.RD
    try:
        response = dns.query.udp(query, host, port=port, timeout=timeout)
    except (OSError, dns.exception.Timeout):
        return None
    if response.rcode() != dns.rcode.NOERROR or not response.answer:
        return None
    return int(response.answer[0][0].serial)


def terminate(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM a server that still runs, SIGKILL it after ``timeout`` seconds; it is reaped either way."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class NamedServer:
    """One named process and its directory."""

    role: str
    port: int
    directory: Path
    config: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start named in the foreground (-g) with one worker thread; logs go to named.log."""
        with open(self.directory / "named.log", "ab") as log:
            self.process = subprocess.Popen(
                [named_binary(), "-g", "-n", "1", "-c", str(self.config)],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        if self.process is None:
            return
        terminate(self.process)
        self.process = None

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.process is not None and self.process.poll() is None

    @property
    def address(self) -> str:
        """``127.0.0.1:port``."""
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything named wrote, for failure messages."""
        path = self.directory / "named.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class BindPair:
    """A running primary + secondary serving one zone."""

    zone: str
    key_name: str
    secret: str
    algorithm: str
    primary: NamedServer
    secondary: NamedServer
    directory: Path
    notify: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def nameservers(self) -> list[str]:
        """``host:port`` of both servers, primary first."""
        return [self.primary.address, self.secondary.address]

    def wait_ready(self, server: NamedServer, timeout: float = 10.0, min_serial: int | None = None) -> None:
        """Poll SOA until the server answers (and reaches ``min_serial``), or raise with its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            serial = soa_serial("127.0.0.1", server.port, self.zone, timeout=0.3)
            if serial is not None and (min_serial is None or serial >= min_serial):
                return
            if server.process is not None and server.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"named {server.role} on port {server.port} did not answer:\n{server.log()[-3000:]}")

    def send_notify(self) -> None:
        """Tell the secondary to refresh now (for the lagging-secondary tests)."""
        message = dns.message.make_query(self.zone + ".", dns.rdatatype.SOA)
        message.flags = dns.flags.AA  # set flags first: assigning flags clears the opcode bits
        message.set_opcode(dns.opcode.NOTIFY)
        dns.query.udp(message, "127.0.0.1", port=self.secondary.port, timeout=2)

    def serial(self, server: NamedServer | None = None) -> int | None:
        """Current serial at ``server`` (default: primary)."""
        return soa_serial("127.0.0.1", (server or self.primary).port, self.zone)

    def wait_in_sync(self, timeout: float = 10.0) -> None:
        """Wait until the secondary has the primary's serial."""
        target = self.serial()
        self.wait_ready(self.secondary, timeout=timeout, min_serial=target)

    def stop(self) -> None:
        """Stop both servers."""
        self.secondary.stop()
        self.primary.stop()


_OPTIONS = """options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    managed-keys-directory "{dir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    {extra}
}};
controls {{ }};
key "{key}" {{ algorithm {algorithm}; secret "{secret}"; }};
"""


@contextlib.contextmanager
def bind_pair(
    *,
    zone: str = DEFAULT_ZONE,
    records: str = DEFAULT_RECORDS,
    key_name: str = "update-key",
    secret: str | None = None,
    algorithm: str = "hmac-sha256",
    notify: bool = True,
    primary_port: int | None = None,
    secondary_port: int | None = None,
    directory: str | None = None,
) -> Iterator[BindPair]:
    """Run a primary and a secondary for ``zone`` until the block exits."""
    secret = secret or base64.b64encode(os.urandom(32)).decode()
    pport, sport = primary_port or free_port(), secondary_port or free_port()
    with contextlib.ExitStack() as stack:
        root = Path(directory) if directory else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bind-")))
        servers = []
        for role, port in (("primary", pport), ("secondary", sport)):
            workdir = root / role
            if workdir.exists():
                shutil.rmtree(workdir)
            workdir.mkdir(parents=True)
            if role == "primary":
                (workdir / f"{zone}.db").write_text(zone_text(zone, records))
                notify_clause = (
                    f"notify explicit; also-notify {{ 127.0.0.1 port {sport}; }};" if notify else "notify no;"
                )
                extra = f"{notify_clause} notify-delay 0; allow-transfer {{ 127.0.0.0/8; }}; max-ixfr-ratio unlimited;"
                zone_conf = (
                    f'zone "{zone}" {{ type primary; file "{zone}.db"; '
                    f"update-policy {{ grant {key_name} zonesub ANY; }}; }};\n"
                )
            else:
                extra = "notify no;"
                zone_conf = (
                    f'zone "{zone}" {{ type secondary; file "{zone}.bk"; primaries {{ 127.0.0.1 port {pport}; }}; }};\n'
                )
            config = workdir / "named.conf"
            config.write_text(
                _OPTIONS.format(dir=workdir, port=port, extra=extra, key=key_name, algorithm=algorithm, secret=secret)
                + zone_conf
            )
            servers.append(NamedServer(role=role, port=port, directory=workdir, config=config))
        pair = BindPair(
            zone=zone,
            key_name=key_name,
            secret=secret,
            algorithm=algorithm,
            primary=servers[0],
            secondary=servers[1],
            directory=root,
            notify=notify,
        )
        stack.callback(pair.stop)
        pair.primary.start()
        pair.wait_ready(pair.primary)
        pair.secondary.start()
        pair.wait_ready(pair.secondary)
        yield pair


def main() -> None:
    """Run a pair in the foreground: ``python -m sandbox.bind --primary-port 5353 --secondary-port 5354``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--primary-port", type=int, default=5353)
    parser.add_argument("--secondary-port", type=int, default=5354)
    parser.add_argument("--secret-env", default="CUTOVER_TSIG_SECRET", help="variable holding the TSIG secret")
    parser.add_argument("--directory", default=None)
    args = parser.parse_args()
    secret = os.environ.get(args.secret_env)
    with bind_pair(
        primary_port=args.primary_port, secondary_port=args.secondary_port, secret=secret, directory=args.directory
    ) as pair:
        print(f"BIND primary {pair.primary.address}, secondary {pair.secondary.address}, zone {pair.zone}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()


async def signed_update(bind: BindPair, zone: str, *changes: tuple[str, str, int, str | None]) -> None:
    """Apply ``(action, name, ttl, "TYPE data")`` changes in one TSIG-signed UPDATE to the primary.

    ``action`` is an UPDATE operation (``add``, ``replace``, ``delete``; a delete with data removes that
    type or rdata only). Names and CNAME targets are relative to ``zone`` unless they end in a dot.

    Raises:
        RuntimeError: the primary refused the UPDATE.
    """
    keyring = dns.tsigkeyring.from_text({bind.key_name: bind.secret})
    message = dns.update.Update(zone, keyring=keyring, keyalgorithm=dns.tsig.HMAC_SHA256)
    for action, name, ttl, data in changes:
        if action == "delete":
            if data:
                message.delete(name, data)
            else:
                message.delete(name)
        else:
            assert data is not None
            rdtype, rdata = data.split(" ", 1)
            getattr(message, action)(name, ttl, rdtype, rdata)
    response = await dns.asyncquery.tcp(message, "127.0.0.1", port=bind.primary.port, timeout=5)
    if response.rcode() != dns.rcode.NOERROR:
        raise RuntimeError(f"UPDATE refused: {dns.rcode.to_text(response.rcode())}")
