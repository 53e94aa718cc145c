"""Deterministic orchestration: CutoverWorkflow and its pure helpers."""
