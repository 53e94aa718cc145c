"""The campaign file: many cutovers in waves, validated whole before anything starts. Pure.

A campaign names its cutovers (plan files, inline plans, or a template plan plus a table of per-API
values), cuts them into waves, and says how many may run at once, when the line stops and which
gates a human approves per wave. :meth:`Campaign.from_data` checks all of it and raises one
:class:`CampaignInvalid` listing every problem. The digests tie approvals to what was reviewed: a
plan's digest (its canonical JSON), a wave's digest (its plans' digests) and the campaign's digest.

File references are resolved outside (``cli/campaign.py`` reads them with the plan loader);
:func:`inline_files` swaps them for their contents, so the workflow only ever sees inline plans.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.durations import Duration
from models.names import PLAN_NAME, absolute_name
from models.plan import CutoverPlan
from models.policy import DESTRUCTIVE_DEFAULT

CAMPAIGN_ID_PREFIX = "campaign-"
PLAN_SUFFIXES = (".yaml", ".yml", ".json")
PerWave = Literal["flip", "decommission", "both", "none"]
_PERCENT = re.compile(r"^(\d{1,3}(?:\.\d+)?)%$")


class CampaignInvalid(ValueError):
    """A campaign that can't run; ``problems`` lists every reason, each with where it is."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(describe_campaign_problems(problems))
        self.problems = problems


def describe_campaign_problems(problems: list[str]) -> str:
    """Every problem on its own line, as ``starter.py campaign validate`` prints them."""
    return "\n".join([f"{len(problems)} problem(s):", *(f"  - {p}" for p in problems)])


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StopOn(_Section):
    """When the line stops: any criterion that trips pauses the campaign (counted since the last resume)."""

    rollbacks: int | None = Field(default=None, ge=1)
    """Stop after this many cutovers did not complete (rolled back, refused, or failed)."""
    failures: int | None = Field(default=None, ge=1)
    """Stop after this many cutovers ended ``failed`` (something was left changed)."""
    error_budget: str | None = Field(default=None, pattern=r"^\d{1,3}(\.\d+)?%$")
    """Stop when more than this share of a wave's cutovers did not complete, e.g. ``10%``."""

    def budget(self, wave_size: int) -> int | None:
        """How many cutovers of a wave of ``wave_size`` may fail before the budget trips."""
        if self.error_budget is None:
            return None
        return math.floor(float(self.error_budget[:-1]) / 100 * wave_size)


class CampaignApprovals(_Section):
    """Which gates a human approves, once per wave; the campaign approves each cutover's gate then."""

    per_wave: PerWave = "both"

    @property
    def flip(self) -> bool:
        """The wave's flips wait for ``wave-N-flip``."""
        return self.per_wave in ("flip", "both")

    @property
    def decommission(self) -> bool:
        """The wave's decommissions wait for ``wave-N-decommission``."""
        return self.per_wave in ("decommission", "both")


class CampaignSettings(_Section):
    """Everything in a campaign file besides its cutovers."""

    name: str
    waves: list[int | str | list[str]] = Field(min_length=1)
    """Sizes in order (``1``, ``"25%"``, ``rest`` last), or lists of plan names."""
    max_in_flight: int = Field(default=1, ge=1, le=1000)
    stop_on: StopOn = StopOn(rollbacks=1)
    approvals: CampaignApprovals = CampaignApprovals()
    pause_between_waves: Duration | None = None
    """A soak time between the end of a wave and the start of the next."""
    on_stop: Literal["finish", "abort"] = "finish"
    """When the line stops: let the cutovers in flight finish, or abort those before their point of no return."""
    poll_interval: Duration = timedelta(seconds=15)
    """How often the campaign reads the phases of its cutovers in flight."""


_CUTOVER_KEYS = ("plans", "template", "table")


# --- files ---------------------------------------------------------------------------------------


def file_references(data: Any) -> list[str]:
    """The plan files a campaign names (``plans`` entries and ``template`` that are strings), in order."""
    if not isinstance(data, dict):
        return []
    plans = data.get("plans")
    refs = [p for p in plans if isinstance(p, str)] if isinstance(plans, list) else []
    if isinstance(data.get("template"), str):
        refs.append(data["template"])
    return list(dict.fromkeys(refs))


