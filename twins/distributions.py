"""Probability distributions for times (process, setup, inter-arrival, failure, repair).

A distribution is described in YAML by its family (``dist``) and parameters, or by a bare number
(a constant). Each spec builds a frozen ``scipy.stats`` distribution (means and variances come
from scipy, never re-derived by hand) and a *sampler*: an iterator that yields floats from its
own seeded ``numpy.random.Generator``. Samplers draw in blocks so the event loop pays one
``next()`` per sample; the sequence a stream produces does not depend on the block size.

Times are ≥ 0 by construction (truncated normal, positive-support families); all values are in
the scenario's time unit. Parameters must give a finite mean and variance and finite samples (the
1 − 10⁻¹² quantile), checked when the scenario is read: an extreme but well-formed value such as
``cv: 1e308`` is bad input, not an overflow in the middle of a run.
"""
from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator
from typing import Annotated, Literal, Protocol, Self, cast

import numpy as np
import numpy.typing as npt
from pydantic import BeforeValidator, ConfigDict, Field, model_validator
from scipy import stats

from twins.specmodel import SpecModel

#: Samples drawn per refill of a sampler's block.
BLOCK = 512
#: Tail probability above the quantile that must be finite (see :meth:`_Dist.top`).
TAIL = 1e-12
#: Distinct frozen distributions kept for reuse (:meth:`_Dist.frozen`); the cache empties when full.
FROZEN_CACHE = 4096
_FROZEN: dict[tuple[object, ...], FrozenDist] = {}


class FrozenDist(Protocol):
    """The part of a frozen ``scipy.stats`` distribution the twin uses (scipy ships no types)."""

    def mean(self) -> float: ...

    def var(self) -> float: ...

    def isf(self, q: float) -> float: ...

    def rvs(self, size: int, random_state: np.random.Generator) -> npt.NDArray[np.float64]: ...


class _Dist(SpecModel):
    model_config = ConfigDict(frozen=True)  # merged with SpecModel's

    dist: str  # the family; each subclass narrows it to a Literal (the union's discriminator)

    def _check_parameters(self) -> None:
        """A family's own checks (order of bounds …); raise ValueError with the reason."""

    @model_validator(mode="after")
    def _finite(self) -> Self:
        self._check_parameters()
        named = ", ".join(f"{k}={v:g}" for k, v in self.model_dump(by_alias=True).items()
                          if isinstance(v, float | int) and not isinstance(v, bool))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                moments = (("mean", self.mean), ("variance", self.variance), ("largest samples", self.top))
            except (ArithmeticError, ValueError):  # e.g. cv ** 2 overflowing inside the parametrisation
                raise ValueError(f"{self.dist}({named}): parameters too extreme, the mean and variance cannot be "
                                 "computed in floating point") from None
        for what, v in moments:
            if not math.isfinite(v):
                raise ValueError(f"{self.dist}({named}): parameters too extreme, the {what} would be {v:g}")
        return self

    @property
    def top(self) -> float:
        """The 1 − :data:`TAIL` quantile: practically the largest sample."""
        return float(self.frozen().isf(TAIL))

    def frozen(self) -> FrozenDist:
        """The ``scipy.stats`` frozen distribution (for mean/variance/sampling), shared by equal specs.

        Freezing a scipy distribution builds its docstring (about a millisecond); a 100-station line
        asks for hundreds of them while it is read and built, mostly equal ones. A spec is immutable
        and a frozen distribution keeps no random state (samplers pass their own Generator), so one
        object per distinct spec serves every caller."""
        try:
            key = (type(self), tuple(self.__dict__.values()))
            return _FROZEN[key]
        except KeyError:
            pass
        except TypeError:  # a field that cannot be hashed: no sharing
            return self._freeze()
        if len(_FROZEN) >= FROZEN_CACHE:
            _FROZEN.clear()
        frozen = _FROZEN[key] = self._freeze()
        return frozen

    def _freeze(self) -> FrozenDist:
        """Build the family's frozen ``scipy.stats`` distribution."""
        raise NotImplementedError

    @property
    def mean(self) -> float:
        return float(self.frozen().mean())

    @property
    def variance(self) -> float:
        return float(self.frozen().var())

    @property
    def scv(self) -> float:
        """Squared coefficient of variation (0 for a constant)."""
        m = self.mean
        return self.variance / (m * m) if m else 0.0

    def sampler(self, rng: np.random.Generator) -> Iterator[float]:
        """An endless iterator of samples drawn from ``rng``, in blocks of :data:`BLOCK`."""
        frozen = self.frozen()

        def blocks() -> Iterator[float]:
            while True:
                yield from frozen.rvs(size=BLOCK, random_state=rng).tolist()

        return blocks()


class Constant(_Dist):
    """A fixed time. YAML: ``3.5`` or ``{dist: constant, value: 3.5}``."""

    dist: Literal["constant"] = "constant"
    value: float = Field(ge=0, description="the time, in the scenario time unit")

    def _freeze(self) -> FrozenDist:
        # a constant needs no scipy object: mean, variance, top and sampler are overridden
        raise NotImplementedError("a constant has no scipy distribution")

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    @property
    def top(self) -> float:
        return self.value

    def sampler(self, rng: np.random.Generator) -> Iterator[float]:
        return itertools.repeat(float(self.value))


