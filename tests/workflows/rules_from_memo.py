"""CutoverWorkflow whose approval rules come from its memo: how the tests hand a run the policy's rules
until the worker policy's check in ``verifying`` does. A module of its own: the workflow sandbox
re-imports a workflow's module, so it imports nothing but the workflow and models (passed through)."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.approval_rules import ApprovalRules
    from models.workflow import CutoverStatus
    from workflows.cutover import CutoverWorkflow

RULES_MEMO = "test_approval_rules"


@workflow.defn(name="CutoverWorkflow")
class RulesFromMemo(CutoverWorkflow):
    """The real workflow, with ``Run.approval_rules`` read from the memo at init."""

    @workflow.init
    def __init__(self, plan: dict[str, Any]) -> None:
        super().__init__(plan)
        rules = workflow.memo().get(RULES_MEMO)
        if rules is not None:
            self._run.approval_rules = ApprovalRules.model_validate(rules)

    @workflow.run
    async def run(self, raw_plan: dict[str, Any]) -> CutoverStatus:
        """The real run."""
        return await super().run(raw_plan)
