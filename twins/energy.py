"""Energy: power per machine state, standby policy, time-of-use tariff.

Machine states (index order used throughout the twin): ``off, idle, setup, busy, blocked, down,
standby``. Energy of a machine = Σ_state power_kw[state] × time in state (converted to hours);
cost = Σ over tariff periods of energy in the period × the period's price. A process-parameter
response model may override the *busy* power (e.g. a heater's draw depends on temperature).
"""
from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING, Self

from pydantic import Field, model_validator

from twins.calendar import UNITS_PER_HOUR, ClockTime, daily_windows
from twins.specmodel import SpecModel

if TYPE_CHECKING:
    from twins.spec import Scenario

STATES = ("off", "idle", "setup", "busy", "blocked", "down", "standby")
OFF, IDLE, SETUP, BUSY, BLOCKED, DOWN, STANDBY = range(len(STATES))
#: the modes an energy controller commands a station into (StationRT.command)
MODES = ("on", "standby", "off")


class PowerByState(SpecModel):
    """Electrical power drawn per machine state, in kW."""

    off: float = Field(default=0.0, ge=0, description="kW when switched off (planned stop, off shift)")
    idle: float = Field(default=0.0, ge=0, description="kW when ready but starved")
    setup: float | None = Field(default=None, ge=0, description="kW during setups and warm-up; default: idle")
    busy: float = Field(default=0.0, ge=0, description="kW while processing")
    blocked: float | None = Field(default=None, ge=0, description="kW while holding a finished part; default: idle")
    down: float = Field(default=0.0, ge=0, description="kW while broken down / under repair")
    standby: float | None = Field(default=None, ge=0, description="kW in standby; default: idle")

    def vector(self) -> list[float]:
        """kW per state in :data:`STATES` order, defaults resolved."""
        return [self.off, self.idle, self.idle if self.setup is None else self.setup, self.busy,
                self.idle if self.blocked is None else self.blocked, self.down,
                self.idle if self.standby is None else self.standby]


class Standby(SpecModel):
    """Standby policy: after ``after`` time units idle a machine drops to standby power; the
    next part then waits ``wakeup`` time units (drawing setup power) before processing starts."""

    after: float = Field(ge=0, description="idle time before entering standby (scenario time unit)")
    wakeup: float = Field(default=0.0, ge=0, description="time to get back to ready (scenario time unit)")


class Energy(SpecModel):
    """A station's energy model (per machine)."""

    power_kw: PowerByState = Field(default_factory=PowerByState)
    standby: Standby | None = Field(default=None, description="automatic standby when idle; omit for none")
    off_shift: str = Field(default="off", pattern="^(off|standby)$",
                           description="state kept during planned stops and off-shift: off | standby")
    startup: float = Field(default=0.0, ge=0,
                           description="time to get ready after being off (warm-up, drawing setup power)")


class TariffPeriod(SpecModel):
    """A daily price window ``[start, end)``; windows may run past midnight."""

    name: str = ""
    start: ClockTime
    end: ClockTime
    price: float = Field(ge=0, description="price per kWh, in the tariff currency")


class Tariff(SpecModel):
    """Time-of-use electricity tariff: ``default_price`` outside the listed periods."""

    currency: str = "EUR"
    default_price: float = Field(ge=0, description="price per kWh outside every period")
    periods: list[TariffPeriod] = Field(default_factory=list)

    @model_validator(mode="after")
    def _no_overlap(self) -> Self:
        windows = sorted((a, b, p.name or str(i)) for i, p in enumerate(self.periods)
                         for a, b in daily_windows(p.start, p.end))
        for (_, b1, n1), (a2, _, n2) in pairwise(windows):
            if a2 < b1:
                raise ValueError(f"tariff periods {n1!r} and {n2!r} overlap")
        return self

    def price_segments(self, horizon: float, start_clock_h: float, time_unit: str) -> list[tuple[float, float]]:
        """``[(t, price), …]``: the price that holds from scenario time t until the next entry."""
        uph = UNITS_PER_HOUR[time_unit]
        day = 24.0 * uph
        hour_prices = sorted((a, b, p.price) for p in self.periods for a, b in daily_windows(p.start, p.end))
        daily: list[tuple[float, float]] = []  # (hour, price) change points within a day
        t = 0.0
        for a, b, price in hour_prices:
            if a > t:
                daily.append((t, self.default_price))
            daily.append((a, price))
            t = b
        if t < 24.0:
            daily.append((t, self.default_price))
        segs: list[tuple[float, float]] = []
        d = -1
        while True:
            base = d * day - start_clock_h * uph
            if base > horizon:
                break
            for h, price in daily:
                at = base + h * uph
                if at <= 0:
                    segs = [(0.0, price)]
                elif at < horizon:
                    if not segs or segs[-1][1] != price:
                        segs.append((at, price))
            d += 1
        return segs or [(0.0, self.default_price)]


def largest_consumer(scenario: Scenario) -> str:
    """The station with the largest installed power — machines × its highest draw over the
    machine states (usually busy) — the line's big energy consumer, and the default station of
    energy plans and the energy environment. Stations without an energy model come last."""
    return max(scenario.stations,
               key=lambda s: s.machines * max(s.energy.power_kw.vector()) if s.energy else -1.0).name
