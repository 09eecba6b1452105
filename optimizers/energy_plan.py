"""Energy plans under a time-of-use tariff: solve the TOU MILP, replay the plan in the twin.

:func:`recommend_energy_plan` builds the :class:`~optimizers.milp.energy.EnergyProblem` of a
station (or a whole route) from the scenario, solves it with HiGHS, and replays the plan in the
twin against the as-is operation under common random numbers, at equal output:

* **as-is**: no commands — the stations stay on under their own standby policy (and the calendar);
  with an ``external`` source the whole target is released at t = 0 (all work available at the
  start, made as soon as possible); with a ``saturated`` source the line simply runs.
  (With a saturated source and an explicit target below what the line makes, the as-is makes
  more: compare the per-unit KPIs.)
* **plan**: at every slot start the stations are commanded on / standby / off
  (:meth:`~twins.station.StationRT.command`; from off the twin then takes the start-up time,
  from standby the wake-up time, at setup power), and with an ``external`` source the slot's
  releases enter the first buffer evenly spread over the slot's ready time (:meth:`Line.release`).

Both are judged over the plan's whole horizon [0, H] (the scenario's warm-up is not deleted: the
plan starts at t = 0). The payload is JSON and :func:`replay_plan` re-runs it from a saved
recommendation::

    rec = recommend_energy_plan("smt_reflow_energy", target=1500)
    rec.difference["energy_cost"]        # paired plan − as-is, mean and 95 % half width
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from optimizers.milp.energy import EnergyPlan, problem_from_scenario, solve_problem
from optimizers.recommendation import Provenance, Recommendation
from twins.energy import largest_consumer
from twins.errors import InputError, check_replications
from twins.kpi import line_kpis, station_kpis
from twins.model import Line
from twins.spec import Scenario
from twins.stats import Comparison, Replication, Results

#: KPIs carried in an energy-plan recommendation.
KPIS = ["energy_cost", "energy_kwh", "energy_cost_per_unit", "energy_kwh_per_unit", "good_units", "co2_kg",
        "lead_time", "energy_kwh_busy", "energy_kwh_idle", "energy_kwh_setup", "energy_kwh_standby",
        "energy_kwh_off"]


def plan_payload(plan: EnergyPlan, scenario: Scenario) -> dict[str, Any]:
    """The JSON payload of a plan: per-slot states, warm-up times and releases, and the changes
    as commands, with the model's own energy and cost prediction."""
    p, r = plan.problem, plan.result
    hh, mm = divmod(round(p.start_clock_h * 60), 60)
    return {
        "stations": [u.name for u in p.units], "time_unit": p.time_unit, "slot": p.slot, "horizon": p.horizon,
        "start_clock": f"{hh % 24:02d}:{mm:02d}", "target": p.target, "end_state": p.end_state,
        "products": [prod.name for prod in scenario.products],
        "states": plan.states, "warmup": plan.warmup, "release": plan.release,
        "commands": plan.commands(),
        "model": {"energy_kwh": plan.energy_kwh, "energy_cost": plan.cost, "currency": p.currency,
                  "bound": r.bound if r else None, "status": r.status if r else None, "gap": r.gap if r else None,
                  "seconds": r.seconds if r else None},
    }


def _controller(line: Line, payload: dict[str, Any]):
    """SimPy process: the plan's commands at slot starts, releases spread over each slot's ready time."""
    env, slot = line.env, float(payload["slot"])
    products, k = payload["products"], 0
    states, release = payload["states"], payload.get("release")
    first = payload["stations"][0]
    before = {name: "on" for name in states}  # the twin starts ready
    for t in range(len(states[first])):
        at = t * slot
        if at > env.now:
            yield env.timeout(at - env.now)
        for name, seq in states.items():
            if seq[t] != before[name]:
                line.station(name).command(seq[t])
                before[name] = seq[t]
        n = int(release[t]) if release else 0
        if n > 0:
            warm = float(payload["warmup"][first][t])
            gap = (slot - warm) / n
            times = [at + warm + (i + 0.5) * gap for i in range(n)]
            env.process(_releases(line, times, [products[(k + i) % len(products)] for i in range(n)]))
            k += n


def _releases(line: Line, times: list[float], products: list[str]):
    env = line.env
    for at, product in zip(times, products, strict=True):
        if at > env.now:
            yield env.timeout(at - env.now)
        line.release(product, 1)


