"""Which process parameters move a KPI, and how much: global sensitivity analysis in the twin.

* :func:`sobol_indices` — variance-based Sobol' indices (SALib): first order ``S1`` (the share
  of the KPI's variance a parameter explains alone) and total order ``ST`` (alone and through
  every interaction), each with a 95 % bootstrap half width. Saltelli's scheme without second-order
  terms costs ``N × (d + 2)`` design points for ``N`` base samples and ``d`` parameters.
* :func:`morris_screening` — Morris elementary effects (SALib) for many parameters: ``mu_star``
  (mean absolute effect over the range, in KPI units, with a 95 % half width) and ``sigma`` (its
  spread: non-linearity or interactions) at ``r × (d + 1)`` design points for ``r`` trajectories.
* :func:`local_sensitivity` — the cheap one: central differences ± a step around one operating
  point (a recommendation), ``2 d + 1`` points, slopes with paired 95 % CIs.

Every design point is the mean of ``R`` replications under the same master seed (common random
numbers, :mod:`optimizers.design`): the KPI is then a deterministic function of the parameters
for the analysis, and a parameter the line ignores gets indices of exactly 0 instead of noise.

    res = sobol_indices(load_scenario("glue_dispensing"), kpi="margin", n=128, replications=2)
    res.summary()["indices"]["dispenser.speed_mm_s"]   # {"S1": …, "S1_conf": …, "ST": …, "ST_conf": …}
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optimizers.design import evaluate_points
from optimizers.setpoints import Dimension, Setpoints, check_objective, search_space
from twins.errors import InputError, check_seed
from twins.jsonsafe import finite_or_none
from twins.spec import Scenario
from twins.stats import confidence_interval

METHODS = ("sobol", "morris")
#: bootstrap resamples behind SALib's confidence intervals
RESAMPLES = 200


@dataclass
class SensitivityResult:
    """Indices per parameter (``indices[station.parameter][name]``) and what they cost."""

    scenario: str
    kpi: str
    unit: str
    method: str
    space: list[Dimension]
    n: int  # base samples (Sobol') or trajectories (Morris)
    replications: int
    seed: int
    points: int  # design points simulated (each R replications)
    simulated: int  # replications simulated in total: the cost in twin evaluations
    seconds: float
    indices: dict[str, dict[str, float]]
    kpi_mean: float = math.nan
    kpi_sd: float = math.nan  # spread of the KPI over the design (what the indices apportion)
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The ``twinopt sensitivity --json`` document."""
        cost = "N × (d + 2)" if self.method == "sobol" else "r × (d + 1)"
        return {
            "scenario": self.scenario, "kpi": self.kpi, "unit": self.unit, "method": self.method,
            "parameters": [{"name": d.key, "unit": d.unit, "low": d.low, "high": d.high} for d in self.space],
            "n": self.n, "replications": self.replications, "seed": self.seed, "common_random_numbers": True,
            "cost": {"design_points": self.points, "formula": cost, "replications_per_point": self.replications,
                     "replications_simulated": self.simulated, "seconds": round(self.seconds, 3),
                     "seconds_per_replication": round(self.seconds / max(self.simulated, 1), 5)},
            "kpi_mean": finite_or_none(self.kpi_mean), "kpi_sd": finite_or_none(self.kpi_sd),
            "indices": {k: {name: finite_or_none(v) for name, v in ix.items()} for k, ix in self.indices.items()},
            **self.extra,
        }


def _problem(space: Sequence[Dimension]) -> dict[str, Any]:
    for d in space:
        if not d.high > d.low:
            raise InputError(f"{d.key}: bounds [{d.low:g}, {d.high:g}] have no width; leave it out of --params")
    return {"num_vars": len(space), "names": [d.key for d in space], "bounds": [[d.low, d.high] for d in space]}


def _responses(scenario: Scenario, space: Sequence[Dimension], x: np.ndarray, kpi: str, replications: int,
               seed: int, workers: int, executor: Executor | None, progress: bool) -> tuple[np.ndarray, int, float]:
    ev = evaluate_points(scenario, space, x, replications, seed, workers=workers, executor=executor,
                         progress=f"{scenario.name}: {len(x)} points × {replications}" if progress else False)
    y = ev.mean(kpi)
    if np.isnan(y).any():
        bad = int(np.isnan(y).sum())
        raise InputError(f"{kpi} is undefined (NaN) at {bad} of {len(y)} design points; choose another KPI")
    return y, ev.simulated, ev.seconds


