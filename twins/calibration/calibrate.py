"""Calibration: an event log (:mod:`twins.calibration.eventlog`) → a scenario of the twin, with the fits behind it.

One pass over the log pairs what belongs together, per machine: ``start``/``end`` of an operation
(its processing time is end − start minus the downtime inside it: preemptive-resume),
``setup_start``/``setup_end``, ``fail``/``repair`` (repair times; the up time between a repair and
the next failure, time-based), each part's stations in order (its route), ``arrive`` times
(inter-arrivals), ``scrap`` and ``rework`` per station. An up time or a repair cut by the end of
the log, and the up time from the log's start to a machine's first failure, are right-censored
observations. Then :mod:`twins.calibration.fit` fits the scenario format's families to each sample.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from twins.calibration.eventlog import EventLog
from twins.calibration.fit import (
    DURATION_FAMILIES,
    MIN_OBSERVATIONS,
    PROCESS_FAMILIES,
    Fit,
    fit_durations,
    proportion_ci,
)
from twins.errors import InputError

#: products are fitted apart at a station when their process times differ this much in the mean (and
#: significantly, Kruskal–Wallis p < 0.01): a smaller difference is not worth a parameter per product
PRODUCT_DIFFERENCE = 0.03


@dataclass
class Observations:
    """What one pass over the log collects (times in seconds)."""

    span: float
    process: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    setup: dict[tuple[str, str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    up: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    up_censored: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    repair: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    repair_censored: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    machines: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    ends: Counter[str] = field(default_factory=Counter)
    scraps: Counter[str] = field(default_factory=Counter)
    reworks: Counter[str] = field(default_factory=Counter)
    rework_to: dict[str, Counter[tuple[str, str]]] = field(default_factory=lambda: defaultdict(Counter))
    arrivals: list[float] = field(default_factory=list)
    arrive_products: Counter[str] = field(default_factory=Counter)
    routes: dict[str, Counter[tuple[str, ...]]] = field(default_factory=lambda: defaultdict(Counter))
    station_order: dict[str, float] = field(default_factory=dict)
    open_operations: int = 0
    failing: set[str] = field(default_factory=set)  # stations with a failure in the log
    #: part → (station, machine, processing time, time on the machine) of its operations, in the order
    #: they ended; processing time excludes the machine's downtime inside the operation
    operations: dict[str, list[tuple[str, str, float, float]]] = field(default_factory=lambda: defaultdict(list))


def observe(log: EventLog, families: dict[str, str] | None = None,  # noqa: C901 — one pass
            basis: str = "time") -> Observations:
    """Pair the log's events per machine and per part; :class:`InputError` naming the row for an
    ``end`` without its ``start``, a ``repair`` without a ``fail`` and the like."""
    fam = families or {}
    obs = Observations(span=float(log.t[-1]) if len(log) else 0.0)
    busy: dict[tuple[str, str], list[Any]] = {}  # machine → [part, product, t_start, downtime]
    setting: dict[tuple[str, str], list[Any]] = {}  # machine → [product, t_start, downtime, from family]
    down: dict[tuple[str, str], float] = {}  # machine → failed at
    up_since: dict[tuple[str, str], float] = {}  # machine → its failure clock when repaired (or at the start)
    busy_done: dict[tuple[str, str], float] = defaultdict(float)  # machine → processing time of finished parts

    def clock(key: tuple[str, str], now: float) -> float:
        """The machine's failure clock: time (``basis="time"``), or processing time so far (``"operation"``)."""
        if basis == "time":
            return now
        op = busy.get(key)
        return busy_done[key] + (now - op[2] - op[3] if op is not None else 0.0)

    last_family: dict[tuple[str, str], str] = {}
    part_stations: dict[str, list[str]] = {}
    part_product: dict[str, str] = {}
    reworked: set[str] = set()
    pending_rework: dict[str, str] = {}  # part → station that sent it to rework
    failing_stations: set[str] = set()
    repaired: set[tuple[str, str]] = set()
    t, station, machine, part, product, event = log.t, log.station, log.machine, log.part, log.product, log.event
    for i in range(len(log)):
        ev, st, now = event[i], station[i], float(t[i])
        if st and st not in obs.station_order:
            obs.station_order[st] = now
        key = (st, machine[i])
        if machine[i]:
            obs.machines[st].add(machine[i])
            up_since.setdefault(key, 0.0)
        if ev == "start":
            if key in busy:
                raise InputError(f"{log.where(i)}: start on {machine[i]!r} while part {busy[key][0]} is still on it")
            if key in down:
                raise InputError(f"{log.where(i)}: start on {machine[i]!r} while it is down")
            pa = part[i]
            busy[key] = [pa, product[i], now, 0.0]
            last_family[key] = fam.get(product[i], product[i])
            part_product.setdefault(pa, product[i])
            stations = part_stations.setdefault(pa, [])
            if pa in pending_rework:  # the first station after a rework event is the rework station
                sent_from = pending_rework.pop(pa)
                obs.rework_to[sent_from][(st, "")] += 1
            stations.append(st)
        elif ev == "end":
            op = busy.pop(key, None)
            if op is None or op[0] != part[i]:
                raise InputError(f"{log.where(i)}: end of part {part[i]} on {machine[i]!r} without its start")
            if key in down:
                raise InputError(f"{log.where(i)}: end on {machine[i]!r} while it is down")
            d = now - op[2] - op[3]
            if d < 0:
                raise InputError(f"{log.where(i)}: negative processing time {d:g} s")
            obs.process[(st, op[1])].append(d)
            obs.operations[op[0]].append((st, machine[i], d, now - op[2]))
            busy_done[key] += d
            obs.ends[st] += 1
        elif ev == "fail":
            if key in down:
                raise InputError(f"{log.where(i)}: fail on {machine[i]!r} while it is already down")
            down[key] = now
            failing_stations.add(st)
            obs.up[st].append(clock(key, now) - up_since[key])
        elif ev == "repair":
            t_fail = down.pop(key, None)
            if t_fail is None:
                if key in repaired or key in busy or key in setting:
                    raise InputError(f"{log.where(i)}: repair of {machine[i]!r} without a fail")
                # the machine's first event: a repair that began before the log did — it took longer
                obs.repair_censored[st].append(now)
                failing_stations.add(st)
            else:
                obs.repair[st].append(now - t_fail)
                op = busy.get(key)
                if op is not None:
                    op[3] += now - t_fail
                su = setting.get(key)
                if su is not None:
                    su[2] += now - t_fail
            repaired.add(key)
            up_since[key] = clock(key, now)
        elif ev == "setup_start":
            if key in setting:
                raise InputError(f"{log.where(i)}: setup_start on {machine[i]!r} during a setup")
            setting[key] = [product[i], now, 0.0, last_family.get(key, "")]
        elif ev == "setup_end":
            s = setting.pop(key, None)
            if s is None:
                raise InputError(f"{log.where(i)}: setup_end on {machine[i]!r} without its setup_start")
            d = now - s[1] - s[2]
            if d < 0:
                raise InputError(f"{log.where(i)}: negative setup time {d:g} s")
            obs.setup[(st, s[3], fam.get(s[0], s[0]))].append(d)
        elif ev == "arrive":
            obs.arrivals.append(now)
            obs.arrive_products[product[i]] += 1
            part_product.setdefault(part[i], product[i])
        elif ev == "scrap":
            obs.scraps[st] += 1
            reworked.add(part[i])  # its stations are not a complete route
        elif ev == "rework":
            obs.reworks[st] += 1
            reworked.add(part[i])
            pending_rework[part[i]] = st
        elif ev == "leave":
            pa = part[i]
            if pa not in reworked and pa in part_stations:
                obs.routes[part_product[pa]][tuple(part_stations[pa])] += 1
            part_stations.pop(pa, None)
    end = obs.span
    obs.open_operations = len(busy)
    obs.failing = failing_stations
    for key, t_fail in down.items():  # repairs still going on at the end of the log
        obs.repair_censored[key[0]].append(end - t_fail)
    for key, since in up_since.items():  # up at the end of the log: censored up time
        if key not in down and key[0] in failing_stations:
            obs.up_censored[key[0]].append(clock(key, end) - since)
    return obs


