"""Process models learned from recipe data (scikit-learn, extra ``[models]``).

A station's ``response`` may name a model instead of expressions::

    response:
      model: gp                       # gp | gbm | mlp_ensemble
      data: glue_recipes.csv          # CSV next to the scenario, or inline rows
      inputs: [pressure_bar, speed_mm_s, temperature_c]     # default: every parameter
      outputs: {cycle_time_factor: ct_factor, yield: yield, power_kw: power_kw}
      max_distance: 0.15              # support: nearest recipe within this (inputs scaled to the data's range)

Each output gets a mean and a standard deviation (``gp``: the Gaussian process's posterior;
``gbm``: gradient boosting for the mean, the 16 % and 84 % quantiles for the spread;
``mlp_ensemble``: five networks from different seeds, their mean and spread). The twin runs on the
mean (or a draw, below). A setpoint whose nearest recipe is farther than ``max_distance`` (or whose predicted
standard deviation exceeds ``max_std``) is refused with :class:`OutsideSupport` — never
extrapolated — and the search counts it as infeasible. With ``sample: true`` (the default) each
replication runs at its own draw from the model's uncertainty, ``mean + sd × z`` with ``z`` fixed
per replication and output (a plausible process, the same at every setpoint), so the KPIs' CIs
include what the data leaves open; ``sample: false`` runs at the mean.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from twins.errors import InputError

MODELS = ("gp", "gbm", "mlp_ensemble")
ENSEMBLE = 5
#: points whose predictions a model keeps (:meth:`LearnedModel.predict`)
RECENT = 64
_CACHED = 16
_FITS: dict[tuple[Any, ...], dict[str, _Fit]] = {}  # fitted models by (kind, seed, inputs, outputs, data)


class OutsideSupport(InputError):
    """Setpoints outside the recipe data's support: a learned model does not extrapolate."""