def reference_problem(reference: str) -> str | None:
    """Why a plan file reference is refused, or None: relative, below the campaign file, YAML or JSON.

    A campaign file may come from a review tool or a shared repository: it can name the plans next to
    it, not any file the operator can read (whose content would end up in workflow history).
    """
    if not reference or reference.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", reference):
        return f"{reference!r}: name plan files relative to the campaign file"
    normal = posixpath.normpath(reference.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        return f"{reference!r} is outside the campaign file's directory: keep plans next to it or below it"
    if not normal.endswith(PLAN_SUFFIXES):
        return f"{reference!r}: a plan file ends in {', '.join(PLAN_SUFFIXES)}"
    return None


def inline_files(data: Any, loaded: Mapping[str, Any]) -> Any:
    """``data`` with every file reference replaced by the file's parsed content (``loaded[reference]``)."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    if isinstance(out.get("plans"), list):
        out["plans"] = [loaded.get(p, p) if isinstance(p, str) else p for p in out["plans"]]
    if isinstance(out.get("template"), str):
        out["template"] = loaded.get(out["template"], out["template"])
    return out


# --- the validated campaign ----------------------------------------------------------------------


def canonical_digest(value: Any) -> str:
    """sha256 of canonical JSON: the same data in any key order has the same digest."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def kong_service_key(plan: CutoverPlan) -> str:
    """One Kong Service, however its Admin URL is spelled: two cutovers on it must not run at once."""
    admin = plan.kong.admin_url.rstrip("/").lower()
    return f"{admin}|{plan.kong.workspace or 'default'}|{plan.kong.service}"


@dataclass(frozen=True)
class Campaign:
    """A campaign that validated: effective plans in order, waves as names, and its digests."""

    settings: CampaignSettings
    plans: tuple[CutoverPlan, ...]
    """As the campaign runs them: each plan's gates set from ``approvals.per_wave``."""
    waves: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    """What validation wants the operator to know without refusing (e.g. cutovers run one after another)."""

    @property
    def name(self) -> str:
        """The campaign's name; its workflow id is ``campaign-<name>``."""
        return self.settings.name

    @property
    def workflow_id(self) -> str:
        """``campaign-<name>``."""
        return CAMPAIGN_ID_PREFIX + self.settings.name

    def plan(self, name: str) -> CutoverPlan:
        """The effective plan called ``name``."""
        return next(p for p in self.plans if p.name == name)

    def plan_digests(self) -> dict[str, str]:
        """Plan name -> digest of the effective plan (what its cutover's gates are approved with)."""
        return {p.name: p.digest() for p in self.plans}

    def wave_digest(self, number: int) -> str:
        """The digest of wave ``number`` (1-based): the campaign, the wave, and its plans' digests in order."""
        digests = self.plan_digests()
        names = self.waves[number - 1]
        return canonical_digest({"campaign": self.name, "wave": number, "plans": [[n, digests[n]] for n in names]})

    def digest(self) -> str:
        """The campaign's digest: its settings and every wave's digest."""
        settings = self.settings.model_dump(mode="json", exclude={"waves"})
        return canonical_digest(
            {"settings": settings, "waves": [self.wave_digest(i) for i in range(1, len(self.waves) + 1)]}
        )

    def resources(self, name: str) -> tuple[str, str]:
        """What a cutover holds while it runs: its record and its Kong Service."""
        plan = self.plan(name)
        return (f"record {plan.dns.record}", f"Kong Service {kong_service_key(plan)}")

    @classmethod
    def from_data(cls, data: Any, sources: Mapping[int, str] | None = None) -> Campaign:
        """Validate a campaign with inline plans; raise :class:`CampaignInvalid` with every problem.

        ``sources`` names the file each entry of ``plans`` came from, for the problem messages.
        """
        problems: list[str] = []
        if not isinstance(data, dict):
            raise CampaignInvalid(["(campaign): must be a mapping with name, plans and waves"])
        settings = _settings(data, problems)
        per_wave: PerWave = settings.approvals.per_wave if settings else "both"
        entries = _plans(data, sources or {}, per_wave, problems)
        plans = [plan for _, plan in entries if plan is not None]
        problems += _duplicates(plans)
        waves: list[list[str]] = []
        raw_waves = settings.waves if settings is not None else data.get("waves")
        if isinstance(raw_waves, list) and raw_waves and entries:
            waves = assign_waves(raw_waves, [name for name, _ in entries], problems)
        if problems or settings is None:
            raise CampaignInvalid(problems or ["(campaign): invalid"])
        return cls(settings=settings, plans=tuple(plans), waves=tuple(map(tuple, waves)), notes=_notes(plans))


def _settings(data: dict[str, Any], problems: list[str]) -> CampaignSettings | None:
    rest = {k: v for k, v in data.items() if k not in _CUTOVER_KEYS}
    settings = None
    try:
        settings = CampaignSettings.model_validate(rest)
    except ValidationError as exc:
        problems += [f"{'.'.join(map(str, e['loc'])) or '(campaign)'}: {e['msg']}" for e in exc.errors()]
    name = data.get("name")
    if isinstance(name, str) and not PLAN_NAME.match(name):
        problems.append("name: must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'")
    if settings is not None and settings.stop_on == StopOn():
        problems.append("stop_on: give at least one of rollbacks, failures, error_budget (100% never stops)")
    return settings


def _plans(
    data: dict[str, Any], sources: Mapping[int, str], per_wave: PerWave, problems: list[str]
) -> list[tuple[str, CutoverPlan | None]]:
    """Every cutover in order: its name (or where it is) and its effective plan, None when it doesn't validate."""
    entries: list[tuple[str, Any]] = []
    plans, template, table = data.get("plans", []), data.get("template"), data.get("table", [])
    if not isinstance(plans, list):
        problems.append("plans: must be a list of plan files or inline plans")
        plans = []
    for index, plan in enumerate(plans):
        label = f"plans.{index}" + (f" ({sources[index]})" if index in sources else "")
        if isinstance(plan, str):
            problems.append(f"{label}: {plan!r} was not read (inline it: starter.py campaign validate --json)")
        entries.append((label, plan))
    if not isinstance(table, list):
        problems.append("table: must be a list of rows (mappings of plan fields to values)")
        table = []
    if table and not isinstance(template, dict):
        problems.append("template: the table needs a template plan (a file name or an inline plan)")
    elif template is not None and not table:
        problems.append("table: a template needs a table with one row per API")
    elif isinstance(template, dict):
        for index, row in enumerate(table):
            plan_data, problem = fill_template(template, row)
            named = isinstance(row, dict) and isinstance(row.get("name"), str)
            label = f"table.{index}" + (f" ({row['name']})" if named else "")
            if problem:
                problems.append(f"{label}: {problem}")
            entries.append((label, None if problem else plan_data))
    if not plans and not table:
        problems.append("plans: a campaign needs at least one cutover (plans, or template and table)")
    out: list[tuple[str, CutoverPlan | None]] = []
    for label, plan_data in entries:
        raw_name = plan_data.get("name") if isinstance(plan_data, dict) else None
        name = raw_name if isinstance(raw_name, str) else label
        if plan_data is None or isinstance(plan_data, str):
            out.append((name, None))
            continue
        try:
            plan = CutoverPlan.model_validate(plan_data)
        except ValidationError as exc:
            problems += [f"{label}: {'.'.join(map(str, e['loc'])) or '(plan)'}: {e['msg']}" for e in exc.errors()]
            out.append((name, None))
            continue
        if plan.dry_run:
            problems.append(
                f"{label}: dry_run is not allowed in a campaign (starter.py campaign plan dry-runs them all)"
            )
        out.append((plan.name, effective_plan(plan, per_wave)))
    return out


def fill_template(template: dict[str, Any], row: Any) -> tuple[dict[str, Any], str | None]:
    """The template with one table row applied: ``dns.record: x`` or nested mappings, merged in."""
    if not isinstance(row, dict) or not isinstance(row.get("name"), str):
        return {}, "each row is a mapping that sets at least 'name'"
    plan = copy.deepcopy(template)
    for key, value in row.items():
        path = str(key).split(".")
        if any(not part for part in path):
            return {}, f"{key!r}: not a field path like 'dns.record'"
        target = plan
        for part in path[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                return {}, f"{key!r}: the template's {part!r} is not a mapping"
            target = child
        leaf = path[-1]
        if isinstance(value, dict) and isinstance(target.get(leaf), dict):
            target[leaf] = _merged(target[leaf], value)
        else:
            target[leaf] = copy.deepcopy(value)
    return plan, None


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def effective_plan(plan: CutoverPlan, per_wave: PerWave) -> CutoverPlan:
    """The plan as the campaign runs it: its gates are the campaign's (timeout and on_timeout kept).

    A decommission that deletes A (``gcp-project``) keeps both gates whatever ``per_wave`` says: the
    rule that forces them (docs/security.md) binds campaigns too. A gate the campaign has no wave gate
    for is then approved by a human on the cutover itself.
    """
    approvals = CampaignApprovals(per_wave=per_wave)
    destructive = plan.decommission.kind in DESTRUCTIVE_DEFAULT
    gates = plan.approvals.model_copy(
        update={"flip": approvals.flip or destructive, "decommission": approvals.decommission or destructive}
    )
    return plan.model_copy(update={"approvals": gates})


def _duplicates(plans: list[CutoverPlan]) -> list[str]:
    """Two cutovers of one name (one workflow id) or of one record: refused, wherever they are."""
    problems = []
    seen_names: dict[str, int] = {}
    seen_records: dict[str, str] = {}
    for plan in plans:
        seen_names[plan.name] = seen_names.get(plan.name, 0) + 1
        record = absolute_name(plan.dns.record)
        if record in seen_records and seen_records[record] != plan.name:
            problems.append(
                f"{plan.name}: the record {record} is also cut over by {seen_records[record]}: "
                "a record moves once per campaign"
            )
        seen_records.setdefault(record, plan.name)
    problems += [
        f"{n}: {count} plans have this name (workflow id cutover-{n})" for n, count in seen_names.items() if count > 1
    ]
    return problems


def _notes(plans: list[CutoverPlan]) -> tuple[str, ...]:
    shared: dict[str, list[str]] = {}
    for plan in plans:
        shared.setdefault(kong_service_key(plan), []).append(plan.name)
    return tuple(
        f"{', '.join(names)} share Kong Service {key.split('|')[-1]}: they run one after another"
        for key, names in shared.items()
        if len(names) > 1
    )


# --- waves ---------------------------------------------------------------------------------------


def assign_waves(waves: list[Any], names: list[str], problems: list[str]) -> list[list[str]]:
    """Plan names per wave, from explicit lists or from sizes taken in order; problems appended."""
    lists = [w for w in waves if isinstance(w, list)]
    if lists and len(lists) != len(waves):
        problems.append("waves: either every wave is a list of plan names, or every wave is a size")
        return []
    if lists:
        return _explicit_waves(lists, names, problems)
    out: list[list[str]] = []
    position = 0
    for index, size in enumerate(waves):
        if size == "rest":
            if index != len(waves) - 1:
                problems.append(f"waves.{index}: rest takes every plan left, so it must be the last wave")
                return []
            if position < len(names):
                out.append(names[position:])
            position = len(names)
            continue
        count = _wave_size(size, len(names))
        if count is None:
            problems.append(f"waves.{index}: {size!r} is not a size: use a number, a share like '25%', or rest")
            continue
        taken = names[position : position + count]
        if not taken:
            problems.append(f"waves.{index} ({size}) gets no plan: the waves before it take all {len(names)}")
            continue
        out.append(taken)
        position += len(taken)
    if position < len(names) and not problems:
        left = names[position:]
        problems.append(f"waves: {len(left)} plan(s) are in no wave ({', '.join(left[:5])}...): end with rest")
    return out


def _wave_size(size: Any, total: int) -> int | None:
    if isinstance(size, bool) or not isinstance(size, int | str):
        return None
    if isinstance(size, int):
        return size if size >= 1 else None
    match = _PERCENT.match(size)
    if match is None or not 0 < float(match.group(1)) <= 100:
        return None
    return max(1, math.ceil(float(match.group(1)) / 100 * total))


def _explicit_waves(waves: list[list[str]], names: list[str], problems: list[str]) -> list[list[str]]:
    known = set(names)
    placed: dict[str, int] = {}
    for index, wave in enumerate(waves):
        if not wave:
            problems.append(f"waves.{index}: an empty wave")
        for name in wave:
            if not isinstance(name, str):
                problems.append(f"waves.{index}: {name!r} is not a plan name")
            elif name not in known:
                problems.append(f"waves.{index}: {name!r} is not the name of a plan of this campaign")
            elif name in placed:
                problems.append(f"waves.{index}: {name} is already in wave {placed[name] + 1}")
            else:
                placed[name] = index
    # An entry without a readable name is listed by where it is ("plans.3"), and already has its problem.
    missing = [n for n in names if n not in placed and "." not in n]
    if missing:
        problems.append(f"waves: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} in no wave")
    return [list(w) for w in waves]
