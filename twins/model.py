"""The line twin: builds SimPy processes from a validated :class:`~twins.spec.Scenario`.

``Line(scenario, seed, replication)`` is one independent replication. Every random stream is a
``numpy.random.Generator`` seeded from ``(seed, replication, stream name)``, with one stream per
source and per machine and purpose (process times per product, setups, failures, repairs,
quality). Names — not creation order — fix the streams, so two scenarios compared under common
random numbers draw the same numbers wherever they share a source or machine.

A line can be advanced step by step (:meth:`Line.run`), its setpoints and availability changed
in between (:meth:`Line.set_parameters`, :meth:`StationRT.set_available`) and its cumulative
counters read at any moment (:meth:`Line.snapshot`); :mod:`twins.kpi` turns two snapshots into
KPIs for the window between them.
"""
from __future__ import annotations

import math
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from typing import TypedDict

import numpy as np
import simpy

from twins.calendar import UNITS_PER_HOUR, off_intervals
from twins.distributions import BLOCK
from twins.energy import STATES
from twins.errors import InputError
from twins.eventlog import Event
from twins.machine import FailureMode, Machine, Part, Process, SetupSamplers, Start, StateSpan
from twins.response import check_setpoints, evaluate_responses
from twins.spec import ArrivalSource, OrderSource, Scenario
from twins.state import PlantState, check_state, place
from twins.station import StationRT

#: ``trace=True``: (product, entry time, exit time, "good" | "scrap", part id) of every unit leaving
#: the line; ids number the parts in arrival order when the line keeps an event log, else 0
PartSpan = tuple[str, float, float, str, int]
#: ``trace=True``: (machine, station, product, start, end) of every operation's processing
OpSpan = tuple[str, str, str, float, float]
#: ``sample_every``: (time, WIP, line power in kW, energy price, queue length per station)
Sample = tuple[float, int, float, float, list[int]]


class StationSnapshot(TypedDict):
    """Cumulative counters of one station (:meth:`Line.snapshot`); ``time`` and ``kwh`` by state."""

    time: list[float]
    kwh: list[float]
    cost: float
    planned_off: float
    ops: int
    good: int
    scrapped: int
    reworked: int
    ideal: float
    wait_sum: float
    started: int
    queue_area: float
    machines: int


class Snapshot(TypedDict):
    """Cumulative counters of the line at time ``t`` (:meth:`Line.snapshot`)."""

    t: float
    arrivals: int
    lost: int
    good: int
    scrapped: int
    wip_area: float
    wip: int
    n_lead: int
    n_orders: int
    good_by_product: list[int]
    stations: list[StationSnapshot]


def stream(seed: int, replication: int, name: str) -> np.random.Generator:
    """The random stream ``name`` of replication ``replication`` under master seed ``seed``."""
    key = zlib.crc32(name.encode())
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(replication, key))))


def _uniforms(rng: np.random.Generator) -> Iterator[float]:
    while True:
        yield from rng.random(BLOCK).tolist()


def _choices(rng: np.random.Generator, weights: list[float]) -> Iterator[int]:
    p = np.asarray(weights, float) / sum(weights)
    if len(p) == 1:
        while True:
            yield 0
    while True:
        yield from rng.choice(len(p), size=BLOCK, p=p).tolist()


class ProductRT:
    __slots__ = ("index", "name", "family", "route", "ideal", "margin")

    def __init__(self, index: int, name: str, family: int, route: tuple[StationRT, ...], ideal: list[float],
                 margin: float):
        self.index, self.name, self.family, self.route = index, name, family, route
        self.ideal, self.margin = ideal, margin


class Order:
    __slots__ = ("id", "product", "quantity", "release", "due", "remaining", "completed")

    def __init__(self, id: str, product: ProductRT, quantity: int, release: float, due: float | None):
        self.id, self.product, self.quantity, self.release, self.due = id, product, quantity, release, due
        self.remaining = quantity
        self.completed: float | None = None


class Supply:
    """Raw material always available at one station (a saturated source)."""

    def __init__(self, line: Line, products: list[ProductRT], mix: Iterator[int], lot_size: int):
        self.line, self.products, self.mix, self.lot_size = line, products, mix, lot_size
        self.current, self.left = products[0], 0  # left = 0: the first part draws the product

    def new_part(self) -> Part:
        if self.left == 0:
            self.current = self.products[next(self.mix)]
            self.left = self.lot_size
        self.left -= 1
        line = self.line
        line.arrivals += 1
        part = Part(self.current, line.env._now)
        line.enter(part)
        return part


