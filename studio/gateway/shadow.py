"""Drift: follow a plant through its counters and compare every window with the twin (``twinopt shadow``).

Every window of ``window_h`` simulated hours the shadow reads the plant's state and counters at one
instant (:func:`studio.gateway.snapshot.read_snapshot`), samples the station state counts
(``<station>.state.busy``) as often as the plant publishes them, and at the window's end predicts
the same window with the twin: ``replications`` replications from the plant state at the window's
start (its setpoints are the plant's ``active.*``), each sampled at the same instants. Per
statistic the residual of the observation against the replications is

    t = (observed - mean) / (sd * sqrt(1 + 1/n))     (Student t, n - 1 degrees of freedom)

(the 95 % prediction interval is mean ± t.ppf(0.975, n - 1) · sd · sqrt(1 + 1/n)), mapped to a
standard normal score z = Φ⁻¹(F_t(t)) so that one CUSUM fits every statistic. A one-sided CUSUM
per statistic, in the direction that means trouble (fewer good parts, more scrap, more energy, a
station busier than predicted), S = max(0, S + z - k), alarms when S > h (:data:`K` = 0.5, :data:`H` = 8).
The station named is the one whose busy-share CUSUM is highest (a slowed station works longer for
the same parts; its neighbours, blocked or starved, are less busy). docs/drift.md has the details.
"""
from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from studio.gateway.push import LINK_ERRORS, Link, PushSecurity, Timing, connect, normalize_endpoint
from studio.gateway.snapshot import PlantSnapshot, read_snapshot
from twins.calendar import UNITS_PER_HOUR
from twins.energy import STATES
from twins.errors import EndpointUnreachable, InputError
from twins.model import Line
from twins.spec import Scenario
from twins.state import PlantState

#: CUSUM reference value and decision interval, in standard deviations of a window's residual.
#: One one-sided CUSUM of N(0, 1) scores with k = 0.5 alarms falsely every ~980 windows on average
#: with h = 5, every ~19 500 with h = 8 (Monte Carlo); a shadow runs 3 + one per station CUSUMs at
#: once, so h = 8: with 6 of them, a false alarm within 10 windows has probability ~0.04 % (h = 5:
#: ~2.7 %), and a sustained shift of 3 sd still alarms in ~4 windows (1 sd: ~16, 2 sd: ~6)
K, H = 0.5, 8.0
#: line statistics and the direction that means trouble (+1: above the twin, -1: below)
LINE_STATS = {"good": -1, "scrap": +1, "energy_kwh": +1}
#: the largest |z| a single window contributes (a residual against replications that never vary)
Z_MAX = 8.0
_BUSY = STATES.index("busy")


@dataclass
class Residual:
    """One statistic of one window: the plant's value, the twin's mean, the 95 % prediction
    interval and the normal score ``z`` of the residual."""

    observed: float
    mean: float
    low: float
    high: float
    z: float

    def as_dict(self) -> dict[str, float]:
        return {"observed": self.observed, "mean": self.mean, "low": self.low, "high": self.high, "z": self.z}


@dataclass
class Window:
    index: int
    t0: float
    t1: float
    line: dict[str, Residual]
    stations: dict[str, dict[str, Residual]]
    cusum: dict[str, float]
    alarm: str | None = None  # the statistic whose CUSUM crossed h first, if any
    suspect: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "t0": self.t0, "t1": self.t1,
                "line": {k: r.as_dict() for k, r in self.line.items()},
                "stations": {s: {k: r.as_dict() for k, r in v.items()} for s, v in self.stations.items()},
                "cusum": self.cusum, "alarm": self.alarm, "suspect": self.suspect}


@dataclass
class Cusum:
    """One-sided CUSUMs (``S = max(0, S + z - k)``, alarm at ``S > h``), one per statistic."""

    k: float = K
    h: float = H
    s: dict[str, float] = field(default_factory=dict)

    def update(self, z: dict[str, float]) -> list[str]:
        """Add one window's directed scores; the statistics now above ``h``, highest first."""
        for name, value in z.items():
            self.s[name] = max(0.0, self.s.get(name, 0.0) + value - self.k)
        return sorted((n for n, v in self.s.items() if v > self.h), key=lambda n: -self.s[n])


