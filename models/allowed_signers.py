"""OpenSSH ``allowed_signers`` lines (ssh-keygen(1), ALLOWED SIGNERS), read the way ``ssh-keygen -Y verify`` reads them.

A line is ``principals [options] keytype base64-key [comment]``: ``principals`` is a comma-separated
list of patterns (``*``, ``?``, ``!negation``) matched against the identity the approver claims;
``options`` are ``namespaces="p1,p2"`` (patterns the signature namespace must match),
``valid-after="YYYYMMDD[HHMM[SS]]Z"`` and ``valid-before=...``. Unlike ssh-keygen, a time must end
in ``Z`` (UTC): ssh-keygen reads a bare one in the verifying machine's local time, which a policy
author can't know. ``cert-authority`` lines (SSH certificates) and security-key types are refused
with a clear problem instead of being silently skipped.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from models.approval_signature import KEY_TYPES, SignatureError, load_public_key

_KNOWN_UNSUPPORTED = (
    "ssh-dss",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
_TIME = re.compile(r"(\d{8})(\d{4})?(\d{2})?(Z?)", re.IGNORECASE)


@dataclass(frozen=True)
class AllowedSigner:
    """One usable line of an allowed_signers list."""

    principals: str
    """The comma-separated principal patterns, as written."""
    key_blob: bytes
    namespaces: str | None = None
    valid_after: datetime | None = None
    valid_before: datetime | None = None
    line: int = 0


def match_pattern(text: str, pattern: str) -> bool:
    """OpenSSH's ``match_pattern``: ``*`` any run of characters, ``?`` one, everything else literal."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def match_pattern_list(text: str, patterns: str) -> bool:
    """OpenSSH's ``match_pattern_list`` (case-sensitive): a positive match and no negated one."""
    matched = False
    for pattern in patterns.split(","):
        if pattern.startswith("!"):
            if match_pattern(text, pattern[1:]):
                return False
        elif match_pattern(text, pattern):
            matched = True
    return matched


def _tokens(line: str) -> list[str]:
    """Whitespace-separated tokens; a double-quoted run (backslash-escaped quotes too) stays in its token."""
    tokens: list[str] = []
    current, quoted, escaped = "", False, False
    for c in line:
        if escaped:
            current, escaped = current + c, False
        elif c == "\\" and quoted:
            current, escaped = current + c, True
        elif c == '"':
            current, quoted = current + c, not quoted
        elif c in " \t" and not quoted:
            if current:
                tokens.append(current)
            current = ""
        else:
            current += c
    if quoted:
        raise ValueError("unterminated quote")
    if current:
        tokens.append(current)
    return tokens


def _unquote(value: str) -> str:
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        raise ValueError("option value must be double-quoted")
    return value[1:-1].replace('\\"', '"')


def _split_options(text: str) -> list[str]:
    parts, current, quoted = [], "", False
    for c in text:
        if c == '"':
            quoted = not quoted
        if c == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += c
    parts.append(current)
    return parts


