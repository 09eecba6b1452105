"""Energy-cost-aware scheduling of a machine group (or a line of them) under a time-of-use tariff.

Time is cut into slots of length ``slot`` (scenario time unit); in every slot each *unit* — a
station of ``n`` identical machines switched together, e.g. the 10 board slots of a reflow oven —
is **on**, in **standby** or **off**. Switching on from off takes ``startup`` time, from standby
``wakeup`` time, both at setup power and without output; a unit stays on until its warm-up is over.
Work is released into the first unit (``starts``); every unit makes at most
``n · availability`` units per ``process_time`` of ready time. The model (energies in kWh,
``Δ`` = slot, ``uph`` = time units per hour)::

    min  Σ_t price[t] · Σ_u energy[u,t]
    energy[u,t] = ( n·Δ·(P_idle·on + P_standby·standby + P_off·off)
                  + n·(P_setup − P_idle)·warm[u,t] + (P_busy − P_idle)·busy[u,t] ) / uph
    on + standby + off = 1                                              (one_state)
    cold_start[u,t] ≥ on[u,t] + off[u,t−1] − 1,  warm_start ≥ on + standby[t−1] − 1  (start_*)
    standby[t] ≤ standby[t−1] + on[t−1],   off[t] ≤ off[t−1] + on[t−1]  (no off↔standby: enter_*)
    on[u,t+k] ≥ cold_start[u,t]  for the slots k the warm-up spans (likewise warm_start)  (warmup_*)
    warm[u,t]  = Σ_k a_k · start[u,t−k]   (warm-up time falling into slot t)
    busy[u,t]  = Σ_k b_k · starts[u,t−k]  (machine time of the parts started in slot t−k)
    busy[u,t] ≤ n · availability · (Δ·on[u,t] − warm[u,t])            (capacity)
    Σ_{s≤t} starts[u+1,s] ≤ Σ_{s≤t} yield[u] · done[u,s]               (flow; done = Σ_k f_k starts)
    Σ_{s≤t} yield[u] · done[u,s] − Σ_{s≤t} starts[u+1,s] ≤ buffer[u+1]  (buffer, when finite)
    Σ_t yield[last] · usable[t] · starts[last,t] ≥ target              (output_target)
    outside working windows a unit is in its calendar off state; at the end it is warm (on or
    standby, ``end_state="standby"``, like an as-is line after its last part) or on, or free.

Starts are spread evenly over their slot (that is how :mod:`optimizers.energy_plan` releases them
in the twin), so ``b_k`` (machine time falling into slot t+k, Σ b_k = process time) and ``f_k``
(share of completions in slot t+k) follow from the process time and the slot length: output and
busy time spill into later slots when parts take longer than a slot (a furnace). A part counts
for the target only when its slot ends one process time (plus 3 standard deviations) before
the horizon (``usable``).
Approximations, checked by replaying plans in the twin: mean process times, breakdowns as an
availability, no setups between families, idle time at idle power (the twin's automatic standby
only makes it cheaper).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo

from twins.energy import BUSY, IDLE, OFF, SETUP, STANDBY
from twins.errors import InputError, NoSolutionFound

from .solve import SolveResult, require_solution

STATE_NAMES = ("on", "standby", "off")
END_STATES = ("any", "standby", "on")


@dataclass(frozen=True)
class EnergyUnit:
    """A group of ``machines`` identical machines switched together (one station).

    Attributes:
        name: station name.
        machines: parallel machines (n).
        process_time: mean time per part on one machine, scenario time unit.
        power_kw: kW per machine in :data:`twins.energy.STATES` order.
        startup: time from off to ready (at setup power), scenario time unit.
        wakeup: time from standby to ready (at setup power), scenario time unit.
        yield_: good fraction of the parts it processes (0 < yield ≤ 1).
        availability: share of ready time not lost to breakdowns (0 < a ≤ 1).
        buffer: waiting places in front of it (units after the first); None = unlimited.
        process_time_sd: standard deviation of the process time; a part counts for the target
            only when its slot ends 3 standard deviations more than its process time before the end.
    """

    name: str
    machines: int
    process_time: float
    power_kw: tuple[float, ...]
    startup: float = 0.0
    wakeup: float = 0.0
    yield_: float = 1.0
    availability: float = 1.0
    buffer: float | None = None
    process_time_sd: float = 0.0

    @property
    def rate(self) -> float:
        """Good parts per time unit when all machines are busy."""
        return self.machines * self.availability * self.yield_ / self.process_time


@dataclass(frozen=True)
class EnergyProblem:
    """A TOU energy-scheduling instance (plain, immutable data shared by model, replay and tests).

    Attributes:
        name: instance name.
        units: the units in route order; work enters the first, output leaves the last.
        slot: slot length, scenario time unit.
        price: price per kWh in each slot (its length is the number of slots).
        target: good units that must leave the last unit by the end of the horizon.
        units_per_hour: scenario time units per hour (3600 for seconds).
        window: per slot, True when the line may work (shifts); None = always.
        off_state: state outside the windows: ``"off"`` or ``"standby"``.
        initial: state before slot 0: ``"on"`` (ready), ``"standby"`` or ``"off"``.
        end_state: ``"standby"`` (warm: on or standby at the end), ``"on"`` or ``"any"``; not
            imposed when the last slot lies outside the windows (the calendar decides).
        controlled_release: True when a controller releases work into the first unit; False
            when it never starves (a saturated source): then it works whenever it is ready.
        currency, time_unit, start_clock_h: for reports.
    """

    name: str
    units: tuple[EnergyUnit, ...]
    slot: float
    price: tuple[float, ...]
    target: float
    units_per_hour: float
    window: tuple[bool, ...] | None = None
    off_state: str = "off"
    initial: str = "on"
    end_state: str = "standby"
    controlled_release: bool = True
    currency: str = "EUR"
    time_unit: str = "min"
    start_clock_h: float = 0.0

    def __post_init__(self):
        if not self.units:
            raise InputError("an energy problem needs at least one unit")
        if self.slot <= 0 or not self.price:
            raise InputError(f"{self.name}: slot length must be positive and the horizon hold at least one slot")
        if self.target < 0 or not math.isfinite(self.target):
            raise InputError(f"{self.name}: output target must be a non-negative number, got {self.target}")
        for what, value, allowed in (("off_state", self.off_state, ("off", "standby")),
                                     ("initial", self.initial, STATE_NAMES), ("end_state", self.end_state, END_STATES)):
            if value not in allowed:
                raise InputError(f"{self.name}: {what} must be one of {', '.join(allowed)}, got {value!r}")
        if self.window is not None and len(self.window) != len(self.price):
            raise InputError(f"{self.name}: window has {len(self.window)} slots, price {len(self.price)}")
        for u in self.units:
            if u.machines < 1 or u.process_time <= 0 or not 0 < u.yield_ <= 1 or not 0 < u.availability <= 1:
                raise InputError(f"{self.name}: unit {u.name!r} needs ≥ 1 machine, a positive process time "
                                 f"and yield and availability in (0, 1]")

    @property
    def n_slots(self) -> int:
        return len(self.price)

    @property
    def horizon(self) -> float:
        return self.n_slots * self.slot

    def usable(self) -> list[float]:
        """Per slot: 1 when parts started in it leave the last unit before the horizon ends."""
        lead = sum(u.process_time + 3.0 * u.process_time_sd for u in self.units)
        return [1.0 if (t + 1) * self.slot + lead <= self.horizon + 1e-9 else 0.0 for t in range(self.n_slots)]

    def max_output(self) -> float:
        """Good units the line could make at most: always on, no warm-up (a quick upper bound)."""
        usable = self.usable()
        ready = sum(self.slot for t, w in enumerate(self.window or [True] * self.n_slots) if w and usable[t])
        return min(u.rate for u in self.units) * ready


def busy_kernel(process_time: float, slot: float) -> list[float]:
    """Machine time (same unit as ``process_time``) falling into slot t+k of a part started at a
    uniformly random moment of slot t; sums to ``process_time``. Exact (piecewise-linear integrand
    integrated over its breakpoints)."""
    out = []
    k = 0
    while k * slot < slot + process_time:
        lo, hi = k * slot, (k + 1) * slot
        pts = sorted({0.0, slot, *[min(max(x, 0.0), slot) for x in (lo - process_time, hi - process_time, lo, hi)]})
        g = [max(0.0, min(s + process_time, hi) - max(s, lo)) for s in pts]
        out.append(sum((b - a) * (ga + gb) / 2 for a, b, ga, gb in zip(pts, pts[1:], g, g[1:], strict=False)) / slot)
        k += 1
    while out and out[-1] <= 1e-12:
        out.pop()
    return out


def done_kernel(process_time: float, slot: float) -> list[float]:
    """Share of the parts started (uniformly) in slot t that finish in slot t+k; sums to 1."""
    out = []
    k = 0
    while k * slot < slot + process_time:
        lo, hi = max(k * slot - process_time, 0.0), min((k + 1) * slot - process_time, slot)
        out.append(max(0.0, hi - lo) / slot)
        k += 1
    while out and out[-1] <= 1e-12:
        out.pop()
    return out


def warmup_kernel(duration: float, slot: float) -> list[float]:
    """Warm-up time falling into slot t+k for a warm-up starting at the beginning of slot t."""
    return [min(slot, duration - k * slot) for k in range(math.ceil(duration / slot - 1e-9))] if duration > 0 else []


def build_model(problem: EnergyProblem) -> pyo.ConcreteModel:
    """The TOU energy-scheduling MILP of ``problem`` (see the module docstring): named sets,
    parameters, variables and constraints a user can ``pprint()`` and extend before
    :func:`optimizers.milp.solve.solve`."""
    p = problem
    T, D, uph = p.n_slots, p.slot, p.units_per_hour
    U = range(len(p.units))
    m = pyo.ConcreteModel(name=f"tou_energy_{p.name}")
    m.UNITS = pyo.Set(initialize=U, doc="units (stations) in route order")
    m.SLOTS = pyo.Set(initialize=range(T), doc="time slots")
    m.price = pyo.Param(m.SLOTS, initialize=dict(enumerate(p.price)), mutable=True, doc="price per kWh in the slot")
    m.target = pyo.Param(initialize=p.target, mutable=True, doc="good units to make by the end of the horizon")
    m.power = pyo.Param(m.UNITS, ["idle", "setup", "busy", "standby", "off"], mutable=True, doc="kW per machine",
                        initialize={(u, s): p.units[u].power_kw[k] for u in U
                                    for s, k in (("idle", IDLE), ("setup", SETUP), ("busy", BUSY),
                                                 ("standby", STANDBY), ("off", OFF))})
    m.on = pyo.Var(m.UNITS, m.SLOTS, domain=pyo.Binary, doc="unit on (ready or warming up)")
    m.standby = pyo.Var(m.UNITS, m.SLOTS, domain=pyo.Binary, doc="unit in standby")
    m.off = pyo.Var(m.UNITS, m.SLOTS, domain=pyo.Binary, doc="unit off")
    m.cold_start = pyo.Var(m.UNITS, m.SLOTS, bounds=(0, 1), doc="switched on from off at the slot's start")
    m.warm_start = pyo.Var(m.UNITS, m.SLOTS, bounds=(0, 1), doc="switched on from standby at the slot's start")
    m.starts = pyo.Var(m.UNITS, m.SLOTS, domain=pyo.NonNegativeReals, doc="parts started in the slot")

    init = {s: 1.0 if p.initial == s else 0.0 for s in STATE_NAMES}

    def prev(var, name, u, t):
        return var[u, t - 1] if t > 0 else init[name]

    m.one_state = pyo.Constraint(m.UNITS, m.SLOTS, rule=lambda m, u, t: m.on[u, t] + m.standby[u, t] + m.off[u, t] == 1)
    m.start_cold = pyo.Constraint(m.UNITS, m.SLOTS, rule=lambda m, u, t:
                                  m.cold_start[u, t] >= m.on[u, t] + prev(m.off, "off", u, t) - 1)
    m.start_warm = pyo.Constraint(m.UNITS, m.SLOTS, rule=lambda m, u, t:
                                  m.warm_start[u, t] >= m.on[u, t] + prev(m.standby, "standby", u, t) - 1)
    m.enter_standby = pyo.Constraint(m.UNITS, m.SLOTS, rule=lambda m, u, t:
                                     m.standby[u, t] <= prev(m.standby, "standby", u, t) + prev(m.on, "on", u, t))
    m.enter_off = pyo.Constraint(m.UNITS, m.SLOTS, rule=lambda m, u, t:
                                 m.off[u, t] <= prev(m.off, "off", u, t) + prev(m.on, "on", u, t))
    a_cold = {u: warmup_kernel(p.units[u].startup, D) for u in U}
    a_warm = {u: warmup_kernel(p.units[u].wakeup, D) for u in U}
    m.warmup_cold = pyo.Constraint([(u, t, k) for u in U for t in range(T)
                                    for k in range(1, len(a_cold[u])) if t + k < T],
                                   rule=lambda m, u, t, k: m.on[u, t + k] >= m.cold_start[u, t])
    m.warmup_warm = pyo.Constraint([(u, t, k) for u in U for t in range(T)
                                    for k in range(1, len(a_warm[u])) if t + k < T],
                                   rule=lambda m, u, t, k: m.on[u, t + k] >= m.warm_start[u, t])
    m.warm = pyo.Expression(m.UNITS, m.SLOTS, doc="warm-up time in the slot (per machine)", rule=lambda m, u, t:
                            sum(a * m.cold_start[u, t - k] for k, a in enumerate(a_cold[u]) if t - k >= 0)
                            + sum(a * m.warm_start[u, t - k] for k, a in enumerate(a_warm[u]) if t - k >= 0))
    b = {u: busy_kernel(p.units[u].process_time, D) for u in U}
    f = {u: done_kernel(p.units[u].process_time, D) for u in U}
    saturated = not p.controlled_release
    m.busy = pyo.Expression(m.UNITS, m.SLOTS, doc="busy machine time in the slot", rule=lambda m, u, t:
                            p.units[u].process_time * m.starts[u, t] if saturated and u == 0 else
                            sum(bk * m.starts[u, t - k] for k, bk in enumerate(b[u]) if t - k >= 0))
    m.done = pyo.Expression(m.UNITS, m.SLOTS, doc="parts finishing in the slot", rule=lambda m, u, t:
                            sum(fk * m.starts[u, t - k] for k, fk in enumerate(f[u]) if t - k >= 0))

    def ready(m, u, t):
        unit = p.units[u]
        return unit.machines * unit.availability * (D * m.on[u, t] - m.warm[u, t])

    m.capacity = pyo.Constraint(m.UNITS, m.SLOTS, rule=lambda m, u, t: m.busy[u, t] <= ready(m, u, t))
    if saturated:  # never starves: busy whenever ready (parts started by commanded-off time still finish)
        m.always_busy = pyo.Constraint(m.SLOTS, rule=lambda m, t: m.busy[0, t] == ready(m, 0, t))
    flow_idx = [(u, t) for u in U if u > 0 for t in range(T)]
    m.flow = pyo.Constraint(flow_idx, rule=lambda m, u, t: sum(m.starts[u, s] for s in range(t + 1))
                            <= p.units[u - 1].yield_ * sum(m.done[u - 1, s] for s in range(t + 1)))
    m.buffer = pyo.Constraint([(u, t) for u, t in flow_idx if p.units[u].buffer is not None], rule=lambda m, u, t:
                              p.units[u - 1].yield_ * sum(m.done[u - 1, s] for s in range(t + 1))
                              - sum(m.starts[u, s] for s in range(t + 1)) <= p.units[u].buffer)
    usable = p.usable()
    last = len(p.units) - 1
    m.output_target = pyo.Constraint(expr=sum(p.units[last].yield_ * usable[t] * m.starts[last, t] for t in range(T))
                                     >= m.target)
    if p.window is not None:
        closed = [t for t in range(T) if not p.window[t]]
        state = m.off if p.off_state == "off" else m.standby
        m.outside_window = pyo.Constraint(m.UNITS, closed, rule=lambda m, u, t: state[u, t] == 1)
    end_free = p.window is not None and not p.window[T - 1]  # the calendar decides the end state
    if not end_free and p.end_state == "standby":
        m.end_warm = pyo.Constraint(m.UNITS, rule=lambda m, u: m.off[u, T - 1] == 0)
    elif not end_free and p.end_state == "on":
        m.end_on = pyo.Constraint(m.UNITS, rule=lambda m, u: m.on[u, T - 1] == 1)
    m.energy = pyo.Expression(m.UNITS, m.SLOTS, doc="kWh in the slot", rule=lambda m, u, t: (
        p.units[u].machines * D * (m.power[u, "idle"] * m.on[u, t] + m.power[u, "standby"] * m.standby[u, t]
                                   + m.power[u, "off"] * m.off[u, t])
        + p.units[u].machines * (m.power[u, "setup"] - m.power[u, "idle"]) * m.warm[u, t]
        + (m.power[u, "busy"] - m.power[u, "idle"]) * m.busy[u, t]) / uph)
    m.cost = pyo.Objective(expr=sum(m.price[t] * m.energy[u, t] for u in U for t in range(T)), sense=pyo.minimize)
    return m


@dataclass
class EnergyPlan:
    """A solved plan: per unit and slot the state, warm-up time and parts started; releases into
    the first unit (whole units, cumulative rounding); the model's energy and cost."""

    problem: EnergyProblem
    states: dict[str, list[str]]
    warmup: dict[str, list[float]]
    starts: dict[str, list[float]]
    release: list[int] | None
    energy_kwh: float
    cost: float
    result: SolveResult
    extra: dict = field(default_factory=dict)

    def commands(self) -> list[dict]:
        """State changes only: ``[{"t", "station", "state"}, …]`` (t in the scenario time unit)."""
        out, p = [], self.problem
        for name, states in self.states.items():
            before = p.initial
            for t, s in enumerate(states):
                if s != before:
                    out.append({"t": t * p.slot, "station": name, "state": s})
                before = s
        return sorted(out, key=lambda c: (c["t"], c["station"]))