class Uniform(_Dist):
    """Uniform on [low, high]."""

    dist: Literal["uniform"]
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    def _check_parameters(self) -> None:
        if self.high < self.low:
            raise ValueError("high must be ≥ low")

    def _freeze(self) -> FrozenDist:
        return cast(FrozenDist, stats.uniform(loc=self.low, scale=self.high - self.low))


class Triangular(_Dist):
    """Triangular with minimum ``low``, most likely ``mode`` and maximum ``high``."""

    dist: Literal["triangular"]
    low: float = Field(ge=0)
    mode: float = Field(ge=0)
    high: float = Field(ge=0)

    def _check_parameters(self) -> None:
        if not self.low <= self.mode <= self.high or self.high == self.low:
            raise ValueError("need low ≤ mode ≤ high and low < high")

    def _freeze(self) -> FrozenDist:
        scale = self.high - self.low
        return cast(FrozenDist, stats.triang(c=(self.mode - self.low) / scale, loc=self.low, scale=scale))


class Exponential(_Dist):
    """Exponential with the given mean (rate = 1/mean)."""

    dist: Literal["exponential"]
    mean_: float = Field(gt=0, alias="mean", description="mean time")

    def _freeze(self) -> FrozenDist:
        return cast(FrozenDist, stats.expon(scale=self.mean_))

    def sampler(self, rng: np.random.Generator) -> Iterator[float]:
        scale = self.mean_

        def blocks() -> Iterator[float]:  # numpy directly: the commonest family, and scipy adds nothing here
            while True:
                yield from rng.exponential(scale, BLOCK).tolist()

        return blocks()


class Normal(_Dist):
    """Normal(mean, sd) truncated to [0, ∞) — times cannot be negative."""

    dist: Literal["normal"]
    mean_: float = Field(ge=0, alias="mean", description="mean of the untruncated normal")
    sd: float = Field(gt=0, description="standard deviation of the untruncated normal")

    def _freeze(self) -> FrozenDist:
        return cast(FrozenDist, stats.truncnorm(a=-self.mean_ / self.sd, b=np.inf, loc=self.mean_, scale=self.sd))


class Lognormal(_Dist):
    """Lognormal given by its mean and coefficient of variation (sd/mean)."""

    dist: Literal["lognormal"]
    mean_: float = Field(gt=0, alias="mean")
    cv: float = Field(gt=0, description="coefficient of variation, sd/mean")

    def _freeze(self) -> FrozenDist:
        sigma2 = np.log1p(self.cv ** 2)
        return cast(FrozenDist, stats.lognorm(s=np.sqrt(sigma2), scale=self.mean_ * np.exp(-sigma2 / 2)))


class Gamma(_Dist):
    """Gamma given by its mean and coefficient of variation (shape = 1/cv²)."""

    dist: Literal["gamma"]
    mean_: float = Field(gt=0, alias="mean")
    cv: float = Field(gt=0, description="coefficient of variation, sd/mean")

    def _freeze(self) -> FrozenDist:
        shape = 1.0 / self.cv ** 2
        return cast(FrozenDist, stats.gamma(a=shape, scale=self.mean_ / shape))


class Weibull(_Dist):
    """Weibull with ``shape`` k and ``scale`` λ (mean = λ·Γ(1 + 1/k))."""

    dist: Literal["weibull"]
    shape: float = Field(gt=0)
    scale: float = Field(gt=0)

    def _freeze(self) -> FrozenDist:
        return cast(FrozenDist, stats.weibull_min(c=self.shape, scale=self.scale))


class Empirical(_Dist):
    """Resampling of observed values (optionally weighted)."""

    dist: Literal["empirical"]
    values: list[float] = Field(min_length=1)
    weights: list[float] | None = None

    def _check_parameters(self) -> None:
        if any(v < 0 for v in self.values):
            raise ValueError("values must be ≥ 0")
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError("weights must have one entry per value")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("weights must be ≥ 0 with a positive sum")

    def _probs(self) -> npt.NDArray[np.float64]:
        w = np.ones(len(self.values)) if self.weights is None else np.asarray(self.weights, np.float64)
        probs: npt.NDArray[np.float64] = w / w.sum()  # numpy types ndarray.sum() as Any
        return probs

    def _freeze(self) -> FrozenDist:
        return cast(FrozenDist, stats.rv_discrete(values=(np.arange(len(self.values)), self._probs())))

    @property
    def mean(self) -> float:
        return float(np.dot(self.values, self._probs()))

    @property
    def variance(self) -> float:
        p, v = self._probs(), np.asarray(self.values, float)
        return float(np.dot(p, (v - np.dot(p, v)) ** 2))

    @property
    def top(self) -> float:
        return float(max(self.values))

    def sampler(self, rng: np.random.Generator) -> Iterator[float]:
        values, p = np.asarray(self.values, float), self._probs()

        def blocks() -> Iterator[float]:
            while True:
                yield from rng.choice(values, size=BLOCK, p=p).tolist()

        return blocks()


def _number_is_constant(v: object) -> object:
    if isinstance(v, bool):
        return v  # let pydantic reject booleans
    if isinstance(v, (int, float)):
        return {"dist": "constant", "value": v}
    return v


Distribution = Annotated[
    Constant | Uniform | Triangular | Exponential | Normal | Lognormal | Gamma | Weibull | Empirical,
    Field(discriminator="dist"),
    BeforeValidator(_number_is_constant),
]
"""Any supported time distribution; a bare number means a constant."""

DIST_FAMILIES = ("constant", "uniform", "triangular", "exponential", "normal", "lognormal",
                 "gamma", "weibull", "empirical")
