"""The scenario format: one typed schema for validation, documentation and error messages.

Every model forbids unknown keys (a typo is an error, not a silently ignored setting). Times are
in the scenario's ``time_unit``; power in kW; prices per kWh. Cross-references (routes naming
stations, product mixes naming products, rework targets …) are checked once the whole scenario
is read, and reported with the field path they concern (:class:`twins.errors.SpecError`), which
the loader turns into ``file:line: path: message``. docs/scenario.md documents every field.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Annotated, Literal, Protocol, Self

from pydantic import Field, ValidationError, field_validator, model_validator

from twins.calendar import UNITS_PER_HOUR, Calendar, ClockTime, PlannedStop
from twins.distributions import Distribution, Exponential
from twins.energy import Energy, Tariff
from twins.equipment import Equipment, check_equipment
from twins.errors import SpecError
from twins.response import Parameter, Response, check_response_ranges
from twins.specmodel import SpecModel

#: Upper limits on counts and on what the twin lays out in advance over the horizon: beyond them a
#: well-formed scenario would exhaust memory or never finish building, so it is refused at load time.
MAX_MACHINES = 10_000
MAX_UNITS = 1_000_000  # units per lot or order, replications
MAX_DAYS = 100_000  # calendars and tariffs are expanded day by day (≈ 274 years)
MAX_STOPS = 1_000_000  # occurrences of one repeating planned stop within the horizon


class Product(SpecModel):
    """A product (variant) and the stations it visits, in order."""

    name: str
    family: str | None = Field(default=None, description="setup family; default: the product's own name")
    route: list[str] = Field(min_length=1, description="station names in processing order")
    margin: float | None = Field(default=None, description="contribution margin per good unit (overrides economics)")

    @property
    def setup_family(self) -> str:
        return self.family or self.name


class Setup(SpecModel):
    """Sequence-dependent setups: time to change a machine from one family to another."""

    # validate_default: the bare number becomes a Constant like a written default
    default: Distribution = Field(default=0.0, validate_default=True,
                                  description="time for any family change not in the matrix")
    matrix: dict[str, dict[str, Distribution]] = Field(
        default_factory=dict, description="from-family → to-family → setup time; same family = no setup")


class Breakdown(SpecModel):
    """A failure mode. ``basis: time`` — the failure clock runs while the machine is up (idle,
    blocked and standby included; not while down or planned off); ``basis: operation`` — it
    runs only while the machine is busy. A part caught by a failure resumes after repair."""

    name: str = ""
    mtbf: float | None = Field(default=None, gt=0, description="mean up time between failures (exponential)")
    mttr: float | None = Field(default=None, gt=0, description="mean time to repair (exponential)")
    time_to_failure: Distribution | None = Field(default=None, description="instead of mtbf: any distribution")
    repair_time: Distribution | None = Field(default=None, description="instead of mttr: any distribution")
    basis: Literal["time", "operation"] = "time"

    @field_validator("mtbf", "mttr")
    @classmethod
    def _exponential(cls, v: float | None) -> float | None:
        if v is not None:
            try:
                Exponential(dist="exponential", mean=v)
            except ValidationError as err:
                raise ValueError(err.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")) from None
        return v

    @model_validator(mode="after")
    def _one_each(self) -> Self:
        if (self.mtbf is None) == (self.time_to_failure is None):
            raise ValueError("give exactly one of mtbf or time_to_failure")
        if (self.mttr is None) == (self.repair_time is None):
            raise ValueError("give exactly one of mttr or repair_time")
        return self

    def failure_dist(self) -> Distribution:
        """Up time (or busy time) between failures."""
        if self.time_to_failure is not None:
            return self.time_to_failure
        assert self.mtbf is not None  # _one_each: exactly one of the two
        return Exponential(dist="exponential", mean=self.mtbf)

    def repair_dist(self) -> Distribution:
        if self.repair_time is not None:
            return self.repair_time
        assert self.mttr is not None  # _one_each: exactly one of the two
        return Exponential(dist="exponential", mean=self.mttr)


class Rework(SpecModel):
    """Parts found defective at this station go to ``station`` and come back to ``return_to``."""

    probability: float = Field(ge=0, le=1, description="share of processed parts sent to rework")
    station: str = Field(description="the rework station")
    return_to: str = Field(description="station on the product's route where the part re-enters")
    max_cycles: int = Field(default=3, ge=1, description="a part failing more often is scrapped")


class Station(SpecModel):
    """A work station: parallel identical machines fed by one finite input buffer."""

    name: str
    machines: int = Field(default=1, ge=1, le=MAX_MACHINES, description="parallel identical machines")
    buffer: int | None = Field(default=None, ge=0,
                               description="waiting places in the input buffer (parts on machines not counted); "
                                           "omit for unlimited")
    process_time: Distribution | None = Field(default=None, description="process time for every product")
    process_time_by_product: dict[str, Distribution] = Field(
        default_factory=dict, description="process time per product (overrides process_time)")
    setup: Setup | None = None
    dispatch: Literal["fifo", "same_family", "external"] = Field(
        default="fifo", description="next part: first in; first of the family already set up; or chosen by a "
                                    "controller among the waiting parts (the dispatching environment)")
    sequence: list[str] | None = Field(
        default=None, description="fixed processing order (product names): the station waits for the next "
                                   "product of the list (a schedule replay); use with an unlimited buffer")
    breakdowns: list[Breakdown] = Field(default_factory=list)
    planned_stops: list[PlannedStop] = Field(default_factory=list)
    scrap: float = Field(default=0.0, ge=0, lt=1, description="share of processed parts scrapped")
    rework: Rework | None = None
    parameters: list[Parameter] = Field(default_factory=list, description="process parameters (setpoints)")
    response: Response | None = Field(default=None, description="how the parameters drive the process")
    energy: Energy | None = None

    def process_time_of(self, product: str) -> Distribution | None:
        """The process-time distribution of ``product`` here: its own, else the station's."""
        return self.process_time_by_product.get(product, self.process_time)

    def nominal_process_time(self, product: str) -> float | None:
        """Mean process time of ``product`` here at the nominal cycle-time factor 1 (the planned
        run time per item before any recipe); None when the station has none for it."""
        d = self.process_time_of(product)
        return None if d is None else d.mean

    def nominal_process_times(self) -> list[float]:
        """Mean of every process time the station declares: its default and each product's."""
        return [d.mean for d in (self.process_time, *self.process_time_by_product.values()) if d is not None]


