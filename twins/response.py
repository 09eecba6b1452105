"""Process parameters and the response models that map them to what the twin simulates.

A station's parameters (pressure, speed, temperature …) drive three responses:

* ``cycle_time_factor`` — multiplies every sampled process time at the station (1 = nominal);
* ``yield`` — fraction of good parts (the rest is scrapped, on top of the station's ``scrap``);
* ``power_kw`` — busy power, replacing ``energy.power_kw.busy``.

Each response is either a safe expression over the parameter names (see :mod:`twins.expressions`)
or a least-squares response surface fitted to recipe data (``fit: linear | quadratic``, rows
inline or a CSV file next to the scenario). Responses are evaluated when setpoints change, never
per part.
"""
from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self, cast

import numpy as np
import numpy.typing as npt
from pydantic import ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from twins.errors import InputError, SpecError
from twins.expressions import Expression, Value
from twins.specmodel import SpecModel

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: A compiled response: setpoints (parameter name → value) → the response's value.
ResponseFunction = Callable[[Mapping[str, float]], Value]


class Parameter(SpecModel):
    """A process parameter (setpoint) with its safe operating range."""

    name: str = Field(description="identifier used in response expressions, e.g. pressure_bar")
    unit: str = Field(default="", description="engineering unit, e.g. bar, mm/s, °C")
    min: float = Field(description="lower bound of the safe operating range")
    max: float = Field(description="upper bound of the safe operating range")
    default: float = Field(description="nominal setpoint")
    value: float | None = Field(default=None, description="current setpoint; default: `default`")
    max_step: float | None = Field(default=None, gt=0,
                                   description="largest change allowed per decision step (rate limit)")
    description: str = ""

    @field_validator("name")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise ValueError("must be an identifier (letters, digits, underscore; not starting with a digit)")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        if not np.isfinite(self.max - self.min):
            # each bound is finite (SpecModel refuses inf), but their distance can still overflow, and
            # every sampler, design and action scaling divides or multiplies by it
            raise ValueError(f"the range max − min ({self.min:g} to {self.max:g}) is not a finite number")
        if not self.min <= self.default <= self.max:
            raise ValueError(f"default {self.default} is outside [{self.min}, {self.max}]")
        if self.value is not None:
            check_setpoint(self, self.value, "value ")
        return self

    @property
    def setpoint(self) -> float:
        return self.default if self.value is None else self.value


class SetpointError(InputError, ValueError):
    """A setpoint outside its parameter's bounds, or for a parameter the station does not have.
    Also a ``ValueError``, so :class:`Parameter`'s own validator reports it as a validation error."""


def check_setpoint(p: Parameter, value: float, prefix: str) -> float:
    """``value`` as a float when it lies within ``p``'s bounds; :class:`SetpointError`
    (``"<prefix><value> is outside the bounds [min, max] unit"``) otherwise."""
    v = float(value)
    if not p.min <= v <= p.max:
        raise SetpointError(f"{prefix}{value} is outside the bounds [{p.min}, {p.max}] {p.unit}".rstrip())
    return v


def check_setpoints(station: str, parameters: Sequence[Parameter], values: Mapping[str, float]) -> dict[str, float]:
    """New setpoints ``values`` (parameter name → value) of ``station``, checked against its
    ``parameters`` and returned as floats — the one check behind ``Line.set_parameters``, setpoint
    search and ``--set station.parameter=value``.

    Raises:
        SetpointError: a name that is not one of the parameters, or a value outside its bounds.
    """
    by_name = {p.name: p for p in parameters}
    out: dict[str, float] = {}
    for name, value in values.items():
        p = by_name.get(name)
        if p is None:
            raise SetpointError(f"{station}: unknown parameter {name!r} (parameters: {', '.join(by_name) or 'none'})")
        out[name] = check_setpoint(p, value, f"{station}.{name}: ")
    return out


