"""Constraint programming (OR-Tools CP-SAT) for job shops, flexible job shops and permutation
flow shops, minimising the makespan.

One interval variable per operation; an operation with alternative machines gets one *optional*
interval per alternative, exactly one of them present (the habit of OR-Tools'
``flexible_job_shop_sat.py``); ``NoOverlap`` per machine, which also holds the interval from the
makespan to the horizon. A permutation flow shop adds one
Boolean per pair of jobs that fixes their order on every machine.

Durations and times are in the instance's integer time unit; ``time_limit`` is in seconds of
wall-clock time.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

from ortools.sat.python import cp_model

from twins.errors import InputError
from twins.jobshop.instances import FlexibleJobShopInstance, FlowShopInstance, JobShopInstance
from twins.jobshop.schedule import Schedule, ScheduledOperation, check_schedule

_STATUS = {
    cp_model.OPTIMAL: "optimal",
    cp_model.FEASIBLE: "feasible",
    cp_model.INFEASIBLE: "infeasible",
    cp_model.UNKNOWN: "unknown",
}

Alternatives = tuple[tuple[int, int], ...]  # (machine, duration) pairs of one operation


def solve(instance: JobShopInstance | FlexibleJobShopInstance | FlowShopInstance,
          time_limit: float | None = 10.0, workers: int = 2, seed: int = 0,
          hint: Schedule | None = None, log: bool = False,
          deterministic_time: float | None = None) -> Schedule:
    """Minimise the makespan of ``instance`` with CP-SAT.

    Args:
        instance: a job shop, a flexible job shop or a permutation flow shop (solved as such:
            the same job order on every machine, ``permutation`` set on the result).
        time_limit: wall-clock limit in seconds; None runs until optimality is proven.
        workers: CP-SAT search workers (threads).
        seed: CP-SAT's random seed.
        hint: a feasible schedule of the same instance to start from (e.g. a heuristic's).
        log: print CP-SAT's search log.
        deterministic_time: a limit in CP-SAT's deterministic time units instead of (or with)
            ``time_limit``; with ``workers=1`` the result does not depend on machine load.

    Returns:
        A :class:`Schedule` with ``lower_bound`` = CP-SAT's best objective bound and ``status`` one
        of optimal / feasible / infeasible / unknown. With infeasible or unknown (no schedule found
        within the time limit) it has no operations.
    """
    if time_limit is not None and time_limit <= 0:
        raise InputError(f"time limit must be positive seconds, got {time_limit}")
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    started = time.perf_counter()
    jobs = _alternatives(instance)
    model = cp_model.CpModel()
    horizon = _horizon(jobs, hint)
    starts, ends, chosen, by_machine = _operations(model, jobs, horizon)
    makespan = model.new_int_var(min(instance.trivial_lower_bound, horizon), horizon, "makespan")
    model.add_max_equality(makespan, [ends[j, len(job) - 1] for j, job in enumerate(jobs)])
    # The makespan as an interval [makespan, horizon) on every machine (OR-Tools' jobshop_sat
    # "interval makespan"): the disjunctive propagators then push it up by themselves, which
    # tightens the bound and prunes the search.
    after_makespan = model.new_interval_var(makespan, model.new_int_var(0, horizon, "after_makespan_size"),
                                            horizon, "after_makespan")
    for ivs in by_machine.values():
        model.add_no_overlap(ivs + [after_makespan])
    order = _same_order_on_every_machine(model, starts, ends, instance) \
        if isinstance(instance, FlowShopInstance) else None
    model.minimize(makespan)
    if hint is not None:
        _add_hint(model, instance, hint, starts, chosen, makespan)

    solver = cp_model.CpSolver()
    params = solver.parameters
    params.num_workers = workers
    if workers == 2:
        # Two workers are one complete search next to the interleaved LNS neighbourhoods. Without
        # LP rows (none here) quick restarts beat the default search: better 10 s makespans on
        # ta01-ta10 in 15 of 20 paired runs (benchmarks/bench_schedule.py); proofs are unchanged.
        params.subsolvers.append("quick_restart_no_lp")
    params.random_seed = seed
    params.log_search_progress = log
    if time_limit is not None:
        params.max_time_in_seconds = float(time_limit)
    if deterministic_time is not None:
        params.max_deterministic_time = float(deterministic_time)
    code = solver.solve(model)
    status = _STATUS.get(code)
    if status is None:  # MODEL_INVALID: our bug, not the user's
        raise RuntimeError(f"CP-SAT rejected the model: {model.validate()}")

    ops: list[ScheduledOperation] = []
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        for (j, k), start in starts.items():
            s = solver.value(start)
            m, d = next((m, d) for m, d, lit in chosen[j, k] if lit is None or solver.boolean_value(lit))
            ops.append(ScheduledOperation(s, s + d, j, k, m))
    bound = solver.best_objective_bound if ops else None
    result = Schedule(instance.name, ops, solver="cpsat",
                      lower_bound=None if bound is None else int(-(-bound // 1)),
                      status=status, seconds=time.perf_counter() - started)
    if ops and order is not None:
        # read the order from the pair literals, not from start times: zero durations can tie
        preceding = [0] * instance.n_jobs
        for (a, b), a_first in order.items():
            preceding[b if solver.boolean_value(a_first) else a] += 1
        result.permutation = sorted(range(instance.n_jobs), key=preceding.__getitem__)
    return result


def _alternatives(instance) -> tuple[tuple[Alternatives, ...], ...]:
    """Every instance as a flexible job shop: ``jobs[j][k]`` = the operation's alternatives."""
    if isinstance(instance, FlexibleJobShopInstance):
        return instance.jobs
    if isinstance(instance, FlowShopInstance):
        instance = instance.as_job_shop()
    return tuple(tuple((op,) for op in job) for job in instance.jobs)


def _horizon(jobs, hint: Schedule | None) -> int:
    """An upper bound on the makespan: the hint's, else all jobs one after the other."""
    serial = sum(max(d for _, d in alts) for job in jobs for alts in job)
    return min(serial, int(hint.makespan)) if hint is not None and hint.operations else serial


def _operations(model: cp_model.CpModel, jobs, horizon: int):
    """Interval variables for every operation and its alternatives, and the job precedences.

    Returns ``starts[j, k]``, ``ends[j, k]``, ``chosen[j, k]`` = list of (machine, duration,
    presence literal or None when the operation has a single machine) and intervals by machine.
    """
    starts: dict[tuple[int, int], cp_model.IntVar] = {}
    ends: dict[tuple[int, int], cp_model.IntVar] = {}
    chosen: dict[tuple[int, int], Sequence[tuple[int, int, cp_model.IntVar | None]]] = {}
    by_machine: dict[int, list] = defaultdict(list)
    for j, job in enumerate(jobs):
        shortest = [min(d for _, d in alts) for alts in job]
        for k, alts in enumerate(job):
            # heads and tails of the job bound the start: earliest after the job's shortest
            # predecessors, latest so that the shortest successors still fit the horizon
            lo, hi = sum(shortest[:k]), horizon - sum(shortest[k:])
            start = model.new_int_var(lo, hi, f"start_{j}_{k}")
            end = model.new_int_var(lo + shortest[k], horizon - sum(shortest[k + 1:]), f"end_{j}_{k}")
            starts[j, k], ends[j, k] = start, end
            if len(alts) == 1:
                (m, d), = alts
                by_machine[m].append(model.new_interval_var(start, d, end, f"op_{j}_{k}"))
                chosen[j, k] = [(m, d, None)]
            else:
                duration = model.new_int_var_from_domain(
                    cp_model.Domain.from_values(sorted({d for _, d in alts})), f"dur_{j}_{k}")
                model.new_interval_var(start, duration, end, f"op_{j}_{k}")
                lits = []
                for m, d in alts:
                    lit = model.new_bool_var(f"on_{j}_{k}_{m}")
                    by_machine[m].append(model.new_optional_fixed_size_interval_var(
                        start, d, lit, f"op_{j}_{k}_on_{m}"))
                    model.add(duration == d).only_enforce_if(lit)
                    lits.append((m, d, lit))
                model.add_exactly_one(lit for _, _, lit in lits)
                chosen[j, k] = lits
            if k:
                model.add(start >= ends[j, k - 1])
    return starts, ends, chosen, by_machine


def _same_order_on_every_machine(model: cp_model.CpModel, starts, ends, instance: FlowShopInstance):
    """Permutation flow shop: job a precedes job b on one machine iff on all of them. Returns
    the literal "a before b" of every pair a < b."""
    n, n_m = instance.n_jobs, instance.n_machines
    order = {}
    for a in range(n):
        for b in range(a + 1, n):
            a_first = order[a, b] = model.new_bool_var(f"{a}_before_{b}")
            for m in range(n_m):
                model.add(ends[a, m] <= starts[b, m]).only_enforce_if(a_first)
                model.add(ends[b, m] <= starts[a, m]).only_enforce_if(~a_first)
    return order


def _add_hint(model: cp_model.CpModel, instance, hint: Schedule, starts, chosen, makespan) -> None:
    problems = check_schedule(instance, hint)
    if problems:  # an infeasible hint would also shrink the horizon below what is achievable
        raise InputError(f"hint schedule is not feasible: {problems[0]}")
    for o in hint.operations:
        model.add_hint(starts[o.job, o.op], int(o.start))
        for m, _, lit in chosen[o.job, o.op]:
            if lit is not None:
                model.add_hint(lit, m == o.machine)
    model.add_hint(makespan, int(hint.makespan))
