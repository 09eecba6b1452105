"""Exhaustive grid search over a scenario's process parameters (the reference optimum).

Every point of the full factorial grid (``points_per_parameter`` evenly spaced values per
parameter, both bounds included) is scored like a search trial: the mean of one line KPI over
``replications`` replications, with the same master seed for every point (common random numbers).
Its best value is what parameter search and learned controllers are measured against:

    grid = grid_search(load_scenario("glue_dispensing"), 11, replications=5, seed=0)
    grid.best_setpoints, grid.best_value, grid.values.shape   # (11, 11, 11)

The cost is ``points ** n_parameters × replications`` replications: state it when quoting a grid
optimum (the glue cell's 8 h shift takes about 30 ms per replication).
"""
from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from optimizers.setpoints import MAX_SEED, Dimension, Setpoints, check_objective, search_space, with_setpoints
from twins.errors import InputError, check_replications, check_seed
from twins.executors import chunk_size, fan_out, parallelism
from twins.progress import bar as progress_bar
from twins.spec import Scenario
from twins.stats import run_replication

#: refuse grids beyond this many points (a typo like 100 points for 4 parameters is 10⁸ runs)
MAX_POINTS = 200_000


@dataclass
class GridResult:
    """Objective on every grid point. ``values[i, j, …]`` is the mean at ``axes[0][i], axes[1][j], …``
    (NaN where the KPI is undefined); ``best_*`` follow ``direction``."""

    space: list[Dimension]
    axes: list[np.ndarray]
    values: np.ndarray
    objective: str
    direction: str
    replications: int
    seed: int
    seconds: float
    best_setpoints: Setpoints
    best_value: float

    @property
    def evaluations(self) -> int:
        return int(self.values.size)

    @property
    def seconds_per_evaluation(self) -> float:
        return self.seconds / max(self.evaluations, 1)


def grid_axes(space: Sequence[Dimension], points_per_parameter: int | Mapping[str, int]) -> list[np.ndarray]:
    """Evenly spaced values per parameter, bounds included; one point = the parameter's midpoint.
    ``points_per_parameter`` may be one count or ``{"station.parameter": count}``."""
    axes = []
    for d in space:
        n = points_per_parameter.get(d.key) if isinstance(points_per_parameter, Mapping) else points_per_parameter
        if n is None or int(n) < 1:
            raise InputError(f"{d.key}: points per parameter must be ≥ 1, got {n}")
        axes.append(np.array([(d.low + d.high) / 2]) if int(n) == 1 else np.linspace(d.low, d.high, int(n)))
    return axes


def _objective_at(job: tuple[Scenario, int, int, str]) -> float:
    """The objective KPI of one replication; NaN where it is undefined or a learned process model
    refuses the setpoints (outside its recipe data), as :class:`~optimizers.setpoints.Evaluator` scores it."""
    from twins.learned import OutsideSupport

    scenario, seed, r, objective = job
    try:
        return run_replication(scenario, seed, r).kpis.get(objective, math.nan)
    except OutsideSupport:
        return math.nan


def grid_search(scenario: Scenario, points_per_parameter: int | Mapping[str, int], replications: int = 5,
                seed: int = 0, *, objective: str = "margin", direction: str = "maximize",
                params: Sequence[str] | None = None, workers: int = 1, progress: bool = False,
                executor: Executor | None = None) -> GridResult:
    """Score every point of the full factorial grid; see the module docstring.

    Args:
        scenario: the line.
        points_per_parameter: grid values per parameter (count, or per ``station.parameter``).
        replications: replications per point, same master ``seed`` for all points (CRN).
        objective: a line KPI; ``direction`` ``maximize`` or ``minimize`` picks the best point.
        params: ``station.parameter`` names; default every parameter of every station.
        workers: worker processes for the replications of all points (results identical for any value).
        progress: show a progress bar.
        executor: where the replications run instead (:mod:`twins.executors`, e.g. Ray); same numbers.
    """
    if direction not in ("maximize", "minimize"):
        raise InputError(f"direction must be maximize or minimize, got {direction!r}")
    space = search_space(scenario, params)
    axes = grid_axes(space, points_per_parameter)
    shape = tuple(len(a) for a in axes)
    total = math.prod(shape)
    if total > MAX_POINTS:
        raise InputError(f"grid of {' × '.join(map(str, shape))} = {total} points is too large (max {MAX_POINTS})")
    check_replications(replications)
    check_seed(seed, MAX_SEED + 1)
    check_objective(scenario, objective)
    started = time.perf_counter()
    points = []
    for index in itertools.product(*(range(n) for n in shape)):
        sp: Setpoints = {}
        for d, a, j in zip(space, axes, index, strict=True):
            sp.setdefault(d.station, {})[d.name] = float(a[j])
        points.append(with_setpoints(scenario, sp))
    # every point × replication fans out at once (a cluster runs the whole grid, not one point's
    # replications at a time); the same numbers as scoring the points one by one
    jobs = [(sc, seed, r, objective) for sc in points for r in range(replications)]
    bar = progress_bar(total=len(jobs), desc=f"{scenario.name}: grid {' × '.join(map(str, shape))}", unit="rep",
                       disable=None if progress else True)
    try:
        got = fan_out(_objective_at, jobs, executor=executor, workers=workers,
                      chunksize=chunk_size(len(jobs), parallelism(executor, workers)), done=bar.update)
    finally:
        bar.close()
    values = np.full(total, np.nan)
    for k in range(total):
        x = np.array(got[k * replications:(k + 1) * replications], float)
        values[k] = float(x.mean()) if not np.isnan(x).any() else np.nan
    values = values.reshape(shape)
    seconds = time.perf_counter() - started
    if np.isnan(values).all():
        raise InputError(f"{objective} is undefined (NaN) at every grid point")
    flat = np.nanargmax(values) if direction == "maximize" else np.nanargmin(values)
    best = np.unravel_index(flat, shape)
    best_sp: Setpoints = {}
    for d, a, i in zip(space, axes, best, strict=True):
        best_sp.setdefault(d.station, {})[d.name] = float(a[i])
    return GridResult(space, axes, values, objective, direction, replications, seed, seconds, best_sp,
                      float(values[best]))
