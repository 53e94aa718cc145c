"""The managed zone behind the Cloud DNS fake: its rrsets, the API methods' semantics, and its DNS answers.

Nothing here listens: :class:`tests.fakes.clouddns.FakeCloudDns` serves this over HTTP and UDP.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from tests.fakes.clouddns_errors import ApiError


def _key(name: str, rdtype: str) -> tuple[str, str]:
    return name.lower(), rdtype.upper()


def _rrset(name: str, rdtype: str, ttl: int, rrdatas: Sequence[str]) -> dict[str, Any]:
    return {
        "kind": "dns#resourceRecordSet",
        "name": name.lower(),
        "type": rdtype.upper(),
        "ttl": ttl,
        "rrdatas": list(rrdatas),
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        _key(a["name"], a["type"]) == _key(b["name"], b["type"])
        and int(a.get("ttl", 0)) == int(b.get("ttl", 0))
        and sorted(a.get("rrdatas", [])) == sorted(b.get("rrdatas", []))
    )


class CloudDnsZone:
    """One public managed zone: what the API changes and lists, and what its nameservers answer."""

    def __init__(
        self,
        *,
        managed_zone: str,
        dns_name: str,
        name_servers: Sequence[str],
        page_size: int,
    ) -> None:
        self.managed_zone = managed_zone
        self.dns_name = dns_name.lower()
        self.name_servers = list(name_servers)
        self.page_size = page_size
        self.pending_polls = 0
        """How many ``changes.get`` polls a new change answers ``pending`` before ``done``."""
        self.before_change: Callable[[dict[str, Any]], None] | None = None
        """Called with the body of each ``changes.create`` before it is checked: someone else's edit
        landing between cutover's read and its change."""
        self.serial = 1
        self._rrsets: dict[tuple[str, str], dict[str, Any]] = {}
        self._changes: list[dict[str, Any]] = []
        self._polls_left: dict[str, int] = {}
        self._operation_ids: set[str] = set()
        self._held: dict[tuple[str, str], dict[str, Any]] | None = None
        self.minimal_any = False
        """Answer qtype ANY minimally with a synthesised HINFO (RFC 8482 §4.2), like many public servers."""
        self.refused_types: set[str] = set()
        """Qtypes answered REFUSED."""
        self.seed(self.dns_name, "NS", 21600, self.name_servers)
        self._write_soa()

    def seed(self, name: str, rdtype: str, ttl: int, rrdatas: Sequence[str]) -> None:
        """Put an rrset into the zone directly (no change, no serial increment): the world before a test."""
        self._rrsets[_key(name, rdtype)] = _rrset(name, rdtype, ttl, rrdatas)

    def remove(self, name: str, rdtype: str) -> None:
        """Delete an rrset directly, as another tool would."""
        self._rrsets.pop(_key(name, rdtype), None)
        self._bump()

    def edit(self, name: str, rdtype: str, ttl: int, rrdatas: Sequence[str]) -> None:
        """Replace an rrset directly, as someone else's tool would (the serial moves)."""
        self.seed(name, rdtype, ttl, rrdatas)
        self._bump()

    def rrset(self, name: str, rdtype: str) -> dict[str, Any] | None:
        """The rrset the zone holds now, or None."""
        found = self._rrsets.get(_key(name, rdtype))
        return copy.deepcopy(found) if found else None

    def rrsets_at(self, name: str) -> list[dict[str, Any]]:
        """Every rrset at ``name``, sorted by type."""
        return [copy.deepcopy(r) for k, r in sorted(self._rrsets.items()) if k[0] == name.lower()]

    def changes(self) -> list[dict[str, Any]]:
        """Every change accepted so far, oldest first."""
        return copy.deepcopy(self._changes)

    def hold_nameserver(self) -> None:
        """Freeze what the nameserver answers (a lagging server) until :meth:`release_nameserver`."""
        self._held = copy.deepcopy(self._rrsets)

    def release_nameserver(self) -> None:
        """Let the nameserver answer the live zone again."""
        self._held = None

    def _write_soa(self) -> None:
        self.seed(
            self.dns_name,
            "SOA",
            21600,
            [f"ns-cloud-a1.googledomains.com. cloud-dns-hostmaster.google.com. {self.serial} 21600 3600 259200 300"],
        )

    def _bump(self) -> None:
        self.serial += 1
        self._write_soa()

    # --- API methods ---------------------------------------------------------------------------------

    def _zone_get(self, params: dict[str, str], query: dict[str, str], body: Any) -> dict[str, Any]:
        return {
            "kind": "dns#managedZone",
            "name": self.managed_zone,
            "id": "4811234567890123456",
            "dnsName": self.dns_name,
            "description": "cutover test zone",
            "nameServers": self.name_servers,
            "creationTime": "2025-01-02T03:04:05.678Z",
            "visibility": "public",
        }

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
        start = int(query.get("pageToken") or 0)
        size = min(int(query.get("maxResults") or self.page_size), self.page_size)
        end = start + size
        return items[start:end], (str(end) if end < len(items) else None)

    def _rrsets_list(self, params: dict[str, str], query: dict[str, str], body: Any) -> dict[str, Any]:
        if "type" in query and "name" not in query:
            raise ApiError(400, "invalid", "Invalid value for 'parameters.type': the name parameter is required")
        name = query.get("name", "").lower()
        items = [
            copy.deepcopy(r)
            for k, r in sorted(self._rrsets.items())
            if (not name or k[0] == name) and ("type" not in query or k[1] == query["type"].upper())
        ]
        page, token = self._page(items, query)
        result: dict[str, Any] = {"kind": "dns#resourceRecordSetsListResponse", "rrsets": page}
        if token:
            result["nextPageToken"] = token
        return result

    def _changes_create(self, params: dict[str, str], query: dict[str, str], body: Any) -> dict[str, Any]:
        if self.before_change is not None:
            self.before_change(body)
        op_id = query.get("clientOperationId")
        if op_id and op_id in self._operation_ids:
            raise ApiError(
                409, "alreadyExists", f"The resource 'entity.change' with clientOperationId '{op_id}' already exists"
            )
        deletions = body.get("deletions", [])
        additions = body.get("additions", [])
        zone = dns.name.from_text(self.dns_name)
        after = copy.deepcopy(self._rrsets)
        for index, rrset in enumerate(deletions):
            key = _key(rrset["name"], rrset["type"])
            live = after.get(key)
            if live is None:
                raise ApiError(
                    404,
                    "notFound",
                    f"The 'entity.change.deletions[{index}]' resource named '{rrset['name']} ({rrset['type']})' "
                    "does not exist.",
                )
            if not _same(live, rrset):
                raise ApiError(412, "conditionNotMet", f"Precondition not met for 'entity.change.deletions[{index}]'")
            del after[key]
        for index, rrset in enumerate(additions):
            key = _key(rrset["name"], rrset["type"])
            if not dns.name.from_text(rrset["name"]).is_subdomain(zone):
                raise ApiError(
                    400,
                    "invalid",
                    f"The resource 'entity.change.additions[{index}]' named '{rrset['name']} ({rrset['type']})' "
                    f"is not within the managed zone '{self.dns_name}'",
                )
            if key in after:
                raise ApiError(
                    409,
                    "alreadyExists",
                    f"The resource 'entity.change.additions[{index}]' named '{rrset['name']} ({rrset['type']})' "
                    "already exists",
                )
            after[key] = _rrset(rrset["name"], rrset["type"], int(rrset.get("ttl", 0)), rrset.get("rrdatas", []))
        for index, rrset in enumerate(additions):
            owner = rrset["name"].lower()
            types = {k[1] for k in after if k[0] == owner}
            if "CNAME" in types and len(types) > 1:
                raise ApiError(
                    400,
                    "invalid",
                    f"The resource 'entity.change.additions[{index}]' named '{rrset['name']} ({rrset['type']})' "
                    "is invalid because a CNAME resource record set cannot coexist with other record sets at the "
                    "same name",
                )
        self._rrsets = after
        self._bump()
        if op_id:
            self._operation_ids.add(op_id)
        change_id = str(len(self._changes) + 1)
        status = "pending" if self.pending_polls > 0 else "done"
        self._polls_left[change_id] = self.pending_polls
        change = {
            "kind": "dns#change",
            "id": change_id,
            "startTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "status": status,
            "isServing": True,
        }
        if additions:
            change["additions"] = [_rrset(r["name"], r["type"], int(r.get("ttl", 0)), r["rrdatas"]) for r in additions]
        if deletions:
            change["deletions"] = [_rrset(r["name"], r["type"], int(r.get("ttl", 0)), r["rrdatas"]) for r in deletions]
        self._changes.append(change)
        return copy.deepcopy(change)

    def _find_change(self, change_id: str) -> dict[str, Any]:
        for change in self._changes:
            if change["id"] == change_id:
                return change
        raise ApiError(404, "notFound", f"The 'parameters.changeId' resource named '{change_id}' does not exist.")

    def _changes_get(self, params: dict[str, str], query: dict[str, str], body: Any) -> dict[str, Any]:
        change = self._find_change(params["changeId"])
        if change["status"] == "pending":
            self._polls_left[change["id"]] -= 1
            if self._polls_left[change["id"]] < 0:
                change["status"] = "done"
        return copy.deepcopy(change)

    def _changes_list(self, params: dict[str, str], query: dict[str, str], body: Any) -> dict[str, Any]:
        items = copy.deepcopy(self._changes)
        if query.get("sortOrder") == "descending":
            items.reverse()
        page, token = self._page(items, query)
        result: dict[str, Any] = {"kind": "dns#changesListResponse", "changes": page}
        if token:
            result["nextPageToken"] = token
        return result

    # --- DNS -------------------------------------------------------------------------------------------

    def dns_answer(self, query: dns.message.Message) -> dns.message.Message:
        """An authoritative answer from the zone (or the held copy while the nameserver lags)."""
        response = dns.message.make_response(query)
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        zone = dns.name.from_text(self.dns_name)
        if not question.name.is_subdomain(zone):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        qtype = dns.rdatatype.to_text(question.rdtype)
        if qtype in self.refused_types:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        data = self._held if self._held is not None else self._rrsets
        owner = question.name.to_text().lower()
        at_name = {k[1]: r for k, r in data.items() if k[0] == owner}
        if qtype == "ANY" and self.minimal_any and at_name:
            response.answer.append(dns.rrset.from_text_list(owner, 3789, dns.rdataclass.IN, "HINFO", ['"RFC8482" ""']))
            return response
        if "CNAME" in at_name and qtype != "CNAME":
            chosen = [at_name["CNAME"]]
        elif qtype == "ANY":
            chosen = list(at_name.values())
        else:
            chosen = [at_name[qtype]] if qtype in at_name else []
        for rrset in chosen:
            response.answer.append(
                dns.rrset.from_text_list(owner, rrset["ttl"], dns.rdataclass.IN, rrset["type"], rrset["rrdatas"])
            )
        if not chosen:
            exists = any(k[0] == owner or k[0].endswith("." + owner) for k in data)
            if not exists:
                response.set_rcode(dns.rcode.NXDOMAIN)
            soa = data[_key(self.dns_name, "SOA")]
            minimum = int(soa["rrdatas"][0].split()[6])
            response.authority.append(
                dns.rrset.from_text_list(
                    self.dns_name, min(soa["ttl"], minimum), dns.rdataclass.IN, "SOA", soa["rrdatas"]
                )
            )
        return response
