"""Parse a plan or policy file (YAML or JSON) that may be hostile, with one clear error per problem.

A plan comes from whoever can start a run; a YAML parser given it unchecked lets it cost the reader
dearly: an alias bomb (a few lines whose aliases expand to 10^6 leaves) took 75 s of CPU before an
error, a 5,000-deep nesting crashed with a RecursionError traceback, a duplicate key silently kept
its last value. Here the document is first read as an event stream (PyYAML's parser is a state
machine, not recursive) counting nesting depth, anchors and aliases, and refused past small caps;
only then is it built, with duplicate keys refused. JSON gets the same caps (a depth pre-scan, and
duplicates through ``object_pairs_hook``). Every error says what and where (line), never quoting a
value, which could be a secret pasted in the wrong place.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

MAX_BYTES = 256 * 1024
"""A plan is about 3 KiB and a policy a few more; 256 KiB is far above any real one."""
MAX_DEPTH = 32
"""Deepest nesting of mappings and lists (a plan nests 4 deep)."""
MAX_ALIASES = 20
"""Anchors and aliases together: enough to share a block or two, far too few for an alias bomb."""


class InputFileError(ValueError):
    """The file is not an acceptable document; the message says why and where, without quoting values."""


def parse_document(data: bytes, name: str) -> Any:
    """The plain data (dicts, lists, scalars) of a YAML or JSON document, after every cap is checked.

    Args:
        data: the file's bytes (the caller reads at most ``MAX_BYTES + 1``).
        name: the file name, shown in errors; ``.json`` selects JSON, anything else YAML.

    Raises:
        InputFileError: too big, not UTF-8, too deep, too many anchors/aliases, duplicate key, several
            documents, or a syntax error.
    """
    if len(data) > MAX_BYTES:
        raise InputFileError(f"{name} is larger than {MAX_BYTES // 1024} KiB: a plan or policy is a few KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{name} is not UTF-8 text (byte {exc.start})") from None
    if name.endswith(".json"):
        return _parse_json(text, name)
    return _parse_yaml(text, name)


# --- YAML ----------------------------------------------------------------------------------------


def _line(mark: Any) -> str:
    return f"line {mark.line + 1}" if mark is not None else "somewhere"


def _scan_yaml(text: str, name: str) -> None:
    """Walk the event stream once: refuse deep nesting, anchors/aliases past the cap, several documents."""
    depth = 0
    shared = 0
    documents = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise InputFileError(f"{name}: {_line(event.start_mark)}: a second YAML document; give one")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise InputFileError(
                        f"{name}: {_line(event.start_mark)}: nested more than {MAX_DEPTH} levels deep "
                        "(a plan nests 4 deep)"
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                shared += 1
                if shared > MAX_ALIASES:
                    raise InputFileError(
                        f"{name}: {_line(event.start_mark)}: more than {MAX_ALIASES} YAML anchors and aliases "
                        "(&name, *name): write the values out"
                    )
    except yaml.YAMLError as exc:
        raise InputFileError(f"{name} is not valid YAML: {_yaml_reason(exc)}") from None


def _yaml_reason(exc: yaml.YAMLError) -> str:
    """PyYAML's problem and line, without the snippet of the document it quotes."""
    if isinstance(exc, yaml.MarkedYAMLError):
        where = _line(exc.problem_mark or exc.context_mark)
        return f"{where}: {exc.problem or exc.context or type(exc).__name__}"
    return type(exc).__name__


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                raise InputFileError(f"{_line(key_node.start_mark)}: a mapping key must be a plain value") from None
            if first is not None:
                raise InputFileError(
                    f"{_line(key_node.start_mark)}: duplicate key {_shown_key(key)} (first at line {first}): YAML "
                    "would silently keep the last one"
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _shown_key(key: Any) -> str:
    """A key is shown when it looks like a field name, never an arbitrary value (it could be a secret)."""
    text = str(key)
    return repr(text) if text.isidentifier() and len(text) <= 40 else "(a key, not shown)"


def _parse_yaml(text: str, name: str) -> Any:
    # Flow nesting first, by counting brackets: PyYAML's scanner looks ahead across a whole flow
    # collection (quadratic in its depth: 0.2 s for 5,000 levels) before the event scan could stop it.
    problem = _bracket_depth_problem(text, yaml_syntax=True)
    if problem:
        raise InputFileError(f"{name}: {problem}")
    _scan_yaml(text, name)
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: plain data only
    except InputFileError as exc:
        raise InputFileError(f"{name}: {exc}") from None
    except yaml.YAMLError as exc:
        raise InputFileError(f"{name} is not valid YAML: {_yaml_reason(exc)}") from None


# --- JSON ----------------------------------------------------------------------------------------


def _bracket_depth_problem(text: str, *, yaml_syntax: bool = False) -> str | None:
    """Where bracket nesting first exceeds the cap, scanning characters outside strings (no recursion).

    For YAML, single-quoted strings and comments are skipped too; a bracket inside a plain scalar
    may be counted, which only matters past 32 unclosed ones.
    """
    depth = 0
    quote: str | None = None
    escaped = in_comment = False
    line = 1
    previous = "\n"
    for ch in text:
        if ch == "\n":
            line += 1
            in_comment = False
        if in_comment:
            pass
        elif quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
        elif ch == '"' or (yaml_syntax and ch == "'"):
            quote = ch
        elif yaml_syntax and ch == "#" and previous.isspace():
            in_comment = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return f"line {line}: nested more than {MAX_DEPTH} levels deep (a plan nests 4 deep)"
        elif ch in "]}":
            depth -= 1
        previous = ch
    return None


def _refuse_constant(constant: str) -> Any:
    raise InputFileError(f"{constant} is not a JSON number cutover accepts")


def _parse_json(text: str, name: str) -> Any:
    problem = _bracket_depth_problem(text)
    if problem:
        raise InputFileError(f"{name}: {problem}")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise InputFileError(f"duplicate key {_shown_key(key)}: JSON parsers would silently keep the last one")
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=_refuse_constant)
    except InputFileError as exc:
        raise InputFileError(f"{name}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{name} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
