"""Rough-cut model of a line: a fluid (mean-value) approximation of its steady state, evaluated in
microseconds per setpoint vector instead of a twin replication's tens of milliseconds.

Every station is reduced to its mean numbers at given setpoints — mean process time × the
response's cycle-time factor, plus the expected setup per part; the response's yield and the
station's scrap share; busy power from the response; availability from breakdowns
(``basis: time``: up/(up + repair); ``basis: operation``: repair time added per busy time) and the
share of the measurement window its calendar and planned stops take away (with a start-up after
each return from off) — and the line to
its bottleneck:

* the release rate λ of a saturated source is the largest one every station can carry:
  ``λ = min_s (capacity_s − load of arrivals and orders_s) / work per released part_s``, where the
  work per released part counts a station's operations on every route, each weighted by the share
  of parts that survive the scrap upstream (rework adds its share to the rework station);
* arrivals release ``lot_size / mean inter-arrival`` parts per time unit, orders their quantity
  over the horizon (both capped by the line's capacity);
* good and scrapped units follow from λ, the mix and the yields; energy from each machine's busy,
  down, idle and off time at its state's power, priced at the window's mean tariff price; margin
  as the twin's KPI (``twins.kpi``).

What it leaves out: queueing and blocking between stations (it is an upper bound on throughput:
a line whose buffers are small loses some of it), standby, setups' dependence on the sequence
(one expected setup per part: the chance that the next part is of another family, at the mean
change-over time), orders' due dates.

How close it comes at today's setpoints (twin: 5 replications, seed 0): the glue cell's margin
4271.7 vs 4310.3 EUR (−0.9 %), the foaming line's 1178.1 vs 1205.7 EUR (−2.3 %); the SMT line's
good boards 5114 vs 3910 (+31 %: its placers and oven are nearly balanced with small buffers
between them, and blocking costs them a quarter of their time).

It is the low-fidelity model that ``optimizers.search`` (``sampler="model"``) optimises before it
spends twin evaluations, and a quick what-if: ``RoughCut(scenario).kpis(setpoints)``. The twin
stays the judge: nothing recommended rests on this model alone.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from twins.calendar import UNITS_PER_HOUR, off_intervals
from twins.energy import BUSY, DOWN, IDLE, OFF
from twins.errors import InputError
from twins.response import RESPONSE_RANGES
from twins.spec import ArrivalSource, OrderSource, SaturatedSource, Scenario, Station

Array = npt.NDArray[np.float64]
#: station → parameter → value(s); scalars or arrays of one common shape (missing: today's setpoint)
SetpointArrays = Mapping[str, Mapping[str, float | Array]]


@dataclass(frozen=True)
class _Visit:
    product: int
    station: int
    step: int  # position on the product's route


def _window_share_off(intervals: list[tuple[float, float]], a: float, b: float) -> float:
    """Share of [a, b) covered by the merged ``intervals``."""
    off = sum(max(0.0, min(e, b) - max(s, a)) for s, e in intervals)
    return off / (b - a) if b > a else 0.0


class RoughCut:
    """The rough-cut model of ``scenario`` (see the module docstring).

    Raises:
        InputError: an ``external`` source (its release rate is not in the scenario).
    """

    def __init__(self, scenario: Scenario):
        self.scenario = sc = scenario
        self.stations: list[Station] = list(sc.stations)
        index = {st.name: i for i, st in enumerate(self.stations)}
        self.names = [st.name for st in self.stations]
        a, b = sc.horizon.warmup, sc.horizon.length
        self.window = b - a
        n_s, n_p = len(self.stations), len(sc.products)
        # capacity: machines × share of the window planned on × up share of time-based failures
        self.machines = np.array([st.machines for st in self.stations], float)
        on = []
        for st in self.stations:
            off = off_intervals(sc.calendar, st.planned_stops, b, sc.start_clock, sc.time_unit)
            # each return from off inside the window costs the station's start-up (warm-up) time
            restarts = sum(1 for _, end in off if a < end < b) if st.energy and st.energy.off_shift == "off" else 0
            startup = restarts * (st.energy.startup if st.energy else 0.0)
            on.append(max(0.0, 1.0 - _window_share_off(off, a, b) - startup / (b - a)))
        self.on = np.array(on)
        self.up = np.ones(n_s)
        self.op_down = np.zeros(n_s)  # operation-based repair time per busy time
        for i, st in enumerate(self.stations):
            for bd in st.breakdowns:
                ratio = bd.repair_dist().mean / bd.failure_dist().mean
                if bd.basis == "time":
                    self.up[i] /= 1.0 + ratio
                else:
                    self.op_down[i] += ratio
        # mean process time per product and station, 0 where a station has none for the product
        self.t = np.zeros((n_p, n_s))
        for j, p in enumerate(sc.products):
            for i, st in enumerate(self.stations):
                nominal = st.nominal_process_time(p.name)
                self.t[j, i] = 0.0 if nominal is None else nominal
        self.visits = [_Visit(j, index[name], k) for j, p in enumerate(sc.products) for k, name in enumerate(p.route)]
        self.margin = np.array([p.margin if p.margin is not None else sc.economics.margin_per_unit
                                for p in sc.products])
        # release: fixed rates (arrivals, orders) and saturated mixes, per product
        self.fixed = np.zeros(n_p)
        self.saturated = np.zeros(n_p)
        names = [p.name for p in sc.products]
        for src in sc.sources:
            if isinstance(src, ArrivalSource | SaturatedSource):
                mix = src.mix or {n: 1.0 for n in names}
                w = np.array([mix.get(n, 0.0) for n in names], float)
                w = w / w.sum()
                if isinstance(src, ArrivalSource):
                    self.fixed += w * src.lot_size / src.interarrival.mean
                else:
                    self.saturated += w
            elif isinstance(src, OrderSource):
                for o in src.orders:
                    self.fixed[names.index(o.product)] += o.quantity / b
            else:
                raise InputError(f"the rough-cut model needs arrivals, orders or a saturated source; "
                                 f"source {src.name!r} is {src.kind!r}")
        if self.saturated.sum() > 0:
            self.saturated /= self.saturated.sum()
        self.setup = self._setup_per_part()
        # energy: per-state power of one machine (busy comes from the response when it has one)
        power = [st.energy.power_kw.vector() if st.energy else [0.0] * 7 for st in self.stations]
        self.p_busy = np.array([pw[BUSY] for pw in power])
        self.p_idle = np.array([pw[IDLE] for pw in power])
        self.p_down = np.array([pw[DOWN] for pw in power])
        self.p_off = np.array([pw[OFF] for pw in power])
        self.price = self._mean_price(a, b)
        self.responses = [st.response.compile(tuple(q.name for q in st.parameters)) if st.response else {}
                          for st in self.stations]

    def _setup_per_part(self) -> Array:
        """Expected setup time per operation: the chance that the next part is of another family
        (independent draws from the release mix, lots of ``lot_size``), times the mean change-over."""
        sc = self.scenario
        families = [p.setup_family for p in sc.products]
        mix = self.saturated + self.fixed
        mix = mix / mix.sum() if mix.sum() > 0 else mix
        q: dict[str, float] = {}
        for f, w in zip(families, mix, strict=True):
            q[f] = q.get(f, 0.0) + float(w)
        lots = [getattr(src, "lot_size", 1) for src in sc.sources]
        change = (1.0 - sum(v * v for v in q.values())) / (float(np.mean(lots)) if lots else 1.0)
        out = np.zeros(len(self.stations))
        for i, st in enumerate(self.stations):
            if st.setup is None or change <= 0:
                continue
            pairs = [(a, b) for a in q for b in q if a != b]
            means = [st.setup.matrix[a][b].mean if a in st.setup.matrix and b in st.setup.matrix[a]
                     else st.setup.default.mean for a, b in pairs]
            weights = [q[a] * q[b] for a, b in pairs]
            out[i] = change * (float(np.average(means, weights=weights)) if sum(weights) > 0 else 0.0)
        return out

    def _mean_price(self, a: float, b: float) -> float:
        sc = self.scenario
        if sc.tariff is None:
            return 0.0
        segs = sc.tariff.price_segments(b, sc.start_clock, sc.time_unit) + [(b, 0.0)]
        total = sum(price * max(0.0, min(t1, b) - max(t0, a)) for (t0, price), (t1, _) in pairwise(segs))
        return total / (b - a) if b > a else 0.0

    def _responses(self, i: int, values: Mapping[str, float | Array], shape: tuple[int, ...]) -> dict[str, Array]:
        st = self.stations[i]
        env = {p.name: values.get(p.name, p.setpoint) for p in st.parameters}
        out: dict[str, Array] = {}
        for key, fn in self.responses[i].items():
            try:
                v = np.broadcast_to(np.asarray(fn(env), float), shape)  # type: ignore[arg-type]  # arrays work
            except (TypeError, ValueError):  # a model that takes one point at a time
                flat = {k: np.broadcast_to(np.asarray(v, float), shape).ravel() for k, v in env.items()}
                n = int(np.prod(shape)) if shape else 1
                v = np.array([float(fn({k: float(a[m]) for k, a in flat.items()})) for m in range(n)]).reshape(shape)
            lo, hi, _ = RESPONSE_RANGES[key]
            out[key] = np.clip(v, lo if key != "cycle_time_factor" else 1e-9, hi)
        return out

    def kpis(self, setpoints: SetpointArrays | None = None) -> dict[str, Array]:
        """Approximate window KPIs at ``setpoints`` (scalars or arrays, broadcast together):
        ``throughput`` (good units per time unit), ``good_units``, ``scrapped_units``,
        ``energy_kwh``, ``energy_cost``, ``margin`` and ``bottleneck`` (station index)."""
        setpoints = setpoints or {}
        unknown = set(setpoints) - set(self.names)
        if unknown:
            raise InputError(f"unknown station(s) {', '.join(sorted(unknown))} (stations: {', '.join(self.names)})")
        shape = np.broadcast_shapes(*(np.shape(v) for vals in setpoints.values() for v in vals.values()))
        n_s, n_p = len(self.stations), len(self.scenario.products)

        def per_station(a: Array) -> Array:  # (stations,) → (stations, 1, …) against (stations, *shape)
            return a.reshape((n_s,) + (1,) * len(shape))

        factor, keep, busy_kw = [], [], []
        for i, st in enumerate(self.stations):
            r = self._responses(i, setpoints.get(st.name, {}), shape)
            factor.append(r.get("cycle_time_factor", np.ones(shape)))
            keep.append((1.0 - st.scrap) * r.get("yield", np.ones(shape)))
            busy_kw.append(r.get("power_kw", np.full(shape, self.p_busy[i])))
        # survival to each step and busy time per released part, per product (fixed and saturated)
        work = np.zeros((n_p, n_s, *shape))  # busy time per released unit of product j at station i
        good = np.ones((n_p, *shape))
        for v in self.visits:
            st = self.stations[v.station]
            op = (self.t[v.product, v.station] * factor[v.station] + self.setup[v.station]) \
                * (1.0 + self.op_down[v.station])
            work[v.product, v.station] += good[v.product] * op
            if st.rework is not None:  # the rework station's share of the parts (one cycle)
                rw = self.names.index(st.rework.station)
                work[v.product, rw] += good[v.product] * st.rework.probability * self.t[v.product, rw] * factor[rw]
            good[v.product] = good[v.product] * keep[v.station]
        capacity = per_station(self.machines * self.on * self.up)
        fixed_load = np.tensordot(self.fixed, work, axes=(0, 0))  # (n_s, *shape)
        scale = np.minimum(1.0, np.min(np.where(fixed_load > 0, capacity / np.maximum(fixed_load, 1e-300), np.inf),
                                       axis=0))  # arrivals beyond capacity are not served
        rate = self.fixed.reshape((n_p,) + (1,) * len(shape)) * scale
        if self.saturated.sum() > 0:
            sat_load = np.tensordot(self.saturated, work, axes=(0, 0))
            room = np.maximum(capacity - fixed_load * scale, 0.0)
            lam = np.min(np.where(sat_load > 0, room / np.maximum(sat_load, 1e-300), np.inf), axis=0)
            rate = rate + self.saturated.reshape((n_p,) + (1,) * len(shape)) * lam
        released = rate * self.window  # units per product over the window
        good_units = released * good
        scrapped = released - good_units
        busy = np.einsum("j...,ji...->i...", released, work)  # machine time per station
        busy_up = busy / per_station(1.0 + self.op_down)  # processing, repairs apart
        avail = per_station(self.machines * self.on * self.window)
        broken = avail * per_station(1.0 - self.up)  # down time of time-based failures
        down = busy - busy_up + broken
        idle = np.maximum(avail - busy - broken, 0.0)
        off = per_station(self.machines * (1.0 - self.on) * self.window)
        kwh = (busy_up * np.stack(busy_kw) + idle * per_station(self.p_idle) + down * per_station(self.p_down)
               + off * per_station(self.p_off)).sum(axis=0) / UNITS_PER_HOUR[self.scenario.time_unit]
        cost = kwh * self.price
        g = good_units.sum(axis=0)
        s = scrapped.sum(axis=0)
        margin = np.tensordot(self.margin, good_units, axes=(0, 0)) - s * self.scenario.economics.scrap_cost - cost
        load = np.einsum("j...,ji...->i...", rate, work) / capacity
        return {"throughput": g / self.window, "good_units": g, "scrapped_units": s, "energy_kwh": kwh,
                "energy_cost": cost, "margin": margin, "bottleneck": np.argmax(load, axis=0).astype(float)}
