"""Job shop as a disjunctive MILP (Manne 1960) with per-pair big-M from an upper bound.

Model (times in the instance's time unit)::

    min  makespan
    s.t. start[j,k+1] >= start[j,k] + p[j,k]                         (precedence)
         makespan     >= start[j,last] + p[j,last]                    (makespan_def)
         start[b]     >= start[a] + p[a] - big_m[a,b] * (1 - a_first[a,b])   (a_before_b)
         start[a]     >= start[b] + p[b] - big_m[b,a] * a_first[a,b]         (b_before_a)
         head[o] <= start[o] <= horizon - tail[o],   a_first binary

for every pair (a, b) of operations of different jobs on the same machine. ``head`` is the work
of the job before the operation and ``tail`` the work from it on, so ``big_m[a,b] = horizon -
tail[a] + p[a] - head[b]`` is the smallest constant that leaves the other disjunct free: with a
good ``horizon`` (a known makespan) the LP relaxation is much tighter than with one global M.

Everything is named, so a user can ``model.pprint()``, add constraints (release dates, due
dates, maintenance windows) and solve with :func:`optimizers.milp.solve.solve`.
"""
from __future__ import annotations

import pyomo.environ as pyo

from twins.jobshop.instances import JobShopInstance
from twins.jobshop.schedule import Schedule, ScheduledOperation, check_schedule, semi_active

from .solve import SolveResult, require_solution

#: Dispatching rules tried for the default horizon (optimizers.heuristics.rules names).
HORIZON_RULES = ("mwkr", "spt", "fifo", "mor")


def build_model(instance: JobShopInstance, horizon: int | None = None) -> pyo.ConcreteModel:
    """The disjunctive MILP of ``instance``.

    Args:
        instance: the job shop.
        horizon: a makespan known to be achievable (e.g. a heuristic's), in time units; it bounds
            every start and sizes the big-M constants. Default: the best of a few dispatching
            rules (:func:`rule_horizon`). A horizon below the optimum makes
            the model infeasible: when you add constraints that delay the schedule (release
            dates, maintenance windows), pass a horizon they leave achievable.
    """
    horizon = rule_horizon(instance) if horizon is None else int(horizon)
    m = pyo.ConcreteModel(name=f"jobshop_{instance.name}")
    ops = [(j, k) for j, job in enumerate(instance.jobs) for k in range(len(job))]
    p = {(j, k): instance.jobs[j][k][1] for j, k in ops}
    head = {(j, k): sum(d for _, d in instance.jobs[j][:k]) for j, k in ops}
    tail = {(j, k): sum(d for _, d in instance.jobs[j][k:]) for j, k in ops}
    pairs = [(ja, ka, jb, kb) for ja, ka in ops for jb, kb in ops
             if ja < jb and instance.jobs[ja][ka][0] == instance.jobs[jb][kb][0]]

    m.JOBS = pyo.Set(initialize=range(instance.n_jobs), doc="jobs")
    m.MACHINES = pyo.Set(initialize=range(instance.n_machines), doc="machines")
    m.OPS = pyo.Set(initialize=ops, dimen=2, doc="operations (job, position in route)")
    m.PAIRS = pyo.Set(initialize=pairs, dimen=4, doc="(job a, op a, job b, op b) sharing a machine, a < b")
    m.p = pyo.Param(m.OPS, initialize=p, doc="processing time")
    m.machine = pyo.Param(m.OPS, initialize={o: instance.jobs[o[0]][o[1]][0] for o in ops}, within=m.MACHINES)
    m.horizon = pyo.Param(initialize=horizon, mutable=True, doc="known achievable makespan")
    m.big_m = pyo.Param(m.PAIRS, [0, 1], initialize={
        **{(ja, ka, jb, kb, 0): horizon - tail[ja, ka] + p[ja, ka] - head[jb, kb] for ja, ka, jb, kb in pairs},
        **{(ja, ka, jb, kb, 1): horizon - tail[jb, kb] + p[jb, kb] - head[ja, ka] for ja, ka, jb, kb in pairs},
    }, doc="big-M of the disjunct 'a before b' (index 0) and 'b before a' (index 1)")

    m.start = pyo.Var(m.OPS, domain=pyo.NonNegativeReals,
                      bounds=lambda _, j, k: (head[j, k], horizon - tail[j, k]), doc="start time")
    m.makespan = pyo.Var(domain=pyo.NonNegativeReals, bounds=(instance.trivial_lower_bound, horizon))
    m.a_first = pyo.Var(m.PAIRS, domain=pyo.Binary, doc="1 if operation a runs before operation b")

    m.precedence = pyo.Constraint(
        [(j, k) for j, k in ops if k > 0],
        rule=lambda m, j, k: m.start[j, k] >= m.start[j, k - 1] + m.p[j, k - 1])
    m.makespan_def = pyo.Constraint(
        m.JOBS,
        rule=lambda m, j: m.makespan >= m.start[j, len(instance.jobs[j]) - 1] + m.p[j, len(instance.jobs[j]) - 1])
    m.a_before_b = pyo.Constraint(m.PAIRS, rule=lambda m, ja, ka, jb, kb: m.start[jb, kb] >= m.start[ja, ka]
                                  + m.p[ja, ka] - m.big_m[ja, ka, jb, kb, 0] * (1 - m.a_first[ja, ka, jb, kb]))
    m.b_before_a = pyo.Constraint(m.PAIRS, rule=lambda m, ja, ka, jb, kb: m.start[ja, ka] >= m.start[jb, kb]
                                  + m.p[jb, kb] - m.big_m[ja, ka, jb, kb, 1] * m.a_first[ja, ka, jb, kb])
    m.objective = pyo.Objective(expr=m.makespan, sense=pyo.minimize)
    return m


def extract_schedule(instance: JobShopInstance, model: pyo.ConcreteModel, result: SolveResult) -> Schedule:
    """The schedule held by a solved model, with the solver's start times (so constraints a user
    added, such as release dates, are honoured); integer data gives integer times, and values
    within solver tolerance of an integer are snapped to it."""
    require_solution(result, f"{instance.name}")
    ops = []
    for j, k in model.OPS:
        start = solver_time(model.start[j, k])
        machine, d = instance.jobs[j][k]
        ops.append(ScheduledOperation(start, start + d, j, k, machine))
    schedule = Schedule(instance.name, ops, solver="milp", status=result.status, seconds=result.seconds,
                        lower_bound=result.integer_bound)
    if check_schedule(instance, schedule):
        # big-M constraints hold only up to the solver's feasibility tolerance; a time-limited
        # incumbent can overlap by a hair: keep its machine sequences, recompute the times
        schedule.operations = semi_active(instance, ops)
        schedule.extra["repaired"] = "solver times violated constraints within tolerance; semi-active times"
    return schedule


def solver_time(var: pyo.Var, tol: float = 1e-6) -> float:
    """A time variable's value, snapped to the nearest integer when within ``tol`` of it."""
    x = pyo.value(var)
    return int(round(x)) if abs(x - round(x)) <= tol else x


def rule_horizon(instance: JobShopInstance) -> int:
    """The best makespan of a few dispatching rules (milliseconds): an achievable horizon
    typically 5-20 % above the optimum, where a serial schedule would be several times it."""
    from optimizers.heuristics.rules import schedule_with_rule

    return int(min(schedule_with_rule(instance, rule).makespan for rule in HORIZON_RULES))
