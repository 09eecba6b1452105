"""TOU energy scheduling benchmark: energy-cost saving of the MILP plan against the as-is operation
at equal output, replayed in the twin, and that saving as a share of the theoretical maximum.
Prints, never asserts.

Cases (one day from 06:00, 15-min slots, HiGHS with a 60 s limit, 10 twin replications per side
under common random numbers):

* ``smt_reflow``  — scenarios/smt_reflow_energy.yaml: the SMT line's 10-slot reflow oven, 1500 boards.
* ``furnace``     — scenarios/reheating_furnace.yaml: an electric billet reheating furnace, 120 lots of 0.5 t.

Definitions (costs in the tariff's currency over the day, twin means over the replications):

* ``as-is``  — the station always on under its own standby policy, the whole target available at
  06:00 and made as soon as possible (:func:`optimizers.energy_plan.run_plan` with no plan).
* ``plan``   — the MILP's per-slot on/standby/off commands and releases executed in the twin.
* ``saving`` = as-is − plan (paired over replications, mean ± 95 % half width); both make the
  target (the line "output" shows the good units of each).
* **theoretical maximum saving** = as-is − C_min, where C_min is the MILP's proven lower bound
  (dual bound, ≤ its optimum): no plan that switches the station on, to standby or off per slot —
  with any release pattern — can cost less in the TOU model. **share** = saving / maximum saving
  (target ≥ 90 %). It falls short of 100 % by the solver's gap and by what the model misjudges
  about the twin (process-time noise, spill-over of parts, the automatic standby); it can exceed
  100 % where the twin is cheaper than the model (automatic standby while idle).
* ``ideal`` — a stricter, model-free reference: C_ideal is a lower bound on the twin's cost of
  *any* control of the station, even one switching at any instant. Every control falls in one of
  three cases; each case's bound drops the order of events and prices every piece at the
  cheapest moments it could take (W = target / yield × process time of busy machine time):
  (a) no warm-up at all: ready (≥ idle power) from 06:00 to some τ, W busy at the cheapest
  moments before τ, off power after τ; (b) wake-ups from standby but no cold start: until the
  final tail (from τ, off power) the station is ready or in standby (≥ standby power), ready for
  W / n + one wake-up at the cheapest moments, busy for W at the cheapest moments, one wake-up at
  setup power at the lowest price; (c) at least one cold start: off power all day, W busy at the
  cheapest moments, one start-up at setup power at the lowest price. C_ideal = min over the cases
  (and over τ). ``share of ideal`` = saving / (as-is − C_ideal): it counts what slot granularity,
  real event order and every warm-up after the first cost any real plan as a shortfall.

    python benchmarks/bench_energy.py [--only smt_reflow,furnace] [--time-limit 60] [--replications 10] [--seed 0]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from optimizers.energy_plan import plan_payload, replay_plan  # noqa: E402
from optimizers.milp.energy import EnergyProblem, problem_from_scenario, solve_problem  # noqa: E402
from twins.energy import BUSY, IDLE, OFF, SETUP, STANDBY  # noqa: E402
from twins.loader import load_scenario  # noqa: E402
from twins.stats import Comparison  # noqa: E402

CASES = {
    "smt_reflow": ("smt_reflow_energy", "reflow", 1500),
    "furnace": ("reheating_furnace", "furnace", 120),
}


def ideal_cost(problem: EnergyProblem, scenario, resolution: float | None = None) -> float:
    """C_ideal of the module docstring for a single-unit problem (currency over the horizon);
    time is resolved to ``resolution`` (default slot / 15) and prices are piecewise constant."""
    (u,) = problem.units
    H, uph, n = problem.horizon, problem.units_per_hour, u.machines
    dt = resolution or problem.slot / 15.0
    grid = np.arange(0.0, H, dt)
    segs = scenario.tariff.price_segments(H, scenario.start_clock, scenario.time_unit)
    times = np.array([t for t, _ in segs])
    price = np.array([p for _, p in segs])[np.searchsorted(times, grid, side="right") - 1]
    kwh = n * dt / uph  # kWh per kW of every machine over one grid step
    P = u.power_kw
    busy = problem.target / u.yield_ * u.process_time / u.availability / n / dt  # grid steps, all machines busy
    wake = u.wakeup / dt

    def cheapest(prices: np.ndarray, steps: float) -> float:
        """Σ price over the ``steps`` cheapest grid steps (fractional), inf when too few."""
        if steps > len(prices) + 1e-9:
            return math.inf
        s = np.sort(prices)
        k = int(math.floor(steps))
        return float(s[:k].sum() + ((steps - k) * s[k] if k < len(s) else 0.0))

    head = np.cumsum(price)  # Σ price over [0, τ] for τ at each grid step
    total = float(price.sum())
    cold = total * P[OFF] * kwh + cheapest(price, busy) * (P[BUSY] - P[OFF]) * kwh \
        + (P[SETUP] - P[OFF]) * n * u.startup / uph * price.min()
    never, warm = math.inf, math.inf
    for i in range(len(grid)):
        before, tail = price[: i + 1], (total - head[i]) * P[OFF] * kwh
        b = cheapest(before, busy)
        if math.isfinite(b):
            never = min(never, head[i] * P[IDLE] * kwh + b * (P[BUSY] - P[IDLE]) * kwh + tail)
            r = cheapest(before, busy + wake)
            if math.isfinite(r):
                warm = min(warm, head[i] * P[STANDBY] * kwh + r * (P[IDLE] - P[STANDBY]) * kwh
                           + b * (P[BUSY] - P[IDLE]) * kwh + (P[SETUP] - P[IDLE]) * n * u.wakeup / uph * before.min()
                           + tail)
    return min(never, warm, cold)


def run_case(name: str, args: argparse.Namespace) -> dict:
    shipped, station, target = CASES[name]
    scenario = load_scenario(shipped)
    problem = problem_from_scenario(scenario, station, target)
    t0 = time.perf_counter()
    plan = solve_problem(problem, time_limit=args.time_limit, seed=args.seed)
    r = plan.result
    asis = replay_plan(scenario, None, args.replications, args.seed, target=target)
    planned = replay_plan(scenario, plan_payload(plan, scenario), args.replications, args.seed)
    cmp = Comparison(asis, planned)
    a, p = asis.ci("energy_cost")[0], planned.ci("energy_cost")[0]
    d, hw, _ = cmp.diff("energy_cost")
    saving = -d
    c_min, c_ideal = r.bound if r.bound is not None else plan.cost, ideal_cost(problem, scenario)
    cur = problem.currency
    out = {"case": name, "asis": a, "plan": p, "saving": saving, "hw": hw, "share": saving / (a - c_min),
           "share_ideal": saving / (a - c_ideal)}
    states = plan.states[station]
    print(f"{name:<11} target {target} units; MILP {r.status}, gap {100 * (r.gap or 0):.2f} %, {r.seconds:.1f} s; "
          f"model cost {plan.cost:.2f}, bound {c_min:.2f}; ideal bound {c_ideal:.2f} {cur}")
    print(f"{'':<11} output as-is {asis.ci('good_units')[0]:.1f}, plan {planned.ci('good_units')[0]:.1f} "
          f"(min {planned.values('good_units').min():.0f}) units; slots on/standby/off "
          f"{states.count('on')}/{states.count('standby')}/{states.count('off')}; "
          f"{time.perf_counter() - t0:.1f} s in all")
    print(f"{'':<11} energy cost as-is {a:.2f}, plan {p:.2f} {cur} (model predicted {plan.cost:.2f}); "
          f"saving {saving:.2f} ± {hw:.2f} {cur} ({100 * saving / a:.1f} %); "
          f"share of theoretical maximum {100 * out['share']:.1f} %; share of ideal {100 * out['share_ideal']:.1f} %")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    ap.add_argument("--time-limit", type=float, default=60.0, help="MILP time limit per case, s")
    ap.add_argument("--replications", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"TOU energy scheduling: MILP (Pyomo + HiGHS) plans replayed in the twin; load average {load:.1f}")
    rows = [run_case(name, args) for name in args.only.split(",")]
    shares = [r["share"] for r in rows]
    print(f"mean share of theoretical maximum saving: {100 * np.mean(shares):.1f} % (target >= 90 %); "
          f"mean share of ideal: {100 * np.mean([r['share_ideal'] for r in rows]):.1f} %; "
          f"mean saving {100 * np.mean([r['saving'] / r['asis'] for r in rows]):.1f} % of the as-is energy cost")


if __name__ == "__main__":
    main()
