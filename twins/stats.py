"""Replications, warm-up deletion, Student-t confidence intervals and paired comparisons.

Replication r of a run with master seed s draws every stream from ``(s, r, stream name)``
(:func:`twins.model.stream`), so the numbers do not depend on how many worker processes ran the
replications or in which order they finished: same seed ⇒ bit-identical KPIs. Two scenarios run
with the same seed share their random numbers wherever they share sources and machines (common
random numbers), which is what makes :func:`compare`'s paired differences sharp.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from twins.errors import check_replications, check_seed
from twins.executors import fan_out
from twins.jsonsafe import finite_or_none
from twins.kpi import line_kpis, station_kpis, units
from twins.machine import StateSpan
from twins.model import Line, Sample
from twins.progress import bar as progress_bar
from twins.spec import Scenario
from twins.state import PlantState, check_state


@dataclass
class Replication:
    """KPIs of one replication (after warm-up), and optional time series / trace."""

    index: int
    kpis: dict[str, float]
    stations: dict[str, dict[str, float]]
    series: list[Sample] | None = None
    trace: list[StateSpan] | None = None


#: KPI numbers in JSON summaries: None for undefined (NaN), 12 decimals so that sums taken in a
#: different order (another executor) print the same
_number = partial(finite_or_none, digits=12)


def run_replication(scenario: Scenario, seed: int = 0, replication: int = 0, *, sample_every: float | None = None,
                    trace: bool = False, state: PlantState | None = None) -> Replication:
    """Simulate one replication: warm-up, then the observed window up to the horizon; from the
    plant ``state`` instead of an empty line when given."""
    line = Line(scenario, seed, replication, trace=trace, sample_every=sample_every, state=state)
    line.run(scenario.horizon.warmup)
    s0 = line.snapshot()
    line.run(scenario.horizon.length)
    s1 = line.snapshot()
    return Replication(replication, line_kpis(line, s0, s1), station_kpis(line, s0, s1), line.series,
                       line.trace)


def confidence_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float]:
    """(mean, half width) of the Student-t interval; half width is NaN for fewer than 2 values."""
    x = np.asarray([v for v in values if not math.isnan(v)], float)
    if x.size == 0:
        return float("nan"), float("nan")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan")
    sem = float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, float(sps.t.ppf(0.5 + level / 2, x.size - 1) * sem)


@dataclass
class Results:
    """Replications of one scenario, summarised with 95 % confidence intervals."""

    scenario: Scenario
    seed: int
    replications: list[Replication]
    level: float = 0.95
    extra: dict[str, Any] = field(default_factory=dict)

    def values(self, kpi: str, station: str | None = None) -> npt.NDArray[np.float64]:
        if station is None:
            return np.array([r.kpis.get(kpi, float("nan")) for r in self.replications])
        return np.array([r.stations[station][kpi] for r in self.replications])

    def ci(self, kpi: str, station: str | None = None) -> tuple[float, float]:
        return confidence_interval(self.values(kpi, station), self.level)

    def summary(self) -> dict[str, Any]:
        """The ``twinopt run --json`` document (the command-line contract, docs/architecture.md)."""
        line_units, station_units = units(self.scenario)

        def entry(vals: npt.NDArray[np.float64], unit: str) -> dict[str, float | str | None]:
            m, h = confidence_interval(vals, self.level)
            return {"mean": _number(m), "half_width": _number(h), "unit": unit}

        first = self.replications[0]
        kpis = {k: entry(self.values(k), line_units.get(k, "")) for k in first.kpis}
        stations = {s: {k: entry(self.values(k, s), station_units.get(k, "")) for k in first.stations[s]}
                    for s in first.stations}
        return {"scenario": self.scenario.name, "replications": len(self.replications), "seed": self.seed,
                "kpis": kpis, "stations": stations}


def _run_one(args: tuple[Scenario, int, int, float | None, PlantState | None]) -> Replication:
    scenario, seed, r, sample_every, state = args
    return run_replication(scenario, seed, r, sample_every=sample_every, state=state)


def default_workers(replications: int) -> int:
    return max(1, min(replications, os.cpu_count() or 1))


def replicate(scenario: Scenario, replications: int | None = None, seed: int = 0, *, workers: int | None = None,
              executor: Executor | None = None, progress: bool | str = False,
              sample_every: float | None = None, series_replications: int = 1,
              state: PlantState | None = None) -> Results:
    """Run ``replications`` independent replications (in parallel processes by default).

    ``executor`` may be any :class:`concurrent.futures.Executor` (:mod:`twins.executors`: Ray);
    otherwise ``workers`` processes are used (1 = in this process). ``sample_every``
    records time series for the first ``series_replications`` replications (for reports). With a
    plant ``state`` every replication starts from it (:mod:`twins.state`), with its own streams.
    """
    n = scenario.replications if replications is None else replications
    check_replications(n)
    check_seed(seed)
    if state is not None:  # bad input fails here, once, not in every worker
        check_state(state, scenario)
    jobs = [(scenario, seed, r, sample_every if r < series_replications else None, state) for r in range(n)]
    desc = progress if isinstance(progress, str) else f"{scenario.name}: replications"
    bar = progress_bar(total=n, desc=desc, unit="rep", disable=None if progress else True, leave=False)
    workers = default_workers(n) if workers is None else max(1, workers)
    try:
        # in the order of the replications, whatever order they finished in
        done = fan_out(_run_one, jobs, executor=executor, workers=workers, done=bar.update)
    finally:
        bar.close()
    return Results(scenario, seed, done)


@dataclass
class Comparison:
    """Paired differences B − A per KPI under common random numbers."""

    a: Results
    b: Results

    def diff(self, kpi: str, station: str | None = None) -> tuple[float, float, float]:
        """(mean difference B − A, half width, two-sided p-value of the paired t-test)."""
        xa, xb = self.a.values(kpi, station), self.b.values(kpi, station)
        d = xb - xa
        mean, hw = confidence_interval(d, self.a.level)
        ok = ~(np.isnan(xa) | np.isnan(xb))
        if ok.sum() < 2 or np.allclose(d[ok], d[ok][0]):
            p = float("nan") if ok.sum() < 2 or d[ok][0] == 0 else 0.0
        else:
            p = float(sps.ttest_rel(xb[ok], xa[ok]).pvalue)
        return mean, hw, p

    def summary(self) -> dict[str, Any]:
        line_units, _ = units(self.a.scenario)
        out: dict[str, dict[str, float | str | None]] = {}
        for k in self.a.replications[0].kpis:
            if k not in self.b.replications[0].kpis:
                continue
            ma, ha = self.a.ci(k)
            mb, hb = self.b.ci(k)
            d, hw, p = self.diff(k)
            out[k] = {"a": _number(ma), "b": _number(mb), "diff": _number(d), "half_width": _number(hw),
                      "p_value": _number(p), "unit": line_units.get(k, "")}
        return {"a": self.a.scenario.name, "b": self.b.scenario.name, "replications": len(self.a.replications),
                "seed": self.a.seed, "kpis": out}


def compare(a: Scenario, b: Scenario, replications: int | None = None, seed: int = 0, *, workers: int | None = None,
            executor: Executor | None = None, progress: bool = False, state: PlantState | None = None,
            state_b: PlantState | None = None) -> Comparison:
    """Run both scenarios with the same seeds (common random numbers) and pair the replications;
    from the plant ``state`` when given (B from ``state_b`` if given: the same plant without the
    setpoints B's what-if sets). ``workers`` and ``executor`` as in :func:`replicate`."""
    n = a.replications if replications is None else replications
    ra = replicate(a, n, seed, workers=workers, executor=executor,
                   progress=f"{a.name}: replications" if progress else False, state=state)
    rb = replicate(b, n, seed, workers=workers, executor=executor,
                   progress=f"{b.name}: replications" if progress else False,
                   state=state if state_b is None else state_b)
    return Comparison(ra, rb)