def _check(scenario: Scenario, kpi: str, n: int, replications: int, seed: int) -> str:
    unit = check_objective(scenario, kpi)
    if n < 2:
        raise InputError(f"--n must be ≥ 2, got {n}")
    if replications < 1:
        raise InputError(f"--replications must be ≥ 1, got {replications}")
    check_seed(seed)
    return unit


def sobol_indices(scenario: Scenario, *, kpi: str = "margin", params: Sequence[str] | None = None, n: int = 128,
                  replications: int = 2, seed: int = 0, workers: int = 1, executor: Executor | None = None,
                  progress: bool = False) -> SensitivityResult:
    """First- and total-order Sobol' indices of ``kpi`` over the parameters' boxes; see the module
    docstring. ``n`` base samples (a power of 2) cost ``n × (d + 2)`` design points × ``replications``."""
    from SALib.analyze import sobol as analyze
    from SALib.sample import sobol as sample

    unit = _check(scenario, kpi, n, replications, seed)
    if n & (n - 1):
        lower = 1 << (n.bit_length() - 1)
        raise InputError(f"--n for Sobol' indices must be a power of 2 (Sobol' sequence balance), "
                         f"got {n}; try {lower} or {lower * 2}")
    space = search_space(scenario, params)
    problem = _problem(space)
    started = time.perf_counter()
    x = sample.sample(problem, n, calc_second_order=False, seed=seed)
    y, simulated, _ = _responses(scenario, space, x, kpi, replications, seed, workers, executor, progress)
    indices: dict[str, dict[str, float]] = {}
    if float(np.ptp(y)) == 0.0:  # the KPI does not move: nothing to apportion (SALib would divide by 0)
        indices = {d.key: {"S1": 0.0, "S1_conf": 0.0, "ST": 0.0, "ST_conf": 0.0} for d in space}
    else:
        si = analyze.analyze(problem, y, calc_second_order=False, num_resamples=RESAMPLES, conf_level=0.95,
                             seed=seed)
        for j, d in enumerate(space):
            indices[d.key] = {k: float(si[k][j]) for k in ("S1", "S1_conf", "ST", "ST_conf")}
    seconds = time.perf_counter() - started
    s1 = sum(ix["S1"] for ix in indices.values())
    # Σ S1 ≤ 1 (up to estimation error); 1 − Σ S1 is the share only interactions explain
    extra = {"sum_S1": s1, "interactions": max(0.0, 1.0 - s1)}
    return SensitivityResult(scenario.name, kpi, unit, "sobol", space, n, replications, seed, len(x), simulated,
                             seconds, indices, float(y.mean()), float(y.std(ddof=1)), extra)


def morris_screening(scenario: Scenario, *, kpi: str = "margin", params: Sequence[str] | None = None, n: int = 20,
                     levels: int = 4, replications: int = 2, seed: int = 0, workers: int = 1,
                     executor: Executor | None = None, progress: bool = False) -> SensitivityResult:
    """Morris elementary effects of ``kpi``: ``n`` trajectories on a ``levels``-level grid cost
    ``n × (d + 1)`` design points × ``replications``; see the module docstring."""
    from SALib.analyze import morris as analyze
    from SALib.sample import morris as sample

    unit = _check(scenario, kpi, n, replications, seed)
    if levels < 2 or levels % 2:
        raise InputError(f"Morris levels must be an even number ≥ 2, got {levels}")
    space = search_space(scenario, params)
    problem = _problem(space)
    started = time.perf_counter()
    x = sample.sample(problem, n, num_levels=levels, seed=seed)
    y, simulated, _ = _responses(scenario, space, x, kpi, replications, seed, workers, executor, progress)
    si = analyze.analyze(problem, x, y, num_resamples=RESAMPLES, conf_level=0.95, num_levels=levels, seed=seed)
    indices = {d.key: {"mu": float(si["mu"][j]), "mu_star": float(si["mu_star"][j]),
                       "mu_star_conf": float(si["mu_star_conf"][j]), "sigma": float(si["sigma"][j])}
               for j, d in enumerate(space)}
    seconds = time.perf_counter() - started
    return SensitivityResult(scenario.name, kpi, unit, "morris", space, n, replications, seed, len(x), simulated,
                             seconds, indices, float(y.mean()), float(y.std(ddof=1)), {"levels": levels})


