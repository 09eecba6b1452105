"""The plant as it is now: a state file a what-if run starts from instead of an empty line.

A :class:`PlantState` holds what a plant can report at one moment (docs/state.md): the time of
day, the setpoints in force, the parts waiting in each station's buffer (product names in queue
order, or counts per product) and, per machine, its state (``idle``, ``busy``, ``setup``,
``blocked``, ``down``, ``standby``, ``off``), the product on it and, if known, the time left of
its current operation, setup or repair.

``Line(scenario, state=…)`` builds the twin in that state at t = 0 (:func:`place`): the clock
starts at ``time_of_day``, setpoints are applied, waiting parts are placed in their buffers and
parts on machines on their machines (all entered into the line at t = 0: WIP counts them, their
lead time runs from t = 0). A time left that the state does not give is drawn once at build time
from the machine's own start-state stream (``<machine>/state``), so every other stream — process
times, setups, failures, repairs, quality — is the same as in a run from empty (common random
numbers). :func:`state_from_line` captures a running line's state; :func:`load_state` reads a
file with ``file:line: field: message`` errors.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_serializer

from twins.calendar import ClockTime
from twins.energy import BLOCKED, BUSY, DOWN, IDLE, OFF, SETUP, STANDBY, STATES
from twins.errors import SpecError
from twins.machine import Machine, Part, Start
from twins.response import SetpointError, check_setpoints
from twins.spec import MAX_UNITS, Scenario, fingerprint
from twins.specmodel import SpecModel

if TYPE_CHECKING:
    from twins.model import Line, ProductRT
    from twins.station import StationRT

MachineStateName = Literal["idle", "busy", "setup", "blocked", "down", "standby", "off"]
Count = Annotated[int, Field(ge=0, le=MAX_UNITS)]

#: states whose ``remaining`` means something (time left of the operation, setup or repair)
_TIMED = ("busy", "setup", "down")


class MachineState(SpecModel):
    """One machine as the plant reports it."""

    state: MachineStateName = Field(description="idle | busy | setup | blocked | down | standby | off")
    product: str | None = Field(default=None, description="product of the part on the machine (busy, blocked: "
                                                          "required; setup, down: if it holds one)")
    remaining: float | None = Field(default=None, ge=0, description="time left of the current operation (busy), "
                                                                    "setup (setup) or repair (down); default: drawn")


class StationState(SpecModel):
    """A station's waiting parts and its machines, in the scenario's machine order."""

    buffer: list[str] | dict[str, Count] = Field(
        default_factory=list, description="waiting parts: product names in queue order, or a count per product")
    machines: list[MachineState] = Field(default_factory=list, description="first machines of the station; "
                                                                           "the others are idle")

    def waiting(self) -> list[str]:
        """The waiting parts' products in queue order (counts: product by product, as listed)."""
        if isinstance(self.buffer, dict):
            return [name for name, n in self.buffer.items() for _ in range(n)]
        return list(self.buffer)


class PlantState(SpecModel):
    """The plant at one moment: a what-if run starts from it (``twinopt run --from-state``)."""

    scenario: str = Field(description="name of the scenario the state is for")
    fingerprint: str | None = Field(default=None, description="the scenario's fingerprint (twins.spec.fingerprint); "
                                                              "a file for another version of the line is refused")
    time_of_day: ClockTime | None = Field(default=None, description="clock time now, 'HH:MM': the run's start_clock")
    setpoints: dict[str, dict[str, float]] = Field(default_factory=dict,
                                                   description="station → parameter → value in force")
    stations: dict[str, StationState] = Field(default_factory=dict, description="station → its parts and machines")

    @field_serializer("time_of_day")
    def _clock(self, hours: float | None) -> str | None:
        if hours is None:
            return None
        hh, mm = divmod(round(hours * 60), 60)
        return f"{hh:02d}:{mm:02d}"

    def without_setpoints(self, overridden: Iterable[tuple[str, str]]) -> PlantState:
        """This state minus the setpoints of ``(station, parameter)`` pairs — those a what-if sets."""
        drop = set(overridden)
        setpoints = {st: {p: v for p, v in values.items() if (st, p) not in drop}
                     for st, values in self.setpoints.items()}
        return self.model_copy(update={"setpoints": {st: v for st, v in setpoints.items() if v}})