def extract_plan(problem: EnergyProblem, model: pyo.ConcreteModel, result: SolveResult) -> EnergyPlan:
    """The plan held by a solved :func:`build_model` model."""
    require_solution(result, f"energy plan of {problem.name}")
    states, warm, starts = {}, {}, {}
    for u, unit in enumerate(problem.units):
        states[unit.name] = [max(STATE_NAMES, key=lambda s: pyo.value(getattr(model, s)[u, t]))
                             for t in range(problem.n_slots)]
        warm[unit.name] = [round(float(pyo.value(model.warm[u, t])), 9) for t in range(problem.n_slots)]
        starts[unit.name] = [max(0.0, float(pyo.value(model.starts[u, t]))) for t in range(problem.n_slots)]
    release = None
    if problem.controlled_release:
        first = problem.units[0]
        need = math.ceil(problem.target / math.prod(u.yield_ for u in problem.units) - 1e-6)
        release = whole_units(starts[first.name], need)
    energy = sum(float(pyo.value(model.energy[u, t])) for u in model.UNITS for t in model.SLOTS)
    return EnergyPlan(problem, states, warm, starts, release, energy, float(pyo.value(model.cost)), result)


def whole_units(starts: list[float], at_least: int) -> list[int]:
    """Integer releases per slot whose running sums track the fractional ``starts`` (cumulative
    rounding: each prefix sum is within half a unit) and that add up to at least ``at_least``."""
    cum = np.round(np.cumsum(starts) + 1e-9).astype(int)
    rel = np.diff(np.concatenate([[0], cum])).clip(min=0).tolist()
    short = at_least - sum(rel)
    if short > 0:
        t = max((i for i, x in enumerate(starts) if x > 1e-9), default=0)
        rel[t] += short
    return [int(x) for x in rel]