def residual(observed: float, replications: np.ndarray, resolution: float, level: float = 0.95) -> Residual:
    """The plant's ``observed`` value against the twin's ``replications`` of the same statistic;
    the spread is floored at ``resolution`` (half a part for counts: replications that all agree
    must not make one part's difference infinitely surprising)."""
    n = replications.size
    mean = float(replications.mean())
    sd = max(float(replications.std(ddof=1)) if n > 1 else 0.0, resolution)
    scale = sd * math.sqrt(1.0 + 1.0 / n)
    q = float(sps.t.ppf(0.5 + level / 2, max(n - 1, 1)))
    t = (observed - mean) / scale
    z = float(sps.norm.ppf(sps.t.cdf(t, max(n - 1, 1))))
    z = max(-Z_MAX, min(Z_MAX, z)) if math.isfinite(z) else math.copysign(Z_MAX, t)
    return Residual(observed, mean, mean - q * scale, mean + q * scale, z)


def predict_window(scenario: Scenario, state: PlantState, length: float, sample_times: list[float], *,
                   replications: int, seed: int, first: int) -> dict[str, np.ndarray]:
    """The twin's replications of one window from the plant ``state`` (time 0 = the window's
    start): per replication the good parts, scrap, energy (kWh), and per station its operations
    and its busy share averaged over the ``sample_times`` (as the shadow samples the plant)."""
    out: dict[str, list[float]] = {}
    for r in range(replications):
        line = Line(scenario, seed, first + r, state=state)
        s0 = line.snapshot()
        busy = {st.name: 0.0 for st in line.stations}
        for t in sample_times:
            line.run(t)
            for st in line.stations:
                busy[st.name] += sum(m.current_state(t) == _BUSY for m in st.machines) / len(st.machines)
        line.run(length)
        s1 = line.snapshot()
        values = {"good": s1["good"] - s0["good"], "scrap": s1["scrapped"] - s0["scrapped"],
                  "energy_kwh": sum(sum(a["kwh"]) - sum(b["kwh"]) for a, b in zip(s1["stations"], s0["stations"],
                                                                                  strict=True))}
        for st, a, b in zip(line.stations, s1["stations"], s0["stations"], strict=True):
            values[f"{st.name}.operations"] = a["ops"] - b["ops"]
            values[f"{st.name}.busy"] = busy[st.name] / max(len(sample_times), 1)
        for name, v in values.items():
            out.setdefault(name, []).append(float(v))
    return {name: np.asarray(v) for name, v in out.items()}


def _counter_nodes(scenario: Scenario) -> list[str]:
    return ["line.good", "line.scrap", "line.energy_kwh", "line.running",
            *(f"{st.name}.operations" for st in scenario.stations)]


def compare_window(index: int, start: PlantSnapshot, end: PlantSnapshot, samples: list[tuple[float, dict[str, float]]],
                   predicted: dict[str, np.ndarray], scenario: Scenario, cusum: Cusum) -> Window:
    """Residuals of one window (plant ``start`` → ``end``) against the twin's ``predicted``
    replications, and the CUSUMs updated with them."""
    a, b = start.extra, end.extra
    observed = {"good": b["line.good"] - a["line.good"], "scrap": b["line.scrap"] - a["line.scrap"],
                "energy_kwh": b["line.energy_kwh"] - a["line.energy_kwh"]}
    line = {name: residual(float(observed[name]), predicted[name], 0.5 if name != "energy_kwh" else 1e-3)
            for name in LINE_STATS}
    stations: dict[str, dict[str, Residual]] = {}
    n_samples = max(len(samples), 1)
    for st in scenario.stations:
        ops = float(b[f"{st.name}.operations"] - a[f"{st.name}.operations"])
        busy = sum(s[st.name] for _, s in samples) / n_samples
        stations[st.name] = {
            "operations": residual(ops, predicted[f"{st.name}.operations"], 0.5),
            # one machine-sample's worth: the share's own resolution
            "busy": residual(busy, predicted[f"{st.name}.busy"], 0.5 / (n_samples * st.machines)),
        }
    scores = {name: sign * line[name].z for name, sign in LINE_STATS.items()}
    scores.update({f"{name}.busy": r["busy"].z for name, r in stations.items()})
    over = cusum.update(scores)
    busy_s = {name: cusum.s[f"{name}.busy"] for name in stations}
    suspect = max(busy_s, key=lambda n: (busy_s[n], stations[n]["busy"].z))
    return Window(index, start.sim_time, end.sim_time, line, stations, dict(cusum.s),
                  alarm=over[0] if over else None, suspect=suspect if over else None)


