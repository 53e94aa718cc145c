"""DNS data as cutover sees it: whole rrsets, per-nameserver views, compare-and-swap changes.

Changes are always expressed as *expected* rrsets (what cutover last saw) and *desired* rrsets (what
it wants), so that an apply can tell "already done" from "someone else changed it" and never clobbers
a concurrent edit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.plan import DnsSection


class _Model(BaseModel):
    # Unknown fields are ignored, not refused: during a rolling deploy a newer activity may return a
    # field an older workflow doesn't know, and a decode error would fail the run without rollback.
    model_config = ConfigDict(extra="ignore", frozen=True)


class RRset(_Model):
    """One whole rrset: every record of one type at one name shares one TTL (RFC 2181 §5.2)."""

    name: str
    """Absolute owner name with trailing dot, lower case."""
    type: str
    ttl: int = Field(ge=0)
    rdatas: tuple[str, ...]
    """Record data in RFC 1035 text form, sorted, absolute names with trailing dots."""

    @field_validator("type")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("rdatas")
    @classmethod
    def _sorted(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(value))

    def same_data(self, other: RRset) -> bool:
        """Equal apart from the TTL."""
        return (self.name, self.type, self.rdatas) == (other.name, other.type, other.rdatas)

    def with_ttl(self, ttl: int) -> RRset:
        """The same rrset at another TTL."""
        return self.model_copy(update={"ttl": ttl})

    def describe(self) -> str:
        """One line, zone-file style, for statuses and summaries."""
        return f"{self.name} {self.ttl} {self.type} {' '.join(self.rdatas)}"


def describe_rrsets(rrsets: tuple[RRset, ...] | list[RRset]) -> str:
    """Zone-file style text of several rrsets, or "(nothing)"."""
    return "; ".join(r.describe() for r in rrsets) if rrsets else "(nothing)"


class NameserverState(_Model):
    """What one authoritative server answers for the name, asked without recursion."""

    server: str
    """``ip:port`` the query went to."""
    ns_name: str | None = None
    """The NS record this address came from, when the set was discovered."""
    serial: int | None = None
    authoritative: bool = False
    rrsets: tuple[RRset, ...] = ()
    error: str | None = None

    @property
    def max_ttl(self) -> int:
        """Largest TTL this server hands out for the name (0 when it has nothing)."""
        return max((r.ttl for r in self.rrsets), default=0)


class DnsSnapshot(_Model):
    """The state of one name, from the provider and from every authoritative server."""

    zone: str
    name: str
    rrsets: tuple[RRset, ...]
    """Every rrset at the name (all types) as the provider/primary holds it."""
    serial: int | None
    """Zone serial at the primary (None for Cloud DNS, which hides it)."""
    nameservers: tuple[NameserverState, ...]
    max_ttl: int
    """Largest TTL any authoritative server holds for the name: what caches may keep."""
    negative_ttl: int
    """min(SOA TTL, SOA MINIMUM) (RFC 2308 §3): how long a NODATA/NXDOMAIN may be cached."""
    taken_at: datetime


class DnsChange(_Model):
    """A compare-and-swap change of the rrsets at one name.

    ``expected`` lists the rrsets (with TTLs) the change replaces, ``desired`` what replaces them.
    Types that appear in neither are not touched, but a desired CNAME requires that no other data
    remains at the name.
    """

    name: str
    expected: tuple[RRset, ...]
    desired: tuple[RRset, ...]
    reason: str
    """Why, in words, e.g. "lower TTL to 30 s before the flip"."""


class DnsChangeResult(_Model):
    """What an apply did: applied now, or found already applied (an idempotent repeat)."""

    outcome: Literal["applied", "already-applied"]
    serial_before: int | None = None
    serial_after: int | None = None
    readback: tuple[RRset, ...]
    """The rrsets at the name read back after the apply: equal to the desired ones."""
    change_id: str | None = None
    """Provider change id (Cloud DNS)."""


class PropagationReport(_Model):
    """Proof that every authoritative server answers the desired data, or which ones lag."""

    name: str
    in_sync: bool
    servers: tuple[NameserverState, ...]
    lagging: tuple[str, ...] = ()
    elapsed_seconds: float = 0.0


class AddressMap(_Model):
    """Addresses a name resolves to at the authoritative servers, following CNAMEs."""

    addresses: dict[str, tuple[str, ...]]
    chains: dict[str, tuple[str, ...]] = {}
    """Name -> the CNAME chain followed to reach the addresses."""


# --- activity inputs ------------------------------------------------------------------------------


class SnapshotInput(_Model):
    """Read a name everywhere."""

    dns: DnsSection
    name: str


class ApplyInput(_Model):
    """Apply one compare-and-swap change and read it back."""

    dns: DnsSection
    change: DnsChange


class PropagationInput(_Model):
    """Wait until every authoritative server answers ``desired`` at ``name``."""

    dns: DnsSection
    name: str
    desired: tuple[RRset, ...]
    min_serial: int | None = None
    read_back: tuple[RRset, ...] | None = None
    """The change's read-back from the primary (``DnsChangeResult.readback``), taken at ``min_serial``.

    The proof starts from it: it asks the primary's SOA once and keeps the read-back while the primary
    still serves that serial, instead of reading the name again."""


class ResolveInput(_Model):
    """Resolve names to addresses through the authoritative servers."""

    dns: DnsSection
    names: tuple[str, ...]
