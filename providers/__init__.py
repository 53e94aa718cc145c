"""Plain async I/O adapters to the outside world (DNS, Kong, telemetry, decommission); no Temporal imports."""