class ArrivalSource(SpecModel):
    """Random arrivals (e.g. Poisson: exponential inter-arrival times)."""

    kind: Literal["arrivals"]
    name: str = "arrivals"
    interarrival: Distribution = Field(description="time between arrivals of lots")
    mix: dict[str, float] | None = Field(default=None, description="product → weight; default: equal")
    lot_size: int = Field(default=1, ge=1, le=MAX_UNITS, description="units of one product per arrival")
    when_full: Literal["lost", "wait"] = Field(
        default="wait", description="first buffer full: the arrival is lost (counted) or waits for room")
    off_shift: Literal["pause", "continue"] = Field(
        default="continue", description="arrivals during planned off time: keep coming, or pause")
    due_after: float | None = Field(
        default=None, ge=0, description="each lot is an order due this long after its arrival (tardiness KPIs)")


class Order(SpecModel):
    product: str
    quantity: int = Field(default=1, ge=1, le=MAX_UNITS)
    release: float = Field(default=0.0, ge=0, description="release time")
    due: float | None = Field(default=None, ge=0, description="due date (for tardiness)")
    id: str | None = None


class OrderSource(SpecModel):
    """A list of orders released at given times; scrapped units are remade."""

    kind: Literal["orders"]
    name: str = "orders"
    orders: list[Order] = Field(min_length=1)


class SaturatedSource(SpecModel):
    """'Always raw material': the first station of every product never starves."""

    kind: Literal["saturated"]
    name: str = "supply"
    mix: dict[str, float] | None = Field(default=None, description="product → weight; default: equal")
    lot_size: int = Field(default=1, ge=1, le=MAX_UNITS, description="consecutive units of one product")


class ExternalSource(SpecModel):
    """Units enter only when a controller releases them (``Line.release``), e.g. an energy
    controller's batch release or a schedule replay."""

    kind: Literal["external"]
    name: str = "external"


Source = Annotated[ArrivalSource | OrderSource | SaturatedSource | ExternalSource, Field(discriminator="kind")]


