"""``twinopt schedule``: the JSON contract (docs/architecture.md) for every solver, and bad input as one line
on stderr with exit code 2, never a traceback."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from studio.cli import main
from twins.jobshop.instances import load_instance
from twins.jobshop.schedule import Schedule, ScheduledOperation, check_schedule

KEYS = {"instance", "solver", "makespan", "lower_bound", "status", "seconds", "operations"}


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name, fmt, solver", [
    ("ft06", "orlib", "cpsat"),
    ("ft06", "orlib", "milp"),
    ("ta001", "taillard", "cpsat"),
    ("ta001", "taillard", "neh"),
    ("ta001", "taillard", "ig"),
])
def test_every_solver_writes_the_design_json_and_a_feasible_schedule(capsys, tmp_path, name, fmt, solver):
    out = tmp_path / "schedule.json"
    code, stdout, _ = _run(capsys, "schedule", name, "--format", fmt, "--solver", solver,
                           "--time-limit", "20" if solver in ("cpsat", "milp") else "0.5", "--json", str(out))
    assert code == 0
    assert "makespan" in stdout and "gap" in stdout
    doc = json.loads(out.read_text())
    instance = load_instance(name, fmt)
    flow = fmt == "taillard"
    assert set(doc) == KEYS | ({"permutation"} if flow else set())
    assert doc["instance"] == name and doc["solver"] == solver
    assert all(set(o) == {"job", "op", "machine", "start", "end"} for o in doc["operations"])
    schedule = Schedule(name, [ScheduledOperation(o["start"], o["end"], o["job"], o["op"], o["machine"])
                               for o in doc["operations"]], permutation=doc.get("permutation"))
    assert check_schedule(instance, schedule) == []
    assert doc["makespan"] == max(o["end"] for o in doc["operations"])
    assert doc["lower_bound"] <= doc["makespan"]
    if solver in ("cpsat", "milp"):  # exact solvers prove these optimal well within the limit
        assert doc["status"] == "optimal" and doc["makespan"] == instance.bounds.optimum


def test_json_to_stdout_and_html_gantt(capsys, tmp_path):
    html = tmp_path / "gantt.html"
    code, stdout, _ = _run(capsys, "schedule", "la01", "--solver", "cpsat", "--json", "-", "--html", str(html))
    assert code == 0
    assert json.loads(stdout)["makespan"] == 666
    text = html.read_text()
    assert "plotly" in text.lower() and "la01" in text


BAD_FILES = {
    "non_integer.txt": ("2 2\n0 3 1 x\n1 2 0 4\n", "expected integers, found 'x'"),
    "too_few_jobs.txt": ("3 2\n0 3 1 2\n1 2 0 4\n", "header announces 3 jobs"),
    "odd_pairs.txt": ("2 2\n0 3 1\n1 2 0 4\n", "must be 'machine time' pairs"),
    "machine_range.txt": ("2 2\n0 3 2 2\n1 2 0 4\n", "machine 2 not in 0..1"),
    "empty.txt": ("\n", "empty instance file"),
}


@pytest.mark.parametrize("filename", sorted(BAD_FILES))
def test_bad_instance_files_exit_2_with_one_line(capsys, tmp_path, filename):
    text, message = BAD_FILES[filename]
    path = tmp_path / filename
    path.write_text(text)
    code, _, err = _run(capsys, "schedule", str(path), "--solver", "cpsat")
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["missing/instance.txt"], "no such file"),
    (["ft06", "--solver", "simulated_annealing"], "unknown solver 'simulated_annealing'"),
    (["ft06", "--solver", "ig"], "permutation flow shop heuristic"),
    (["ft06", "--solver", "rule:"], "needs a name"),
    (["ft06", "--solver", "milp", "--mip-solver", "no_such_solver"], "MIP solver 'no_such_solver' is not available"),
    (["ft06", "--time-limit", "-3"], "time limit must be positive"),
    (["ft06", "--seed", "-1"], "seed must be an integer"),
    (["ft06", "--workers", "0"], "workers must be at least 1"),
    (["ft06", "--solver", "rule:no_such_rule"], "unknown dispatching rule 'no_such_rule'"),
    (["ta001"], "add --format taillard"),
    (["ta001", "--format", "taillard", "--solver", "rl:/no/such/model.zip"], ""),
])
def test_user_errors_exit_2_with_one_line(capsys, argv, message):
    code, _, err = _run(capsys, "schedule", *argv)
    assert code == 2, err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_flexible_job_shop_file_is_scheduled_by_cpsat_and_refused_by_milp(capsys, tmp_path):
    path = tmp_path / "mini.fjs"
    path.write_text("2 3 1.5\n2 2 1 4 3 6 1 2 5\n1 1 3 2\n")  # Brandimarte layout, 1-based machines
    out = tmp_path / "mini.json"
    code, stdout, _ = _run(capsys, "schedule", str(path), "--format", "fjs", "--solver", "cpsat", "--json", str(out))
    assert code == 0 and "flexible job shop" in stdout
    doc = json.loads(out.read_text())
    assert doc["makespan"] == 9 and doc["status"] == "optimal"
    assert {(o["job"], o["op"], o["machine"]) for o in doc["operations"]} == {(0, 0, 0), (0, 1, 1), (1, 0, 2)}
    code, _, err = _run(capsys, "schedule", str(path), "--format", "fjs", "--solver", "milp")
    assert code == 2 and "use --solver cpsat for a flexible job shop" in err and err.count("\n") == 1


@pytest.mark.parametrize("rule, is_permutation", [("fifo", True), ("spt", False)])
def test_rule_on_a_flow_shop_sets_the_permutation_only_when_all_machines_agree(capsys, tmp_path, rule, is_permutation):
    out = tmp_path / "rule.json"
    code, stdout, _ = _run(capsys, "schedule", "ta001", "--format", "taillard", "--solver", f"rule:{rule}",
                           "--json", str(out))
    assert code == 0
    doc = json.loads(out.read_text())
    assert ("permutation" in doc) is is_permutation
    assert ("the job order differs between machines" in stdout) is not is_permutation
    schedule = Schedule("ta001", [ScheduledOperation(o["start"], o["end"], o["job"], o["op"], o["machine"])
                                  for o in doc["operations"]], permutation=doc.get("permutation"))
    assert check_schedule(load_instance("ta001", "taillard"), schedule) == []


def test_taillard_file_with_wrong_counts_exits_2(capsys, tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("3 2\n1 2 3\n4 5\n")
    code, _, err = _run(capsys, "schedule", str(path), "--format", "taillard", "--solver", "neh")
    assert code == 2 and "machine 1 has 2 times, expected 3" in err and err.count("\n") == 1


def test_no_schedule_within_the_time_limit_exits_3_with_one_line():
    # 10 ms is too little for HiGHS to find any schedule of a 15x15 job shop: valid input, no solution
    proc = run_cli("schedule", "ta01", "--solver", "milp", "--time-limit", "0.01")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("twinopt: no solution: highs stopped without a solution for ta01")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and proc.stdout == ""


def test_no_schedule_is_caught_by_type_in_the_library():
    from optimizers.solvers import solve_instance
    from twins.errors import InputError, NoSolutionFound, TwinoptError

    with pytest.raises(NoSolutionFound) as err:
        solve_instance(load_instance("ta01"), "milp", time_limit=0.01)
    assert isinstance(err.value, TwinoptError) and not isinstance(err.value, InputError)
    assert err.value.status == "no_solution"


def test_installed_entry_point_exits_2_without_traceback(tmp_path):
    exe = Path(sys.executable).with_name("twinopt")
    if not exe.exists():
        pytest.skip("twinopt is not installed in this environment (pip install -e .)")
    proc = subprocess.run([str(exe), "schedule", str(tmp_path / "nope.txt")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no such file" in proc.stderr and "Traceback" not in proc.stderr
