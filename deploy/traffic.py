"""Steady client traffic through Kong for the docker-compose stack (the `traffic` service).

A cutover judges B by the requests Kong proxies after the flip (the plans' monitor needs
``min_requests`` in a window); a stack with no clients can only end as "inconclusive". This sends
``--rate`` requests per second to Kong's proxy and prints a one-line summary every ``--report``
seconds: counts per status and per backend (the runtimes' ``X-Served-By`` header).

    python deploy/traffic.py --url http://kong:8000/orders/v1/items --rate 2
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from types import FrameType


def fetch(url: str, timeout: float) -> tuple[str, str]:
    """One GET: (status or error kind, backend that served it or '-')."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return str(response.status), response.headers.get("X-Served-By", "-")
    except urllib.error.HTTPError as exc:
        return str(exc.code), exc.headers.get("X-Served-By", "-") if exc.headers else "-"
    except (urllib.error.URLError, OSError) as exc:
        return type(getattr(exc, "reason", exc)).__name__, "-"


def run(url: str, rate: float, report: float, timeout: float) -> None:
    """Send requests until SIGTERM/SIGINT, printing counts every ``report`` seconds."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    interval = 1.0 / rate
    statuses: Counter[str] = Counter()
    backends: Counter[str] = Counter()
    next_report = time.monotonic() + report
    while not stopping:
        started = time.monotonic()
        status, backend = fetch(url, timeout)
        statuses[status] += 1
        backends[backend] += 1
        if started >= next_report:
            print(f"traffic {url}: status {dict(statuses)} served by {dict(backends)}", flush=True)
            statuses.clear()
            backends.clear()
            next_report = started + report
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and send traffic."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="URL behind Kong's proxy")
    parser.add_argument("--rate", type=float, default=2.0, help="requests per second (default 2)")
    parser.add_argument("--report", type=float, default=30.0, help="seconds between summaries (default 30)")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-request timeout in seconds")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.report <= 0 or args.timeout <= 0:
        parser.error("--rate, --report and --timeout must be positive")
    run(args.url, args.rate, args.report, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