@dataclass
class _Fit:
    """One output's fitted estimator(s)."""

    kind: str
    estimators: list[Any]
    y_mean: float
    y_scale: float

    def predict(self, X: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        if self.kind == "gp":
            m, s = self.estimators[0].predict(X, return_std=True)
        elif self.kind == "gbm":
            m = self.estimators[0].predict(X)
            lo, hi = self.estimators[1].predict(X), self.estimators[2].predict(X)
            s = np.abs(hi - lo) / 2
        else:
            preds = np.array([e.predict(X) for e in self.estimators])
            m, s = preds.mean(axis=0), preds.std(axis=0, ddof=1)
        return (np.asarray(m, float) * self.y_scale + self.y_mean, np.asarray(s, float) * self.y_scale)


class LearnedModel:
    """Models of ``outputs`` (response name → data column) over ``inputs``, fitted to ``rows``."""

    def __init__(self, kind: str, rows: Sequence[Mapping[str, float]], inputs: Sequence[str],
                 outputs: Mapping[str, str], max_distance: float, max_std: Mapping[str, float], seed: int = 0):
        if kind not in MODELS:
            raise InputError(f"unknown model {kind!r} (models: {', '.join(MODELS)})")
        missing = sorted({c for c in (*inputs, *outputs.values()) if any(c not in r for r in rows)})
        if missing:
            raise InputError(f"recipe data lacks column(s) {', '.join(missing)}")
        if len(rows) < 10:
            raise InputError(f"a {kind} model needs at least 10 recipes, got {len(rows)}")
        self.kind, self.inputs, self.outputs = kind, tuple(inputs), dict(outputs)
        self.max_distance, self.max_std = max_distance, dict(max_std)
        X = np.array([[r[n] for n in inputs] for r in rows], float)
        self.lo, span = X.min(axis=0), np.ptp(X, axis=0)
        self.span = np.where(span > 0, span, 1.0)
        self.X = (X - self.lo) / self.span
        key = (kind, seed, self.inputs, tuple(sorted(self.outputs.items())), self.X.tobytes(),
               tuple(tuple(r[c] for c in sorted(set(outputs.values()))) for r in rows))
        if key not in _FITS:  # a scenario is loaded often (workers, what-ifs): fit each model once per process
            with warnings.catch_warnings():  # a length scale at its bound (a flat direction) is an answer
                warnings.simplefilter("ignore", category=UserWarning)
                _FITS[key] = {out: self._fit(np.array([r[col] for r in rows], float), seed)
                              for out, col in outputs.items()}
            while len(_FITS) > _CACHED:
                _FITS.pop(next(iter(_FITS)))
        self.fits = _FITS[key]
        #: predictions (or the refusal) at the last few points: every output of a station asks at
        #: the same setpoints, and a scikit-learn predict call costs about a millisecond
        self._recent: OrderedDict[tuple[float, ...], dict[str, tuple[float, float]] | str] = OrderedDict()

    def _fit(self, y: npt.NDArray[np.float64], seed: int) -> _Fit:
        from sklearn.ensemble import GradientBoostingRegressor
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
        from sklearn.neural_network import MLPRegressor

        mean, scale = float(y.mean()), float(y.std()) or 1.0
        z = (y - mean) / scale
        d = self.X.shape[1]
        if self.kind == "gp":
            kernel = ConstantKernel(1.0) * Matern(length_scale=np.full(d, 0.3), length_scale_bounds=(1e-2, 1e2),
                                                  nu=2.5) + WhiteKernel(1e-2, noise_level_bounds=(1e-6, 1.0))
            est: list[Any] = [GaussianProcessRegressor(kernel, n_restarts_optimizer=1,
                                                       random_state=seed).fit(self.X, z)]
        elif self.kind == "gbm":
            common = dict(n_estimators=300, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=seed)
            est = [GradientBoostingRegressor(**common).fit(self.X, z),
                   GradientBoostingRegressor(loss="quantile", alpha=0.16, **common).fit(self.X, z),
                   GradientBoostingRegressor(loss="quantile", alpha=0.84, **common).fit(self.X, z)]
        else:
            est = [MLPRegressor(hidden_layer_sizes=(32, 32), max_iter=3000, learning_rate_init=0.01, tol=1e-6,
                                random_state=seed + k).fit(self.X, z) for k in range(ENSEMBLE)]
        return _Fit(self.kind, est, mean, scale)

    def scaled(self, values: Mapping[str, float]) -> npt.NDArray[np.float64]:
        x: npt.NDArray[np.float64] = (np.array([[float(values[n]) for n in self.inputs]]) - self.lo) / self.span
        return x

    def distance(self, values: Mapping[str, float]) -> float:
        """Distance to the nearest recipe, inputs scaled to the data's range (0..1 per input)."""
        return float(np.sqrt(((self.X - self.scaled(values)) ** 2).sum(axis=1)).min())

    def predict(self, values: Mapping[str, float]) -> dict[str, tuple[float, float]]:
        """Output → (mean, standard deviation) at ``values``; :class:`OutsideSupport` beyond the data."""
        key = tuple(float(values[n]) for n in self.inputs)
        known = self._recent.get(key)
        if known is None:
            try:
                known = self._predict(values)
            except OutsideSupport as err:
                known = str(err)
            self._recent[key] = known
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        if isinstance(known, str):
            raise OutsideSupport(known)
        return dict(known)

    def _predict(self, values: Mapping[str, float]) -> dict[str, tuple[float, float]]:
        dist = self.distance(values)
        where = ", ".join(f"{n}={float(values[n]):g}" for n in self.inputs)
        if dist > self.max_distance:
            raise OutsideSupport(f"{where} is outside the recipe data's support (nearest recipe at {dist:.3g}, "
                                 f"max_distance {self.max_distance:g}): a {self.kind} model does not extrapolate")
        x = self.scaled(values)
        out = {}
        for name, fit in self.fits.items():
            m, s = fit.predict(x)
            limit = self.max_std.get(name)
            if limit is not None and s[0] > limit:
                raise OutsideSupport(f"{where}: the {self.kind} model's {name} is too uncertain there "
                                     f"(sd {s[0]:.3g} > max_std {limit:g})")
            out[name] = (float(m[0]), float(s[0]))
        return out


class LearnedOutput:
    """One output of a :class:`LearnedModel` as a response function (its mean, within the
    response's valid range); ``learned`` marks it."""

    learned = True

    def __init__(self, model: LearnedModel, name: str, sample: bool = False):
        self.model, self.name, self.sample = model, name, sample

    def __call__(self, values: Mapping[str, float]) -> float:
        """The mean, clipped into the response's valid range (a yield of 1.0014 is noise in the data,
        not a model fault)."""
        return self.draw(values, 0.0)

    def draw(self, values: Mapping[str, float], z: float) -> float:
        """``mean + sd × z`` at ``values``, clipped into the response's valid range."""
        from twins.response import RESPONSE_RANGES

        lo, hi, _ = RESPONSE_RANGES[self.name]
        mean, sd = self.model.predict(values)[self.name]
        return float(min(max(mean + sd * z, max(lo, 1e-9)), hi))
