"""Schedules replayed in the twin: a job-shop or flow-shop schedule becomes a scenario run.

:func:`schedule_scenario` turns an instance and a :class:`~twins.jobshop.schedule.Schedule` into a twin
scenario: one station ``M<m>`` per machine (unlimited buffer, the schedule's job order on that
machine as its fixed ``sequence``), one product ``J<j>`` per job (route = the machines of its
operations in order, process times = the operation durations, constant or lognormal with
coefficient of variation ``cv``), and an external source releasing every job at t = 0. Optional:
power per machine state (energy KPIs), breakdowns on every machine, and any top-level scenario
fields such as a ``tariff`` (``extra``). Instance times are read in ``time_unit`` (default min).

:func:`replay_schedule` runs it until the last job leaves and reports the KPIs of the window
[0, makespan] like any scenario run (throughput, WIP, energy, station utilization …) plus the
replayed ``makespan`` as a line KPI, and the realized operation times read back from the twin's
machine trace. Each machine only ever starts an operation as soon as both the job and the machine
are free, in the given order — so a deterministic replay reproduces the makespan of every
semi-active schedule exactly, and never exceeds the makespan of any feasible one.

:func:`recommend_schedule` solves an instance, replays the schedule and a FIFO dispatch-rule
baseline the same way (same seeds: with ``cv > 0`` every operation draws the same duration in
both), and returns a :class:`~optimizers.recommendation.Recommendation` of kind ``schedule``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optimizers.recommendation import Provenance, Recommendation
from twins.errors import InputError, check_replications, check_seed
from twins.jobshop.instances import FlexibleJobShopInstance, FlowShopInstance, Instance
from twins.jobshop.schedule import Schedule, ScheduledOperation, check_schedule
from twins.kpi import line_kpis, station_kpis
from twins.loader import scenario_from_data
from twins.model import Line
from twins.spec import Scenario
from twins.stats import Comparison, Replication, Results


def station_name(machine: int) -> str:
    return f"M{machine}"


def product_name(job: int) -> str:
    return f"J{job}"


def _duration(instance: Instance, o: ScheduledOperation) -> float:
    if isinstance(instance, FlowShopInstance):
        return float(instance.p[o.job][o.machine])
    if isinstance(instance, FlexibleJobShopInstance):
        return float(dict(instance.jobs[o.job][o.op])[o.machine])
    return float(instance.jobs[o.job][o.op][1])


def _checked(instance: Instance, schedule: Schedule) -> None:
    problems = check_schedule(instance, schedule)
    if problems:
        raise InputError(f"schedule {schedule.solver or ''} is not feasible for {instance.name}: {problems[0]}")


def machine_sequences(schedule: Schedule) -> dict[int, list[int]]:
    """Job order per machine: jobs by start time on that machine (ties by job index)."""
    out: dict[int, list[int]] = {}
    for o in sorted(schedule.operations, key=lambda o: (o.start, o.job)):
        out.setdefault(o.machine, []).append(o.job)
    return out


def schedule_scenario(instance: Instance, schedule: Schedule, *, cv: float = 0.0,
                      breakdowns: Sequence[Mapping[str, Any]] = (),
                      power_kw: Mapping[str, float] | Sequence[Mapping[str, float]] | None = None,
                      extra: Mapping[str, Any] | None = None, time_unit: str = "min",
                      sequences: bool = True) -> Scenario:
    """The twin scenario that executes ``schedule`` (see the module docstring).

    Args:
        instance: the instance the schedule belongs to.
        schedule: a feasible schedule (checked first).
        cv: coefficient of variation of operation times (0 = constant; else lognormal, same mean).
        breakdowns: failure modes for every machine, as in the scenario format
            (``[{"mtbf": 480, "mttr": 20}]``).
        power_kw: kW per machine state (``{"idle": 1.5, "busy": 7}``) for every machine, or a
            list with one such mapping per machine.
        extra: top-level scenario fields to add (``tariff``, ``co2_kg_per_kwh``, ``start_clock``,
            ``economics``, ``calendar``).
        time_unit: unit of the instance's times.
        sequences: give every machine the schedule's job order (False: FIFO by arrival, the bare shop).

    Raises:
        InputError: infeasible schedule, a job visiting a machine twice, bad options.
    """
    _checked(instance, schedule)
    if not 0 <= cv < 10 or math.isnan(cv):
        raise InputError(f"cv must be in [0, 10), got {cv}")
    ops = sorted(schedule.operations, key=lambda o: (o.job, o.op))
    routes: dict[int, list[int]] = {}
    times: dict[int, dict[int, float]] = {}
    for o in ops:
        if o.machine in routes.setdefault(o.job, []):
            raise InputError(f"job {o.job} visits machine {o.machine} twice; the twin replay needs one "
                             f"operation per job and machine")
        routes[o.job].append(o.machine)
        times.setdefault(o.machine, {})[o.job] = _duration(instance, o)
    n_machines = max(instance.n_machines, 1 + max(o.machine for o in ops))
    if power_kw is not None and not isinstance(power_kw, Mapping) and len(power_kw) != n_machines:
        raise InputError(f"power_kw: give one mapping for all machines or one per machine ({n_machines})")
    order = machine_sequences(schedule)
    total = sum(t for row in times.values() for t in row.values())
    stations = []
    for m in range(n_machines):
        dists = {product_name(j): (t if cv == 0 or t == 0 else {"dist": "lognormal", "mean": t, "cv": cv})
                 for j, t in sorted(times.get(m, {}).items())}
        st: dict[str, Any] = {"name": station_name(m), "process_time_by_product": dists}
        if sequences:
            st["sequence"] = [product_name(j) for j in order.get(m, [])]
        if breakdowns:
            st["breakdowns"] = [dict(b) for b in breakdowns]
        if power_kw is not None:
            st["energy"] = {"power_kw": dict(power_kw if isinstance(power_kw, Mapping) else power_kw[m])}
        stations.append(st)
    # the bare shop (sequences=False) is the scenario a plant serves and a schedule recommendation
    # names: it must not depend on which schedule or solver it was built from (its fingerprint)
    description = (f"{instance.name} replayed in the twin ({schedule.solver or 'schedule'})" if sequences
                   else f"{instance.name} as a shop in the twin (every job released at t = 0)")
    # generous: the replay stops when the last job leaves, not at the horizon
    length = max(4 * total, 4 * schedule.makespan, 1.0) if sequences else max(4 * total, 1.0)
    data: dict[str, Any] = {
        "name": instance.name,
        "description": description,
        "time_unit": time_unit,
        "horizon": {"length": float(length), "warmup": 0},
        "replications": 1,
        "products": [{"name": product_name(j), "route": [station_name(m) for m in routes[j]]} for j in sorted(routes)],
        "sources": [{"kind": "external", "name": "release"}],
        "stations": stations,
    }
    for key, value in (extra or {}).items():
        if key in data and key not in ("description", "name"):
            raise InputError(f"extra: {key!r} is set by the replay and cannot be overridden")
        data[key] = value
    return scenario_from_data(data, file=f"<replay of {instance.name}>")


def shop_scenario(instance: Instance, *, cv: float = 0.0, breakdowns: Sequence[Mapping[str, Any]] = (),
                  power_kw: Mapping[str, float] | Sequence[Mapping[str, float]] | None = None,
                  extra: Mapping[str, Any] | None = None, time_unit: str = "min") -> Scenario:
    """The bare shop of ``instance``: :func:`schedule_scenario` with ``sequences=False`` — the
    scenario a ``schedule`` recommendation of :func:`recommend_schedule` is made for (same
    options, same fingerprint) and the one ``twinopt plant INSTANCE`` serves. Every job is one
    product ``J<j>`` released by the external source ``release``; no machine has a fixed order.

    A flexible job shop has no shop scenario of its own (the routes depend on the machines a
    schedule assigns): :class:`InputError`."""
    if isinstance(instance, FlexibleJobShopInstance):
        raise InputError(f"{instance.name} is a flexible job shop: its routes depend on a schedule's machine "
                         f"assignment, so it has no shop scenario of its own")
    from optimizers.solvers import solve_instance

    # routes and times do not depend on the schedule: any feasible one (a dispatch rule) builds it
    schedule = solve_instance(instance, "rule:fifo")
    return schedule_scenario(instance, schedule, cv=cv, breakdowns=breakdowns, power_kw=power_kw, extra=extra,
                             time_unit=time_unit, sequences=False)


@dataclass
class ReplayResult:
    """A schedule replayed in the twin: KPIs per replication over [0, makespan] (``results``, with
    the line KPI ``makespan``), and the operations the twin executed in replication 0 (``realized``,
    read back from the machines, for Gantt charts and checks)."""

    scenario: Scenario
    results: Results
    realized: Schedule

    @property
    def makespans(self) -> np.ndarray:
        return self.results.values("makespan")

    @property
    def makespan(self) -> float:
        """Mean replayed makespan (time the last job leaves), in the scenario's time unit."""
        return float(self.makespans.mean())


