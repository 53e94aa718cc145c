"""Deterministic orchestration: CutoverWorkflow, its lock, CampaignWorkflow, and their pure helpers.

Imports nothing: the sandbox re-runs this file for every workflow instance. What a worker registers
is ``workflows.registry.WORKFLOWS``.
"""
