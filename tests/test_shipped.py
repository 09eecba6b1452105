"""Shipped scenarios by name: every door that takes a scenario (CLI commands, environments, the
loader) takes ``smt_line`` as well as a path, from any working directory; an unknown name is one
line that lists the shipped names."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import gymnasium as gym
import pytest
from conftest import ROOT, SCENARIOS

import envs  # noqa: F401  (registers twinopt/*)
from twins.errors import ScenarioError
from twins.loader import load_scenario
from twins.shipped import scenario_names, scenario_path


def twinopt_elsewhere(*args: str, cwd) -> subprocess.CompletedProcess:
    """``twinopt`` run from a directory that holds no scenarios (this checkout on PYTHONPATH)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "studio.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_every_shipped_scenario_loads_by_name():
    names = scenario_names()
    assert {"smt_line", "glue_dispensing", "smt_reflow_energy", "dynamic_jobshop"} <= set(names)
    for name in names:
        assert load_scenario(name).name


@pytest.mark.parametrize("spelling", ["smt_line", "smt_line.yaml"])
def test_a_shipped_name_loads_the_same_scenario_as_its_file(spelling):
    assert load_scenario(spelling).model_dump() == load_scenario(SCENARIOS / "smt_line.yaml").model_dump()


def test_an_existing_file_wins_over_a_shipped_name(tmp_path, monkeypatch, smt_data):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smt_line.yaml").write_text(json.dumps({**smt_data, "name": "my own smt line"}))
    assert load_scenario("smt_line.yaml").name == "my own smt line"
    assert load_scenario("smt_line").name != "my own smt line"  # no file called smt_line: the shipped one


def test_a_path_with_folders_is_never_taken_for_a_shipped_name(tmp_path):
    with pytest.raises(ScenarioError):
        scenario_path(tmp_path / "smt_line.yaml")


def test_an_unknown_name_is_one_line_listing_the_shipped_scenarios(tmp_path):
    proc = twinopt_elsewhere("run", "smt_lin", "-n", "2", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "smt_lin" in proc.stderr
    for name in scenario_names():
        assert name in proc.stderr


def test_cli_commands_take_shipped_names_from_any_directory(tmp_path):
    smt = load_scenario("smt_line").name
    run = twinopt_elsewhere("run", "smt_line", "-n", "2", "-q", "--json", "run.json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "run.json").read_text())["scenario"] == smt
    cmp = twinopt_elsewhere("compare", "smt_line", "smt_line.yaml", "-n", "2", "-q", "--json", "cmp.json",
                            "--set-b", "stations.pnp.machines=3", cwd=tmp_path)
    assert cmp.returncode == 0, cmp.stderr
    assert json.loads((tmp_path / "cmp.json").read_text())["replications"] == 2
    opt = twinopt_elsewhere("optimize", "glue_dispensing", "--budget", "2", "-n", "1", "--top-k", "1",
                            "--final-replications", "2", "-q", "--json", "rec.json", cwd=tmp_path)
    assert opt.returncode == 0, opt.stderr
    assert json.loads((tmp_path / "rec.json").read_text())["scenario"] == load_scenario("glue_dispensing").name


@pytest.mark.parametrize("env_id, name", [("twinopt/Parameter-v0", "glue_dispensing"),
                                          ("twinopt/Energy-v0", "smt_reflow_energy"),
                                          ("twinopt/Dispatch-v0", "dynamic_jobshop"),
                                          ("twinopt/DynamicDispatch-v0", "dynamic_jobshop")])
def test_environments_take_shipped_names(env_id, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no scenarios/ folder here
    env = gym.make(env_id, scenario=name)
    try:
        assert env.unwrapped.scenario.model_dump() == load_scenario(SCENARIOS / f"{name}.yaml").model_dump()
        env.reset(seed=0)
    finally:
        env.close()


def test_an_environment_given_an_unknown_name_raises_a_scenario_error():
    with pytest.raises(ScenarioError):
        gym.make("twinopt/Parameter-v0", scenario="glue_dispensin")