def _parse_time(value: str, name: str) -> datetime:
    match = _TIME.fullmatch(value)
    if not match:
        raise ValueError(f"{name}={value!r} is not YYYYMMDD[HHMM[SS]]Z")
    if not match.group(4):
        raise ValueError(f"{name}={value!r} has no Z: write the time in UTC with a trailing Z")
    day, hm, s = match.group(1), match.group(2) or "0000", match.group(3) or "00"
    try:
        return datetime.strptime(day + hm + s, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a valid date") from None


def _parse_options(text: str) -> dict[str, object]:
    found: dict[str, object] = {}
    for option in _split_options(text):
        name, sep, value = option.partition("=")
        name = name.lower()
        if name in found:
            raise ValueError(f"option {name} given twice")
        if name == "cert-authority" and not sep:
            raise ValueError("cert-authority (SSH certificates) is not supported: list each signer's own key")
        if not sep or name not in ("namespaces", "valid-after", "valid-before"):
            raise ValueError(f"unknown option {option.split('=')[0]!r} (namespaces, valid-after, valid-before)")
        found[name] = _unquote(value) if name == "namespaces" else _parse_time(_unquote(value), name)
    after, before = found.get("valid-after"), found.get("valid-before")
    if isinstance(after, datetime) and isinstance(before, datetime) and before <= after:
        raise ValueError("valid-before is not after valid-after")
    return found


def parse_line(line: str, number: int = 0) -> AllowedSigner | None:
    """One line; None for a blank or comment line.

    Raises:
        ValueError: the line is malformed or uses something unsupported; the message says what.
    """
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    tokens = _tokens(line.strip())
    if len(tokens) < 3:
        raise ValueError("expected: principals [options] keytype base64-key [comment]")
    principals = tokens[0].strip('"')
    if not principals or any(not p.lstrip("!") for p in principals.split(",")):
        raise ValueError("empty principal pattern")
    rest = tokens[1:]
    options: dict[str, object] = {}
    if rest[0] not in KEY_TYPES and rest[0] not in _KNOWN_UNSUPPORTED and not rest[0].endswith("-cert-v01@openssh.com"):
        options = _parse_options(rest[0])
        rest = rest[1:]
    if len(rest) < 2:
        raise ValueError("missing key: expected keytype base64-key after the principals and options")
    kind, encoded = rest[0], rest[1]
    if kind not in KEY_TYPES:
        raise ValueError(f"key type {kind!r} is not supported (use one of {', '.join(KEY_TYPES)})")
    try:
        blob = base64.b64decode(encoded, validate=True)
        load_public_key(blob)
    except (binascii.Error, ValueError, SignatureError):
        raise ValueError(f"the {kind} key is not valid base64 of a {kind} public key") from None
    if not blob.startswith(len(kind).to_bytes(4, "big") + kind.encode()):
        raise ValueError(f"the key's blob is not a {kind} key")
    namespaces = options.get("namespaces")
    after, before = options.get("valid-after"), options.get("valid-before")
    return AllowedSigner(
        principals=principals,
        key_blob=blob,
        namespaces=namespaces if isinstance(namespaces, str) else None,
        valid_after=after if isinstance(after, datetime) else None,
        valid_before=before if isinstance(before, datetime) else None,
        line=number,
    )


def line_problems(lines: tuple[str, ...]) -> list[str]:
    """Every malformed line, numbered from 1 (for the policy's one clear error)."""
    problems = []
    for number, line in enumerate(lines, 1):
        try:
            parse_line(line, number)
        except ValueError as exc:
            problems.append(f"allowed_signers line {number}: {exc}")
    return problems


@functools.lru_cache(maxsize=32)
def parse_lines(lines: tuple[str, ...]) -> tuple[AllowedSigner, ...]:
    """The usable lines (malformed ones are left out here; :func:`line_problems` reports them)."""
    signers = []
    for number, line in enumerate(lines, 1):
        try:
            signer = parse_line(line, number)
        except ValueError:
            continue
        if signer is not None:
            signers.append(signer)
    return tuple(signers)


def find_signer(
    lines: tuple[str, ...], principal: str, key_blob: bytes, namespace: str, at: datetime
) -> tuple[AllowedSigner | None, str | None]:
    """The line that lets ``key_blob`` sign as ``principal`` in ``namespace`` at ``at``, or why none does.

    The same decision as ``ssh-keygen -Y verify -I principal -n namespace``: a line whose principal
    patterns match and whose key is the signer's, with its namespaces and validity window respected.
    """
    named = [s for s in parse_lines(lines) if match_pattern_list(principal, s.principals)]
    if not named:
        return None, f"{principal!r} is not an allowed signer"
    same_key = [s for s in named if s.key_blob == key_blob]
    if not same_key:
        return None, f"the signing key is not the key of {principal!r} in the allowed signers"
    reasons = []
    for signer in same_key:
        if signer.namespaces is not None and not match_pattern_list(namespace, signer.namespaces):
            reasons.append(f"line {signer.line}: the key may not sign in namespace {namespace!r}")
        elif signer.valid_after is not None and at < signer.valid_after:
            reasons.append(f"line {signer.line}: the key is valid only after {signer.valid_after:%Y-%m-%d %H:%M} UTC")
        elif signer.valid_before is not None and at > signer.valid_before:
            reasons.append(f"line {signer.line}: the key expired at {signer.valid_before:%Y-%m-%d %H:%M} UTC")
        else:
            return signer, None
    return None, "; ".join(reasons)