#: Default slot length: 15 minutes (tariff periods start on the quarter hour), in hours.
DEFAULT_SLOT_H = 0.25


def problem_from_scenario(scenario, station: str | list[str] | None = None, target: float | None = None,
                          horizon: float | None = None, slot: float | None = None, *,
                          end_state: str = "standby") -> EnergyProblem:
    """An :class:`EnergyProblem` for ``station`` (one name, or the stations of the route in
    order) of a :class:`~twins.spec.Scenario`.

    Power per state, start-up and wake-up times come from the stations' energy models (busy power
    and cycle-time factor at the default setpoints of any response model); the process time is the
    mean over the products (equal weights), stretched by operation-based breakdowns; time-based
    breakdowns give the availability, scrap the yield; the calendar gives the working windows and
    the tariff the slot prices. ``horizon`` (default: the scenario's) and ``slot`` (default 15 min)
    are in the scenario's time unit; the horizon must be a whole number of slots.

    Raises:
        InputError: unknown station, a route other than the listed stations, a source other than
            ``external`` or ``saturated``, a missing tariff, a target that is not positive, or a
            target beyond what the stations can make in the horizon.
    """
    from twins.calendar import UNITS_PER_HOUR, off_intervals
    from twins.energy import largest_consumer
    from twins.model import Line

    names = [station] if isinstance(station, str) else list(station or [largest_consumer(scenario)])
    known = [s.name for s in scenario.stations]
    for name in names:
        if name not in known:
            raise InputError(f"unknown station {name!r} (stations: {', '.join(known)})")
    for prod in scenario.products:
        if list(prod.route) != names:
            raise InputError(f"energy plans cover whole routes: product {prod.name!r} visits "
                             f"{' → '.join(prod.route)}, not {' → '.join(names)} (plan a station fed by a "
                             f"'kind: external' source, e.g. scenarios/smt_reflow_energy.yaml)")
    kinds = {s.kind for s in scenario.sources}
    if not kinds <= {"external", "saturated"} or len(kinds) != 1:
        raise InputError(f"energy plans need work released on command (kind: external) or always available "
                         f"(kind: saturated); {scenario.name} has sources of kind {', '.join(sorted(kinds))}")
    if scenario.tariff is None:
        raise InputError(f"{scenario.name} has no tariff: nothing to optimise")
    if target is None or not target > 0:
        raise InputError(f"the output target must be a positive number of units, got {target}")
    uph = UNITS_PER_HOUR[scenario.time_unit]
    slot = DEFAULT_SLOT_H * uph if slot is None else float(slot)
    horizon = scenario.horizon.length if horizon is None else float(horizon)
    if slot <= 0 or horizon <= 0:
        raise InputError(f"slot and horizon must be positive, got slot {slot} and horizon {horizon}")
    slots = horizon / slot
    if abs(slots - round(slots)) > 1e-6 or round(slots) < 1:
        raise InputError(f"the horizon ({horizon:g} {scenario.time_unit}) must be a whole number of slots "
                         f"of {slot:g} {scenario.time_unit}")
    n = int(round(slots))
    line = Line(scenario, 0, 0)
    units = []
    for name in names:
        spec, rt = scenario.station(name), line.station(name)
        dists = [spec.process_time_of(p.name) for p in scenario.products]
        pt = float(np.mean([spec.nominal_process_time(p.name) for p in scenario.products])) * rt.factor
        sd = float(max(math.sqrt(d.variance) for d in dists)) * rt.factor
        availability = 1.0
        for bd in spec.breakdowns:
            ratio = bd.repair_dist().mean / bd.failure_dist().mean
            if bd.basis == "operation":
                pt *= 1.0 + ratio  # every busy time unit brings ratio time units of repair
            else:
                availability /= 1.0 + ratio
        units.append(EnergyUnit(name, spec.machines, pt, tuple(rt.power), rt.startup, rt.wakeup,
                                1.0 - rt.p_scrap, availability, spec.buffer, sd))
    segs = scenario.tariff.price_segments(horizon, scenario.start_clock, scenario.time_unit)
    price = [_mean_price(segs, t * slot, (t + 1) * slot) for t in range(n)]
    off = []
    for name in names:
        off += off_intervals(scenario.calendar, scenario.station(name).planned_stops, horizon,
                             scenario.start_clock, scenario.time_unit)
    window = None
    if off:
        window = tuple(not any(a < (t + 1) * slot and b > t * slot for a, b in off) for t in range(n))
    energy = scenario.station(names[0]).energy
    problem = EnergyProblem(
        name=f"{scenario.name}/{'+'.join(names)}", units=tuple(units), slot=slot, price=tuple(price),
        target=float(target), units_per_hour=uph, window=window,
        off_state="standby" if energy is not None and energy.off_shift == "standby" else "off",
        initial="on", end_state=end_state, controlled_release=kinds == {"external"},
        currency=scenario.tariff.currency, time_unit=scenario.time_unit, start_clock_h=scenario.start_clock)
    check_target(problem)
    return problem


