"""One entry point for every scheduler, by name: ``solve_instance(instance, "cpsat")``.

========================  =====================================================================
``cpsat``                 CP-SAT (:mod:`optimizers.cp`): job shop, flexible job shop, flow shop
``milp``                  Pyomo MILP + ``mip_solver`` (:mod:`optimizers.milp`): job shop, flow shop
``neh``, ``ig``           NEH, iterated greedy (:mod:`optimizers.heuristics`): flow shop
``rule:<name>``           dispatching rule (:mod:`optimizers.heuristics.rules`): job shop, flow shop
``rl:<model path>``       trained dispatching policy (:mod:`optimizers.rl.dispatch`): same
========================  =====================================================================

A flow shop stays a *permutation* flow shop with cpsat, milp, neh and ig (``permutation`` is set);
rules and policies see it as a job shop, and ``permutation`` is set when the schedule they
return happens to keep one job order on every machine.
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Callable

from twins.errors import InputError, NoSolutionFound, check_seed
from twins.jobshop.instances import FlexibleJobShopInstance, FlowShopInstance, Instance
from twins.jobshop.schedule import Schedule, check_schedule

#: Solver names for help texts; ``rule:`` and ``rl:`` take an argument.
SOLVERS = ("cpsat", "milp", "neh", "ig", "rule:<name>", "rl:<model path>")

#: Wall-clock seconds given to the exact solvers (cpsat, milp) when no time limit is asked for:
#: they stop earlier when they prove optimality, and never run unbounded.
EXACT_DEFAULT_TIME_LIMIT = 60.0

#: Largest solver seed: CP-SAT and HiGHS take 32-bit signed seeds.
SOLVER_MAX_SEED = 2**31 - 1


def solve_instance(instance: Instance, solver: str, time_limit: float | None = None, seed: int = 0,
                   mip_solver: str = "highs", workers: int = 2) -> Schedule:
    """Schedule ``instance`` with the solver named ``solver``.

    Args:
        instance: job shop, flexible job shop or permutation flow shop.
        solver: see the module docstring.
        time_limit: wall-clock seconds; None = the solver's default (cpsat and milp:
            :data:`EXACT_DEFAULT_TIME_LIMIT`; iterated greedy: ``n·m/2·30 ms``).
        seed: random seed of the solver.
        mip_solver: Pyomo solver name for ``milp``.
        workers: CP-SAT search workers.

    Raises:
        InputError: unknown solver, or a solver that does not handle this kind of instance.
        NoSolutionFound: the solver found no schedule (time limit too short).
        RuntimeError: the solver returned a schedule that breaks the instance's constraints —
            a bug in twinopt, never the user's input.
    """
    if time_limit is not None and time_limit <= 0:
        raise InputError(f"time limit must be positive seconds, got {time_limit}")
    check_seed(seed, SOLVER_MAX_SEED)
    kind, _, argument = solver.partition(":")
    if kind in ("rule", "rl"):
        if not argument:
            raise InputError(f"solver {solver!r} needs a name: {kind}:<{'name' if kind == 'rule' else 'model path'}>")
        schedule = _dispatch(instance, kind, argument)
    else:
        run = _SOLVERS.get(solver)
        if run is None:
            raise InputError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
        if time_limit is None and solver in ("cpsat", "milp"):
            time_limit = EXACT_DEFAULT_TIME_LIMIT
        schedule = run(instance, time_limit=time_limit, seed=seed, mip_solver=mip_solver, workers=workers)
        if not schedule.operations:
            limit = f" within {time_limit:g} s" if time_limit is not None else ""
            raise NoSolutionFound(f"{solver} found no schedule for {instance.name}{limit} (status {schedule.status})",
                                  schedule.status)
    problems = check_schedule(instance, schedule)
    if problems:  # a solver bug, never the user's: the CLI exits with 1
        raise RuntimeError(f"{solver} returned an infeasible schedule: {problems[0]}")
    return schedule


def _cpsat(instance: Instance, *, time_limit, seed, workers, **_) -> Schedule:
    from optimizers import cp

    # NEH costs milliseconds and gives CP-SAT a good first permutation and a tight horizon
    hint = _neh(instance, None, seed) if isinstance(instance, FlowShopInstance) else None
    return cp.solve(instance, time_limit=time_limit, workers=workers,
                    seed=seed, hint=hint)


def _milp(instance: Instance, *, time_limit, seed, mip_solver, **_) -> Schedule:
    from optimizers.milp import flowshop, jobshop, solve

    if isinstance(instance, FlexibleJobShopInstance):
        raise InputError("the milp solver covers job shops and permutation flow shops; "
                         "use --solver cpsat for a flexible job shop")
    formulation = flowshop if isinstance(instance, FlowShopInstance) else jobshop
    model = formulation.build_model(instance)
    result = solve(model, solver=mip_solver, time_limit=time_limit, seed=seed)
    schedule = formulation.extract_schedule(instance, model, result)
    schedule.solver = "milp" if mip_solver == "highs" else f"milp:{mip_solver}"
    return schedule


def _flow_shop_only(name: str, run: Callable[..., Schedule]) -> Callable[..., Schedule]:
    def solver(instance: Instance, *, time_limit, seed, **_) -> Schedule:
        if not isinstance(instance, FlowShopInstance):
            raise InputError(f"{name} is a permutation flow shop heuristic; load the instance with "
                             f"--format taillard, or use cpsat, milp or rule:<name> for a job shop")
        return run(instance, time_limit, seed)
    return solver


def _neh(instance: FlowShopInstance, time_limit, seed) -> Schedule:
    from optimizers.heuristics.neh import neh

    return neh(instance)


def _ig(instance: FlowShopInstance, time_limit, seed) -> Schedule:
    from optimizers.heuristics.iterated_greedy import iterated_greedy

    return iterated_greedy(instance, time_limit=time_limit, seed=seed)


_SOLVERS: dict[str, Callable[..., Schedule]] = {
    "cpsat": _cpsat,
    "milp": _milp,
    "neh": _flow_shop_only("neh", _neh),
    "ig": _flow_shop_only("ig", _ig),
}


def _dispatch(instance: Instance, kind: str, argument: str) -> Schedule:
    """``rule:<name>`` and ``rl:<model>``: dispatchers build job-shop schedules."""
    module_name, function = {"rule": ("optimizers.heuristics.rules", "schedule_with_rule"),
                             "rl": ("optimizers.rl.dispatch", "schedule_with_policy")}[kind]
    module = importlib.import_module(module_name)
    if isinstance(instance, FlexibleJobShopInstance):
        raise InputError(f"{kind}:<…> dispatchers take job shops and flow shops; use cpsat for a flexible job shop")
    job_shop = instance.as_job_shop() if isinstance(instance, FlowShopInstance) else instance
    started = time.perf_counter()
    schedule = getattr(module, function)(job_shop, argument)
    if not schedule.seconds:
        schedule.seconds = time.perf_counter() - started
    if isinstance(instance, FlowShopInstance):
        schedule.permutation = _common_job_order(schedule)
    return schedule


def _common_job_order(schedule: Schedule) -> list[int] | None:
    """The job order shared by every machine, or None when machines differ."""
    orders: dict[int, list[int]] = {}
    for o in sorted(schedule.operations):
        orders.setdefault(o.machine, []).append(o.job)
    distinct = {tuple(order) for order in orders.values()}
    return list(distinct.pop()) if len(distinct) == 1 else None