def load_rows(v: str | list[dict[str, float]], info: ValidationInfo) -> list[dict[str, float]]:
    """Recipe data: inline rows, or a CSV file next to the scenario (numbers only)."""
    if isinstance(v, list):
        return v
    if not (info.context or {}).get("allow_files", True):
        raise ValueError("recipe data must be inline rows here: a scenario uploaded to a server cannot read "
                         "files")
    base = Path((info.context or {}).get("base_dir", "."))
    path = (base / v) if not Path(v).is_absolute() else Path(v)
    try:
        with open(path, newline="") as fh:
            rows = [{k.strip(): float(x) for k, x in r.items()} for r in csv.DictReader(fh)]
    except OSError as err:
        raise ValueError(f"cannot read recipe data {str(path)!r} ({err.strerror})") from None
    except (ValueError, TypeError):
        raise ValueError(f"recipe data {str(path)!r} must hold numbers only") from None
    if not rows:
        raise ValueError(f"recipe data {str(path)!r} has no rows")
    return rows


class FittedResponse(SpecModel):
    """A response surface fitted by least squares to recipe data."""

    fit: Literal["linear", "quadratic"] = "quadratic"
    data: str | list[dict[str, float]] = Field(description="CSV file (relative to the scenario) or inline rows")
    target: str = Field(description="column holding the response value")
    _rows: list[dict[str, float]] = PrivateAttr(default_factory=list)
    _coef: npt.NDArray[np.float64] | None = PrivateAttr(default=None)
    _names: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("data")
    @classmethod
    def _load(cls, v: str | list[dict[str, float]], info: ValidationInfo) -> list[dict[str, float]]:
        return load_rows(v, info)

    def bind(self, names: tuple[str, ...]) -> None:
        """Fit the surface over the parameters ``names`` (called once the station is known)."""
        rows = self.data
        assert isinstance(rows, list)  # _load read a CSV file into rows
        missing = [c for c in (*names, self.target) if any(c not in r for r in rows)]
        if missing:
            raise InputError(f"recipe data lacks column(s) {', '.join(sorted(set(missing)))}")
        X = np.array([[r[n] for n in names] for r in rows], np.float64)
        y = np.array([r[self.target] for r in rows], np.float64)
        A = self._features(X)
        if A.shape[0] < A.shape[1]:
            raise InputError(f"{self.fit} fit over {len(names)} parameters needs ≥ {A.shape[1]} rows, "
                             f"got {A.shape[0]}")
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        self._coef = coef.astype(np.float64, copy=False)  # float64 already: numpy's types say floating
        self._names = names

    def _features(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        cols = [np.ones(len(X))] + [X[:, i] for i in range(X.shape[1])]
        if self.fit == "quadratic":
            cols += [X[:, i] * X[:, j] for i, j in itertools.combinations_with_replacement(range(X.shape[1]), 2)]
        return np.column_stack(cols)

    def __call__(self, values: Mapping[str, float | npt.NDArray[np.float64]]) -> float | npt.NDArray[np.float64]:
        assert self._coef is not None, "bind() fits the surface first"
        X = np.column_stack([np.atleast_1d(np.asarray(values[n], float)) for n in self._names])
        out = self._features(X) @ self._coef
        return out if np.ndim(values[self._names[0]]) else float(out[0])


ResponseSpec = str | FittedResponse


class Response(SpecModel):
    """How the station's parameters drive cycle time, yield and busy power."""

    model_config = ConfigDict(populate_by_name=True)  # merged with SpecModel's

    cycle_time_factor: ResponseSpec | None = Field(default=None,
                                                   description="multiplier on process times (1 = nominal)")
    yield_: ResponseSpec | None = Field(default=None, alias="yield", description="fraction of good parts, 0..1")
    power_kw: ResponseSpec | None = Field(default=None, description="busy power draw in kW")
    model: Literal["gp", "gbm", "mlp_ensemble"] | None = Field(
        default=None, description="a process model learned from recipe data (twins/learned.py, extra [models])")
    data: str | list[dict[str, float]] | None = Field(
        default=None, description="with model: the recipe data, a CSV file (relative to the scenario) or inline rows")
    inputs: list[str] | None = Field(default=None, description="with model: the parameters it reads; default all")
    outputs: dict[Literal["cycle_time_factor", "yield", "power_kw"], str] | None = Field(
        default=None, description="with model: response name → the data column it learns")
    max_distance: float = Field(default=0.15, gt=0, description="with model: setpoints farther than this from the "
                                                                "nearest recipe (inputs scaled to the data's "
                                                                "range) are refused")
    max_std: dict[Literal["cycle_time_factor", "yield", "power_kw"], float] = Field(
        default_factory=dict, description="with model: refuse setpoints where an output's sd exceeds this")
    seed: int = Field(default=0, ge=0, description="with model: seed of the fit")
    sample: bool = Field(default=True, description="with model: each replication runs at its own draw from the "
                                                   "model's uncertainty (mean + sd × z, z fixed per replication "
                                                   "and output); false: at the mean")
    _learned: Any = PrivateAttr(default=None)

    @field_validator("data")
    @classmethod
    def _load(cls, v: str | list[dict[str, float]] | None, info: ValidationInfo) -> list[dict[str, float]] | None:
        return None if v is None else load_rows(v, info)

    @model_validator(mode="after")
    def _model_fields(self) -> Self:
        extras = ("data", "inputs", "outputs")
        if self.model is None:
            given = [f for f in extras if getattr(self, f) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} belong to a learned model: give `model` too")
            return self
        if self.data is None or not self.outputs:
            raise ValueError(f"a {self.model} model needs `data` and `outputs`")
        both = [k for k in self.outputs if getattr(self, "yield_" if k == "yield" else k) is not None]
        if both:
            raise ValueError(f"{', '.join(both)}: given both as an expression and as a model output")
        return self

    def compile(self, names: tuple[str, ...], *, fit: bool = True) -> dict[str, ResponseFunction]:
        """Callables per response name; a bad one raises :class:`SpecError` with the path
        ``(response name,)``. ``fit=False`` (reading a scenario) checks a learned model's inputs and
        columns without fitting it: it is fitted when a line first runs it."""
        out: dict[str, ResponseFunction] = {}
        if self.model is not None:
            out.update(self._compile_model(names) if fit else self._check_model(names))
        for key, spec in (("cycle_time_factor", self.cycle_time_factor), ("yield", self.yield_),
                          ("power_kw", self.power_kw)):
            if spec is None:
                continue
            try:
                if isinstance(spec, str):
                    out[key] = Expression(spec, names)
                else:
                    spec.bind(names)
                    out[key] = spec
            except InputError as err:  # ExpressionError included
                raise SpecError((key,), err.message) from None
        return out

    def _check_model(self, names: tuple[str, ...]) -> dict[str, ResponseFunction]:
        inputs = tuple(self.inputs) if self.inputs else names
        unknown = [n for n in inputs if n not in names]
        if unknown:
            raise SpecError(("inputs",), f"unknown parameter(s) {', '.join(unknown)} (parameters: {', '.join(names)})")
        rows = self.data if isinstance(self.data, list) else []
        missing = sorted({c for c in (*inputs, *(self.outputs or {}).values()) if any(c not in r for r in rows)})
        if missing:
            raise SpecError(("data",), f"recipe data lacks column(s) {', '.join(missing)}")
        if len(rows) < 10:
            raise SpecError(("data",), f"a {self.model} model needs at least 10 recipes, got {len(rows)}")
        return {}

    def _compile_model(self, names: tuple[str, ...]) -> dict[str, ResponseFunction]:
        """The learned model's outputs, fitted once (a Response is shared by the lines built from it)."""
        from twins.extras import requires
        from twins.learned import LearnedModel, LearnedOutput

        inputs = tuple(self.inputs) if self.inputs else names
        unknown = [n for n in inputs if n not in names]
        if unknown:
            raise SpecError(("inputs",), f"unknown parameter(s) {', '.join(unknown)} (parameters: {', '.join(names)})")
        if self._learned is None or self._learned.inputs != inputs:
            assert self.model is not None and isinstance(self.data, list) and self.outputs  # _load read the rows
            try:
                with requires("models", f"a {self.model} process model"):
                    self._learned = LearnedModel(self.model, self.data, inputs,
                                                 {str(k): v for k, v in self.outputs.items()}, self.max_distance,
                                                 {str(k): v for k, v in self.max_std.items()}, self.seed)
            except InputError as err:
                if type(err).__name__ == "MissingDependency":
                    raise
                raise SpecError(("data",), err.message) from None
        return {key: LearnedOutput(self._learned, key, self.sample) for key in self.outputs or {}}


#: Valid range of each response: (low, high, inclusive-low)
RESPONSE_RANGES = {"cycle_time_factor": (0.0, np.inf, False), "yield": (0.0, 1.0, True),
                   "power_kw": (0.0, np.inf, True)}


def evaluate_responses(responses: Mapping[str, ResponseFunction], setpoints: Mapping[str, float]) -> dict[str, float]:
    """Evaluate compiled responses at ``setpoints``; values are clipped into their valid range."""
    out: dict[str, float] = {}
    for key, fn in responses.items():
        lo, hi, _ = RESPONSE_RANGES[key]
        v = float(fn(setpoints))
        out[key] = float(min(max(v, lo if key != "cycle_time_factor" else 1e-9), hi)) if np.isfinite(v) else v
    return out


#: Up to this many parameters every corner of the box is checked (2^10 = 1024 points); beyond, a sample.
MAX_CORNER_PARAMETERS = 10
#: Random corners and random interior points checked for a station with more parameters.
SAMPLED_CORNERS, SAMPLED_INTERIOR = 512, 512


def range_check_points(params: Sequence[Parameter]) -> dict[str, npt.NDArray[np.float64]]:
    """The points :func:`check_response_ranges` evaluates, as one array per parameter name.

    Always the defaults and the current setpoints first. With at most
    :data:`MAX_CORNER_PARAMETERS` parameters, then every corner of the box (2^n). With more, 2^n
    corners are out of reach (2^200 ≈ 1.6e60), so: each parameter alone at its min and at its max
    (the others at their defaults), :data:`SAMPLED_CORNERS` random corners and
    :data:`SAMPLED_INTERIOR` uniform random interior points, all drawn from a generator with a
    fixed seed (the same points every load, so a scenario that loads once always loads).
    """
    n = len(params)
    lo = np.array([p.min for p in params], np.float64)
    hi = np.array([p.max for p in params], np.float64)
    rows = [np.array([p.default for p in params], np.float64), np.array([p.setpoint for p in params], np.float64)]
    if n <= MAX_CORNER_PARAMETERS:
        rows += [np.array(c, np.float64) for c in itertools.product(*[(p.min, p.max) for p in params])]
        x = np.vstack(rows)
    else:
        rng = np.random.default_rng(20240614)
        extremes = np.repeat(rows[0][None, :], 2 * n, axis=0)
        extremes[np.arange(n), np.arange(n)] = lo
        extremes[n + np.arange(n), np.arange(n)] = hi
        corners = np.where(rng.integers(0, 2, (SAMPLED_CORNERS, n)).astype(bool), hi, lo)
        interior = lo + rng.random((SAMPLED_INTERIOR, n)) * (hi - lo)
        x = np.vstack([*rows, extremes, corners, interior])
    return {p.name: x[:, j] for j, p in enumerate(params)}


def _first_bad(values: npt.NDArray[np.float64], key: str) -> int | None:
    lo, hi, incl = RESPONSE_RANGES[key]
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values > hi + 1e-9) | ((values < lo - 1e-9) if incl else (values <= lo))
    idx = np.flatnonzero(bad)
    return int(idx[0]) if idx.size else None


