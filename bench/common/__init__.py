"""What every benchmark shares: machine facts, a quiet machine, timed runs, gate approval, DNS watching.

The benchmarks drive the sandbox (sandbox/topology/) as the demo does: one ``Topology`` per
measurement on free ports in its own temporary directory, cutovers started exactly as
``python starter.py start`` starts them, gates approved through the ``approve`` update. Every
address is on 127.0.0.0/8.
"""

from __future__ import annotations

from bench.common.dns_watch import DnsWatcher, describe_answer, resolved_addresses
from bench.common.fleet import DecommissionSink, seed_kong_services
from bench.common.gates import APPROVER, GATE_PHASES, PHASE, GateApprover, normalised_reason
from bench.common.output import (
    EXIT_ERROR,
    PRODUCT_PATHS,
    BenchError,
    common_arguments,
    load_average,
    machine_facts,
    package_version,
    print_facts,
    quiet_start,
    run_main,
    say,
    stop_loop,
    wait_for_quiet,
    write_json,
    write_report,
)
from bench.common.procstats import (
    RssSampler,
    component_cpu,
    cpu_seconds,
    machine_busy_share,
    machine_cpu,
    proc_status_kib,
)
from bench.common.runs import (
    TimedRun,
    await_timed,
    bench_topology,
    dry_run,
    event_rows,
    require_completed,
    run_timed,
    settings_for,
    start_timed,
    utc_now,
)

__all__ = [
    "APPROVER",
    "EXIT_ERROR",
    "GATE_PHASES",
    "PHASE",
    "PRODUCT_PATHS",
    "BenchError",
    "DecommissionSink",
    "DnsWatcher",
    "GateApprover",
    "RssSampler",
    "TimedRun",
    "await_timed",
    "bench_topology",
    "common_arguments",
    "component_cpu",
    "cpu_seconds",
    "describe_answer",
    "dry_run",
    "event_rows",
    "load_average",
    "machine_busy_share",
    "machine_cpu",
    "machine_facts",
    "normalised_reason",
    "package_version",
    "print_facts",
    "proc_status_kib",
    "quiet_start",
    "require_completed",
    "resolved_addresses",
    "run_main",
    "run_timed",
    "say",
    "seed_kong_services",
    "settings_for",
    "start_timed",
    "stop_loop",
    "utc_now",
    "wait_for_quiet",
    "write_json",
    "write_report",
]
