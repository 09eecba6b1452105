"""Designs of experiments over a scenario's process parameters, and their evaluation in the twin.

Shared by the synthetic training data (:mod:`optimizers.dataset`) and the sensitivity analysis
(:mod:`optimizers.sensitivity`):

* :func:`design_points` — ``n`` points within the parameters' bounds: a Latin hypercube or a
  scrambled Sobol' sequence (``scipy.stats.qmc``, seeded), or the full factorial grid
  (:func:`optimizers.grid.grid_axes`, bounds included).
* :func:`evaluate_points` — every design point × replication simulated, all points under the
  same master seed (common random numbers: replication r of every point draws the same random
  numbers, so two points differ only through their setpoints). The (point, replication) pairs fan
  out over one executor; the numbers do not depend on it.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
from scipy.stats import qmc

from optimizers.grid import MAX_POINTS, grid_axes
from optimizers.setpoints import Dimension, Setpoints, with_setpoints
from twins.calibration.calibrate import observe
from twins.calibration.eventlog import event_log_of
from twins.energy import BUSY
from twins.errors import InputError, check_replications, check_seed
from twins.eventlog import Event
from twins.executors import chunk_size, fan_out, parallelism
from twins.kpi import line_kpis
from twins.model import Line
from twins.progress import bar as progress_bar
from twins.spec import Scenario
from twins.stats import run_replication

DESIGNS = ("lhs", "sobol", "grid")


def design_points(space: Sequence[Dimension], design: str, n: int, seed: int = 0) -> np.ndarray:
    """``(points, len(space))`` parameter values in physical units, within ``[low, high]``.

    ``lhs`` and ``sobol`` give exactly ``n`` points (Sobol' is balanced when ``n`` is a power of
    two); ``grid`` gives ``k ** d`` points with ``k = round(n ** (1/d))`` values per parameter.
    Same seed ⇒ same points.
    """
    if design not in DESIGNS:
        raise InputError(f"unknown design {design!r}; choose one of {', '.join(DESIGNS)}")
    if n < 1:
        raise InputError(f"--n must be at least 1 design point, got {n}")
    check_seed(seed)
    d = len(space)
    if design == "grid":
        k = max(1, round(n ** (1 / d)))
        if k**d > MAX_POINTS:
            raise InputError(f"grid of {k}^{d} = {k**d} points is too large (max {MAX_POINTS})")
        axes = grid_axes(space, k)
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)
    if design == "lhs":
        unit = qmc.LatinHypercube(d, seed=np.random.default_rng(seed)).random(n)
    else:
        with warnings.catch_warnings():  # n not a power of 2: the balance warning is documented above
            warnings.simplefilter("ignore", UserWarning)
            unit = qmc.Sobol(d, scramble=True, seed=np.random.default_rng(seed)).random(n)
    lows = np.array([s.low for s in space])
    highs = np.array([s.high for s in space])
    # a zero-width parameter (min = max) stays at its value; qmc.scale refuses it
    return lows + unit * (highs - lows)


def setpoints_at(space: Sequence[Dimension], x: Sequence[float]) -> Setpoints:
    """The setpoints of one design point (``x`` in the order of ``space``)."""
    out: Setpoints = {}
    for dim, v in zip(space, x, strict=True):
        # bounds are inclusive; clip the last ulp that a scaled unit point may overshoot
        out.setdefault(dim.station, {})[dim.name] = float(min(max(float(v), dim.low), dim.high))
    return out


#: one unit that left the line: (product, entry time, exit time, "good" | "scrap", processing time
#: per station visited, processing energy in kWh); times in the scenario's unit
Unit = tuple[str, float, float, str, dict[str, float], float]


@dataclass
class Evaluated:
    """KPIs of every design point × replication: ``kpis[name][i, r]`` (NaN where undefined)."""

    points: np.ndarray
    kpis: dict[str, np.ndarray]
    replications: int
    seed: int
    simulated: int  # replications simulated (the cost in twin evaluations)
    seconds: float
    #: with ``parts=True``: ``parts[i][r]`` — a :data:`Unit` for every unit that left the line in the
    #: observed window (after warm-up) of replication r at point i
    parts: list[list[list[Unit]]] | None = None

    def mean(self, kpi: str) -> np.ndarray:
        """The KPI's mean over replications at every point (NaN if any replication is undefined)."""
        return self.kpis[kpi].mean(axis=1)


