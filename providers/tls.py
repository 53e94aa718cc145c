"""TLS trust for every HTTPS client cutover builds: one place that turns a plan's CA bundle into a context.

Plans name a CA bundle file (``kong.ca_bundle``, ``readiness.ca_bundle``, ``decommission.ca_bundle``,
``monitor.source.ca_bundle``) when a server's certificate is signed by a private CA. A missing or
malformed file must stop the run with a ConfigError that names the plan field, not surface later as
a confusing handshake failure.
"""

from __future__ import annotations

import ssl

from providers.errors import ConfigError


def verify_context(ca_bundle: str | None, field: str) -> ssl.SSLContext | bool:
    """What httpx's ``verify=`` should be: a context trusting ``ca_bundle``, or True for the system roots.

    Args:
        ca_bundle: path of a PEM CA bundle, or None/empty for the system roots.
        field: the plan field that named it, e.g. ``kong.ca_bundle``, for the error message.

    Raises:
        ConfigError: the file can't be read or holds no usable certificate.
    """
    if not ca_bundle:
        return True
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except ssl.SSLError as exc:
        reason = exc.reason or type(exc).__name__
        raise ConfigError(f"{field} {ca_bundle}: cannot load it as a PEM CA bundle ({reason})") from exc
    except OSError as exc:
        # OSError's str() repeats the path; strerror says what went wrong without it.
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{field} {ca_bundle}: cannot load it ({reason})") from exc
