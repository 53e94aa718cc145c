"""docs/plan.md stays in step with the plan model: every field is documented, examples validate."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel

from models.plan import CutoverPlan

DOC = Path(__file__).resolve().parents[2] / "docs" / "plan.md"


def field_names(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    seen = seen or set()
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for info in model.model_fields.values():
        for candidate in (*typing.get_args(info.annotation), info.annotation):
            for inner in (*typing.get_args(candidate), candidate):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    names |= field_names(inner, seen)
    return names


def test_every_field_is_documented():
    text = DOC.read_text()
    missing = sorted(name for name in field_names(CutoverPlan) if f"`{name}`" not in text)
    assert not missing, f"undocumented plan fields: {missing}"


def test_the_examples_validate():
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 2
    for block in blocks:
        CutoverPlan.model_validate(yaml.safe_load(block))