def run_plan(scenario: Scenario, payload: dict[str, Any] | None, seed: int = 0, replication: int = 0, *,
             horizon: float | None = None, target: float | None = None, sample_every: float | None = None
             ) -> Replication:
    """One twin replication over [0, horizon] of ``payload`` (None: the as-is operation, which
    releases ``target`` units at t = 0 when the scenario's source is ``external``)."""
    line = Line(scenario, seed, replication, sample_every=sample_every)
    if payload is not None:
        line.env.process(_controller(line, payload))
        horizon = float(payload["horizon"]) if horizon is None else horizon
    elif target and any(s.kind == "external" for s in scenario.sources):
        n, products = int(math.ceil(target)), [p.name for p in scenario.products]
        for i in range(n):
            line.release(products[i % len(products)], 1)
    s0 = line.snapshot()
    line.run(scenario.horizon.length if horizon is None else horizon)
    s1 = line.snapshot()
    return Replication(replication, line_kpis(line, s0, s1), station_kpis(line, s0, s1), line.series)


def replay_plan(scenario: Scenario, payload: dict[str, Any] | None, replications: int = 10, seed: int = 0, *,
                horizon: float | None = None, target: float | None = None) -> Results:
    """``replications`` twin runs of a plan (or of the as-is operation) with seeds (seed, r)."""
    check_replications(replications)
    reps = [run_plan(scenario, payload, seed, r, horizon=horizon, target=target) for r in range(replications)]
    return Results(scenario, seed, reps)


def recommend_energy_plan(scenario: Scenario | str | Path, station: str | list[str] | None = None,
                          target: float | None = None, slot: float | None = None, time_limit: float = 60,
                          replications: int = 10, seed: int = 0) -> Recommendation:
    """An energy plan for ``station`` (default: the biggest consumer) that makes ``target`` good
    units within the scenario's horizon at least energy cost under its tariff, replayed in the twin.

    Args:
        scenario: a scenario or the path of its YAML file.
        station: station name, or the stations of the route in order.
        target: good units by the end of the horizon. Default (saturated sources only): the as-is
            output (mean of the as-is replications, rounded down; at most the model's capacity).
        slot: slot length in the scenario's time unit (default 15 min).
        time_limit: MILP time limit in seconds.
        replications: twin replications per side (common random numbers).
        seed: master seed of the twin replications and HiGHS.

    Returns:
        A ``Recommendation(kind="energy_plan")``; ``payload`` holds the per-slot plan
        (:func:`plan_payload`), ``baseline``/``predicted``/``difference`` the twin KPIs with CIs
        and ``provenance.extra`` the model's prediction, bound and the share of replications that
        met the target.

    Raises:
        InputError: bad station, source kind, slot, target out of reach, no solution in time.
    """
    if not isinstance(scenario, Scenario):
        from twins.loader import load_scenario

        scenario = load_scenario(str(scenario))
    check_replications(replications)
    started = time.perf_counter()
    station = station or largest_consumer(scenario)
    external = any(s.kind == "external" for s in scenario.sources)
    asis = None
    if target is None:
        if external:
            raise InputError(f"{scenario.name} releases work only on command (kind: external): give an output "
                             f"target (--target UNITS)")
        probe = problem_from_scenario(scenario, station, 1.0, slot=slot)  # validate before simulating
        asis = replay_plan(scenario, None, replications, seed)
        # parts started before a station stops still finish in the twin, which the model does not
        # count: never ask the model for more than its own capacity
        target = float(min(math.floor(asis.ci("good_units")[0]), math.floor(probe.max_output())))
    problem = problem_from_scenario(scenario, station, target, slot=slot)
    plan = solve_problem(problem, time_limit=time_limit, seed=seed)
    payload = plan_payload(plan, scenario)
    if asis is None or problem.horizon != scenario.horizon.length:
        asis = replay_plan(scenario, None, replications, seed, horizon=problem.horizon, target=target)
    planned = replay_plan(scenario, payload, replications, seed)
    good = planned.values("good_units")
    r = plan.result
    provenance = Provenance(
        method="milp-highs-tou", seed=seed, budget={"time_limit_s": time_limit, "replications": replications},
        solver_status=r.status, gap=r.gap, wall_time_s=time.perf_counter() - started, replications=replications,
        extra={"model_energy_cost": plan.cost, "model_energy_kwh": plan.energy_kwh, "model_bound": r.bound,
               "solver_seconds": r.seconds, "target": target,
               "target_met_share": float((good >= target - 1e-9).mean()),
               "baseline": "as-is: always on under the station's own standby policy"
                           + ("; the whole target released at t = 0" if external else "")})
    return Recommendation.from_comparison("energy_plan", payload, Comparison(asis, planned), provenance,
                                          kpis=KPIS, scenario=scenario)
