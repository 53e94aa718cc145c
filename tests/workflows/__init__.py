"""Workflow tests on the time-skipping test server."""
