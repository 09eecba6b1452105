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


def doc_tables(doc: str) -> dict[str, list[list[str]]]:
    """Heading (its first word: ``## Scenario (top level)`` → ``Scenario``) → the rows of the first
    table under it, each row as its cells with the backticks removed."""
    tables: dict[str, list[list[str]]] = {}
    heading = None
    for line in doc.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").split()[0] if line.lstrip("#").strip() else None
        elif line.startswith("|") and heading is not None and not set(line) <= set("|-: "):
            cells = [c.strip().replace("`", "") for c in line.strip().strip("|").split("|")]
            rows = tables.setdefault(heading, [])
            if rows is not None and cells[0] not in ("field", "dist"):
                rows.append(cells)
        elif heading in tables and not line.startswith("|") and line.strip():
            heading = None  # text after the table: the section's table is complete
    return tables


def test_every_schema_field_has_its_own_row_in_its_models_table():
    schema = Scenario.model_json_schema(by_alias=True)
    models = {"Scenario": schema, **schema["$defs"]}
    tables = doc_tables(DOC)
    families = {row[0]: row[1] for row in tables.get("Distributions", [])}
    problems = []
    for model, spec in models.items():
        fields = list(spec.get("properties", {}))
        family = spec.get("properties", {}).get("dist", {}).get("const")
        if family is not None:  # a distribution: its row in the Distributions table lists its fields
            listed = {f.strip() for f in families.get(family, "").split(",")} - {""}
            if listed != set(fields) - {"dist"}:
                problems.append(f"Distributions row {family!r} lists {sorted(listed)}, the model has {fields}")
            continue
        if model not in tables:
            problems.append(f"no section with a field table for {model}")
            continue
        rows = [row[0] for row in tables[model]]
        missing = [f for f in fields if f not in rows]
        stale = [r for r in rows if r not in fields]
        duplicated = sorted({r for r in rows if rows.count(r) > 1})
        if missing or stale or duplicated:
            problems.append(f"{model}: missing rows {missing}, rows for no field {stale}, duplicated {duplicated}")
    assert not problems, "\n".join(problems)


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
