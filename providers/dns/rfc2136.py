"""RFC 2136 dynamic updates, signed with TSIG, sent over TCP to the zone's primary (BIND, Knot, PowerDNS).

A change is one UPDATE message that carries its own compare-and-swap guard:

* a value-dependent ``present`` prerequisite for every expected rrset (built from Rdata objects, so
  the wire TTL is 0; a TTL taken from a queried rrset makes servers answer FORMERR);
* an ``absent`` prerequisite for every type the change expects to be missing, and, when the change
  writes a CNAME, for every other type cutover reads, so a record added meanwhile makes the update
  fail instead of being silently dropped beside the CNAME;
* deletes of the expected rrsets and adds of the desired ones, in the same message (RFC 2136 §3.7:
  all or nothing).

Prerequisites never compare TTLs (RFC 2136 §1.1.1), so the TTL part of the comparison happens on the
read just before the update; a TTL-only edit by someone else in the few milliseconds between that
read and the update would be overwritten. Data edits in that window are caught by the server.

Reads are plain non-recursive queries to the primary (see :mod:`providers.dns.nameservers`), so the
update key only needs update rights, not transfer rights.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Sequence

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.tsig
import dns.update

from models.dns import DnsChange, RRset
from models.names import split_host_port
from models.plan import Rfc2136Provider
from providers.dns import discovery
from providers.dns import nameservers as ns
from providers.dns.base import DnsProvider
from providers.dns.nameservers import QUERY_TYPES, Nameserver, TsigKey
from providers.errors import (
    ConfigError,
    DnsAuthError,
    DnsError,
    DnsRefused,
    DnsUnavailable,
    InvalidChange,
    NotInZone,
    PreconditionFailed,
)
from providers.netguard import NetworkGuard

_ALGORITHMS = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}

_PREREQUISITE_FAILURES = {dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN}


def tsig_key(key_name: str, algorithm: str, secret: str, secret_env: str | None) -> TsigKey:
    """A keyring for one TSIG key.

    Raises:
        ConfigError: the secret is not base64 (the message names the variable, never the value).
    """
    name = dns.name.from_text(key_name)
    try:
        key = dns.tsig.Key(name, secret, _ALGORITHMS[algorithm])
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(
            f"the TSIG secret in {secret_env or 'the environment'} is not valid base64 "
            "(copy the `secret` of the key statement, e.g. from tsig-keygen)"
        ) from exc
    return TsigKey(keyring={name: key}, name=name, algorithm=_ALGORITHMS[algorithm])


def update_rcode_error(rcode: dns.rcode.Rcode, *, server: str, zone: str, key_name: str | None) -> DnsError | None:
    """The typed error for an UPDATE answer code, or None for NOERROR."""
    text = dns.rcode.to_text(rcode)
    signed = f"signed with key {key_name}" if key_name else "unsigned"
    if rcode == dns.rcode.NOERROR:
        return None
    if rcode in _PREREQUISITE_FAILURES:
        return PreconditionFailed(f"{server} refused the update of {zone}: a prerequisite failed ({text})")
    if rcode == dns.rcode.REFUSED:
        return DnsRefused(
            f"{server} REFUSED the update of {zone} ({signed}): its update-policy does not let this key change "
            "this name and type"
        )
    if rcode == dns.rcode.NOTAUTH:
        return DnsRefused(
            f"{server} answered NOTAUTH to the update of {zone} ({signed}): it is not the primary for this zone "
            "or does not accept this key"
        )
    if rcode == dns.rcode.NOTZONE:
        return NotInZone(f"{server} answered NOTZONE: a record of the update is outside the zone {zone}")
    if rcode == dns.rcode.FORMERR:
        return InvalidChange(f"{server} answered FORMERR: it could not parse the update of {zone}")
    if rcode == dns.rcode.SERVFAIL:
        return DnsUnavailable(f"{server} answered SERVFAIL to the update of {zone}")
    if rcode == dns.rcode.NOTIMP:
        return DnsRefused(f"{server} does not implement dynamic updates (NOTIMP)")
    return DnsRefused(f"{server} answered {text} to the update of {zone}")


class Rfc2136DnsProvider(DnsProvider):
    """A zone on an RFC 2136 primary, changed with TSIG-signed UPDATEs over TCP."""

    kind = "rfc2136"

    def __init__(
        self,
        config: Rfc2136Provider,
        *,
        tsig_secret: str | None,
        nameservers: Sequence[str] | None = None,
        resolver: dns.asyncresolver.Resolver | None = None,
        guard: NetworkGuard | None = None,
        read_only: bool = False,
    ) -> None:
        """Build the provider.

        Args:
            config: the plan's provider section.
            tsig_secret: the base64 TSIG secret (resolved by the worker from ``tsig_secret_env``).
            nameservers: ``host:port`` of the authoritative servers; None to discover the NS set.
            resolver: recursive resolver for host names and names outside the zone.
            guard: where queries and updates may go (default: the rules that need no policy).
            read_only: reads only, without the TSIG secret (``starter.py traffic``): updates are refused.
        """
        super().__init__(
            zone=config.zone,
            nameservers=nameservers,
            query_timeout=config.timeout.total_seconds(),
            resolver=resolver,
            guard=guard,
        )
        self.read_only = read_only
        self.config = config
        self._server_host, self._server_port = split_host_port(config.server, 53)
        self._primary: Nameserver | None = None
        self._tsig: TsigKey | None = None
        if config.tsig_key_name and not read_only:
            if not tsig_secret:
                raise ConfigError(f"dns.provider.tsig_key_name is {config.tsig_key_name} but no TSIG secret was given")
            self._tsig = tsig_key(config.tsig_key_name, config.tsig_algorithm, tsig_secret, config.tsig_secret_env)

    async def primary(self) -> Nameserver:
        """The primary's address (the configured server, resolved once)."""
        if self._primary is None:
            addresses = await discovery.host_addresses(self._server_host, self.resolver)
            for address in addresses:
                self.guard.check_address(address, f"dns.provider.server {self._server_host}")
            self._primary = Nameserver(addresses[0], self._server_port, None)
        return self._primary

    async def _read(self, name: str, types: Iterable[str] = ()) -> tuple[int | None, tuple[RRset, ...]]:
        return await ns.read_name(await self.primary(), self.zone, name, timeout=self.query_timeout, types=types)

    async def _read_server(self) -> Nameserver | None:
        """Reads go to the primary (a snapshot reuses them as the primary's view)."""
        return await self.primary()

    async def negative_ttl(self) -> int:
        """From the primary's SOA."""
        soa = await ns.read_soa(await self.primary(), self.zone, timeout=self.query_timeout)
        return soa.negative_ttl

    async def _discover_nameservers(self) -> list[Nameserver]:
        primary = await self.primary()
        names = await discovery.zone_ns_names(primary, self.zone, timeout=self.query_timeout)
        return await discovery.nameserver_addresses(
            names, self.zone, primary=primary, resolver=self.resolver, timeout=self.query_timeout
        )

    async def _resolution_servers(self) -> list[Nameserver]:
        """The primary first: it is authoritative, and reachable even when the NS names are not."""
        primary = await self.primary()
        try:
            others = await self.nameservers()
        except DnsError:
            others = []
        return [primary] + [s for s in others if (s.host, s.port) != (primary.host, primary.port)]

    def build_update(self, change: DnsChange) -> dns.update.UpdateMessage:
        """The one UPDATE message that swaps ``change.expected`` for ``change.desired``."""
        if self._tsig is not None:
            update = dns.update.UpdateMessage(
                self.zone, keyring=self._tsig.keyring, keyname=self._tsig.name, keyalgorithm=self._tsig.algorithm
            )
        else:
            update = dns.update.UpdateMessage(self.zone)
        name = dns.name.from_text(change.name)
        expected_types = {r.type for r in change.expected}
        desired_types = {r.type for r in change.desired}
        for rrset in change.expected:
            update.present(name, *self._rdatas(rrset.type, rrset.rdatas))
        must_be_absent = desired_types - expected_types
        if "CNAME" in desired_types:
            must_be_absent |= set(QUERY_TYPES) - expected_types - {"SOA", "NS"}
        elif desired_types and "CNAME" not in expected_types:
            must_be_absent.add("CNAME")
        for rdtype in sorted(must_be_absent):
            update.absent(name, rdtype)
        for rrset in change.expected:
            update.delete(name, rrset.type)
        for rrset in change.desired:
            update.add(name, rrset.ttl, *self._rdatas(rrset.type, rrset.rdatas))
        return update

    @staticmethod
    def _rdatas(rdtype: str, texts: Sequence[str]) -> list[dns.rdata.Rdata]:
        return [
            dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=dns.name.root, relativize=False)
            for text in texts
        ]

    async def _submit(self, change: DnsChange) -> str | None:
        if self.read_only:
            raise ConfigError("this DNS provider was built for reads only (no TSIG secret): it sends no update")
        primary = await self.primary()
        update = self.build_update(change)
        key_name = self.config.tsig_key_name
        try:
            response = await dns.asyncquery.tcp(update, primary.host, port=primary.port, timeout=self.query_timeout)
        except dns.tsig.PeerBadKey as exc:
            raise DnsAuthError(
                f"{primary.label} does not know the TSIG key {key_name} (BADKEY): configure the key on the primary "
                "or fix dns.provider.tsig_key_name"
            ) from exc
        except dns.tsig.PeerBadSignature as exc:
            raise DnsAuthError(
                f"{primary.label} rejected the signature of TSIG key {key_name} (BADSIG): the secret in "
                f"{self.config.tsig_secret_env} does not match the server's"
            ) from exc
        except dns.tsig.PeerBadTime as exc:
            raise DnsAuthError(
                f"{primary.label} rejected the TSIG time (BADTIME): the worker's clock is too far from the server's"
            ) from exc
        except (dns.tsig.PeerError, dns.tsig.BadSignature, dns.message.UnknownTSIGKey) as exc:
            raise DnsAuthError(f"TSIG failure talking to {primary.label} with key {key_name} ({exc})") from exc
        except dns.exception.Timeout as exc:
            raise DnsUnavailable(
                f"{primary.label} did not answer the update within {self.query_timeout:g}s; it may or may not have "
                "been applied (a retry reads first and will tell)"
            ) from exc
        except OSError as exc:
            raise DnsUnavailable(f"{primary.label} is unreachable ({exc.strerror or exc})") from exc
        except dns.exception.FormError as exc:
            raise DnsRefused(
                f"{primary.label} answered the update without a valid TSIG signature ({exc}): it does not serve "
                f"{self.zone} or does not know key {key_name}"
            ) from exc
        except dns.exception.DNSException as exc:
            raise DnsUnavailable(f"{primary.label} sent an unusable answer to the update ({exc})") from exc
        error = update_rcode_error(response.rcode(), server=primary.label, zone=self.zone, key_name=key_name)
        if error is not None:
            raise error
        return None