class Horizon(SpecModel):
    length: float = Field(gt=0, description="simulated time per replication, warm-up included")
    warmup: float = Field(default=0.0, ge=0, description="initial period deleted from statistics")

    @model_validator(mode="after")
    def _inside(self) -> Self:
        if self.warmup >= self.length:
            raise ValueError(f"warmup ({self.warmup}) must be shorter than length ({self.length})")
        return self


class Economics(SpecModel):
    """Money per unit, used by objectives (e.g. the parameter environment's reward)."""

    margin_per_unit: float = Field(default=0.0, description="contribution margin per good unit")
    scrap_cost: float = Field(default=0.0, ge=0, description="cost per scrapped unit")


class Scenario(SpecModel):
    """A production line scenario."""

    name: str
    description: str = ""
    time_unit: Literal["s", "min", "h"] = Field(default="min", description="unit of every time in the file")
    start_clock: ClockTime = Field(default=0.0, description="clock time at t = 0, 'HH:MM'")
    horizon: Horizon
    replications: int = Field(default=10, ge=1, le=MAX_UNITS, description="default number of replications")
    products: list[Product] = Field(min_length=1)
    sources: list[Source] = Field(min_length=1)
    stations: list[Station] = Field(min_length=1)
    calendar: Calendar | None = None
    tariff: Tariff | None = None
    co2_kg_per_kwh: float = Field(default=0.0, ge=0, description="grid emission factor")
    economics: Economics = Field(default_factory=Economics)
    equipment: Equipment | None = Field(default=None, description="safety envelope for writing setpoints to equipment")

    @model_validator(mode="after")
    def _cross_references(self) -> Self:
        check_references(self)
        check_equipment(self.equipment, self)
        return self

    def station(self, name: str) -> Station:
        return next(s for s in self.stations if s.name == name)


def fingerprint(scenario: Scenario) -> str:
    """sha256 of the scenario's canonical JSON without its ``equipment`` envelope: any change to the
    line changes the fingerprint (recommendations and plant states name the scenario they are for)."""
    # the equipment envelope does not change how the line behaves: editing it must not orphan recommendations
    data = scenario.model_dump(mode="json", by_alias=True, exclude={"equipment"})
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


class _Named(Protocol):
    @property
    def name(self) -> str: ...


def _unique(items: Sequence[_Named], what: str, field: str) -> dict[str, int]:
    seen: dict[str, int] = {}
    for i, it in enumerate(items):
        if it.name in seen:
            raise SpecError((field, i, "name"), f"duplicate {what} name {it.name!r}")
        seen[it.name] = i
    return seen


def check_references(s: Scenario) -> None:
    """Semantic checks across the scenario; raises :class:`SpecError` with the field path.

    The first error found is reported: products in order, then each station with all of its
    checks in turn, then the sources, then the limits of :func:`check_expansions`."""
    stations = _unique(s.stations, "station", "stations")
    products = _unique(s.products, "product", "products")
    families = {p.setup_family for p in s.products}
    _check_routes(s, stations)
    for j, st in enumerate(s.stations):
        _check_sequence(s, j, st, products)
        _check_process_times(j, st, products)
        _check_setup(j, st, families)
        _check_rework(s, j, st, stations)
        _check_parameters(j, st)
    _check_sources(s, products)
    check_expansions(s)


def _check_routes(s: Scenario, stations: dict[str, int]) -> None:
    """Every route names known stations, each with a process time for the product."""
    for i, p in enumerate(s.products):
        for k, name in enumerate(p.route):
            if name not in stations:
                raise SpecError(("products", i, "route", k),
                                f"unknown station {name!r} (stations: {', '.join(stations)})")
            station = s.stations[stations[name]]
            if station.process_time is None and p.name not in station.process_time_by_product:
                raise SpecError(("stations", stations[name], "process_time"),
                                f"no process time for product {p.name!r}, which visits {name!r}")


def _check_sequence(s: Scenario, j: int, st: Station, products: dict[str, int]) -> None:
    """A fixed sequence names known products that visit the station."""
    for k, prod in enumerate(st.sequence or []):
        if prod not in products:
            raise SpecError(("stations", j, "sequence", k), f"unknown product {prod!r}")
        if st.name not in s.products[products[prod]].route:
            raise SpecError(("stations", j, "sequence", k), f"product {prod!r} does not visit {st.name!r}")


