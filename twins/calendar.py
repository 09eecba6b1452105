"""Clock time, shifts and planned stops.

The twin's clock starts at ``start_clock`` (time of day at t = 0) and runs in the scenario's time
unit. Shifts and breaks repeat every day. A station is *off* (planned: it counts as neither
available nor lost time under ISO 22400) outside shifts, during breaks and during its own
planned stops; see :func:`off_intervals`.
"""
from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import BeforeValidator, Field, model_validator

from twins.specmodel import SpecModel

#: Scenario time units per hour, by ``time_unit`` — the one conversion between a scenario's clock and
#: hours (kWh, tariffs, clock times).
UNITS_PER_HOUR = {"s": 3600.0, "min": 60.0, "h": 1.0}

_CLOCK = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


def _parse_clock(v: object) -> float:
    """'HH:MM' → hours after midnight (float). Numbers are taken as hours."""
    if isinstance(v, bool):
        raise ValueError("expected a clock time 'HH:MM'")
    if isinstance(v, (int, float)):
        if not 0 <= v <= 24:
            raise ValueError("clock hours must be within 0..24")
        return float(v)
    m = _CLOCK.match(str(v).strip())
    if not m or (int(m.group(1)) == 24 and m.group(2) != "00"):
        raise ValueError(f"expected a clock time 'HH:MM', got {v!r}")
    return int(m.group(1)) + int(m.group(2)) / 60.0


ClockTime = Annotated[float, BeforeValidator(_parse_clock)]
"""A time of day written ``"HH:MM"`` (24 h clock), stored as hours after midnight."""


class Shift(SpecModel):
    """A daily working window; ``end`` before ``start`` means the shift runs past midnight."""

    name: str = ""
    start: ClockTime = Field(description="clock time the shift starts, 'HH:MM'")
    end: ClockTime = Field(description="clock time the shift ends, 'HH:MM'")


class Break(SpecModel):
    """A daily planned stop for the whole line (e.g. lunch), inside or across shifts."""

    name: str = ""
    start: ClockTime = Field(description="clock time the break starts, 'HH:MM'")
    duration: float = Field(gt=0, description="length, in the scenario time unit")


class Calendar(SpecModel):
    """Working time of the whole line. Without a calendar the line runs around the clock."""

    shifts: list[Shift] = Field(default_factory=list, description="daily shifts; none = 24 h operation")
    breaks: list[Break] = Field(default_factory=list, description="daily line-wide planned stops")


class PlannedStop(SpecModel):
    """A station's own planned stop (preventive maintenance, cleaning), in scenario time."""

    start: float = Field(ge=0, description="first occurrence, time since t = 0")
    duration: float = Field(gt=0, description="length of each stop")
    every: float | None = Field(default=None, gt=0, description="repeat period; omit for a one-off stop")

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if self.every is not None and self.every <= self.duration:
            raise ValueError("'every' must be longer than 'duration'")
        return self


def daily_windows(start_h: float, end_h: float) -> list[tuple[float, float]]:
    """A daily [start, end) clock window as hour intervals within [0, 24)."""
    if end_h == start_h:
        return [(0.0, 24.0)]
    if end_h > start_h:
        return [(start_h, end_h)]
    return [(start_h, 24.0), (0.0, end_h)]


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def off_intervals(calendar: Calendar | None, stops: list[PlannedStop], horizon: float,
                  start_clock_h: float, time_unit: str) -> list[tuple[float, float]]:
    """Merged [start, end) intervals of scenario time during which a station is planned off."""
    uph = UNITS_PER_HOUR[time_unit]
    day = 24.0 * uph
    first_day = -1
    n_days = int(horizon // day) + 2
    off: list[tuple[float, float]] = []
    if calendar is not None:
        if calendar.shifts:
            on_hours = _merge([w for s in calendar.shifts for w in daily_windows(s.start, s.end)])
            gaps, t = [], 0.0
            for a, b in on_hours:
                if a > t:
                    gaps.append((t, a))
                t = b
            if t < 24.0:
                gaps.append((t, 24.0))
        else:
            gaps = []
        for br in calendar.breaks:
            gaps.append((br.start, br.start + br.duration / uph))
        for d in range(first_day, n_days):
            base = d * day - start_clock_h * uph
            off.extend((base + a * uph, base + b * uph) for a, b in gaps)
    for stop in stops:
        t = stop.start
        while t < horizon:
            off.append((t, t + stop.duration))
            if stop.every is None:
                break
            t += stop.every
    return [(max(a, 0.0), min(b, horizon)) for a, b in _merge(off) if b > 0 and a < horizon]
