"""TLS trust for every HTTPS client cutover builds: one place that turns a plan's CA bundle into a context.

Plans name a CA bundle file (``kong.ca_bundle``, ``readiness.ca_bundle``, ``decommission.ca_bundle``,
``monitor.source.ca_bundle``) when a server's certificate is signed by a private CA. A missing or
malformed file must stop the run with a ConfigError that names the plan field, not surface later as
a confusing handshake failure.

Contexts are built once per bundle version and shared. Building one parses a whole CA bundle (about
20 ms of CPU for certifi's), and an httpx client given ``verify=True`` builds a new one every time:
with hundreds of cutovers on one worker, each activity paying that was a measurable share of the
worker's CPU (bench/RESULTS.md). A context is not changed once built, so sharing it is safe; a
bundle file that changes (CA rotation) is loaded again, as its key includes its mtime and size.
"""

from __future__ import annotations

import functools
import os
import ssl

import certifi

from providers.errors import ConfigError


def verify_context(ca_bundle: str | None, field: str) -> ssl.SSLContext:
    """What httpx's ``verify=`` should be: a context trusting ``ca_bundle``, or httpx's default trust.

    Args:
        ca_bundle: path of a PEM CA bundle, or None/empty for httpx's default (``SSL_CERT_FILE``,
            ``SSL_CERT_DIR``, else certifi's roots).
        field: the plan field that named it, e.g. ``kong.ca_bundle``, for the error message.

    Raises:
        ConfigError: the file can't be read or holds no usable certificate.
    """
    if not ca_bundle:
        return default_trust()
    try:
        stat = os.stat(ca_bundle)
        return _shared_context(ca_bundle, None, (stat.st_mtime_ns, stat.st_size))
    except ssl.SSLError as exc:
        reason = exc.reason or type(exc).__name__
        raise ConfigError(f"{field} {ca_bundle}: cannot load it as a PEM CA bundle ({reason})") from exc
    except OSError as exc:
        # OSError's str() repeats the path; strerror says what went wrong without it.
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{field} {ca_bundle}: cannot load it ({reason})") from exc


def default_trust() -> ssl.SSLContext:
    """Httpx's default trust (``SSL_CERT_FILE``, ``SSL_CERT_DIR``, else certifi's roots), shared."""
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if not cafile and not capath:
        cafile = certifi.where()
    return _shared_context(cafile or None, capath if not cafile else None, None)


@functools.cache
def system_context() -> ssl.SSLContext:
    """A verifying context trusting the operating system's roots, built once."""
    return ssl.create_default_context()


@functools.cache
def unverified_context() -> ssl.SSLContext:
    """A client context that checks nothing: to see which certificate a server presents, built once."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@functools.lru_cache(maxsize=32)
def _shared_context(cafile: str | None, capath: str | None, version: tuple[int, int] | None) -> ssl.SSLContext:
    """``version`` (mtime, size) is only part of the key: a changed bundle gets a new context."""
    return ssl.create_default_context(cafile=cafile, capath=capath)