async def _read_numbers(link: Link, names: list[str], endpoint: str) -> list[float]:
    """The nodes' values in one Read request (one instant of the plant)."""
    try:
        dvs = await link.call(link.client.read_attributes([link.nodes[n] for n in names]))
    except LINK_ERRORS as err:
        raise EndpointUnreachable(f"{endpoint}: reading failed ({type(err).__name__} {err})") from None
    out = []
    for name, dv in zip(names, dvs, strict=True):
        if not dv.StatusCode.is_good() or dv.Value is None or not isinstance(dv.Value.Value, int | float):
            raise InputError(f"{endpoint}: the plant has no numeric node {name}")
        out.append(float(dv.Value.Value))
    return out


async def shadow(endpoint: str, scenario: Scenario, *, security: PushSecurity, window_h: float = 1.0,
                 windows: int | None = None, replications: int = 10, seed: int = 1, timeout: float = 5.0,
                 on_window: Callable[[Window], None] | None = None, stop_on_alarm: bool = False) -> list[Window]:
    """Follow the plant at ``endpoint`` for ``windows`` windows (None: until its horizon, or until
    cancelled) of ``window_h`` simulated hours; return the windows compared."""
    if not (math.isfinite(window_h) and window_h > 0):
        raise InputError(f"--window must be a positive number of simulated hours, got {window_h}")
    if windows is not None and windows < 1:
        raise InputError(f"--windows must be at least 1, got {windows}")
    if replications < 2:
        raise InputError(f"--replications must be at least 2 (a prediction interval needs a spread), "
                         f"got {replications}")
    length = window_h * UNITS_PER_HOUR[scenario.time_unit]
    counters = _counter_nodes(scenario)
    sample_nodes = ["line.sim_time", *(f"{st.name}.state.busy" for st in scenario.stations)]
    machines = {st.name: st.machines for st in scenario.stations}
    try:
        link = await connect(normalize_endpoint(endpoint), security, {n: f"ns=2;s={n}" for n in sample_nodes},
                             Timing(call_s=timeout))
    except EndpointUnreachable as err:
        raise EndpointUnreachable(str(err).removesuffix(": nothing was written")) from None
    cusum = Cusum()
    done: list[Window] = []
    try:
        start = await read_snapshot(endpoint, scenario=scenario, security=security, timeout=timeout, extra=counters)
        while windows is None or len(done) < windows:
            samples: list[tuple[float, dict[str, float]]] = []
            while True:
                v = await _read_numbers(link, sample_nodes, endpoint)
                rel = v[0] - start.sim_time
                if 0 < rel < length and (not samples or rel > samples[-1][0]):
                    samples.append((rel, {st: x / machines[st]
                                          for st, x in zip(machines, v[1:], strict=True)}))
                if rel >= length:
                    break
                await asyncio.sleep(0.02)
            end = await read_snapshot(endpoint, scenario=scenario, security=security, timeout=timeout, extra=counters)
            k = len(done)
            predicted = await asyncio.to_thread(
                predict_window, scenario, start.state, end.sim_time - start.sim_time, [s[0] for s in samples],
                replications=replications, seed=seed, first=k * replications)
            window = compare_window(k, start, end, samples, predicted, scenario, cusum)
            done.append(window)
            if on_window is not None:
                on_window(window)
            if (window.alarm and stop_on_alarm) or not end.extra["line.running"]:
                break
            start = end
    finally:
        await link.close()
    return done
