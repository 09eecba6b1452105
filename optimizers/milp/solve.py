"""Solve any Pyomo model with a MIP solver named by the user; HiGHS (through highspy, no external
binary) by default.

``solve`` knows nothing about scheduling: the job-shop, flow-shop and energy models all use it.
It always reports status, objective, best bound, relative gap and wall time, and turns an
infeasible or unbounded model into a one-line :class:`~twins.errors.NoSolutionFound` whose
``status`` says which.
"""
from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass

import pyomo.environ as pyo
from pyomo.common.log import LoggingIntercept
from pyomo.contrib.solver.common.factory import SolverFactory as ContribSolverFactory
from pyomo.contrib.solver.common.results import SolutionStatus
from pyomo.contrib.solver.common.results import TerminationCondition as TC
from pyomo.opt import TerminationCondition as LegacyTC

from twins.errors import InputError, NoSolutionFound
from twins.jsonsafe import finite_or_none

#: Option names (time limit in s, relative MIP gap, random seed) of the solvers reached through
#: Pyomo's classic SolverFactory. A solver missing here still runs, but without those options.
LEGACY_OPTIONS: dict[str, tuple[str, str, str | None]] = {
    "appsi_highs": ("time_limit", "mip_rel_gap", "random_seed"),
    "cbc": ("sec", "ratioGap", "randomCbcSeed"),
    "glpk": ("tmlim", "mipgap", None),
    "gurobi": ("TimeLimit", "MIPGap", "Seed"),
    "gurobi_direct": ("TimeLimit", "MIPGap", "Seed"),
    "gurobi_persistent": ("TimeLimit", "MIPGap", "Seed"),
    "cplex": ("timelimit", "mipgap", "randomseed"),
    "cplex_direct": ("timelimit", "mip_tolerances_mipgap", "randomseed"),
    "scip": ("limits/time", "limits/gap", "randomization/randomseedshift"),
    "xpress": ("maxtime", "miprelstop", None),
}


_NO_MODEL_SOLUTION = {
    "infeasible": "infeasible: no solution satisfies all its constraints",
    "unbounded": "unbounded: the objective improves without limit",
    "infeasible_or_unbounded": "infeasible or unbounded",
}


@dataclass(frozen=True)
class SolveResult:
    """What a MIP solve achieved.

    Attributes:
        status: ``optimal`` (proven within the gap tolerance), ``feasible`` (a solution, stopped
            early, e.g. by the time limit) or ``no_solution`` (stopped before finding one).
        objective: objective value of the loaded solution, None without one.
        bound: best proven bound on the objective (a lower bound when minimising).
        gap: relative gap ``|objective - bound| / |objective|`` (0.0 = proven optimal).
        seconds: wall-clock time of the solve call in seconds.
        solver: the solver's name as given.
        termination: the solver interface's own termination condition, for the curious.
    """

    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    seconds: float
    solver: str
    termination: str = ""

    @property
    def integer_bound(self) -> int | None:
        """The bound rounded up, for objectives that only take integer values (makespans of
        integer data). Solver tolerance (up to 1e-5 relative) is forgiven first, so a bound
        reported a hair above an integer still rounds to that integer: conservative, still valid."""
        if self.bound is None:
            return None
        return math.ceil(self.bound - max(1e-6, 1e-5 * abs(self.bound)))


def solve(model: pyo.ConcreteModel, solver: str = "highs", time_limit: float | None = None,
          mip_gap: float | None = None, seed: int | None = None, tee: bool = False) -> SolveResult:
    """Solve ``model`` in place (the solution is loaded into its variables) and report.

    Args:
        model: any Pyomo model with one active objective.
        solver: ``"highs"`` (highspy through ``pyomo.contrib.solver``) or any name Pyomo's
            ``SolverFactory`` knows and finds installed (``cbc``, ``glpk``, ``gurobi``, …).
        time_limit: wall-clock limit in seconds (None: none).
        mip_gap: relative optimality gap at which to stop (None: the solver's default).
        seed: the solver's random seed, where it has one.
        tee: stream the solver's log to stdout.

    Raises:
        InputError: the solver is not installed, or the time limit or gap is out of range.
        NoSolutionFound: the model is infeasible or unbounded (``status`` ``infeasible``,
            ``unbounded`` or ``infeasible_or_unbounded``).
    """
    if time_limit is not None and time_limit <= 0:
        raise InputError(f"time limit must be positive seconds, got {time_limit}")
    if mip_gap is not None and not 0 <= mip_gap < 1:
        raise InputError(f"MIP gap must be a fraction in [0, 1), got {mip_gap}")
    objective = next(model.component_data_objects(pyo.Objective, active=True), None)
    if objective is None:
        raise InputError(f"model {model.name!r} has no active objective")
    minimise = objective.sense == pyo.minimize
    started = time.perf_counter()
    if solver == "highs":
        result = _solve_highs(model, time_limit, mip_gap, seed, tee)
    else:
        result = _solve_legacy(model, solver, time_limit, mip_gap, seed, tee, minimise)
    status, value, bound, termination = result
    if status in _NO_MODEL_SOLUTION:
        raise NoSolutionFound(f"model {model.name!r} is {_NO_MODEL_SOLUTION[status]} (proven by {solver})", status)
    bound = finite_or_none(bound)
    gap = None
    if value is not None and bound is not None:
        gap = abs(value - bound) / max(abs(value), 1e-10)
    return SolveResult(status, value, bound, gap, time.perf_counter() - started, solver, termination)