def _run_until_done(scenario: Scenario, n_jobs: int, seed: int, replication: int) -> float:
    """The makespan of one replication: release every job at 0, run until the last one leaves."""
    line = Line(scenario, seed, replication)
    for p in scenario.products:
        line.release(p.name, 1)
    horizon = scenario.horizon.length
    until = horizon
    while line.good + line.scrapped < n_jobs:
        line.run(until)
        if line.good + line.scrapped >= n_jobs:
            break
        if line.env.peek() == math.inf or until >= 25 * horizon:
            raise InputError(f"the replay of {scenario.name} stalls: {n_jobs - line.good - line.scrapped} jobs never "
                             f"finish (machine orders contradict the routes)")
        until += horizon
    return max(line.lead_times) if line.lead_times else 0.0


def _replication(scenario: Scenario, n_jobs: int, seed: int, replication: int,
                 instance: Instance | None = None) -> tuple[Replication, Schedule | None]:
    """KPIs over [0, makespan]; with ``instance``, also the realized operations."""
    makespan = _run_until_done(scenario, n_jobs, seed, replication)
    # same seed and replication ⇒ the same run again, observed over exactly [0, makespan]
    line = Line(scenario, seed, replication, trace=instance is not None)
    for p in scenario.products:
        line.release(p.name, 1)
    s0 = line.snapshot()
    line.run(float(np.nextafter(makespan, math.inf)))  # events at t = makespan included
    s1 = line.snapshot()
    kpis = line_kpis(line, s0, s1)
    kpis["makespan"] = makespan
    # with an instance the line was built with trace=True: op_trace is a list
    realized = realized_schedule(instance, scenario, line.op_trace or []) if instance is not None else None
    return Replication(replication, kpis, station_kpis(line, s0, s1)), realized


