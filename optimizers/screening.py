"""Screening before search: which of many process parameters move the objective from where the line
runs today, so the search only spends its budget on those (the others stay at today's values).

The design is one-at-a-time from the as-is setpoints (a *radial* elementary-effects design,
Campolongo, Saltelli & Cariboni 2011, with one base point): the as-is point, then each parameter
alone moved by ``step`` × its range towards its farther bound — ``d + 1`` evaluations for ``d``
parameters, the cheapest design that sees every parameter once. Its base is today's operating
point on purpose: tuning problems have a narrow good window, and elementary effects taken at
random points of a 200-dimensional box (Morris trajectories, :func:`optimizers.sensitivity.morris_screening`)
mostly land where the line makes scrap whatever one parameter does, so they see flat effects
and miss the parameters that matter near the window. All evaluations share the search's common
random numbers, so an effect is the parameter's doing, not noise of the replications.

**Groups first** when there are more than :data:`GROUP_ABOVE` parameters: they are dealt into
random groups of :data:`GROUP_SIZE` (a seeded permutation, so no ordering of the scenario helps
or hurts), each group is moved as a whole (one evaluation per group), and only the groups whose
effect passes the keep rule are screened parameter by parameter. When few parameters matter that
costs ``1 + G + 8 × (groups that matter)`` instead of ``d + 1`` evaluations (the foaming line:
about 1 + 26 + 80 instead of 209). Effects inside a group can cancel only if moving one parameter
helps as much as moving another hurts; near a narrow good window almost every move hurts.

**Keep rule.** Rank parameters by the size of their effect ``|f(x0 + Δ e_j) − f(x0)|`` (KPI
units); keep those whose effect is at least ``keep_fraction`` (default 2 %) of the largest one,
at most ``max_keep`` (default: one parameter per 8 evaluations the search has left, at least 2)
and at least one. :func:`screen` does the evaluations; :mod:`optimizers.search` (``sampler="screen"``)
searches the kept parameters with a GP within a trust region around today's setpoints, and
counts the screening evaluations in the budget.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optimizers.setpoints import Dimension, Setpoints, current_setpoints
from twins.errors import InputError

#: default screening step, as a share of each parameter's range
STEP = 0.25
#: default keep threshold, as a share of the largest effect
KEEP_FRACTION = 0.02
#: evaluations of the search per kept parameter (the default cap on how many are kept)
EVALUATIONS_PER_KEPT = 8
#: group screening above this many parameters, in groups of this size
GROUP_ABOVE, GROUP_SIZE = 40, 8


@dataclass
class ScreeningPoint:
    """One screening evaluation: the parameters it moved (none for the as-is point, several for a
    group), its setpoints over the screened parameters, the objective per replication and their
    mean (NaN = undefined)."""

    moved: tuple[str, ...]
    setpoints: Setpoints
    values: tuple[float, ...]
    value: float


@dataclass
class Screening:
    """What the screening found: the effect of each parameter (signed, KPI units, positive = better
    in the search's direction; only for parameters screened one by one), the ones kept, the rule that
    kept them, and the groups (empty without group screening) with their effects."""

    space: list[Dimension]
    step: float
    points: list[ScreeningPoint]
    effects: dict[str, float]
    kept: list[Dimension]
    keep_fraction: float
    max_keep: int
    groups: list[list[str]] = field(default_factory=list)
    group_effects: list[float] = field(default_factory=list)

    @property
    def evaluations(self) -> int:
        return len(self.points)

    def summary(self) -> dict[str, Any]:
        """The recommendation's ``provenance.extra["screening"]``."""
        ranked = sorted(self.effects.items(), key=lambda kv: -abs(kv[1]) if math.isfinite(kv[1]) else 0.0)
        out = {
            "design": "one at a time from the as-is setpoints, each parameter moved step x range towards its "
                      "farther bound (radial elementary effects)"
                      + (f"; first in random groups of {len(self.groups[0])}, then one by one in the groups "
                         "that pass the keep rule" if self.groups else ""),
            "step_fraction": self.step, "parameters": len(self.space), "evaluations": self.evaluations,
            "rule": f"keep |effect| >= {self.keep_fraction:g} x the largest, at most {self.max_keep}, at least 1",
            "kept": [d.key for d in self.kept],
            "effects": {k: (round(v, 6) if math.isfinite(v) else None) for k, v in ranked},
        }
        if self.groups:
            out["groups"] = [{"parameters": g, "effect": round(e, 6) if math.isfinite(e) else None}
                             for g, e in zip(self.groups, self.group_effects, strict=True)]
        return out


def default_max_keep(remaining: int) -> int:
    """How many parameters a search of ``remaining`` evaluations can tune: one per
    :data:`EVALUATIONS_PER_KEPT`, at least 2."""
    return max(2, remaining // EVALUATIONS_PER_KEPT)


def moved_point(d: Dimension, step: float) -> float:
    """``d``'s screening value: today's setpoint moved ``step`` × range towards the farther bound."""
    h = step * (d.high - d.low)
    up = (d.high - d.current) >= (d.current - d.low)
    return min(d.high, d.current + h) if up else max(d.low, d.current - h)


def group_count(d: int, group_size: int | None = None) -> int:
    """Groups the screening of ``d`` parameters forms (0: none, one at a time)."""
    size = (GROUP_SIZE if d > GROUP_ABOVE else 1) if group_size is None else group_size
    return 0 if size <= 1 else -(-d // size)


def most_evaluations(d: int, group_size: int | None = None) -> int:
    """The screening's cost if every group mattered: ``1 + G + d``."""
    return 1 + group_count(d, group_size) + d


def _kept_by_rule(sizes: Sequence[float], keep_fraction: float) -> list[bool]:
    largest = max((v for v in sizes if math.isfinite(v)), default=0.0)
    return [math.isfinite(v) and v > 0 and v >= keep_fraction * largest for v in sizes]


def screen(evaluate: Callable[[Setpoints], np.ndarray], space: Sequence[Dimension], *, sign: float = 1.0,
           step: float = STEP, keep_fraction: float = KEEP_FRACTION, max_keep: int | None = None,
           budget: int | None = None, group_size: int | None = None, seed: int = 0,
           on_point: Callable[[ScreeningPoint], None] | None = None) -> Screening:
    """Screen ``space`` with at most ``1 + G + d`` calls of ``evaluate`` (setpoints → objective per
    replication; ``G`` groups, 0 with at most :data:`GROUP_ABOVE` parameters or ``group_size=1``);
    ``sign`` is +1 to maximize, −1 to minimize. See the module docstring for the design and the
    keep rule. ``max_keep`` defaults to :func:`default_max_keep` of what is left of ``budget``
    after the screening (no cap without a budget); ``seed`` deals the groups; ``on_point`` is
    called after each evaluation (progress, trial records).

    Raises:
        InputError: a step outside (0, 1], a keep fraction outside [0, 1], ``max_keep`` < 1, or an
            objective undefined (NaN) at the as-is setpoints.
    """
    if not 0 < step <= 1:
        raise InputError(f"screening step must be in (0, 1] of a parameter's range, got {step}")
    if not 0 <= keep_fraction <= 1:
        raise InputError(f"screening keep fraction must be in [0, 1], got {keep_fraction}")
    if max_keep is not None and max_keep < 1:
        raise InputError(f"screening must keep at least 1 parameter, got max_keep={max_keep}")
    base = current_setpoints(space)

    def run(moved: tuple[str, ...], sp: Setpoints) -> ScreeningPoint:
        values = np.asarray(evaluate(sp), float)
        mean = float(values.mean()) if values.size and not np.isnan(values).any() else math.nan
        point = ScreeningPoint(moved, sp, tuple(float(v) for v in values), mean)
        if on_point is not None:
            on_point(point)
        return point

    def moved(dims: Sequence[Dimension]) -> ScreeningPoint:
        sp = {st: dict(v) for st, v in base.items()}
        for d in dims:
            sp[d.station][d.name] = moved_point(d, step)
        p = run(tuple(d.key for d in dims), sp)
        points.append(p)
        return p

    points = [run((), base)]
    f0 = points[0].value
    if math.isnan(f0):
        raise InputError("the objective is undefined (NaN) at the as-is setpoints: nothing to screen from")
    singles: Sequence[Dimension] = space
    groups: list[list[Dimension]] = []
    group_effects: list[float] = []
    n_groups = group_count(len(space), group_size)
    if n_groups:
        perm = np.random.default_rng(seed).permutation(len(space))
        groups = [[space[i] for i in part] for part in np.array_split(perm, n_groups)]
        group_effects = [sign * (moved(g).value - f0) for g in groups]
        passed = _kept_by_rule([abs(e) for e in group_effects], keep_fraction)
        singles = [d for g, ok in zip(groups, passed, strict=True) if ok for d in g]
    effects: dict[str, float] = {}
    for d in singles:
        effects[d.key] = sign * (moved([d]).value - f0)  # NaN where the KPI is undefined: never kept
    if max_keep is None:
        max_keep = len(space) if budget is None else default_max_keep(budget - len(points))
    size = {k: abs(v) for k, v in effects.items() if math.isfinite(v)}
    largest = max(size.values(), default=0.0)
    ranked = sorted(singles or space, key=lambda d: (-size.get(d.key, -1.0), d.key))
    kept = [d for d in ranked if size.get(d.key, -1.0) > 0 and size[d.key] >= keep_fraction * largest][:max_keep]
    if not kept:  # nothing moved the objective: search the first parameter rather than nothing
        kept = ranked[:1]
    order = {d.key: i for i, d in enumerate(space)}
    kept.sort(key=lambda d: order[d.key])  # the scenario's order, as in the search space
    return Screening(list(space), step, points, effects, kept, keep_fraction, max_keep,
                     [[d.key for d in g] for g in groups], group_effects)