def local_sensitivity(scenario: Scenario, setpoints: Setpoints, *, kpi: str = "margin",
                      params: Sequence[str] | None = None, step: float = 0.05, replications: int = 5, seed: int = 0,
                      workers: int = 1, executor: Executor | None = None) -> dict[str, Any]:
    """Central differences of ``kpi`` around ``setpoints``: each parameter moved ± ``step`` × its
    range (one-sided at a bound), all points under one master seed (CRN) so each slope's 95 % CI
    comes from paired replications. Costs ``(2 d + 1) × replications`` replications.

    Returns ``{"kpi", "step_fraction", "replications", "seed", "value", "parameters":
    {station.parameter: {"at", "low", "high", "slope", "slope_half_width", "change_over_range"}}}``:
    ``slope`` in KPI units per parameter unit, ``change_over_range`` = slope × range (a comparable
    size across parameters).
    """
    if not 0 < step <= 0.5:
        raise InputError(f"local sensitivity step must be in (0, 0.5] of the range, got {step}")
    space = search_space(scenario, params)
    at = np.array([setpoints.get(d.station, {}).get(d.name, d.current) for d in space], float)
    rows = [at]
    for j, d in enumerate(space):
        h = step * (d.high - d.low)
        lo, hi = at.copy(), at.copy()
        lo[j], hi[j] = max(d.low, at[j] - h), min(d.high, at[j] + h)
        rows += [lo, hi]
    x = np.vstack(rows)
    ev = evaluate_points(scenario, space, x, replications, seed, workers=workers, executor=executor)
    k = ev.kpis[kpi]
    out: dict[str, dict[str, float | None]] = {}
    for j, d in enumerate(space):
        lo, hi = x[1 + 2 * j, j], x[2 + 2 * j, j]
        if hi <= lo:  # zero-width parameter
            out[d.key] = {"at": float(at[j]), "low": float(lo), "high": float(hi), "slope": None,
                          "slope_half_width": None, "change_over_range": None}
            continue
        slopes = (k[2 + 2 * j] - k[1 + 2 * j]) / (hi - lo)  # per replication: paired under CRN
        m, hw = confidence_interval(slopes)
        out[d.key] = {"at": float(at[j]), "low": float(lo), "high": float(hi), "slope": finite_or_none(m),
                      "slope_half_width": finite_or_none(hw),
                      "change_over_range": finite_or_none(m * (d.high - d.low))}
    value, value_hw = confidence_interval(k[0])
    return {"kpi": kpi, "method": "central differences, common random numbers", "step_fraction": step,
            "replications": replications, "seed": seed, "replications_simulated": ev.simulated,
            "value": finite_or_none(value), "value_half_width": finite_or_none(value_hw), "parameters": out}


# -- charts -------------------------------------------------------------------------------------
def figure(result: SensitivityResult) -> Any:
    """A plotly bar chart: S1 and ST with 95 % error bars (Sobol'), or mu* with its CI and sigma (Morris)."""
    import plotly.graph_objects as go

    names = [d.key for d in result.space]
    ix = result.indices
    fig = go.Figure()

    def bar(key: str, conf: str | None, label: str, color: str) -> None:
        err = dict(type="data", array=[ix[k][conf] for k in names]) if conf else None
        fig.add_bar(x=names, y=[ix[k][key] for k in names], name=label, error_y=err, marker_color=color)

    cost = f"{result.points} points × {result.replications} replications = {result.simulated} runs"
    label = f"{result.kpi} ({result.unit})" if result.unit else result.kpi
    if result.method == "sobol":
        bar("S1", "S1_conf", "first order S1", "#1f77b4")
        bar("ST", "ST_conf", "total order ST", "#ff7f0e")
        fig.update_layout(title=f"Sobol' indices of {label} — N = {result.n}, {cost}, 95 % bootstrap CI",
                          yaxis_title="share of variance", barmode="group")
    else:
        bar("mu_star", "mu_star_conf", "mu* (mean |elementary effect|)", "#1f77b4")
        bar("sigma", None, "sigma (non-linearity, interactions)", "#7f7f7f")
        fig.update_layout(title=f"Morris screening of {label} — {result.n} trajectories, {cost}, 95 % CI",
                          yaxis_title=f"effect over the range ({result.unit})" if result.unit else "effect",
                          barmode="group")
    fig.update_layout(legend_orientation="h")
    return fig


def write_html(result: SensitivityResult, path: str) -> None:
    """One self-contained HTML page with :func:`figure`."""
    from pathlib import Path

    title = f"{result.scenario}: sensitivity of {result.kpi} ({result.method})"
    body = figure(result).to_html(full_html=False, include_plotlyjs=True)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
                   f"<body style='font-family:sans-serif'><h2>{title}</h2>{body}</body></html>\n")
    tmp.replace(path)
