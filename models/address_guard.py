"""Which addresses a call from the worker may reach: the pure half of the network guard.

The worker runs where cloud metadata servers hand out its credentials (169.254.169.254,
``fd00:ec2::254``, ``metadata.google.internal``) and where loopback ports hold admin APIs that trust
their callers. A plan must not point an activity there. The same rules judge a host as written in a
plan (``validate``, ``policy_check``) and every address a host name resolves to when a connection is
made (providers/netguard.py), because a name can resolve anywhere.
"""

from __future__ import annotations

import ipaddress

METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("fd00::254")}
)
"""Cloud metadata servers (GCP, AWS, Azure on 169.254.169.254; AWS IPv6 on fd00:ec2::254): never reachable."""
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "metadata.goog", "instance-data"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def address_class(address: str) -> str | None:
    """``metadata``, ``link-local``, ``loopback``, ``unspecified``, ``multicast``, or None for an ordinary one.

    IPv4-mapped IPv6 addresses (``::ffff:169.254.169.254``) are judged as the IPv4 address they carry.
    """
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast or (isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255")):
        return "multicast"
    return None


def is_loopback_host(host: str) -> bool:
    """True for a loopback address or a name that always means this machine (``localhost``)."""
    name = host.strip("[]").rstrip(".").lower()
    return name in LOOPBACK_NAMES or name.endswith(".localhost") or address_class(name) == "loopback"


def host_refusal(host: str, *, allow_loopback: bool, allow_link_local: bool) -> str | None:
    """Why a host as written (an address or a name) may not be reached, or None.

    A name is refused here only when it always means a forbidden place (``metadata.google.internal``,
    ``localhost``); whatever it resolves to is judged again when the connection is made.
    """
    name = host.strip("[]").rstrip(".").lower()
    if name in METADATA_NAMES:
        return f"{name} is the cloud metadata server, which hands out the worker's credentials: never reachable"
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return None if allow_loopback else f"{name} is this machine (loopback), which the worker policy does not allow"
    return address_refusal(name, allow_loopback=allow_loopback, allow_link_local=allow_link_local)


def address_refusal(address: str, *, allow_loopback: bool, allow_link_local: bool) -> str | None:
    """Why an IP address may not be connected to, or None (ordinary addresses, or a class the policy allows)."""
    kind = address_class(address)
    if kind is None:
        return None
    if kind == "metadata":
        return f"{address} is a cloud metadata address, which hands out the worker's credentials: never reachable"
    if kind == "unspecified":
        return f"{address} is the unspecified address (it reaches this machine): never a destination"
    if kind == "multicast":
        return f"{address} is a multicast or broadcast address: never a destination"
    if kind == "loopback" and not allow_loopback:
        return f"{address} is a loopback address, which the worker policy does not allow (network.allow_loopback)"
    if kind == "link-local" and not allow_link_local:
        return f"{address} is a link-local address, which the worker policy does not allow (network.allow_link_local)"
    return None