def _simulate(job: tuple[Scenario, int, int, int, bool]) -> tuple[int, int, dict[str, float], list[Unit]]:
    scenario, i, seed, r, parts = job
    if not parts:
        return i, r, run_replication(scenario, seed, r).kpis, []
    # run_replication's two windows, with the part trace and event log kept (not part of a Replication)
    events: list[Event] = []
    line = Line(scenario, seed, r, trace=True, events=events)
    line.run(scenario.horizon.warmup)
    s0 = line.snapshot()
    line.run(scenario.horizon.length)
    s1 = line.snapshot()
    return i, r, line_kpis(line, s0, s1), _units(line, events)


def _units(line: Line, events: list[Event]) -> list[Unit]:
    """The units that left ``line`` after warm-up with their processing times per station (downtime
    inside an operation excluded; summed over visits when a part is reworked) and the energy their
    processing drew: each station's busy power at the setpoints in force × those times."""
    warmup = line.scenario.horizon.warmup
    ops = observe(event_log_of(events)).operations
    busy_kw = {st.name: st.power[BUSY] for st in line.stations}
    out: list[Unit] = []
    for product, entry, exit_, outcome, part_id in line.part_trace or ():
        if exit_ <= warmup:
            continue
        times: dict[str, float] = {}
        kwh = 0.0
        for station, _machine, busy, _on_machine in ops.get(str(part_id), ()):
            times[station] = times.get(station, 0.0) + busy
            kwh += busy_kw[station] * busy / line.uph
        out.append((product, entry, exit_, outcome, times, kwh))
    return out


def evaluate_points(scenario: Scenario, space: Sequence[Dimension], points: np.ndarray, replications: int = 1,
                    seed: int = 0, *, workers: int = 1, executor: Executor | None = None,
                    progress: bool | str = False, parts: bool = False) -> Evaluated:
    """Simulate every point × replication with common random numbers; see the module docstring.

    ``executor`` may be any :class:`concurrent.futures.Executor`; otherwise ``workers`` processes
    (1 = in this process). Same seed ⇒ identical numbers whatever the executor. ``parts`` keeps
    every unit that left the line (:attr:`Evaluated.parts`; the twin then records its trace).
    """
    import time

    check_replications(replications)
    check_seed(seed)
    points = np.asarray(points, float)
    scenarios = [with_setpoints(scenario, setpoints_at(space, x)) for x in points]  # bounds checked once, here
    jobs = [(sc, i, seed, r, parts) for i, sc in enumerate(scenarios) for r in range(replications)]
    desc = progress if isinstance(progress, str) else f"{scenario.name}: {len(points)} points × {replications}"
    bar = progress_bar(total=len(jobs), desc=desc, unit="rep", disable=None if progress else True, leave=False)
    started = time.perf_counter()
    try:
        # chunks keep the per-task overhead small next to a few-millisecond replication
        chunk = chunk_size(len(jobs), parallelism(executor, workers))
        out = fan_out(_simulate, jobs, executor=executor, workers=workers, chunksize=chunk, done=bar.update)
    finally:
        bar.close()
    rows = {(i, r): k for i, r, k, _ in out}
    units: dict[tuple[int, int], list[Unit]] = {(i, r): u for i, r, _, u in out}
    names = list(rows[0, 0]) if rows else []
    kpis = {name: np.array([[rows[i, r].get(name, math.nan) for r in range(replications)]
                            for i in range(len(points))], float).reshape(len(points), replications)
            for name in names}
    spans = [[units[i, r] for r in range(replications)] for i in range(len(points))] if parts else None
    return Evaluated(points, kpis, replications, seed, len(jobs), time.perf_counter() - started, spans)
