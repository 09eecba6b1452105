"""Core twinopt works without any extra; a command whose extra is missing exits with 2 and one line
naming it. The optional packages are made uninstallable for real in a subprocess: an import hook
installed before anything else refuses them, as a machine without them would."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from twins.errors import MissingDependency
from twins.extras import EXTRAS, requires

BLOCKED = sorted(m for modules in EXTRAS.values() for m in modules)
assert {"torch", "stable_baselines3", "sb3_contrib", "gymnasium", "pyomo", "highspy", "ortools",
        "optuna", "cmaes", "asyncua"} <= set(BLOCKED)

#: python -c program: refuse the optional packages, then run the CLI (or the code in argv[1] after "--code")
WITHOUT_EXTRAS = f"""
import sys
from importlib.abc import MetaPathFinder

class NotInstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
if sys.argv[1:2] == ["--code"]:
    exec(sys.argv[2])
else:
    from studio.cli import main
    sys.exit(main(sys.argv[1:]))
"""


def core_only(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_help_lists_every_command_without_extras():
    proc = core_only("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("run", "compare", "schema", "schedule", "train", "evaluate", "optimize", "recommend", "audit",
                    "plant", "push", "snapshot", "serve", "keys"):
        assert command in proc.stdout
    for command in ("schedule", "train", "optimize", "recommend", "plant", "push", "snapshot", "serve", "keys"):
        assert core_only(command, "--help").returncode == 0


def test_run_compare_and_schema_need_only_core(tmp_path):
    out = tmp_path / "run.json"
    run = core_only("run", "smt_line", "--replications", "2", "--json", str(out), "-q")
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text())["replications"] == 2
    cmp = core_only("compare", "smt_line", "smt_line", "-n", "2", "-q")
    assert cmp.returncode == 0, cmp.stderr
    for solver in ("rule:mwkr", "neh", "ig"):  # dispatching rules and flow-shop heuristics are core
        fmt = ["--format", "taillard", "--time-limit", "0.2"] if solver != "rule:mwkr" else []
        instance = "ta001" if fmt else "ft06"
        sched = core_only("schedule", instance, "--solver", solver, *fmt, "--json", str(tmp_path / "s.json"))
        assert sched.returncode == 0, sched.stderr
        assert json.loads((tmp_path / "s.json").read_text())["makespan"] > 0
    schema = core_only("schema")
    assert schema.returncode == 0, schema.stderr
    assert "properties" in json.loads(schema.stdout)


def test_audit_verify_needs_only_core(tmp_path):
    from studio.gateway.audit import AuditLog

    AuditLog(tmp_path / "audit.jsonl").append("alice", "write", "confirmed", changes=[("a.x", 1.0, 2.0)])
    proc = core_only("audit", "verify", "--log", str(tmp_path / "audit.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok: 1 entry, chain intact"


@pytest.mark.parametrize("args, extra", [
    (["schedule", "ft06", "--solver", "cpsat"], "solvers"),
    (["schedule", "ft06", "--solver", "milp"], "solvers"),
    (["schedule", "ft06", "--solver", "rl:jss15x15"], "rl"),
    (["train", "twinopt/Dispatch-v0", "--timesteps", "10", "--out", "{tmp}/run"], "rl"),
    (["evaluate", "optimizers/rl/policies/jss15x15.zip", "--episodes", "1"], "rl"),
    (["optimize", "glue_dispensing", "--budget", "2"], "search"),
    (["recommend", "setpoints", "glue_dispensing", "--budget", "2", "--out", "{tmp}/rec.json"], "search"),
    (["recommend", "energy", "smt_reflow_energy", "--out", "{tmp}/rec.json"], "solvers"),
    (["plant", "glue_dispensing", "--port", "0", "--insecure"], "gateway"),
    (["push", "--reconcile", "--scenario", "glue_dispensing", "--endpoint", "opc.tcp://127.0.0.1:9/twinopt/",
      "--insecure", "--data", "{tmp}/data"], "gateway"),
    (["snapshot", "--endpoint", "opc.tcp://127.0.0.1:9/twinopt/", "--insecure", "--out", "{tmp}/s.json"], "gateway"),
    (["serve", "--port", "0", "--data", "{tmp}/api"], "api"),
    (["keys", "create", "--role", "viewer", "--name", "v", "--data", "{tmp}/api"], "api"),
], ids=lambda v: " ".join(v[:3]) if isinstance(v, list) else v)
def test_a_command_without_its_extra_exits_2_naming_it(args, extra, tmp_path):
    proc = core_only(*[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f'pip install "twinopt[{extra}]"' in proc.stderr
    assert f"twinopt {args[0]}" in proc.stderr  # names the user's command, not an inner module


def test_import_envs_without_gymnasium_names_the_rl_extra():
    code = ("from twins.errors import MissingDependency\n"
            "try:\n    import envs\nexcept MissingDependency as err:\n    print(err.extra, err.module)")
    proc = core_only("--code", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["rl", "gymnasium"]


def test_requires_names_the_extra_that_installs_the_missing_module():
    with pytest.raises(MissingDependency) as err:
        with requires("search", "this test"):
            import twinopt_no_such_package  # noqa: F401
    assert (err.value.extra, err.value.module) == ("search", "twinopt_no_such_package")
    assert 'pip install "twinopt[search]"' in str(err.value)


def test_requires_leaves_other_import_errors_alone():
    with pytest.raises(ModuleNotFoundError):  # no extra to name
        with requires(None, "this test"):
            import twinopt_no_such_package  # noqa: F401
    with pytest.raises(ModuleNotFoundError):  # twinopt's own module missing: a broken install, not an extra
        with requires("rl", "this test"):
            import twins.no_such_module  # noqa: F401
