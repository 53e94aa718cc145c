"""Benchmarks of issue 6: scripts that start their own sandbox and print figures (see bench/RESULTS.md)."""
