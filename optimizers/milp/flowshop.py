"""Permutation flow shop as a positional MILP (Wagner 1959; the "TS2" form of Tseng & Stafford).

Model (times in the instance's time unit)::

    min  makespan = finish[n-1, m-1]
    s.t. sum_k assign[j,k] = 1,  sum_j assign[j,k] = 1                 (one job per position)
         finish[k,i] >= finish[k,i-1] + sum_j p[j,i] assign[j,k]        (machine_flow: a job's
                                                                          previous machine)
         finish[k,i] >= finish[k-1,i] + sum_j p[j,i] assign[j,k]        (position_flow: the
                                                                          previous job on machine i)

``assign[j,k] = 1`` puts job j in position k; ``finish[k,i]`` is when the job in position k
leaves machine i. No big-M: the sequence enters only through the processing time of a position.
"""
from __future__ import annotations

import pyomo.environ as pyo

from twins.jobshop.instances import FlowShopInstance
from twins.jobshop.schedule import Schedule, ScheduledOperation

from .jobshop import solver_time
from .solve import SolveResult, require_solution


def build_model(instance: FlowShopInstance) -> pyo.ConcreteModel:
    """The positional MILP of the permutation flow shop ``instance``."""
    n, n_m = instance.n_jobs, instance.n_machines
    m = pyo.ConcreteModel(name=f"flowshop_{instance.name}")
    m.JOBS = pyo.Set(initialize=range(n), doc="jobs")
    m.POSITIONS = pyo.Set(initialize=range(n), doc="positions in the permutation")
    m.MACHINES = pyo.Set(initialize=range(n_m), doc="machines, in the order every job visits them")
    m.p = pyo.Param(m.JOBS, m.MACHINES, initialize={(j, i): instance.p[j][i] for j in range(n) for i in range(n_m)},
                    doc="processing time")

    m.assign = pyo.Var(m.JOBS, m.POSITIONS, domain=pyo.Binary, doc="1 if job j is in position k")
    m.finish = pyo.Var(m.POSITIONS, m.MACHINES, domain=pyo.NonNegativeReals,
                       doc="completion time of the job in position k on machine i")

    m.one_position_per_job = pyo.Constraint(m.JOBS, rule=lambda m, j: sum(m.assign[j, k] for k in m.POSITIONS) == 1)
    m.one_job_per_position = pyo.Constraint(m.POSITIONS, rule=lambda m, k: sum(m.assign[j, k] for j in m.JOBS) == 1)

    def work(m, k, i):
        return sum(m.p[j, i] * m.assign[j, k] for j in m.JOBS)

    m.machine_flow = pyo.Constraint(m.POSITIONS, m.MACHINES, rule=lambda m, k, i: m.finish[k, i] >= (
        m.finish[k, i - 1] if i > 0 else 0) + work(m, k, i))
    m.position_flow = pyo.Constraint(
        [(k, i) for k in range(1, n) for i in range(n_m)],
        rule=lambda m, k, i: m.finish[k, i] >= m.finish[k - 1, i] + work(m, k, i))
    m.makespan = pyo.Expression(expr=m.finish[n - 1, n_m - 1])
    m.lower_bound = pyo.Constraint(expr=m.makespan >= instance.trivial_lower_bound)  # Taillard's bound helps the LP
    m.objective = pyo.Objective(expr=m.makespan, sense=pyo.minimize)
    return m


def extract_schedule(instance: FlowShopInstance, model: pyo.ConcreteModel, result: SolveResult) -> Schedule:
    """The permutation and the solver's times held by a solved model (constraints a user added
    are honoured; times within solver tolerance of an integer are snapped to it)."""
    require_solution(result, f"{instance.name}")
    position = {j: k for j in model.JOBS for k in model.POSITIONS if pyo.value(model.assign[j, k]) > 0.5}
    ops = []
    for j, k in position.items():
        for i in model.MACHINES:
            end = solver_time(model.finish[k, i])
            ops.append(ScheduledOperation(end - instance.p[j][i], end, j, i, i))
    return Schedule(instance.name, ops, solver="milp", status=result.status, seconds=result.seconds,
                    lower_bound=result.integer_bound, permutation=sorted(position, key=position.__getitem__))
