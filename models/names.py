"""Checks on the names, addresses and references a plan contains.

These are pure functions used by the plan's validators, so that every problem in a plan is found
before anything in the outside world is touched.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
import unicodedata
import urllib.parse
from collections import Counter

import dns.exception
import dns.name

ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
"""An environment variable name; always used with ``fullmatch`` (``$`` would let a trailing newline through)."""
PLAN_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
KONG_NAME = re.compile(r"[A-Za-z0-9._~-]{1,128}")
"""A Kong entity name or id (Kong's own rule for names: letters, digits, ``.``, ``-``, ``_``, ``~``)."""
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
"""An HTTP field name: an RFC 9110 token (no space, colon, CR or LF)."""
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "te",
        "upgrade",
        "trailer",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "idempotency-key",
        "x-cutover-signature",
    }
)
"""Header names a plan may not set: they frame the request, or cutover sets them itself."""


def has_control(text: str) -> bool:
    """True when ``text`` holds a control or format character (CR, LF, NUL, tab, zero-width, bidi...)."""
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def has_blank_or_control(text: str) -> bool:
    """True when ``text`` holds whitespace or a control character anywhere (a name never does)."""
    return any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def absolute_name(text: str) -> str:
    """Return ``text`` as an absolute, lower-case DNS name with its trailing dot.

    Raises:
        ValueError: when the text is not a syntactically valid host or zone name.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("must be a DNS name such as 'api.example.com.'")
    raw = text
    if has_blank_or_control(raw):
        raise ValueError("is not a valid DNS name: it holds whitespace or a control character (a trailing newline?)")
    try:
        name = dns.name.from_text(raw)
    except (dns.exception.DNSException, ValueError) as exc:
        raise ValueError(f"{text!r} is not a valid DNS name ({exc})") from exc
    for label in name.labels[:-1]:
        if not re.fullmatch(rb"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9])?", label):
            raise ValueError(f"{text!r} is not a valid DNS name: bad label {label.decode(errors='replace')!r}")
    if name == dns.name.root:
        raise ValueError("the root name is not allowed here")
    return name.to_text().lower()


def is_subdomain(name: str, zone: str) -> bool:
    """True when ``name`` is ``zone`` itself or below it (both absolute)."""
    return dns.name.from_text(name).is_subdomain(dns.name.from_text(zone))


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """Split ``host:port``, ``[v6]:port``, ``host`` or a bare IPv6 address.

    Raises:
        ValueError: with the reason the form is wrong.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("must be 'host:port' or 'host'")
    if has_blank_or_control(text):
        raise ValueError("'host:port' holds no whitespace or control character (a trailing newline, a space)")
    raw = text
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: missing ']' after the IPv6 address")
        host, rest = raw[1:end], raw[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':port' after ']'")
        port_text = rest[1:] if rest else ""
        ipaddress.IPv6Address(host)
    elif raw.count(":") > 1:
        ipaddress.IPv6Address(raw)
        host, port_text = raw, ""
    elif ":" in raw:
        host, port_text = raw.split(":", 1)
    else:
        host, port_text = raw, ""
    if not host:
        raise ValueError(f"{text!r}: the host is empty")
    if raw.endswith(":") and not port_text:
        raise ValueError(f"{text!r}: the port after ':' is empty (give host:port, or just the host for port 53)")
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{text!r}: the port must be a number in 1..65535")
        port = int(port_text)
    else:
        port = default_port
    try:
        ipaddress.ip_address(host)
    except ValueError:
        absolute_name(host)
    return host, port


def is_ip_name(name: str) -> bool:
    """True when a DNS name is really an IP address written as a name (``10.0.0.1.``, ``[::1]``)."""
    return is_ip(name.rstrip("."))


def is_ip(text: str) -> bool:
    """True when ``text`` is an IPv4 or IPv6 address (``[v6]`` brackets allowed), not a host name."""
    try:
        ipaddress.ip_address(text.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True


# --- URLs ----------------------------------------------------------------------------------------


def http_url_problem(text: str) -> str | None:
    """Why ``text`` is not an acceptable http(s) URL, or None. The reason never quotes the URL.

    A URL from a plan is hostile until checked: it may end in a newline, carry user info
    (``http://user@169.254.169.254/``) or a fragment, or hide its host in odd syntax. Accepted:
    ``http(s)://host[:port][/path][?query]`` where host is a DNS name, an IPv4 address or a bracketed
    IPv6 address (``https://[2001:db8::1]:8444``).
    """
    if not isinstance(text, str) or not text:
        return "must be an http(s) URL"
    if has_blank_or_control(text):
        return "a URL holds no whitespace or control character (a trailing newline, a space, CR/LF)"
    if not re.match(r"https?://", text):
        return "is not an http(s) URL: it must start with http:// or https:// (lower case)"
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        return "is not a valid http(s) URL (host or port)"
    if "@" in parts.netloc:
        return (
            "must not carry user info (user:password@host): credentials go in the worker's environment, "
            "named by an *_env field"
        )
    if parts.fragment or "#" in text:
        return "must not carry a fragment (#...)"
    netloc = parts.netloc
    host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    if host.startswith("["):
        if not host.endswith("]"):
            return "an IPv6 host goes in brackets: https://[2001:db8::1]:8444/"
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return "holds a bracketed host that is not an IPv6 address"
    elif not host:
        return "has no host"
    elif not is_ip(host):
        try:
            absolute_name(host)
        except ValueError:
            return "holds a host that is neither a DNS name nor an IP address"
    if port is not None and not 1 <= port <= 65535:
        return "the port must be in 1..65535"
    if netloc.endswith(":"):
        return "has an empty port after ':'"
    return None


def url_host(url: str) -> str:
    """The host of a checked URL, lower-case, without brackets or trailing dot."""
    return (urllib.parse.urlsplit(url).hostname or "").rstrip(".").lower()


def url_port(url: str) -> int:
    """The port of a checked URL, the scheme's default when none is given."""
    parts = urllib.parse.urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


# --- secrets -------------------------------------------------------------------------------------

_SECRET_PREFIXES = (
    "-----BEGIN",
    "ghp_",
    "gho_",
    "github_pat_",
    "xoxb-",
    "xoxp-",
    "AKIA",
    "ASIA",
    "AIza",
    "ya29.",
    "sk-",
    "glpat-",
    "kpat_",
    "spat_",
)
_B64ISH = re.compile(r"^[A-Za-z0-9+/_-]{20,}={0,2}$")


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def looks_like_secret(value: str) -> str | None:
    """Return why ``value`` looks like a literal credential, or None.

    Plans name environment variables or secret references; they never carry the secret. A false
    positive costs the user a rename, a false negative leaks a key into Temporal history forever, so
    the test leans towards refusing.
    """
    text = value.strip()
    if not text:
        return None
    for prefix in _SECRET_PREFIXES:
        if text.startswith(prefix) and len(text) > len(prefix) + 8:
            return f"starts with {prefix!r}, the prefix of a well-known credential format"
    lowered = text.lower()
    if lowered.startswith(("bearer ", "basic ", "token ")) and len(text.split()[-1]) >= 8:
        return "is an Authorization header value"
    if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
        return _secret_in_url(text)
    if any(ch.isspace() for ch in text) or text.startswith(("/", ".", "~")):
        return None
    if _B64ISH.match(text) and len(text) >= 24:
        has_upper = any(c.isupper() for c in text)
        has_lower = any(c.islower() for c in text)
        has_digit = any(c.isdigit() for c in text)
        if has_upper and has_lower and has_digit and _entropy(text) >= 3.5:
            try:
                base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if "-" in text else None)
            except (binascii.Error, ValueError):
                return "looks like a random token"
            return "looks like a base64 key"
    if re.fullmatch(r"[0-9a-fA-F]{32,}", text):
        return "looks like a hex key"
    return None


_SECRET_QUERY_KEYS = re.compile(r"(token|secret|password|passwd|key|sig|signature|auth|credential)", re.IGNORECASE)


def _secret_in_url(text: str) -> str | None:
    """A URL carries a secret in its password, a credential-named query parameter, or a key-like part."""
    parts = urllib.parse.urlsplit(text)
    if parts.password:
        return "is a URL with a password in it"
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_QUERY_KEYS.search(key) and value:
            return f"is a URL whose query parameter {key!r} carries a credential"
        if looks_like_secret(value):
            return f"is a URL whose query parameter {key!r} looks like a credential"
    for segment in parts.path.split("/"):
        reason = looks_like_secret(urllib.parse.unquote(segment))
        if reason:
            return f"is a URL with a path segment that {reason}"
    return None