# -- checks ---------------------------------------------------------------------------------------
def check_state(state: PlantState, scenario: Scenario) -> None:
    """Is ``state`` one of ``scenario``'s line? :class:`SpecError` with the field path otherwise:
    another scenario, unknown stations, products or parameters, a setpoint out of bounds, more
    parts than a buffer holds, more machines than the station has, a state that needs a product
    without one (or the reverse). The fingerprint is checked by :func:`load_state` only: a
    what-if may change the scenario it runs."""
    if state.scenario != scenario.name:
        raise SpecError(("scenario",), f"a state of scenario {state.scenario!r}, not {scenario.name!r}")
    stations = {s.name: s for s in scenario.stations}
    for name, values in state.setpoints.items():
        if name not in stations:
            raise SpecError(("setpoints", name), f"unknown station {name!r} (stations: {', '.join(stations)})")
        for param, value in values.items():
            try:
                check_setpoints(name, stations[name].parameters, {param: value})
            except SetpointError as err:
                raise SpecError(("setpoints", name, param), err.message) from None
    for name, st_state in state.stations.items():
        if name not in stations:
            raise SpecError(("stations", name), f"unknown station {name!r} (stations: {', '.join(stations)})")
        _check_station(scenario, name, st_state)


def _products_at(scenario: Scenario, station: str) -> set[str]:
    """Products that can be at ``station``: those it is on the route of, and those sent there for rework."""
    out = {p.name for p in scenario.products if station in p.route}
    for st in scenario.stations:
        if st.rework is not None and st.rework.station == station:
            out |= {p.name for p in scenario.products if st.name in p.route}
    return out


def _check_product(scenario: Scenario, station: str, product: str, path: tuple[str | int, ...]) -> None:
    if all(p.name != product for p in scenario.products):
        raise SpecError(path, f"unknown product {product!r} (products: {', '.join(p.name for p in scenario.products)})")
    if product not in _products_at(scenario, station):
        raise SpecError(path, f"product {product!r} does not visit {station!r}")


def _check_station(scenario: Scenario, name: str, st_state: StationState) -> None:
    spec = scenario.station(name)
    buffer = st_state.buffer
    keyed = list(buffer.items()) if isinstance(buffer, dict) else [(k, p) for k, p in enumerate(buffer)]
    for key, entry in keyed:
        _check_product(scenario, name, key if isinstance(key, str) else str(entry), ("stations", name, "buffer", key))
    waiting = len(st_state.waiting())
    if spec.buffer is not None and waiting > spec.buffer:
        raise SpecError(("stations", name, "buffer"), f"{waiting} waiting parts, but {name!r} has "
                                                      f"{spec.buffer} waiting place{'s' * (spec.buffer != 1)}")
    if len(st_state.machines) > spec.machines:
        raise SpecError(("stations", name, "machines"), f"{len(st_state.machines)} machines, but {name!r} has "
                                                        f"{spec.machines}")
    for k, m in enumerate(st_state.machines):
        _check_machine(scenario, name, m, ("stations", name, "machines", k))


def _check_machine(scenario: Scenario, name: str, m: MachineState, path: tuple[str | int, ...]) -> None:
    if m.product is not None:
        if m.state not in ("busy", "blocked", "setup", "down"):
            raise SpecError((*path, "product"), f"an {m.state} machine holds no part")
        _check_product(scenario, name, m.product, (*path, "product"))
    elif m.state in ("busy", "blocked"):
        raise SpecError((*path, "product"), f"a {m.state} machine holds a part: name its product")
    if m.remaining is not None and m.state not in _TIMED:
        raise SpecError((*path, "remaining"), f"a {m.state} machine has no time left to run "
                                              f"(remaining applies to {', '.join(_TIMED)})")
    if m.state == "down" and m.remaining is None and not scenario.station(name).breakdowns:
        raise SpecError((*path, "remaining"), f"{name!r} has no breakdowns to draw a repair time from: "
                                              "give the time left of the repair")
    if m.state == "blocked" and m.product is not None:
        route = next(p.route for p in scenario.products if p.name == m.product)
        if name in route and route.index(name) == len(route) - 1:
            raise SpecError((*path, "state"), f"{name!r} is the last station of {m.product!r}: a finished "
                                              "part leaves the line, it cannot be blocked")


