"""docs/scenario.md documents every field of the scenario format, and its YAML examples parse;
the README's Python examples run as printed."""
from __future__ import annotations

import re
import subprocess
import sys

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


def test_readme_python_examples_run():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        done = subprocess.run([sys.executable, "-c", block], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"README example failed:\n{block}\n{done.stderr[-2000:]}"