def require_solution(result: SolveResult, what: str) -> None:
    """Raise a one-line :class:`NoSolutionFound` when ``result`` holds no solution for ``what``."""
    if result.objective is None:
        raise NoSolutionFound(f"{result.solver} stopped without a solution for {what} after {result.seconds:.1f} s "
                              f"({result.termination or result.status}); allow more time", result.status)


def _solve_highs(model, time_limit, mip_gap, seed, tee):
    opt = ContribSolverFactory("highs")
    if not opt.available():
        try:
            import highspy  # noqa: F401 - only to learn why it is unavailable
        except ModuleNotFoundError:
            pass  # not installed: the user's to fix, below
        except ImportError as err:  # installed but cannot load: an installation fault, not the user's input
            raise RuntimeError(
                f"highspy is installed but cannot load ({err}); a known cause is OR-Tools next to it: both "
                "ship libhighs.so.1, in different versions (an 'undefined symbol' error); install the highspy "
                "version of the HiGHS that OR-Tools bundles (ortools 9.15: highspy==1.12.0)") from None
        raise InputError("MIP solver 'highs' is not available: install highspy (pip install highspy)")
    options = {"random_seed": seed} if seed is not None else {}
    res = opt.solve(model, time_limit=time_limit, rel_gap=mip_gap, tee=tee, solver_options=options,
                    load_solutions=False, raise_exception_on_nonoptimal_result=False)
    tc = res.termination_condition
    if tc == TC.provenInfeasible:
        return "infeasible", None, None, tc.name
    if tc == TC.unbounded:
        return "unbounded", None, None, tc.name
    if tc == TC.infeasibleOrUnbounded:
        return "infeasible_or_unbounded", None, None, tc.name
    if res.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible):
        res.solution_loader.load_vars()
        optimal = tc == TC.convergenceCriteriaSatisfied
        return ("optimal" if optimal else "feasible"), res.incumbent_objective, res.objective_bound, tc.name
    return "no_solution", None, res.objective_bound, tc.name


def _solve_legacy(model, name, time_limit, mip_gap, seed, tee, minimise):
    with LoggingIntercept(io.StringIO()):  # Pyomo logs a traceback for unknown names; we say it once
        opt = pyo.SolverFactory(name)
        available = opt is not None and opt.available(exception_flag=False)
    if not available:
        raise InputError(f"MIP solver {name!r} is not available (not installed, or not on PATH); "
                         f"'highs' always is")
    names = LEGACY_OPTIONS.get(name)
    if names is None and (time_limit is not None or mip_gap is not None):
        raise InputError(f"do not know how to pass a time limit or gap to MIP solver {name!r}; "
                         f"known: {', '.join(sorted(LEGACY_OPTIONS))}")
    if names:
        for key, value in zip(names, (time_limit, mip_gap, seed), strict=True):
            if key is not None and value is not None:
                opt.options[key] = value
    with LoggingIntercept(io.StringIO()):  # "solver did not find optimal" warnings: we report status
        res = opt.solve(model, tee=tee, load_solutions=False)
    tc = res.solver.termination_condition
    if tc in (LegacyTC.infeasible, LegacyTC.invalidProblem):
        return "infeasible", None, None, str(tc)
    if tc == LegacyTC.unbounded:
        return "unbounded", None, None, str(tc)
    if tc == LegacyTC.infeasibleOrUnbounded:
        return "infeasible_or_unbounded", None, None, str(tc)
    lower, upper = res.problem.lower_bound, res.problem.upper_bound
    bound = _finite(lower if minimise else upper)
    if len(res.solution) == 0:
        return "no_solution", None, bound, str(tc)
    model.solutions.load_from(res)
    value = pyo.value(next(model.component_data_objects(pyo.Objective, active=True)))
    return ("optimal" if tc == LegacyTC.optimal else "feasible"), value, bound, str(tc)


def _finite(x) -> float | None:
    """A bound as Pyomo's legacy results hold it (a number, None or a string) → finite float or None."""
    try:
        return finite_or_none(x)
    except (TypeError, ValueError):
        return None