def realized_schedule(instance: Instance, scenario: Scenario, op_trace: list[tuple], name: str = "") -> Schedule:
    """The operations the twin executed, from its operation trace: which job each machine
    processed, from when to when (repairs during an operation included)."""
    index = {p.name: i for i, p in enumerate(scenario.products)}
    ops = [ScheduledOperation(t0, t1, index[product], scenario.products[index[product]].route.index(station),
                              int(station[1:]))
           for _machine, station, product, t0, t1 in op_trace]
    return Schedule(instance.name, ops, solver=name, status="replayed")


def replay_schedule(instance: Instance, schedule: Schedule, *, replications: int = 1, seed: int = 0,
                    cv: float = 0.0, breakdowns: Sequence[Mapping[str, Any]] = (),
                    power_kw: Mapping[str, float] | Sequence[Mapping[str, float]] | None = None,
                    extra: Mapping[str, Any] | None = None, time_unit: str = "min") -> ReplayResult:
    """Replay ``schedule`` in the twin ``replications`` times (master ``seed``; options as in
    :func:`schedule_scenario`) and report its KPIs over [0, makespan]."""
    check_replications(replications)
    check_seed(seed)
    scenario = schedule_scenario(instance, schedule, cv=cv, breakdowns=breakdowns, power_kw=power_kw, extra=extra,
                                 time_unit=time_unit)
    n_jobs = len(scenario.products)
    reps, realized = [], None
    for r in range(replications):
        rep, ops = _replication(scenario, n_jobs, seed, r, instance if r == 0 else None)
        reps.append(rep)
        realized = realized or ops
    assert realized is not None  # replication 0 (replications ≥ 1) records the operations
    realized.solver = f"replay:{schedule.solver}"
    return ReplayResult(scenario, Results(scenario, seed, reps), realized)


