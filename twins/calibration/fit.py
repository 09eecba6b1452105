"""Fitting time distributions of the scenario format to observed durations.

Each family of :mod:`twins.distributions` that has a likelihood is fitted by maximum likelihood
(``scipy.stats``; location fixed at 0 for the positive families), durations cut by the log's start
or end enter as right-censored observations (``scipy.stats.CensoredData``: dropping them would bias
long repairs away). The family with the smallest AIC is chosen; BIC and the Kolmogorov–Smirnov
statistic (uncensored observations) are reported beside it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

Array = npt.NDArray[np.float64]
#: families tried for process and setup times, and for up and repair times (no uniform: censoring)
PROCESS_FAMILIES = ("exponential", "gamma", "lognormal", "weibull", "normal", "uniform")
DURATION_FAMILIES = ("exponential", "gamma", "lognormal", "weibull")
#: fewer observations than this are reported as too few, never fitted to a family
MIN_OBSERVATIONS = 10
#: AIC differences below this are ties, resolved towards fewer parameters
AIC_TIE = 2.0
#: durations differing by less than this relative spread are one constant (float rounding of end − start)
CONSTANT_TOLERANCE = 1e-9


@dataclass
class Candidate:
    family: str
    spec: dict[str, Any]  # the distribution as the scenario format writes it
    loglik: float
    k: int  # free parameters
    aic: float
    bic: float
    ks: float | None


@dataclass
class Fit:
    """The chosen distribution of one sample, with what the report shows."""

    spec: dict[str, Any]
    family: str
    n: int  # uncensored observations
    n_censored: int
    mean: float  # the fitted distribution's mean
    sample_mean: float  # of the uncensored observations
    mean_ci: tuple[float, float] | None  # 95 % CI of the mean
    ks: float | None
    aic: float | None
    bic: float | None
    candidates: list[Candidate] = field(default_factory=list)
    values: Array = field(default_factory=lambda: np.empty(0))  # the uncensored observations
    censored: Array = field(default_factory=lambda: np.empty(0))
    too_few: bool = False
    cv_ci: tuple[float, float] | None = None  # 95 % bootstrap CI of the coefficient of variation

    def frozen(self) -> Any:
        """The chosen distribution as a frozen ``scipy.stats`` object (density, quantiles)."""
        return frozen_of(self.spec)

    def summary(self) -> dict[str, Any]:
        return {"dist": self.spec, "family": self.family, "n": self.n, "n_censored": self.n_censored,
                "mean": self.mean, "sample_mean": self.sample_mean,
                "mean_ci": list(self.mean_ci) if self.mean_ci else None,
                "cv_ci": list(self.cv_ci) if self.cv_ci else None, "ks": self.ks, "aic": self.aic,
                "bic": self.bic, "too_few": self.too_few,
                "candidates": [{"family": c.family, "aic": c.aic, "bic": c.bic, "ks": c.ks, "dist": c.spec}
                               for c in self.candidates]}


def frozen_of(spec: dict[str, Any]) -> Any:
    """A frozen scipy distribution for a distribution in the scenario format (through its spec class,
    so the parametrisation is the twin's own)."""
    from pydantic import TypeAdapter

    from twins.distributions import Distribution

    return TypeAdapter(Distribution).validate_python(spec).frozen()


def _candidate(family: str, x: Array, c: Array) -> tuple[dict[str, Any], Any, int] | None:
    """MLE of ``family`` on uncensored ``x`` and right-censored ``c``: (spec, frozen, k) or None."""
    data: Any = x if c.size == 0 else stats.CensoredData(uncensored=x, right=c)
    if family == "exponential":
        if c.size == 0:
            scale = float(x.mean())
        else:  # closed form: total time over failures
            scale = float((x.sum() + c.sum()) / max(x.size, 1))
        return {"dist": "exponential", "mean": scale}, stats.expon(scale=scale), 1
    if family == "gamma":
        a, _, scale = stats.gamma.fit(data, floc=0)
        return ({"dist": "gamma", "mean": float(a * scale), "cv": float(1 / math.sqrt(a))},
                stats.gamma(a, scale=scale), 2)
    if family == "lognormal":
        s, _, scale = stats.lognorm.fit(data, floc=0)
        return ({"dist": "lognormal", "mean": float(scale * math.exp(s * s / 2)),
                 "cv": float(math.sqrt(math.expm1(s * s)))}, stats.lognorm(s, scale=scale), 2)
    if family == "weibull":
        k, _, scale = stats.weibull_min.fit(data, floc=0)
        return {"dist": "weibull", "shape": float(k), "scale": float(scale)}, stats.weibull_min(k, scale=scale), 2
    if family == "normal":
        mu, sd = float(x.mean()), float(x.std())
        if c.size or sd <= 0 or mu < 3 * sd:  # the format's normal is truncated at 0: only far from it
            return None
        return {"dist": "normal", "mean": mu, "sd": sd}, stats.norm(mu, sd), 2
    if family == "uniform":
        lo, hi = float(x.min()), float(x.max())
        if c.size or hi <= lo:
            return None
        return {"dist": "uniform", "low": lo, "high": hi}, stats.uniform(lo, hi - lo), 2
    raise ValueError(f"unknown family {family!r}")


def _mean_ci(x: Array, c: Array, family: str, mean: float) -> tuple[float, float] | None:
    if c.size and family == "exponential" and x.size:
        # exact for the exponential under censoring: 2·T/θ is χ² with 2r degrees of freedom
        total, r = float(x.sum() + c.sum()), x.size
        return 2 * total / float(stats.chi2.ppf(0.975, 2 * r)), 2 * total / float(stats.chi2.ppf(0.025, 2 * r))
    if c.size or x.size < 2:
        return None
    hw = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    m = float(x.mean())
    return m - hw, m + hw


def fit_durations(values: npt.ArrayLike, censored: npt.ArrayLike = (),
                  families: tuple[str, ...] = PROCESS_FAMILIES) -> Fit:
    """Fit every family of ``families`` to ``values`` (with ``censored`` right-censored
    observations) and keep the one with the smallest AIC (a tie within :data:`AIC_TIE`: the one
    with fewest parameters). Fewer than :data:`MIN_OBSERVATIONS`
    uncensored values: an ``empirical`` distribution of them, flagged ``too_few``."""
    x = np.asarray(values, np.float64)
    c = np.asarray(censored, np.float64)
    c = c[c > 0]
    sample_mean = float(x.mean()) if x.size else math.nan
    if x.size < MIN_OBSERVATIONS:
        spec: dict[str, Any] = ({"dist": "empirical", "values": [float(v) for v in x]} if x.size
                                else {"dist": "constant", "value": 0.0})
        return Fit(spec, spec["dist"], int(x.size), int(c.size), sample_mean, sample_mean,
                   _mean_ci(x, np.empty(0), "", sample_mean), None, None, None, values=x, censored=c, too_few=True)
    if float(x.max()) - float(x.min()) <= CONSTANT_TOLERANCE * float(x.max()) and c.size == 0:
        # all equal but for rounding in the timestamps' subtraction: a constant
        v = float(np.median(x))
        spec = {"dist": "constant", "value": v}
        return Fit(spec, "constant", int(x.size), 0, v, sample_mean, (v, v), 0.0, None, None, values=x, censored=c)
    cands: list[Candidate] = []
    n = x.size + c.size
    for family in families:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                got = _candidate(family, x, c)
            except (ValueError, RuntimeError, FloatingPointError):
                continue
            if got is None:
                continue
            spec, frozen, k = got
            ll = float(np.sum(frozen.logpdf(x)) + (np.sum(frozen.logsf(c)) if c.size else 0.0))
        if not math.isfinite(ll):
            continue
        ks = float(stats.kstest(x, frozen.cdf).statistic)
        cands.append(Candidate(family, spec, ll, k, 2 * k - 2 * ll, k * math.log(n) - 2 * ll, ks))
    if not cands:
        raise ValueError("no family fits these durations")
    cands.sort(key=lambda cd: cd.aic)
    # within 2 of the smallest AIC the data cannot tell the families apart (Burnham & Anderson):
    # take the one with fewest parameters, so exponential failures stay exponential, not a gamma of shape 1.02
    best = min((cd for cd in cands if cd.aic <= cands[0].aic + AIC_TIE), key=lambda cd: (cd.k, cd.aic))
    mean = float(frozen_of(best.spec).mean())
    return Fit(best.spec, best.family, int(x.size), int(c.size), mean, sample_mean,
               _mean_ci(x, c, best.family, mean), best.ks, best.aic, best.bic, cands, x, c,
               cv_ci=None if c.size else cv_ci(x))


def cv_ci(x: Array, resamples: int = 200, at_most: int = 20_000) -> tuple[float, float]:
    """95 % percentile-bootstrap CI of the coefficient of variation of ``x`` (seeded: the same data
    give the same interval). Beyond ``at_most`` values a subsample is resampled and the interval
    narrowed by √(subsample / n), the rate at which it shrinks."""
    rng = np.random.default_rng(0)
    n = x.size
    sub = x if n <= at_most else rng.choice(x, at_most, replace=False)
    m = sub.size
    draws = sub[rng.integers(0, m, (resamples, m))]
    cvs = draws.std(axis=1, ddof=1) / draws.mean(axis=1)
    centre = float(x.std(ddof=1) / x.mean())
    lo, hi = np.quantile(cvs, [0.025, 0.975])
    scale = math.sqrt(m / n)
    return centre - (centre - float(lo)) * scale, centre + (float(hi) - centre) * scale


def proportion_ci(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    z = 1.959963984540054
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    hw = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - hw), min(1.0, centre + hw)