def load_state(path: str | Path, scenario: Scenario) -> PlantState:
    """Read a plant-state file (JSON or YAML) for ``scenario``; every error is one line
    ``file:line: field: message`` (:class:`~twins.errors.ScenarioError`, exit 2), including a
    state of another scenario or of another version of it (its fingerprint)."""
    from twins.loader import load_document  # the loader reads scenarios, which must not need this module

    def check(state: PlantState) -> None:
        if state.fingerprint is not None and state.fingerprint != fingerprint(scenario):
            raise SpecError(("fingerprint",), f"the state is for another version of {state.scenario!r} "
                                              f"(fingerprint {state.fingerprint[:19]}…, the scenario's "
                                              f"{fingerprint(scenario)[:19]}…)")
        check_state(state, scenario)

    return load_document(path, PlantState, "the plant-state format (docs/state.md)", check)


# -- building a line in a state -----------------------------------------------------------------------
def part_at(line: Line, station: StationRT, product: ProductRT) -> Part:
    """A part of ``product`` at ``station``, entered into the line now: on the product's route at
    the station's first visit, or (a station that only reworks it) on the rework route back."""
    part = Part(product, line.env._now)
    if station in product.route:
        part.step = product.route.index(station)
    else:
        origin = next(s for s in line.stations if s.rework_station is station and product.index in s.rework_return)
        part.route = (station,) + product.route[origin.rework_return[product.index]:]
        part.reworks = 1
    line.enter(part)
    return part


def place(line: Line, state: PlantState) -> None:
    """Put ``line`` (built, not yet run) into ``state`` at t = 0: setpoints, waiting parts and
    what each machine does. Called once by :class:`~twins.model.Line`; ``state`` was checked."""
    for name, values in state.setpoints.items():
        line.set_parameters(name, values)
    products = {p.name: p for p in line.products}
    for name, st_state in state.stations.items():
        st = line.station(name)
        for product in st_state.waiting():
            placed = st.buffer.try_put(part_at(line, st, products[product]))
            assert placed  # check_state: no more parts than waiting places
        for machine, m in zip(st.machines, st_state.machines, strict=False):
            start = _start(line, st, machine.name, m, products)
            if start is not None:
                line.starts[machine] = start


def _start(line: Line, st: StationRT, machine: str, m: MachineState, products: dict[str, ProductRT]) -> Start | None:
    """What ``machine`` does first; durations the state leaves open are drawn from its ``state`` stream."""
    if m.state in ("idle", "standby", "off"):  # empty; standby again after idling, off per calendar
        return None
    spec = st.spec
    rng = line.stream(f"{machine}/state")
    part = part_at(line, st, products[m.product]) if m.product is not None else None

    def fresh_work() -> float:  # a whole operation at the current recipe
        if part is None:
            return 0.0
        dist = spec.process_time_of(part.product.name)
        assert dist is not None  # check_references: a station has a process time for every visiting product
        return float(next(dist.sampler(rng))) * st.factor

    if m.state == "busy":
        return Start(BUSY, part, work=m.remaining if m.remaining is not None else fresh_work())
    if m.state == "blocked":
        assert part is not None  # check_state: a blocked machine names its product
        part.step += 1  # finished here
        return Start(BLOCKED, part)
    if m.state == "setup":
        setup = m.remaining
        if setup is None:
            if part is None:
                setup = st.startup
            elif spec.setup is not None and spec.setup.default.mean > 0:
                setup = float(next(spec.setup.default.sampler(rng)))
            else:
                setup = 0.0
        return Start(SETUP, part, setup=setup, work=fresh_work())
    repair = m.remaining if m.remaining is not None else float(next(spec.breakdowns[0].repair_dist().sampler(rng)))
    return Start(DOWN, part, repair=repair, work=fresh_work())