class Line:
    """One replication of a scenario, ready to run."""

    def __init__(self, scenario: Scenario, seed: int = 0, replication: int = 0, *, trace: bool = False,
                 sample_every: float | None = None, state: PlantState | None = None,
                 events: list[Event] | None = None):
        self.scenario, self.seed, self.replication = scenario, seed, replication
        if state is not None:
            check_state(state, scenario)
        env = self.env = simpy.Environment()
        self.uph = UNITS_PER_HOUR[scenario.time_unit]
        #: clock time at t = 0, hours: the plant state's time of day, else the scenario's start_clock
        self.start_clock = (state.time_of_day if state is not None and state.time_of_day is not None
                            else scenario.start_clock)
        self.horizon = scenario.horizon.length
        self.trace: list[StateSpan] | None = [] if trace else None
        self.part_trace: list[PartSpan] | None = [] if trace else None
        #: with ``trace``: (machine, station, product, start, end) of every operation's processing
        self.op_trace: list[OpSpan] | None = [] if trace else None
        #: the event log (:mod:`twins.eventlog`) when a list was given: every arrival, operation
        #: start and end, failure and repair, setup, scrap, rework and exit is appended to it
        self.events = events
        self.n_parts = 0  # parts numbered for the event log
        # cumulative line counters
        self.arrivals = self.lost = self.good = self.scrapped = 0
        self.wip, self.wip_area, self.t_wip = 0, 0.0, 0.0
        self.lead_times: list[float] = []
        #: simulated time the last good part left the line (NaN before the first)
        self.last_exit = math.nan
        self.orders: list[Order] = []
        #: what machines do first when the line starts from a plant state (twins.state.place); a
        #: machine takes its entry out when its process starts
        self.starts: dict[Machine, Start] = {}
        #: (machine, event) waiting for a controller's choice
        self.decisions: deque[tuple[Machine, simpy.Event]] = deque()
        self.decision_ready: simpy.Event | None = None
        self.completed_orders: list[Order] = []
        tariff = scenario.tariff
        self.segments = (tariff.price_segments(self.horizon, self.start_clock, scenario.time_unit) if tariff
                         else [(0.0, 0.0)])
        self.price = self.segments[0][1]

        self.stations = [StationRT(self, spec, i) for i, spec in enumerate(scenario.stations)]
        by_name = {s.name: s for s in self.stations}
        fam_index = {f: i for i, f in enumerate(dict.fromkeys(p.setup_family for p in scenario.products))}
        self.families = list(fam_index)
        self.products: list[ProductRT] = []
        for i, product in enumerate(scenario.products):
            ideal = []
            for station in scenario.stations:
                nominal = station.nominal_process_time(product.name)
                ideal.append(0.0 if nominal is None else nominal)
            margin = product.margin if product.margin is not None else scenario.economics.margin_per_unit
            self.products.append(ProductRT(i, product.name, fam_index[product.setup_family],
                                           tuple(by_name[r] for r in product.route), ideal, margin))
        self.good_by_product = [0] * len(self.products)
        for st in self.stations:
            rw = st.spec.rework
            if rw is not None:
                st.rework_station = by_name[rw.station]
                for p in self.products:
                    names = [s.name for s in p.route]
                    if st.name in names:
                        at = names.index(st.name)
                        st.rework_return[p.index] = names[: at + 1].index(rw.return_to)
        for st in self.stations:
            if st.spec.sequence is not None:
                index = {p.name: p.index for p in self.products}
                st.buffer.sequence = deque(index[name] for name in st.spec.sequence)
        self.machines: list[Machine] = []
        for st in self.stations:
            self._build_machines(st, fam_index)
            st.apply_responses()
        if state is not None:  # before any process runs: the machines start from it
            place(self, state)
        self._build_sources(by_name)
        self._build_calendar()
        if len(self.segments) > 1:
            env.process(self._tariff())
        self.series: list[Sample] | None = None
        if sample_every:
            self.series = []
            env.process(self._monitor(sample_every, self.series))

    # -- construction ----------------------------------------------------------------------------
    def stream(self, name: str) -> np.random.Generator:
        return stream(self.seed, self.replication, name)

    def _build_machines(self, st: StationRT, fam_index: dict[str, int]) -> None:
        spec = st.spec
        for k in range(spec.machines):
            tag = f"{st.name}/{k}"
            proc: list[Iterator[float] | None] = []
            for p in self.scenario.products:
                d = spec.process_time_of(p.name)
                proc.append(d.sampler(self.stream(f"{tag}/process/{p.name}")) if d is not None else None)
            setups: SetupSamplers | None = None
            if spec.setup is not None:
                setups = {}
                if spec.setup.default.mean > 0:
                    setups[None] = spec.setup.default.sampler(self.stream(f"{tag}/setup/default"))
                for a, row in spec.setup.matrix.items():
                    for b, d in row.items():
                        setups[(fam_index[a], fam_index[b])] = d.sampler(self.stream(f"{tag}/setup/{a}->{b}"))
            time_modes: list[FailureMode] = []
            op_modes: list[FailureMode] = []
            for i, bd in enumerate(spec.breakdowns):
                mode = FailureMode(bd.failure_dist().sampler(self.stream(f"{tag}/failure{i}/ttf")),
                                   bd.repair_dist().sampler(self.stream(f"{tag}/failure{i}/repair")))
                (time_modes if bd.basis == "time" else op_modes).append(mode)
            m = Machine(st, k, proc, setups, _uniforms(self.stream(f"{tag}/quality")), time_modes, op_modes,
                        self.trace)
            st.machines.append(m)
            self.machines.append(m)

    def _mix(self, src: ArrivalSource, name: str) -> Iterator[int]:
        weights = src.mix or {p.name: 1.0 for p in self.scenario.products}
        idx = [next(p.index for p in self.products if p.name == n) for n in weights]
        choice = _choices(self.stream(f"source/{name}/mix"), list(weights.values()))
        return (idx[i] for i in choice)

    def _build_sources(self, by_name: dict[str, StationRT]) -> None:
        for src in self.scenario.sources:
            if src.kind == "arrivals":
                self.env.process(self._arrivals(src))
            elif src.kind == "orders":
                self.env.process(self._orders(src))
            elif src.kind == "external":
                continue  # units come from release()
            else:  # saturated: one supply per first station
                weights = src.mix or {p.name: 1.0 for p in self.scenario.products}
                groups: dict[str, dict[str, float]] = {}
                for name, w in weights.items():
                    first = next(p for p in self.products if p.name == name).route[0].name
                    groups.setdefault(first, {})[name] = w
                for first, mix in groups.items():
                    prods = [next(p for p in self.products if p.name == n) for n in mix]
                    choice = _choices(self.stream(f"source/{src.name}/{first}/mix"), list(mix.values()))
                    by_name[first].supply = Supply(self, prods, choice, src.lot_size)

    def _build_calendar(self) -> None:
        sc = self.scenario
        self.line_on = True
        self.line_on_ev: simpy.Event | None = None
        line_off = off_intervals(sc.calendar, [], self.horizon, self.start_clock, sc.time_unit)
        if line_off:
            self.env.process(self._line_calendar(line_off))
        for st in self.stations:
            off = off_intervals(sc.calendar, st.spec.planned_stops, self.horizon, self.start_clock,
                                sc.time_unit)
            if off:
                self.env.process(self._station_calendar(st, off))

    # -- processes --------------------------------------------------------------------------------
    def _arrivals(self, src: ArrivalSource) -> Process:
        env = self.env
        iat = src.interarrival.sampler(self.stream(f"source/{src.name}/arrival"))
        mix = self._mix(src, src.name)
        lost, pause = src.when_full == "lost", src.off_shift == "pause"
        products = self.products
        while True:
            yield env.timeout(next(iat))
            if pause and not self.line_on:
                assert self.line_on_ev is not None  # made when the line went off
                yield self.line_on_ev
            product = products[next(mix)]
            buf = product.route[0].buffer
            order = None
            if src.due_after is not None:  # each lot is an order with a due date
                order = Order(f"{src.name}-{len(self.orders) + 1}", product, src.lot_size, env._now,
                              env._now + src.due_after)
                self.orders.append(order)
            for _ in range(src.lot_size):
                self.arrivals += 1
                part = Part(product, env._now, order)
                if buf.try_put(part):
                    self.enter(part)
                elif lost:
                    self.lost += 1
                    if order is not None:  # a lost unit is no longer owed
                        order.quantity -= 1
                        order.remaining -= 1
                        if order.remaining == 0 and order.quantity == 0:
                            self.orders.remove(order)
                else:  # waits for room; it enters the line (and its lead time starts) once placed
                    yield buf.wait_put(part)
                    self.enter(part)

    def _orders(self, src: OrderSource) -> Process:
        env = self.env
        by_name = {p.name: p for p in self.products}
        orders = sorted((Order(o.id or f"{src.name}-{i + 1}", by_name[o.product], o.quantity, o.release, o.due)
                         for i, o in enumerate(src.orders)), key=lambda o: o.release)
        self.orders.extend(orders)
        for order in orders:
            if order.release > env._now:
                yield env.timeout(order.release - env._now)
            for _ in range(order.quantity):
                yield from self._release(order.product, order)

    def _release(self, product: ProductRT, order: Order | None) -> Process:
        self.arrivals += 1
        part = Part(product, self.env._now, order)
        buf = product.route[0].buffer
        if not buf.try_put(part):
            yield buf.wait_put(part)
        self.enter(part)

    def _line_calendar(self, intervals: list[tuple[float, float]]) -> Process:
        env = self.env
        for a, b in intervals:
            if a > env._now:
                yield env.timeout(a - env._now)
            self.line_on, self.line_on_ev = False, simpy.Event(env)
            yield env.timeout(b - env._now)
            self.line_on = True
            self.line_on_ev.succeed()

    def _station_calendar(self, st: StationRT, intervals: list[tuple[float, float]]) -> Process:
        env = self.env
        for a, b in intervals:
            if a > env._now:
                yield env.timeout(a - env._now)
            st.set_available(calendar=False)
            yield env.timeout(b - env._now)
            st.set_available(calendar=True)

    def _tariff(self) -> Process:
        env = self.env
        for t, price in self.segments[1:]:
            yield env.timeout(t - env._now)
            self.flush()
            self.price = price

    def _monitor(self, every: float, series: list[Sample]) -> Process:
        env = self.env
        while True:
            now = env._now
            power = sum(m.station.power[m.current_state(now)] for m in self.machines)
            queues = [len(st.buffer) for st in self.stations]
            series.append((now, self.wip, power, self.price, queues))
            yield env.timeout(every)

    # -- bookkeeping called from the processes ----------------------------------------------------
    def enter(self, part: Part) -> None:
        now = self.env._now
        part.t_entry = now
        self.wip_area += self.wip * (now - self.t_wip)
        self.t_wip = now
        self.wip += 1
        if self.events is not None:
            self.n_parts += 1
            part.id = self.n_parts
            self.events.append((now, part.route[0].name, "", part.id, part.product.name, "arrive"))

    def _leave(self, now: float) -> None:
        self.wip_area += self.wip * (now - self.t_wip)
        self.t_wip = now
        self.wip -= 1

    def exit(self, part: Part) -> None:
        now = self.env._now
        self._leave(now)
        self.good += 1
        self.good_by_product[part.product.index] += 1
        self.lead_times.append(now - part.t_entry)
        self.last_exit = now
        if self.events is not None:
            self.events.append((now, "", "", part.id, part.product.name, "leave"))
        if self.part_trace is not None:
            self.part_trace.append((part.product.name, part.t_entry, now, "good", part.id))
        order = part.order
        if order is not None:
            order.remaining -= 1
            if order.remaining == 0:
                order.completed = now
                self.completed_orders.append(order)

    def scrap(self, part: Part) -> None:
        now = self.env._now
        self._leave(now)
        self.scrapped += 1
        if self.part_trace is not None:
            self.part_trace.append((part.product.name, part.t_entry, now, "scrap", part.id))
        if part.order is not None:  # an order still needs its units: remake one
            self.env.process(self._release(part.product, part.order))

    # -- dispatching by a controller (stations with ``dispatch: external``) ------------------------
    def request_decision(self, machine: Machine, ev: simpy.Event) -> None:
        self.decisions.append((machine, ev))
        if self.decision_ready is not None and not self.decision_ready.triggered:
            self.decision_ready.succeed()

    def cancel_decision(self, ev: simpy.Event) -> None:
        self.decisions = deque(d for d in self.decisions if d[1] is not ev)

    def next_decision(self, until: float | None = None) -> tuple[Machine, list[Part]] | None:
        """Run until a machine of an ``external`` station must choose among ≥ 2 waiting parts;
        returns ``(machine, waiting parts)``, or None when ``until`` (default: the horizon) came
        first. Answer with :meth:`decide`."""
        until = self.horizon if until is None else until
        while True:
            while self.decisions:
                machine, ev = self.decisions[0]
                items = machine.station.buffer.items
                if len(items) >= 2:
                    return machine, list(items)
                self.decisions.popleft()  # the queue shrank meanwhile: nothing left to choose
                part = items[0] if items else None
                if part is not None:
                    machine.station.buffer.take(part)
                ev.succeed(part)
            if self.env._now >= until:
                return None
            self.decision_ready = simpy.Event(self.env)
            timeout = self.env.timeout(until - self.env._now)
            self.env.run(until=simpy.AnyOf(self.env, [self.decision_ready, timeout]))

    def decide(self, part: Part) -> None:
        """Start ``part`` (one of the waiting parts :meth:`next_decision` returned) on the machine."""
        machine, ev = self.decisions.popleft()
        machine.station.buffer.take(part)
        ev.succeed(part)

    # -- control and observation -----------------------------------------------------------------
    def release(self, product: str, quantity: int = 1) -> None:
        """Release ``quantity`` units of ``product`` into its first buffer now (they wait for room
        when it is full); for controllers and ``kind: external`` sources."""
        p = next((p for p in self.products if p.name == product), None)
        if p is None:
            raise InputError(f"unknown product {product!r} (products: {', '.join(q.name for q in self.products)})")
        for _ in range(int(quantity)):
            self.env.process(self._release(p, None))

    def run(self, until: float | None = None) -> None:
        """Advance the simulation to ``until`` (default: the end of the horizon)."""
        until = self.horizon if until is None else until
        if until > self.env._now:
            self.env.run(until=until)

    def flush(self) -> None:
        for m in self.machines:
            m.flush(self.price, self.uph)

    def station(self, name: str) -> StationRT:
        for st in self.stations:
            if st.name == name:
                return st
        raise InputError(f"unknown station {name!r} (stations: {', '.join(s.name for s in self.stations)})")

    def set_parameters(self, station: str, values: Mapping[str, float]) -> None:
        """Change setpoints of ``station``; values must lie within the parameters' bounds."""
        st = self.station(station)
        values = check_setpoints(station, st.spec.parameters, values)
        # the responses first: a learned model may refuse the setpoints (OutsideSupport), which
        # then leaves the station as it was
        evaluate_responses(st.responses, {**st.params, **values})
        for m in st.machines:  # energy so far at the old busy power
            m.flush(self.price, self.uph)
        st.params.update(values)
        st.apply_responses()

    def snapshot(self) -> Snapshot:
        """Cumulative counters now (energy accounted up to now)."""
        now = self.env._now
        self.flush()
        stations: list[StationSnapshot] = []
        for st in self.stations:
            ms = st.machines
            stations.append({
                "time": [sum(m.time[s] for m in ms) for s in range(len(STATES))],
                "kwh": [sum(m.kwh[s] for m in ms) for s in range(len(STATES))],
                "cost": sum(m.cost for m in ms),
                "planned_off": sum(m.planned_off_time(now) for m in ms),
                "ops": st.ops, "good": st.good, "scrapped": st.scrapped, "reworked": st.reworked,
                "ideal": st.ideal, "wait_sum": st.wait_sum, "started": st.started,
                "queue_area": st.buffer.level_area(now), "machines": len(ms),
            })
        return {
            "t": now, "arrivals": self.arrivals, "lost": self.lost, "good": self.good, "scrapped": self.scrapped,
            "wip_area": self.wip_area + self.wip * (now - self.t_wip), "wip": self.wip,
            "n_lead": len(self.lead_times), "n_orders": len(self.completed_orders),
            "good_by_product": list(self.good_by_product), "stations": stations,
        }