@dataclass
class StationFit:
    name: str
    machines: int
    process: dict[str, Fit]  # product → fit; the key "" when pooled over the products
    products_differ: bool
    product_test_p: float | None
    ttf: Fit | None = None
    repair: Fit | None = None
    setup: dict[tuple[str, str], Fit] = field(default_factory=dict)
    scrap: tuple[int, int, tuple[float, float]] = (0, 0, (0.0, 1.0))
    rework: tuple[int, int, tuple[float, float]] = (0, 0, (0.0, 1.0))
    rework_station: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Calibration:
    """Everything fitted from one log; :meth:`scenario` turns it into the scenario format."""

    file: str
    span: float
    events: int
    stations: list[StationFit]
    routes: dict[str, list[str]]
    mix: dict[str, float]
    interarrival: Fit | None
    notes: list[str]
    basis: str = "time"  # failure clocks: up time ("time") or processing time ("operation")

    def summary(self) -> dict[str, Any]:
        """The ``--json`` document."""
        def station(s: StationFit) -> dict[str, Any]:
            return {
                "machines": s.machines,
                "process_time": {p or "*": f.summary() for p, f in s.process.items()},
                "products_differ": s.products_differ, "product_test_p": s.product_test_p,
                "time_to_failure": s.ttf.summary() if s.ttf else None,
                "repair_time": s.repair.summary() if s.repair else None,
                "setup": {f"{a}->{b}": f.summary() for (a, b), f in s.setup.items()},
                "scrap": {"count": s.scrap[0], "of": s.scrap[1], "fraction": s.scrap[0] / max(s.scrap[1], 1),
                          "ci": list(s.scrap[2])},
                "rework": {"count": s.rework[0], "of": s.rework[1], "fraction": s.rework[0] / max(s.rework[1], 1),
                           "ci": list(s.rework[2]), "station": s.rework_station},
                "notes": s.notes,
            }
        return {"log": self.file, "events": self.events, "span_s": self.span, "failure_basis": self.basis,
                "routes": self.routes, "mix": self.mix,
                "interarrival": self.interarrival.summary() if self.interarrival else None,
                "stations": {s.name: station(s) for s in self.stations}, "notes": self.notes}


