"""Telemetry sources that say how Kong really routes traffic: file-log, Cloud Logging, Prometheus."""