def check_target(problem: EnergyProblem) -> None:
    """InputError unless the target is below the quick upper bound :meth:`EnergyProblem.max_output`."""
    most = problem.max_output()
    if problem.target > most + 1e-9:
        raise InputError(f"target of {problem.target:g} units is out of reach: "
                         f"{'+'.join(u.name for u in problem.units)} "
                         f"can make at most {most:.0f} in {problem.horizon:g} {problem.time_unit}")


def _mean_price(segs: list[tuple[float, float]], a: float, b: float) -> float:
    """Time-weighted mean price over [a, b) of a step function given as [(t, price), …]."""
    total = 0.0
    for i, (t0, price) in enumerate(segs):
        t1 = segs[i + 1][0] if i + 1 < len(segs) else math.inf
        total += max(0.0, min(b, t1) - max(a, t0)) * price
    return total / (b - a)


def solve_problem(problem: EnergyProblem, solver: str = "highs", time_limit: float | None = 60,
                  mip_gap: float | None = None, seed: int | None = 0) -> EnergyPlan:
    """Build, solve and extract in one call. A target above the quick capacity bound is an
    :class:`InputError`; one the model proves unreachable (or no plan within the time limit) is
    :class:`NoSolutionFound`."""
    from .solve import solve

    check_target(problem)
    model = build_model(problem)
    try:
        result = solve(model, solver=solver, time_limit=time_limit, mip_gap=mip_gap, seed=seed)
    except NoSolutionFound as err:
        if err.status in ("infeasible", "infeasible_or_unbounded"):
            raise NoSolutionFound(f"no on/standby/off plan of {problem.name} makes {problem.target:g} units within "
                                  f"{problem.horizon:g} {problem.time_unit} (the energy model is infeasible)",
                                  err.status) from None
        raise
    return extract_plan(problem, model, result)