def _products_differ(samples: dict[str, list[float]]) -> tuple[bool, float | None]:
    big = {p: np.asarray(v) for p, v in samples.items() if len(v) >= MIN_OBSERVATIONS}
    if len(big) < 2:
        return False, None
    p_value = float(stats.kruskal(*big.values()).pvalue)
    means = [float(v.mean()) for v in big.values()]
    spread = (max(means) - min(means)) / (sum(means) / len(means))
    return p_value < 0.01 and spread > PRODUCT_DIFFERENCE, p_value


def fit_station(obs: Observations, st: str) -> StationFit:
    """Process times (per product when they differ), breakdowns, setups, scrap and rework of station ``st``."""
    samples = {p: v for (s, p), v in obs.process.items() if s == st}
    differ, p_value = _products_differ(samples)
    if differ:
        process = {p: fit_durations(v, families=PROCESS_FAMILIES) for p, v in sorted(samples.items())}
    else:
        pooled = [x for v in samples.values() for x in v]
        process = {"": fit_durations(pooled, families=PROCESS_FAMILIES)}
    sf = StationFit(st, max(len(obs.machines[st]), 1), process, differ, p_value)
    for p, f in process.items():
        if f.too_few:
            sf.notes.append(f"too few process times{' of ' + p if p else ''} ({f.n} < {MIN_OBSERVATIONS}): "
                            "written as the empirical distribution of what was observed, not fitted")
    if st in obs.failing:
        sf.ttf = fit_durations(obs.up.get(st, []), obs.up_censored.get(st, []), DURATION_FAMILIES)
        sf.repair = fit_durations(obs.repair.get(st, []), obs.repair_censored.get(st, []), DURATION_FAMILIES)
        for what, f in (("failures", sf.ttf), ("repairs", sf.repair)):
            if f.too_few:
                sf.notes.append(f"too few {what} ({f.n} < {MIN_OBSERVATIONS}): empirical, not fitted")
    for (s, a, b), v in obs.setup.items():
        if s == st:
            sf.setup[(a, b)] = fit_durations(v, families=PROCESS_FAMILIES)
    n_end = obs.ends[st]
    sf.scrap = (obs.scraps[st], n_end, proportion_ci(obs.scraps[st], n_end))
    sf.rework = (obs.reworks[st], n_end, proportion_ci(obs.reworks[st], n_end))
    if obs.rework_to.get(st):
        sf.rework_station = obs.rework_to[st].most_common(1)[0][0][0]
    return sf

