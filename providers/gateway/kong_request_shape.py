"""The Host header and SNI Kong sends to the backend once the cutover is done (kong.md §5).

Kong sends ``Host`` = ``$upstream_host`` (Service host, or the Upstream's ``host_header`` / target
name, ``:port`` appended unless default) and the same name as TLS SNI; B must accept them, so
readiness checks B with exactly this shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from models.kong import DEFAULT_PORTS, KongRequestShape, RouteInfo, UpstreamInfo, host_header_for, kong_host
from models.names import is_ip

TLS_PROTOCOLS = frozenset({"https", "grpcs", "wss", "tls"})
Strategy = Literal["cname", "alias"]


def split_target(target: str) -> tuple[str, int]:
    """An Upstream target's host and port (``host:port``, ``[v6]:port``; Kong's default port 8000)."""
    if target.startswith("["):
        host, _, port = target[1:].partition("]:")
        return host, int(port) if port.isdigit() else 8000
    host, sep, port = target.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return target, 8000


def compute_request_shape(
    service: Mapping[str, Any],
    routes: Sequence[RouteInfo],
    upstream: UpstreamInfo | None,
    *,
    strategy: Strategy,
    record: str,
) -> KongRequestShape:
    """The Host header and SNI Kong will send to B once the cutover is done (kong.md §5).

    cname strategy: Kong is untouched, so it keeps sending what it sends today (Service host, or
    the Upstream's ``host_header`` / the target named by the record). alias strategy: the Service
    host becomes the alias (the plan's record), so Kong sends the alias.
    """
    scheme = str(service.get("protocol") or "http")
    record_host = kong_host(record).lower()
    explanation: list[str] = []
    port = int(service.get("port") or DEFAULT_PORTS.get(scheme, 80))
    if strategy == "alias":
        hostname = record_host
        explanation.append(
            f"alias strategy: the Service host becomes the alias {record_host}, so Kong sends Host and SNI "
            f"{record_host} to A (right after the repoint) and to B (after the flip)."
        )
        if upstream is not None:
            explanation.append(
                f"The Service host is the Upstream {upstream.name} today; repointing it to the alias bypasses the "
                "Upstream's targets and health checks."
            )
    elif upstream is not None:
        chosen = next((t for t in upstream.targets if split_target(t.target)[0].lower() == record_host), None)
        chosen = chosen or next((t for t in upstream.targets if t.weight > 0), None)
        if chosen is not None:
            target_host, port = split_target(chosen.target)
        else:
            target_host = record_host
        if upstream.host_header:
            hostname = upstream.host_header
            explanation.append(
                f"The Service host names the Upstream {upstream.name}, whose host_header {upstream.host_header} "
                "is sent as Host and SNI for every target."
            )
        else:
            hostname = target_host
            explanation.append(
                f"The Service host names the Upstream {upstream.name} without host_header, so Kong sends the "
                f"target's name {target_host} as Host and SNI."
            )
    else:
        hostname = str(service.get("host") or "")
        explanation.append(
            f"cname strategy: Kong is untouched and keeps sending Host and SNI {hostname} (the Service host); "
            f"after the flip that name leads to B, so B must accept it."
        )
    host_header = host_header_for(hostname, port, scheme)
    if host_header != hostname:
        explanation.append(f"Port {port} is not the default for {scheme}, so Kong appends it: Host {host_header}.")
    sni = hostname.rsplit(":", 1)[0] if scheme in TLS_PROTOCOLS and not is_ip(hostname) else None
    tls_verify = service.get("tls_verify")
    if scheme in TLS_PROTOCOLS:
        if tls_verify is True:
            explanation.append(f"tls_verify=true: Kong checks B's certificate against {sni}.")
        elif tls_verify is False:
            explanation.append("tls_verify=false: Kong does not check B's certificate.")
        else:
            explanation.append(
                "tls_verify is unset: Kong defers to nginx's proxy_ssl_verify (off unless the deployment sets "
                f"nginx_proxy_proxy_ssl_verify); readiness still requires a certificate valid for {sni}."
            )
    preserved: list[str] = []
    for route in routes:
        if route.preserve_host:
            if route.hosts:
                preserved.extend(route.hosts)
                explanation.append(
                    f"Route {route.name or route.id} has preserve_host=true: requests for "
                    f"{', '.join(route.hosts)} reach B with the client's Host and SNI."
                )
            else:
                preserved.append("*")
                explanation.append(
                    f"Route {route.name or route.id} has preserve_host=true and no hosts: any client Host reaches "
                    "B unchanged."
                )
    return KongRequestShape(
        scheme=scheme,
        host_header=host_header,
        sni=sni,
        port=port,
        path=service.get("path"),
        tls_verify=tls_verify if isinstance(tls_verify, bool) else None,
        preserve_host_hosts=tuple(dict.fromkeys(preserved)),
        explanation=tuple(explanation),
    )
