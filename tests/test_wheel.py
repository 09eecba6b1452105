"""A built wheel is a complete twinopt: it carries the shipped scenarios, instances and policies,
and, unpacked away from this checkout, ``twinopt run smt_line`` works from it alone."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

#: what the checkout holds besides the packages; none of it belongs in (or is needed for) the wheel
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", "*.egg-info", "build", "dist", "out",
                                    "runs", "tests", "notebooks", "benchmarks", ".pytest_cache", ".hypothesis")

#: prints where the unpacked twinopt finds its code and data
WHERE = """
import json, twins, studio, scenarios
from twins.shipped import scenario_path
from twins.jobshop.instances import load_instance
from optimizers.rl.dispatch import SHIPPED_POLICY
print(json.dumps({"twins": twins.__file__, "studio": studio.__file__, "scenarios": scenarios.__file__,
                  "smt_line": str(scenario_path("smt_line")), "policy": str(SHIPPED_POLICY),
                  "policy_exists": SHIPPED_POLICY.is_file(), "ft06_optimum": load_instance("ft06").bounds.optimum}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the checkout, so the build leaves nothing behind in it."""
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, tmp / "src", ignore=NOT_SOURCE)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-cache-dir", "-q", "-w", str(tmp / "dist"), str(tmp / "src")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (built,) = (tmp / "dist").glob("twinopt-*.whl")
    return built


def test_the_wheel_carries_the_shipped_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(p.relative_to(ROOT).as_posix() for pattern in ("scenarios/*.yaml", "scenarios/instances/**/*")
                     for p in ROOT.glob(pattern) if p.is_file())
    assert "scenarios/smt_line.yaml" in shipped and "scenarios/instances/jssp/bounds.json" in shipped
    assert set(shipped) <= names, sorted(set(shipped) - names)
    for folder in ("jssp", "pfsp", "fjsp"):
        assert f"scenarios/instances/{folder}/bounds.json" in names
        assert any(n.startswith(f"scenarios/instances/{folder}/") and n.endswith(".txt") for n in names)
    policies = {p.relative_to(ROOT).as_posix() for p in (ROOT / "optimizers/rl/policies").iterdir()}
    assert {"optimizers/rl/policies/jss15x15.zip", "optimizers/rl/policies/glue_dispensing.zip",
            "optimizers/rl/policies/dynamic_jobshop.zip"} <= policies
    assert policies <= names


def test_the_unpacked_wheel_runs_a_shipped_scenario_on_its_own(wheel, tmp_path):
    site, work = tmp_path / "site", tmp_path / "work"
    zipfile.ZipFile(wheel).extractall(site)
    work.mkdir()
    # -P: the working directory is not put on sys.path; PYTHONPATH puts the unpacked wheel ahead of
    # the venv's editable install (which maps the packages to a checkout)
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-P", "-c", WHERE], capture_output=True, text=True, cwd=work, env=env,
                           timeout=120)
    assert where.returncode == 0, where.stderr
    found = json.loads(where.stdout)
    for key in ("twins", "studio", "scenarios", "smt_line", "policy"):
        assert Path(found[key]).resolve().is_relative_to(site.resolve()), (key, found[key])
    assert found["policy_exists"] and found["ft06_optimum"] == 55

    run = subprocess.run([sys.executable, "-P", "-m", "studio.cli", "run", "smt_line", "--replications", "2",
                          "--json", "out.json", "-q"], capture_output=True, text=True, cwd=work, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    summary = json.loads((work / "out.json").read_text())
    assert summary["replications"] == 2 and summary["kpis"]["throughput"]["mean"] > 0