def recommend_schedule(instance: Instance, solver: str = "cpsat", *, time_limit: float | None = None, seed: int = 0,
                       baseline: str = "rule:fifo", replications: int = 1, cv: float = 0.0,
                       breakdowns: Sequence[Mapping[str, Any]] = (),
                       power_kw: Mapping[str, float] | Sequence[Mapping[str, float]] | None = None,
                       extra: Mapping[str, Any] | None = None, time_unit: str = "min",
                       workers: int = 2) -> Recommendation:
    """Solve ``instance`` with ``solver``, replay it and the ``baseline`` dispatch-rule schedule in
    the twin under common random numbers, and return a ``schedule`` Recommendation (payload: the
    ``twinopt schedule`` JSON document plus each machine's job order, ``sequences``)."""
    from optimizers.solvers import solve_instance

    started = time.perf_counter()
    schedule = solve_instance(instance, solver, time_limit=time_limit, seed=seed, workers=workers)
    reference = solve_instance(instance, baseline, seed=seed)
    options: dict[str, Any] = dict(replications=replications, seed=seed, cv=cv, breakdowns=breakdowns,
                                   power_kw=power_kw, extra=extra, time_unit=time_unit)
    rec_run = replay_schedule(instance, schedule, **options)
    base_run = replay_schedule(instance, reference, **options)
    shop = schedule_scenario(instance, schedule, cv=cv, breakdowns=breakdowns, power_kw=power_kw, extra=extra,
                             time_unit=time_unit, sequences=False)  # = shop_scenario(instance, …) but flexible too
    lb = schedule.lower_bound
    gap = (schedule.makespan - lb) / schedule.makespan if lb is not None and schedule.makespan > 0 else None
    payload = schedule.to_json()
    payload["sequences"] = {station_name(m): jobs for m, jobs in sorted(machine_sequences(schedule).items())}
    provenance = Provenance(
        method=schedule.solver or solver, seed=seed, budget={"time_limit_s": time_limit},
        solver_status=schedule.status, gap=gap, wall_time_s=round(time.perf_counter() - started, 3),
        extra={"solver_seconds": round(schedule.seconds, 3), "schedule_makespan": schedule.makespan,
               "lower_bound": lb, "baseline": baseline, "baseline_makespan": reference.makespan,
               "replayed_makespan": rec_run.makespan, "baseline_replayed_makespan": base_run.makespan,
               "cv": cv, "breakdowns": [dict(b) for b in breakdowns], "time_unit": time_unit})
    rec = Recommendation.from_comparison("schedule", payload, Comparison(base_run.results, rec_run.results),
                                         provenance, scenario=shop)
    for table in (rec.baseline, rec.predicted, rec.difference):
        if "makespan" in table:
            table["makespan"] = table["makespan"].model_copy(update={"unit": time_unit})
    return rec
