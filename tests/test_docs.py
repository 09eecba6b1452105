"""docs/scenario.md documents every field of the scenario format, and its YAML examples parse."""
from __future__ import annotations

import re

from conftest import ROOT

from twins.loader import parse_yaml
from twins.spec import Scenario

DOC = (ROOT / "docs" / "scenario.md").read_text()


def test_every_schema_field_is_documented():
    schema = Scenario.model_json_schema(by_alias=True)
    models = {"Scenario": schema, **schema["$defs"]}
    missing = [f"{model}.{field}" for model, spec in models.items() for field in spec.get("properties", {})
               if f"`{field}`" not in DOC]
    assert not missing, f"undocumented fields: {missing}"
    undocumented_models = [m for m in models if m not in DOC]
    assert not undocumented_models


def test_yaml_examples_in_the_docs_parse():
    blocks = re.findall(r"```yaml\n(.*?)```", DOC, re.S)
    assert len(blocks) >= 10
    for block in blocks:
        parse_yaml(block, "docs/scenario.md")
