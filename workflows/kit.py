"""The tools every phase of a run uses, built once per run: its state and the runners over it."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.dns_steps import DnsSteps
    from workflows.saga import Saga
    from workflows.state import Run
    from workflows.steps import Steps


@dataclass(frozen=True)
class Kit:
    """``run`` is the state; ``steps`` runs activities and timers; ``dns`` changes DNS; ``saga`` holds the undos."""

    run: Run
    steps: Steps
    dns: DnsSteps
    saga: Saga

    @classmethod
    def for_run(cls, run: Run) -> Kit:
        """Wire the runners over one run's state."""
        steps = Steps(run)
        dns = DnsSteps(steps)
        return cls(run=run, steps=steps, dns=dns, saga=Saga(dns))