def calibrate(log: EventLog, families: dict[str, str] | None = None, basis: str = "time") -> Calibration:
    """Fit every station, the routes and the arrivals of ``log`` (times in seconds). ``basis``: the
    failure clock runs in up time (``"time"``) or only while processing (``"operation"``)."""
    if basis not in ("time", "operation"):
        raise InputError(f"failure basis {basis!r}: use time or operation")
    obs = observe(log, families, basis)
    notes: list[str] = []
    if obs.open_operations:
        notes.append(f"{obs.open_operations} operation(s) still running at the end of the log are not counted")
    # stations in route order (the longest route first), then any others as they first appear
    in_routes: dict[str, None] = {}
    for counter in sorted(obs.routes.values(), key=lambda c: -len(c.most_common(1)[0][0])):
        for route in counter:
            in_routes.update(dict.fromkeys(route))
    order = list(in_routes) + sorted((s for s in obs.station_order if s not in in_routes),
                                     key=lambda s: obs.station_order[s])
    fits = [fit_station(obs, st) for st in order]
    routes: dict[str, list[str]] = {}
    products = sorted(set(obs.arrive_products) | {p for (_, p) in obs.process})
    for p in products:
        if obs.routes.get(p):
            routes[p] = list(obs.routes[p].most_common(1)[0][0])
        else:
            raise InputError(f"{log.file}: no part of product {p!r} left the line without scrap or rework: "
                             "its route cannot be read from the log")
    total = sum(obs.arrive_products.values())
    mix = ({p: obs.arrive_products[p] / total for p in products} if total
           else {p: float(sum(obs.routes[p].values())) for p in products})
    iat = None
    if len(obs.arrivals) > 1:
        iat = fit_durations(np.diff(np.asarray(obs.arrivals)), families=PROCESS_FAMILIES)
    return Calibration(log.file, obs.span, len(log), fits, routes, mix, iat, notes, basis)


def _dist(f: Fit) -> dict[str, Any]:
    return dict(f.spec)