# -- capturing a line's state ---------------------------------------------------------------------
def _time_left(line: Line, m: Machine) -> float | None:
    """Time until the event the machine's process waits for (its operation, setup or repair)."""
    target = m.proc.target
    now = line.env._now
    # SimPy keeps scheduled events as (time, priority, id, event) in env._queue (SimPy 3 and 4), read
    # here only; an observer needs no bookkeeping on the hot path this way
    for t, _, _, ev in line.env._queue:
        if ev is target:
            return float(t) - now
    return None


def state_from_line(line: Line) -> PlantState:
    """The state of ``line`` now, as a plant would report it (the virtual plant calls this).

    Waiting parts are listed in queue order; each machine with its state, the product on it and
    the time left of its operation, setup or repair. A machine held blocked while its station is
    off reports ``blocked``. Parts of a source waiting to enter (a full first buffer) are not in
    the line yet and not reported. The time of day is rounded to the minute."""
    now = line.env._now
    clock = (line.start_clock + now / line.uph) % 24.0
    clock = round(clock * 60) / 60 % 24.0
    stations: dict[str, StationState] = {}
    for st in line.stations:
        machines = [_machine_state(line, m) for m in st.machines]
        buffer = [p.product.name for p in st.buffer.items]
        while machines and machines[-1].state == "idle" and machines[-1].product is None:
            machines.pop()
        if buffer or machines:
            stations[st.name] = StationState(buffer=buffer, machines=machines)
    sc = line.scenario
    return PlantState(scenario=sc.name, fingerprint=fingerprint(sc), time_of_day=clock,
                      setpoints={st.name: dict(st.params) for st in line.stations if st.params}, stations=stations)


def _machine_state(line: Line, m: Machine) -> MachineState:
    start = m.pending_start()
    if start is not None:  # the line has not run yet: report the state it starts from
        product = start.part.product.name if start.part is not None else None
        remaining = {BUSY: start.work, SETUP: start.setup, DOWN: start.repair}.get(start.state)
        return MachineState(state=_NAMES[start.state], product=product, remaining=remaining)
    s = m.current_state(line.env._now)
    part = m.holding()
    product = part.product.name if part is not None else None
    if m.blocked_off and part is not None:
        return MachineState(state="blocked", product=product)
    name = _NAMES[s]
    if name not in ("busy", "setup", "down", "blocked"):
        return MachineState(state=name)
    return MachineState(state=name, product=product, remaining=_time_left(line, m) if name in _TIMED else None)


_NAMES: dict[int, MachineStateName] = {OFF: "off", IDLE: "idle", SETUP: "setup", BUSY: "busy", BLOCKED: "blocked",
                                       DOWN: "down", STANDBY: "standby"}
assert set(_NAMES) == set(range(len(STATES)))


def what_if(state: PlantState, scenario: Scenario, overrides: Sequence[str] = ()) -> tuple[Scenario, PlantState]:
    """The scenario and state of a what-if run from ``state`` (``twinopt run --from-state``): no
    warm-up (the line is already loaded) unless ``--set horizon.warmup=…`` is among ``overrides``
    (already applied to ``scenario``), and the what-if's own ``--set station.parameter=…``
    setpoints take precedence over the plant's."""
    keys = [item.split("=", 1)[0].strip() for item in overrides]
    params = {(s.name, p.name) for s in scenario.stations for p in s.parameters}
    overridden = [(k[0], k[1]) for k in (key.split(".") for key in keys) if len(k) == 2 and (k[0], k[1]) in params]
    if "horizon.warmup" not in keys:
        scenario = scenario.model_copy(update={"horizon": scenario.horizon.model_copy(update={"warmup": 0.0})})
    return scenario, state.without_setpoints(overridden)
