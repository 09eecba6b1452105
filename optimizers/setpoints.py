"""Setpoints as a search space, and their evaluation in the twin — shared by the optuna search
(:mod:`optimizers.search`), the exhaustive grid (:mod:`optimizers.grid`) and the agent benchmarks.

* :class:`Dimension` — one process parameter ``station.name`` within its bounds, with today's
  setpoint; :func:`search_space` lists them for a scenario (all, or the named ones).
* :func:`with_setpoints` — a copy of a scenario running at given setpoints (bounds checked).
* :class:`Evaluator` — the objective KPI per replication at given setpoints, always under the
  same master seed (common random numbers), optionally on a process pool that results do not
  depend on.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from twins.errors import InputError, check_replications, check_seed
from twins.kpi import LINE_UNITS, units
from twins.response import check_setpoints
from twins.spec import Scenario
from twins.stats import Results, replicate

ORDER_KPIS = ("tardiness", "tardy_fraction", "orders_completed")
#: largest master seed: optuna's samplers take 32-bit seeds and the final replays use seed + 1
MAX_SEED = 2**32 - 2


@dataclass(frozen=True)
class Dimension:
    """One searched process parameter: ``station.name`` within ``[low, high]`` (``unit``)."""

    station: str
    name: str
    low: float
    high: float
    unit: str
    current: float  # the scenario's setpoint (the as-is operating point)

    @property
    def key(self) -> str:
        return f"{self.station}.{self.name}"


Setpoints = dict[str, dict[str, float]]  # station -> parameter -> value


def _searchable(st: Any, p: Any) -> tuple[float, float]:
    """A parameter's bounds, narrowed to the recipe data's range where a learned process model reads
    it (beyond, it refuses every setpoint: searching there wastes trials)."""
    lo, hi = float(p.min), float(p.max)
    response = st.response
    if response is None or response.model is None:
        return lo, hi
    st.response.compile(tuple(q.name for q in st.parameters))  # fits the model (once per process)
    model = response._learned
    if p.name not in model.inputs:
        return lo, hi
    i = model.inputs.index(p.name)
    margin = model.max_distance * float(model.span[i])
    d_lo, d_hi = float(model.lo[i]) - margin, float(model.lo[i] + model.span[i]) + margin
    return max(lo, d_lo), min(hi, d_hi)


def search_space(scenario: Scenario, params: Sequence[str] | None = None) -> list[Dimension]:
    """The parameters to search: all stations' parameters, or the named ``station.parameter`` ones.

    Raises:
        InputError: a name that is not ``station.parameter`` of this scenario, or nothing to search.
    """
    every = [Dimension(st.name, p.name, *_searchable(st, p), p.unit, float(p.setpoint))
             for st in scenario.stations for p in st.parameters]
    if not params:
        if not every:
            raise InputError(f"scenario {scenario.name!r} has no process parameters to search")
        return every
    by_key = {d.key: d for d in every}
    chosen: list[Dimension] = []
    for name in params:
        name = name.strip()
        if name not in by_key:
            known = ", ".join(by_key) or "none"
            raise InputError(f"unknown parameter {name!r}: give station.parameter (parameters: {known})")
        if by_key[name] not in chosen:
            chosen.append(by_key[name])
    return chosen


def with_setpoints(scenario: Scenario, setpoints: Mapping[str, Mapping[str, float]]) -> Scenario:
    """A copy of ``scenario`` whose parameters run at ``setpoints`` (the original is untouched).

    Raises:
        InputError: unknown station or parameter, or a value outside the parameter's bounds.
    """
    stations = list(scenario.stations)
    for station, values in setpoints.items():
        idx = next((i for i, s in enumerate(stations) if s.name == station), None)
        if idx is None:
            raise InputError(f"unknown station {station!r} (stations: {', '.join(s.name for s in stations)})")
        st = stations[idx]
        checked = check_setpoints(station, st.parameters, values)
        params = [p.model_copy(update={"value": checked[p.name]}) if p.name in checked else p for p in st.parameters]
        stations[idx] = st.model_copy(update={"parameters": params})
    return scenario.model_copy(update={"stations": stations})


def current_setpoints(space: Sequence[Dimension]) -> Setpoints:
    out: Setpoints = {}
    for d in space:
        out.setdefault(d.station, {})[d.name] = d.current
    return out


def check_objective(scenario: Scenario, objective: str) -> str:
    """The unit of line KPI ``objective``; :class:`InputError` when the scenario has no such KPI."""
    has_orders = any(src.kind == "orders" for src in scenario.sources)
    known = [k for k in LINE_UNITS if has_orders or k not in ORDER_KPIS]
    if objective not in known:
        raise InputError(f"unknown KPI {objective!r} (line KPIs: {', '.join(known)})")
    return units(scenario)[0][objective]


class Evaluator:
    """Scores setpoints in the twin: the objective KPI of ``replications`` replications under one
    master ``seed`` (common random numbers across calls). ``workers > 1`` keeps one process pool
    for all calls, or the calls go to ``executor`` (:mod:`twins.executors`, e.g. Ray; the caller
    shuts it down); results do not depend on either. Use as a context manager (closes the pool)."""

    def __init__(self, scenario: Scenario, objective: str, replications: int, seed: int, workers: int = 1,
                 executor: Executor | None = None):
        check_replications(replications)
        check_seed(seed, MAX_SEED + 1)  # the search's final replays use seed + 1
        check_objective(scenario, objective)
        self.scenario, self.objective, self.replications, self.seed = scenario, objective, replications, seed
        self._owns_pool = executor is None
        self.pool = executor if executor is not None else ProcessPoolExecutor(max_workers=workers) if workers > 1 \
            else None
        self.evaluations = 0  # setpoint evaluations (trials)
        self.simulated = 0  # replications simulated in total

    def results(self, setpoints: Mapping[str, Mapping[str, float]], replications: int | None = None,
                seed: int | None = None) -> Results:
        """All KPIs of the replications at ``setpoints``."""
        n = replications or self.replications
        res = replicate(with_setpoints(self.scenario, setpoints), n, self.seed if seed is None else seed,
                        workers=1, executor=self.pool)
        self.simulated += n
        return res

    def __call__(self, setpoints: Mapping[str, Mapping[str, float]]) -> np.ndarray:
        """The objective KPI per replication (search seed and replication count); NaN (infeasible)
        where a learned process model refuses the setpoints (outside its recipe data)."""
        from twins.learned import OutsideSupport

        self.evaluations += 1
        try:
            return self.results(setpoints).values(self.objective)
        except OutsideSupport:
            return np.full(self.replications, np.nan)

    def close(self) -> None:
        if self.pool is not None and self._owns_pool:
            self.pool.shutdown(cancel_futures=True)
        self.pool = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