def _check_process_times(j: int, st: Station, products: dict[str, int]) -> None:
    for prod in st.process_time_by_product:
        if prod not in products:
            raise SpecError(("stations", j, "process_time_by_product", prod), f"unknown product {prod!r}")


def _check_setup(j: int, st: Station, families: set[str]) -> None:
    """The setup matrix names known families."""
    if st.setup is None:
        return
    for a, row in st.setup.matrix.items():
        if a not in families:
            raise SpecError(("stations", j, "setup", "matrix", a), f"unknown family {a!r}")
        for b in row:
            if b not in families:
                raise SpecError(("stations", j, "setup", "matrix", a, b), f"unknown family {b!r}")


def _check_rework(s: Scenario, j: int, st: Station, stations: dict[str, int]) -> None:
    """Rework goes to a known station with a process time for every product it may get, and
    returns to a station at or before this one on each product's route."""
    rw = st.rework
    if rw is None:
        return
    if rw.station not in stations:
        raise SpecError(("stations", j, "rework", "station"), f"unknown station {rw.station!r}")
    if rw.return_to not in stations:
        raise SpecError(("stations", j, "rework", "return_to"), f"unknown station {rw.return_to!r}")
    rs = s.stations[stations[rw.station]]
    for p in s.products:
        if st.name in p.route:
            if rw.return_to not in p.route[: p.route.index(st.name) + 1]:
                raise SpecError(("stations", j, "rework", "return_to"),
                                f"{rw.return_to!r} is not on product {p.name!r}'s route at or before {st.name!r}")
            if rs.process_time is None and p.name not in rs.process_time_by_product:
                raise SpecError(("stations", stations[rw.station], "process_time"),
                                f"no process time for product {p.name!r}, which may be reworked here")


def _check_parameters(j: int, st: Station) -> None:
    """Parameter names are unique, and the response model's ranges hold over their bounds."""
    names = _unique(st.parameters, "parameter", f"stations[{j}].parameters") if st.parameters else {}
    if st.response is not None:
        try:
            check_response_ranges(st.response.compile(tuple(names), fit=False), st.parameters)
        except SpecError as err:  # its path starts at the response's name
            raise SpecError(("stations", j, "response", *err.path), err.msg) from None


def _check_sources(s: Scenario, products: dict[str, int]) -> None:
    """Mixes and orders name known products with sensible weights; one saturated source at most."""
    for i, src in enumerate(s.sources):
        mix = getattr(src, "mix", None) or {}
        for prod, w in mix.items():
            if prod not in products:
                raise SpecError(("sources", i, "mix", prod), f"unknown product {prod!r}")
            if w < 0:
                raise SpecError(("sources", i, "mix", prod), "weights must be ≥ 0")
        if mix and sum(mix.values()) <= 0:
            raise SpecError(("sources", i, "mix"), "weights must have a positive sum")
        if src.kind == "orders":
            for k, o in enumerate(src.orders):
                if o.product not in products:
                    raise SpecError(("sources", i, "orders", k, "product"), f"unknown product {o.product!r}")
    saturated = [i for i, src in enumerate(s.sources) if src.kind == "saturated"]
    if len(saturated) > 1:
        raise SpecError(("sources", saturated[1], "kind"), "at most one saturated source per scenario")


def check_expansions(s: Scenario) -> None:
    """Calendars, tariffs and repeating planned stops are laid out over the whole horizon when a
    run starts; refuse horizons that would make that list endless (see :data:`MAX_DAYS`)."""
    length = s.horizon.length
    days = length / (24.0 * UNITS_PER_HOUR[s.time_unit])
    if (s.calendar is not None or s.tariff is not None) and days > MAX_DAYS:
        raise SpecError(("horizon", "length"), f"{length:g} {s.time_unit} is {days:.3g} days; a calendar or tariff "
                                               f"is laid out day by day, for at most {MAX_DAYS:,} days")
    for j, st in enumerate(s.stations):
        for k, stop in enumerate(st.planned_stops):
            if stop.every is not None and (length - stop.start) / stop.every > MAX_STOPS:
                raise SpecError(("stations", j, "planned_stops", k, "every"),
                                f"repeats {(length - stop.start) / stop.every:.3g} times within the horizon; "
                                f"at most {MAX_STOPS:,} occurrences")