def scenario_data(cal: Calibration, skeleton: dict[str, Any] | None = None) -> dict[str, Any]:
    """The calibrated scenario as plain data (times in seconds). A ``skeleton`` (scenario data)
    keeps everything the log cannot tell — buffers, energy, calendars, parameters — and has its
    stations' machines, process times, breakdowns, setups, scrap and rework replaced by the fits."""
    stations: list[dict[str, Any]] = []
    base = {s["name"]: s for s in (skeleton or {}).get("stations", [])}
    for sf in cal.stations:
        s: dict[str, Any] = dict(base.get(sf.name, {"name": sf.name}))
        s["machines"] = sf.machines
        s.pop("process_time", None)
        s.pop("process_time_by_product", None)
        if "" in sf.process:
            s["process_time"] = _dist(sf.process[""])
        else:
            s["process_time_by_product"] = {p: _dist(f) for p, f in sf.process.items()}
        if sf.ttf is not None and sf.repair is not None:
            bd: dict[str, Any] = {"name": "fitted", "basis": cal.basis}
            bd.update({"mtbf": sf.ttf.spec["mean"]} if sf.ttf.family == "exponential"
                      else {"time_to_failure": _dist(sf.ttf)})
            bd.update({"mttr": sf.repair.spec["mean"]} if sf.repair.family == "exponential"
                      else {"repair_time": _dist(sf.repair)})
            s["breakdowns"] = [bd]
        else:
            s.pop("breakdowns", None)
        if sf.setup:
            s["setup"] = {"matrix": _setup_matrix(sf.setup)}
        else:
            s.pop("setup", None)
        s["scrap"] = sf.scrap[0] / sf.scrap[1] if sf.scrap[1] else 0.0
        if sf.rework[0] and sf.rework_station is not None:
            s["rework"] = {"probability": sf.rework[0] / sf.rework[1], "station": sf.rework_station,
                           "return_to": sf.name, **({"max_cycles": 3} if "rework" not in s else {})}
        stations.append(s)
    fitted = {sf.name for sf in cal.stations}
    stations += [dict(s) for name, s in base.items() if name not in fitted]  # not in the log: kept as they are
    skel = skeleton or {}
    if skel.get("products"):
        products = []
        for p in skel["products"]:
            q = dict(p)
            if q["name"] in cal.routes:
                q["route"] = cal.routes[q["name"]]
            products.append(q)
    else:
        products = [{"name": p, "route": r} for p, r in cal.routes.items()]
    if cal.interarrival is not None:
        sources: list[dict[str, Any]] = [{"kind": "arrivals", "name": "arrivals",
                                          "interarrival": _dist(cal.interarrival), "mix": cal.mix}]
    else:
        sources = [{"kind": "saturated", "mix": cal.mix}]
    span = max(cal.span, 1.0)
    out: dict[str, Any] = {
        "name": skel.get("name", "calibrated"),
        "description": f"calibrated from {cal.file} ({cal.events} events, {span:g} s)",
        "time_unit": "s",
        "horizon": {"length": float(f"{span:.6g}"), "warmup": float(f"{span / 10:.6g}")},
        "replications": skel.get("replications", 10),
        "products": products, "sources": sources, "stations": stations,
    }
    for k in ("start_clock", "calendar", "tariff", "co2_kg_per_kwh", "economics", "equipment"):
        if k in skel:
            out[k] = skel[k]
    if skel.get("time_unit", "s") != "s":
        # a skeleton in another unit: its own times would be read in seconds now
        raise InputError(f"the skeleton's time_unit is {skel['time_unit']!r}: calibrated scenarios are in "
                         "seconds (the log's unit); write the skeleton with time_unit: s")
    return out


def _setup_matrix(setups: dict[tuple[str, str], Fit]) -> dict[str, dict[str, Any]]:
    matrix: dict[str, dict[str, Any]] = {}
    for (a, b), f in sorted(setups.items()):
        if a and a != b:
            matrix.setdefault(a, {})[b] = _dist(f)
    return matrix


def round_floats(data: Any, digits: int = 6) -> Any:
    """Floats to ``digits`` significant digits (a readable YAML), recursively."""
    if isinstance(data, float):
        return float(f"{data:.{digits}g}") if math.isfinite(data) else data
    if isinstance(data, dict):
        return {k: round_floats(v, digits) for k, v in data.items()}
    if isinstance(data, list):
        return [round_floats(v, digits) for v in data]
    return data
