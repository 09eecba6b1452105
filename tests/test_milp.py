"""Pyomo MILPs solved with HiGHS: proven optima, extendable models, honest status/gap reports,
and one-line errors for infeasible models and missing solvers."""
from __future__ import annotations

import itertools
import subprocess
import sys

import pyomo.environ as pyo
import pytest

from optimizers.milp import SolveResult, flowshop, jobshop, solve
from optimizers.solvers import solve_instance
from twins.errors import InputError, NoSolutionFound
from twins.jobshop.instances import FlowShopInstance, load_instance
from twins.jobshop.schedule import Schedule, ScheduledOperation, check_schedule, permutation_schedule, semi_active


def test_highs_proves_ft06_optimal():
    instance = load_instance("ft06")
    model = jobshop.build_model(instance)
    result = solve(model, time_limit=60, seed=0)
    schedule = jobshop.extract_schedule(instance, model, result)
    assert result.status == "optimal" and result.solver == "highs"
    assert result.objective == pytest.approx(55) and result.bound == pytest.approx(55)
    assert result.gap == pytest.approx(0, abs=1e-6)
    assert check_schedule(instance, schedule) == []
    assert schedule.makespan == round(result.objective) == 55 == schedule.lower_bound


def test_job_shop_model_is_named_and_a_user_constraint_is_honoured():
    instance = load_instance("ft06")
    # constraints that delay the schedule need a horizon they leave achievable
    model = jobshop.build_model(instance, horizon=100)
    assert {"JOBS", "MACHINES", "OPS", "PAIRS", "p", "big_m", "start", "makespan", "a_first",
            "precedence", "a_before_b", "b_before_a"} <= {c.local_name for c in model.component_objects()}
    assert len(model.PAIRS) == 6 * 15  # 6 machines, C(6, 2) pairs of jobs on each
    model.release_job_0 = pyo.Constraint(expr=model.start[0, 0] >= 40)  # a release date
    result = solve(model, time_limit=60)
    schedule = jobshop.extract_schedule(instance, model, result)
    assert check_schedule(instance, schedule) == []
    assert min(o.start for o in schedule.operations if o.job == 0) >= 40
    # job 0 holds 26 time units of work, so it cannot end before 66
    assert schedule.makespan == round(result.objective) >= 66


def test_flow_shop_milp_finds_the_best_permutation():
    instance = FlowShopInstance("tiny", ((5, 9, 8), (9, 3, 10), (9, 4, 5), (4, 8, 8), (3, 5, 6), (7, 2, 9)))
    best = min(permutation_schedule(instance, list(p)).makespan for p in itertools.permutations(range(6)))
    model = flowshop.build_model(instance)
    result = solve(model, time_limit=60)
    schedule = flowshop.extract_schedule(instance, model, result)
    assert result.status == "optimal"
    assert check_schedule(instance, schedule) == []
    assert schedule.permutation is not None
    assert schedule.makespan == round(result.objective) == best == 54


def test_time_limit_status_and_gap_are_always_reported():
    instance = load_instance("la16")  # 10x10: not solved to optimality in half a second
    model = jobshop.build_model(instance)
    result = solve(model, time_limit=0.5, seed=0)
    assert isinstance(result, SolveResult)
    assert result.status in ("feasible", "no_solution")
    assert result.seconds < 5
    assert result.bound is not None and result.bound <= 945
    if result.status == "feasible":
        assert result.gap > 0
        schedule = jobshop.extract_schedule(instance, model, result)
        assert check_schedule(instance, schedule) == [] and schedule.makespan >= 945
    else:
        with pytest.raises(NoSolutionFound, match="stopped without a solution") as err:
            jobshop.extract_schedule(instance, model, result)
        assert err.value.status == "no_solution" and not isinstance(err.value, InputError)


def test_infeasible_model_is_a_one_line_no_solution_found():
    # a horizon below the optimum (55) leaves no schedule
    model = jobshop.build_model(load_instance("ft06"), horizon=50)
    with pytest.raises(NoSolutionFound, match="is infeasible") as err:
        solve(model, time_limit=30)
    assert "\n" not in str(err.value)
    assert err.value.status == "infeasible" and not isinstance(err.value, InputError)


def test_unbounded_model_is_a_one_line_no_solution_found():
    model = pyo.ConcreteModel(name="toy")
    model.x = pyo.Var(domain=pyo.Reals)
    model.objective = pyo.Objective(expr=model.x, sense=pyo.minimize)
    with pytest.raises(NoSolutionFound, match="toy.*(unbounded|infeasible or unbounded)") as err:
        solve(model)
    assert err.value.status in ("unbounded", "infeasible_or_unbounded")


def test_unknown_or_missing_solver_is_a_one_line_input_error():
    model = jobshop.build_model(load_instance("ft06"))
    for name in ("no_such_solver", "cbc"):
        if name == "cbc" and pyo.SolverFactory("cbc").available(exception_flag=False):
            continue
        with pytest.raises(InputError, match=f"MIP solver '{name}' is not available"):
            solve(model, solver=name)


def test_solve_rejects_nonsense_limits():
    model = jobshop.build_model(load_instance("ft06"))
    with pytest.raises(InputError, match="time limit"):
        solve(model, time_limit=-1)
    with pytest.raises(InputError, match="gap"):
        solve(model, mip_gap=2)


def test_highs_loads_in_a_process_that_already_runs_cp_sat():
    # OR-Tools bundles its own libhighs.so.1; a highspy of another HiGHS version then fails to
    # load (or breaks OR-Tools when loaded first). The versions must match: see pyproject.toml.
    code = "from ortools.sat.python import cp_model; import highspy; highspy.Highs()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.strip().splitlines()[-1]


def test_any_installed_pyomo_solver_runs_by_name():
    # appsi_highs goes through Pyomo's classic SolverFactory path, like cbc, glpk or gurobi would
    instance = load_instance("ft06")
    model = jobshop.build_model(instance)
    result = solve(model, solver="appsi_highs", time_limit=60, mip_gap=0.0, seed=1)
    schedule = jobshop.extract_schedule(instance, model, result)
    assert result.status == "optimal" and result.solver == "appsi_highs"
    assert schedule.makespan == 55 == result.integer_bound
    assert check_schedule(instance, schedule) == []


def test_solver_times_off_by_tolerance_are_repaired_to_the_semi_active_schedule():
    inst = load_instance("ft06")
    good = solve_instance(inst, "cpsat", time_limit=10, seed=0)
    # nudge every start by a solver-tolerance hair: overlaps appear, sequences stay
    nudged = [ScheduledOperation(o.start - 1e-5 * (o.job + 1), o.end - 1e-5 * (o.job + 1), o.job, o.op, o.machine)
              for o in good.operations]
    assert check_schedule(inst, Schedule("ft06", nudged))
    repaired = Schedule("ft06", semi_active(inst, nudged))
    assert check_schedule(inst, repaired) == []
    assert repaired.makespan <= good.makespan
