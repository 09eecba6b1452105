"""A station at run time: its input buffer, machines, current setpoints, planned availability
and cumulative counters. The machines' SimPy processes live in :mod:`twins.machine`, which also
describes the seam between the two."""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import simpy

from twins.buffer import Buffer
from twins.energy import BUSY, MODES, OFF, STANDBY, STATES
from twins.machine import Machine, Part
from twins.response import evaluate_responses

if TYPE_CHECKING:
    from twins.model import Line, Supply
    from twins.spec import Station


class StationRT:
    """A station at run time: buffer, machines, current setpoints and cumulative counters."""

    def __init__(self, line: Line, spec: Station, index: int):
        self.line, self.spec, self.index, self.name = line, spec, index, spec.name
        self.buffer = Buffer(line.env, spec.buffer, spec.name)
        self.machines: list[Machine] = []
        self.same_family = spec.dispatch == "same_family"
        self.external = spec.dispatch == "external"
        self.supply: Supply | None = None  # set for the station a saturated source feeds
        energy = spec.energy
        self.base_power = energy.power_kw.vector() if energy else [0.0] * len(STATES)
        self.power = list(self.base_power)
        self.startup = energy.startup if energy else 0.0
        self.standby_after = energy.standby.after if energy and energy.standby else None
        self.wakeup = energy.standby.wakeup if energy and energy.standby else 0.0
        self.calendar_off_state = STANDBY if energy and energy.off_shift == "standby" else OFF
        # availability: planned (calendar) and commanded (e.g. an energy controller)
        self.calendar_on = True
        self.command_on = True
        self.command_off_state = OFF
        self.enabled = True
        self.enable_ev: simpy.Event | None = None
        # quality and the process-parameter responses
        self.scrap = spec.scrap
        self.factor = 1.0
        self.yield_ = 1.0
        self.p_scrap = spec.scrap
        self.p_rework = spec.rework.probability if spec.rework else 0.0
        self.p_bad = self.p_scrap + self.p_rework
        self.rework_station: StationRT | None = None  # set by the line when the station has rework
        self.rework_return: dict[int, int] = {}
        self.max_cycles = spec.rework.max_cycles if spec.rework else 0
        self.params = {p.name: p.setpoint for p in spec.parameters}
        self.responses = spec.response.compile(tuple(self.params)) if spec.response else {}
        # a learned response sampled per replication: one standard-normal quantile per output, drawn once
        sampled = [k for k, fn in self.responses.items() if getattr(fn, "sample", False)]
        rng = line.stream(f"{spec.name}/response") if sampled else None
        self.response_z = {k: float(rng.standard_normal()) for k in sampled} if rng is not None else {}
        # cumulative counters
        self.ops = 0  # operations completed
        self.good = 0
        self.scrapped = 0
        self.reworked = 0
        self.ideal = 0.0  # Σ planned process time (nominal mean × cycle-time factor) of completed operations
        self.wait_sum = 0.0  # Σ time from entering the buffer to starting on a machine
        self.started = 0

    # -- reports from the machines (the hot path: machines bind these once) ------------------------
    def part_started(self, waited: float) -> None:
        """A machine started on a part that waited ``waited`` since it entered the buffer."""
        self.wait_sum += waited
        self.started += 1

    def operation_done(self, part: Part, factor: float, quality: Iterator[float]) -> bool:
        """Count an operation completed at cycle-time ``factor`` and inspect its part, drawing from
        the machine's ``quality`` stream (uniforms) only when a part can be bad. Returns False when
        the part left the line as scrap; a part sent to rework has its route turned to the rework
        station."""
        self.ops += 1
        self.ideal += part.product.ideal[self.index] * factor  # planned run time at that recipe
        if self.p_bad > 0.0:
            u = next(quality)
            if u < self.p_bad:
                if u < self.p_scrap:
                    self.scrapped += 1
                    self.line.scrap(part)
                    return False
                self.reworked += 1
                part.reworks += 1
                if part.reworks > self.max_cycles:
                    self.line.scrap(part)
                    return False
                rework_station = self.rework_station
                assert rework_station is not None  # p_rework > 0: the station has rework
                part.route = (rework_station,) + part.product.route[self.rework_return[part.product.index]:]
                part.step = -1
                return True
        self.good += 1
        return True

    @property
    def off_state(self) -> int:
        return self.calendar_off_state if not self.calendar_on else self.command_off_state

    def command(self, mode: str) -> None:
        """An energy controller's command: ``on`` (ready to work), ``standby`` or ``off``
        (:data:`MODES`). From off the machines take the start-up time, from standby the wake-up
        time; the calendar still applies on top (an ``on`` station is off outside its shifts)."""
        if mode == "on":
            self.set_available(command=True)
        elif mode in MODES:
            self.set_available(command=False, command_state=STANDBY if mode == "standby" else OFF)
        else:
            raise ValueError(f"unknown mode {mode!r} (modes: {', '.join(MODES)})")

    @property
    def mode(self) -> str:
        """The mode last commanded (:meth:`command`): ``on``, ``standby`` or ``off``."""
        if self.command_on:
            return "on"
        return "standby" if self.command_off_state == STANDBY else "off"

    def apply_responses(self) -> None:
        """Re-evaluate the response models at the current setpoints."""
        vals = evaluate_responses(self.responses, self.params)
        for key, z in self.response_z.items():  # a learned model's draw for this replication
            vals[key] = self.responses[key].draw(self.params, z)  # type: ignore[attr-defined]
        self.factor = vals.get("cycle_time_factor", 1.0)
        self.yield_ = vals.get("yield", 1.0)
        self.p_scrap = 1.0 - (1.0 - self.scrap) * self.yield_
        self.p_bad = self.p_scrap + self.p_rework
        self.power[BUSY] = vals.get("power_kw", self.base_power[BUSY])

    def set_available(self, calendar: bool | None = None, command: bool | None = None,
                      command_state: int | None = None) -> None:
        """Switch planned availability; idle machines stop at once, others after their part."""
        if calendar is not None:
            self.calendar_on = calendar
        if command is not None:
            self.command_on = command
        if command_state is not None:
            self.command_off_state = command_state
        enabled = self.calendar_on and self.command_on
        now = self.line.env._now
        if enabled == self.enabled:
            if not enabled:  # already off: move parked machines between off and standby
                for m in self.machines:
                    m.park(self.off_state)
            return
        self.enabled = enabled
        if not enabled:
            self.enable_ev = simpy.Event(self.line.env)
            for m in self.machines:
                m.stop(now, self.off_state)
        else:
            ev, self.enable_ev = self.enable_ev, None
            assert ev is not None  # made when the station went off
            for m in self.machines:
                m.restart(now)
            ev.succeed()
