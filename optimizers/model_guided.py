"""The low-fidelity step of ``twinopt optimize --sampler model``: optimise the line's rough-cut model
(:class:`twins.roughcut.RoughCut`, a fluid bottleneck approximation built from the scenario's own
response expressions) over the search space, where an evaluation costs microseconds, and hand the
twin search its optimum as a starting point and a trust region.

The optimisation works in the unit cube of the searched parameters: a scrambled Sobol' sample
(:data:`SAMPLES` points, seeded) and today's setpoints are scored in one vectorised call; from
today's setpoints and the :data:`STARTS` best distinct samples, L-BFGS-B climbs with forward-difference
gradients (again one vectorised call per gradient); the best end point wins. Deterministic for a
seed. The model leaves queueing and blocking out, so its optimum is a guess to be checked in the
twin, never a recommendation by itself.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.stats import qmc

from optimizers.setpoints import Dimension, Setpoints
from twins.errors import InputError
from twins.roughcut import RoughCut
from twins.spec import Scenario

#: KPIs the rough-cut model estimates (``sampler="model"`` needs its objective among them)
MODEL_KPIS = ("margin", "throughput", "good_units", "scrapped_units", "energy_kwh", "energy_cost")
SAMPLES = 4096
STARTS = 8
STEP = 1e-6  # forward-difference step in the unit cube


@dataclass
class ModelOptimum:
    """The rough-cut model's best setpoints and what it predicts there and at today's setpoints."""

    setpoints: Setpoints
    value: float  # the model's objective at ``setpoints``
    as_is: float  # the model's objective at today's setpoints
    evaluations: int  # model evaluations spent
    seconds: float
    unit_point: npt.NDArray[np.float64] = field(repr=False)  # ``setpoints`` in the unit cube
    #: per ``station.parameter``: the largest change of the model's objective when the parameter
    #: alone moves ± the trust region's half width from ``setpoints`` (:func:`model_effects`)
    effects: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        return {"model": "rough-cut (twins.roughcut)", "value": self.value, "as_is": self.as_is,
                "evaluations": self.evaluations, "seconds": round(self.seconds, 3), "setpoints": self.setpoints,
                "effects": self.effects}

    def kept(self, space: Sequence[Dimension], keep_fraction: float, max_keep: int) -> list[Dimension]:
        """The dimensions whose model effect is at least ``keep_fraction`` of the largest, the
        ``max_keep`` largest at most (at least one); in ``space``'s order."""
        largest = max(self.effects.values(), default=0.0)
        ranked = sorted((d for d in space if self.effects.get(d.key, 0.0) >= keep_fraction * largest),
                        key=lambda d: -self.effects[d.key])[:max(1, max_keep)]
        keys = {d.key for d in ranked}
        return [d for d in space if d.key in keys]


def _setpoint_arrays(space: Sequence[Dimension], u: npt.NDArray[np.float64]) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for j, d in enumerate(space):
        out.setdefault(d.station, {})[d.name] = d.low + u[:, j] * (d.high - d.low)
    return out


def optimize_model(scenario: Scenario, space: Sequence[Dimension], objective: str = "margin",
                   maximize: bool = True, seed: int = 0, half_width: float = 0.1) -> ModelOptimum:
    """The rough-cut model's optimum of ``objective`` over ``space`` (see the module docstring).

    Raises:
        InputError: an objective the model does not estimate, or a line it cannot model.
    """
    if objective not in MODEL_KPIS:
        raise InputError(f"sampler 'model' estimates {', '.join(MODEL_KPIS)}; not {objective!r}: "
                         "choose another sampler")
    started = time.perf_counter()
    model = RoughCut(scenario)
    sign = -1.0 if maximize else 1.0
    count = 0

    def loss(u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        nonlocal count
        count += len(u)
        v = model.kpis(_setpoint_arrays(space, np.clip(u, 0.0, 1.0)))[objective]
        return np.where(np.isfinite(v), sign * v, np.inf)

    d = len(space)
    today = np.array([[(s.current - s.low) / (s.high - s.low) for s in space]])
    sample = qmc.Sobol(d, scramble=True, seed=np.random.default_rng(seed)).random(SAMPLES)
    points = np.vstack([today, sample])
    scores = loss(points)
    order = np.argsort(scores, kind="stable")
    starts = [points[0]] + [points[i] for i in order if i != 0][:STARTS]

    def fun(u: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        stepped = u + STEP * np.where(u + STEP <= 1.0, 1.0, -1.0)  # stay inside the box
        x = np.vstack([u, np.where(np.eye(d, dtype=bool), stepped[None, :], u[None, :])])
        f = loss(x)
        if not np.isfinite(f[0]):
            return float("inf"), np.zeros(d)
        grad = (f[1:] - f[0]) / (stepped - u)
        return float(f[0]), np.where(np.isfinite(grad), grad, 0.0)

    best_u, best = points[order[0]], float(scores[order[0]])
    for u0 in starts:
        res = minimize(fun, u0, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * d,
                       options={"maxiter": 200})
        if np.isfinite(res.fun) and res.fun < best:
            best_u, best = np.clip(res.x, 0.0, 1.0), float(res.fun)
    setpoints: Setpoints = {}
    for j, dim in enumerate(space):
        setpoints.setdefault(dim.station, {})[dim.name] = float(dim.low + best_u[j] * (dim.high - dim.low))
    # one-at-a-time effects around the optimum, in the model (2d points, one call)
    moved = np.repeat(best_u[None, :], 2 * d, axis=0)
    moved[np.arange(d), np.arange(d)] = np.clip(best_u - half_width, 0.0, 1.0)
    moved[d + np.arange(d), np.arange(d)] = np.clip(best_u + half_width, 0.0, 1.0)
    change = np.abs(loss(moved) - best)
    change = np.where(np.isfinite(change), change, np.nanmax(np.where(np.isfinite(change), change, 0.0), initial=0.0))
    effects = {dim.key: float(max(change[j], change[d + j])) for j, dim in enumerate(space)}
    return ModelOptimum(setpoints, sign * best, float(sign * scores[0]), count, time.perf_counter() - started,
                        best_u, effects)