def check_response_ranges(responses: Mapping[str, ResponseFunction], params: Sequence[Parameter]) -> None:
    """Evaluate at the defaults, the current setpoints and the box's corners (every corner up to
    :data:`MAX_CORNER_PARAMETERS` parameters, a fixed sample with each parameter's extremes beyond:
    :func:`range_check_points`); :class:`SpecError` with the path ``(response name,)`` if a
    response leaves its valid range there (a response model that cannot be trusted)."""
    if not responses or not params:
        return
    names = [p.name for p in params]
    points = range_check_points(params)
    m = len(points[names[0]])
    for key, fn in responses.items():
        # a learned model answers only within its data (the corners are refused, not extrapolated)
        if getattr(fn, "learned", False):
            out = np.array([float(fn({name: float(v[i]) for name, v in points.items()})) for i in range(2)])
        else:  # expressions and fitted surfaces evaluate on whole arrays at once
            # ResponseFunction's signature promises scalars; both kinds take arrays (numpy throughout)
            out = np.broadcast_to(np.asarray(cast(Any, fn)(points), np.float64), (m,))
        i = _first_bad(out, key)
        if i is not None:
            where = ", ".join(f"{name}={points[name][i]:g}" for name in names)
            raise SpecError((key,), f"{key} evaluates to {out[i]:g} at {where}, outside its valid range")
