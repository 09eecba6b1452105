"""Machines at run time: the SimPy process of each machine of a station (the station itself, its
buffer, setpoints and counters, is :class:`twins.station.StationRT`).

Semantics (docs/scenario.md repeats them; tests rely on them):

* A machine takes the next part from its station's input buffer (first in, or first of its
  current family with ``dispatch: same_family``); a saturated station makes a raw part instead
  of starving.
* Sequence-dependent setup when the part's family differs from the machine's current family
  (the very first part needs none).
* Blocking after service: a finished part keeps its machine until the next station's buffer
  has room (or a machine there takes it); parts leaving the last station leave the line.
* Time-based failures: the failure clock runs while the machine is up — idle, standby, setup,
  busy and blocked included; not while down or planned off. Operation-based failures: the
  clock runs only while busy. A part caught by a failure resumes its remaining work after the
  repair. A failure while blocked does not hold the finished part back: it leaves as soon as
  there is room, while the machine is repaired.
* Planned off (off shift, breaks, planned stops, commanded off): idle machines stop at once,
  busy ones finish their part first; blocked ones are counted as planned off until released.
* Started from a plant state (:mod:`twins.state`): the machine first carries on from its
  :class:`Start` (:meth:`Machine._resume`: repair, setup, work, hand-over), then runs its loop.

The seam with the station: a machine reads its station's setpoints and availability, and reports
to it through methods (:meth:`~twins.station.StationRT.part_started`,
:meth:`~twins.station.StationRT.operation_done`), which own the station's counters and the quality
decision; the station commands its machines through :meth:`Machine.stop`, :meth:`Machine.restart`
and :meth:`Machine.park`. Neither writes the other's attributes.

The hot path — get, work, put — does arithmetic on slots and a few SimPy events per part;
tracing is a list append only when a trace was asked for. The station's reporting methods are
bound once when the process starts (locals of :meth:`Machine.run`), not looked up per part.
Throughout the twin (machines, buffers, sources, the line) the simulation clock is read as
``env._now`` rather than ``env.now``: SimPy's ``now`` is a read-only property returning ``_now``,
and the property call costs about six times the attribute read (≈ 34 ns against 6 ns), paid several
times per event. ``_now`` has been the attribute behind ``now`` throughout SimPy 3 and 4
(pyproject pins ``simpy>=4.1``); the twin only reads it, never writes it.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Generator, Iterator
from types import GeneratorType
from typing import TYPE_CHECKING, Any, cast

import simpy
from simpy import Interrupt

from twins.energy import BLOCKED, BUSY, DOWN, IDLE, OFF, SETUP, STANDBY, STATES

if TYPE_CHECKING:
    from twins.buffer import Buffer
    from twins.model import Order, ProductRT
    from twins.station import StationRT

INF = float("inf")

#: A SimPy process body: yields events and gets back their values.
Process = Generator[simpy.Event, Any, None]
#: A machine's state trace entry: (machine name, state, start, end).
StateSpan = tuple[str, int, float, float]
#: Samplers of setup times by (from family, to family); the key None holds the default.
SetupSamplers = dict[tuple[int, int] | None, Iterator[float]]


class _Disable:
    def __repr__(self) -> str:
        return "DISABLE"


DISABLE = _Disable()  # interrupt cause: the station went planned-off while the machine waited


class Part:
    """One unit travelling through the line."""

    __slots__ = ("product", "family", "route", "step", "t_entry", "t_buf", "reworks", "order", "id")

    def __init__(self, product: ProductRT, now: float, order: Order | None = None):
        self.id = -1  # numbered when it enters a line that records an event log (Line(events=…))
        self.product = product
        self.family = product.family
        self.route = product.route
        self.step = 0
        self.t_entry = now
        self.t_buf = now
        self.reworks = 0
        self.order = order


def _failure(irq: Interrupt) -> FailureMode:
    """The failure mode an interrupt carries: simpy types ``cause`` as Optional[Any]; machines are
    interrupted with a :class:`FailureMode` or :data:`DISABLE`, and callers rule DISABLE out."""
    return cast(FailureMode, irq.cause)


class Start:
    """What a machine is doing at t = 0 when the line starts from a plant state (:mod:`twins.state`):
    ``state`` (BUSY, SETUP, BLOCKED or DOWN; idle machines need none), the ``part`` on it (or None)
    and the durations the line resolved at build time: ``repair`` left (DOWN), ``setup`` left
    (SETUP) and ``work`` left on the part (BUSY; SETUP and DOWN with a part: a whole operation)."""

    __slots__ = ("state", "part", "repair", "setup", "work")

    def __init__(self, state: int, part: Part | None, repair: float = 0.0, setup: float = 0.0, work: float = 0.0):
        self.state, self.part, self.repair, self.setup, self.work = state, part, repair, setup, work


class FailureMode:
    __slots__ = ("ttf", "repair", "left")

    def __init__(self, ttf: Iterator[float], repair: Iterator[float]):
        self.ttf, self.repair = ttf, repair
        self.left = next(ttf)  # busy time until the next failure (operation-based modes)


class Machine:
    """One machine of a station; its SimPy process is :meth:`run`."""

    def __init__(self, station: StationRT, index: int, proc_samplers: list[Iterator[float] | None],
                 setup_samplers: SetupSamplers | None, quality: Iterator[float], time_modes: list[FailureMode],
                 op_modes: list[FailureMode], trace: list[StateSpan] | None = None):
        env = station.line.env
        self.env, self.station, self.index = env, station, index
        self.name = station.name if station.spec.machines == 1 else f"{station.name}#{index + 1}"
        self.state = IDLE
        self.t = 0.0  # start of the current, not yet accounted interval
        self.t_idle = 0.0
        self.acc = [0.0] * len(STATES)  # time per state since the last energy flush
        self.time = [0.0] * len(STATES)  # cumulative time per state
        self.kwh = [0.0] * len(STATES)  # cumulative energy per state
        self.cost = 0.0
        self.family: int | None = None
        self.proc_samplers = proc_samplers  # per product index
        self.setup_samplers = setup_samplers  # (from family, to family) -> sampler; None key: default
        self.quality = quality
        self.op_modes = op_modes
        self.standby_after = station.standby_after
        self.pending: _Disable | None = None  # a DISABLE interrupt on its way
        self.failing = False  # a failure interrupt on its way or being repaired
        self.repaired: simpy.Event | None = None
        self.up_again: simpy.Event | None = None
        self.not_up_since: float | None = None
        self.cum_not_up = 0.0
        self.planned_off = 0.0  # cumulative planned-off time
        self.off_since: float | None = None
        self.blocked_off = False
        self.waiting: simpy.Event | None = None
        self.trace = trace
        # No further attributes without measuring: up to 29 instance attributes keep CPython 3.11's
        # inline (key-shared) attribute storage, and every attribute access on the hot path is ~7 %
        # slower beyond (the start state lives in Line.starts, the generator in self.proc).
        self.proc = env.process(self.run())
        for mode in time_modes:
            env.process(self._time_failures(mode))

    # -- accounting --------------------------------------------------------------------------
    def close(self, now: float) -> None:
        """Attribute the time since the last accounting to the current state."""
        s, t = self.state, self.t
        if s == IDLE and self.standby_after is not None:
            ts = self.t_idle + self.standby_after
            if now > ts:  # the machine dropped to standby while idle (lazy: no event needed)
                if t < ts:
                    self.acc[IDLE] += ts - t
                    if self.trace is not None:
                        self.trace.append((self.name, IDLE, t, ts))
                    t = ts
                s = STANDBY
        self.acc[s] += now - t
        if self.trace is not None and now > t:
            self.trace.append((self.name, s, t, now))
        self.t = now

    def switch(self, state: int) -> None:
        now = self.env._now
        self.close(now)
        self.state = state
        if state == IDLE:
            self.t_idle = now

    def current_state(self, now: float) -> int:
        """The state now, standby resolved (for observers)."""
        if self.state == IDLE and self.standby_after is not None and now > self.t_idle + self.standby_after:
            return STANDBY
        return self.state

    def flush(self, price: float, units_per_hour: float) -> None:
        """Turn accumulated state times into kWh and cost at ``price`` (called at tariff
        boundaries, setpoint changes and snapshots)."""
        self.close(self.env._now)
        power, acc = self.station.power, self.acc
        for s in range(len(STATES)):
            d = acc[s]
            if d:
                self.time[s] += d
                e = d * power[s] / units_per_hour
                self.kwh[s] += e
                self.cost += e * price
                acc[s] = 0.0

    def up_time(self, now: float) -> float:
        nu = self.cum_not_up
        if self.not_up_since is not None:
            nu += now - self.not_up_since
        return now - nu

    def _not_up(self, now: float) -> None:
        if self.not_up_since is None:
            self.not_up_since = now

    def _up(self, now: float) -> None:
        if self.not_up_since is not None:
            self.cum_not_up += now - self.not_up_since
            self.not_up_since = None
            if self.up_again is not None:
                ev, self.up_again = self.up_again, None
                ev.succeed()

    def planned_off_time(self, now: float) -> float:
        """Cumulative planned-off time up to ``now``, the current off period included."""
        return self.planned_off + (now - self.off_since if self.off_since is not None else 0.0)

    def _block_off(self, now: float, state: int) -> None:
        """A blocked machine whose station went planned-off: count it as off until released."""
        self.switch(state)
        self.blocked_off = True
        self.off_since = now
        self._not_up(now)

    def _unblock_off(self, now: float, state: int) -> None:
        self.switch(state)
        self.blocked_off = False
        self.planned_off = self.planned_off_time(now)
        self.off_since = None
        self._up(now)

    # -- commands from the station ---------------------------------------------------------------
    def stop(self, now: float, off_state: int) -> None:
        """The station went planned-off: a machine waiting for a part stops at once (its process is
        interrupted), a blocked one counts as ``off_state`` until released; a busy one finishes its
        part first (its process sees the station disabled), a failing one after its repair."""
        if self.waiting is not None and self.pending is None and not self.failing:
            self.pending = DISABLE
            self.proc.interrupt(DISABLE)
        elif self.state == BLOCKED:
            self._block_off(now, off_state)

    def restart(self, now: float) -> None:
        """The station is available again: a machine held blocked while off counts as blocked again
        (the others wake up on the station's enable event)."""
        if self.blocked_off:
            self._unblock_off(now, BLOCKED)

    def park(self, off_state: int) -> None:
        """The station stays off but its off state changed (off ↔ standby): move a parked machine."""
        if self.off_since is not None and self.state in (OFF, STANDBY) and self.state != off_state:
            self.switch(off_state)

    # -- observation -----------------------------------------------------------------------------
    def holding(self) -> Part | None:
        """The part on the machine now — being set up for, processed, caught by a failure, or
        finished and waiting for room downstream — or None.

        Read from the suspended process rather than tracked (no bookkeeping on the hot path): the
        local ``part`` of :meth:`run` (or of :meth:`_resume` while the machine finishes its start
        state) is the current part, except while the process waits for one (``_off``,
        ``_await_part``, ``_decision``), where it still names the previous part. A finished part
        (its route already points past this station) is on the machine only while it waits for a
        place downstream; a failure while blocked does not hold it back."""
        start = self.pending_start()
        if start is not None:
            return start.part
        # simpy's Process keeps its generator as _generator (SimPy 3 and 4), read here only
        body = cast("GeneratorType[simpy.Event, Any, None]", self.proc._generator)
        if inspect.getgeneratorstate(body) == inspect.GEN_CREATED:  # the line has not run yet
            return None
        inner = body.gi_yieldfrom
        code = getattr(inner, "gi_code", None)
        if code in _WAITING:
            return None
        frame = cast("GeneratorType[simpy.Event, Any, None]", inner) if code is _RESUME else body
        part: Part | None = inspect.getgeneratorlocals(frame).get("part")
        if part is None or part.step >= len(part.route):
            return None
        here = part.route[part.step]
        if here is self.station:
            return part
        return part if any(p is part for _, p in here.buffer.putters) else None

    def pending_start(self) -> Start | None:
        """The start state (:mod:`twins.state`) while the machine has not taken it up yet, else None."""
        return self.station.line.starts.get(self)

    # -- the process ---------------------------------------------------------------------------
    def run(self) -> Process:  # noqa: C901 — the hot path stays one generator: a sub-generator costs a call per event
        env, st = self.env, self.station
        buf, line = st.buffer, st.line
        op_trace = line.op_trace  # set exactly when self.trace is (the line was built with trace=True)
        events = line.events  # the event log (Line(events=…)), or None: one test per step when off
        # None only for products that never visit the station (check_references): not per part
        samplers, quality = cast(list[Iterator[float]], self.proc_samplers), self.quality
        part_started, operation_done = st.part_started, st.operation_done  # bound once: the hot path
        start = line.starts.pop(self, None)  # once per run, before the loop: the plant state the line starts from
        if start is not None:
            yield from self._resume(start)
        while True:
            if not st.enabled:
                yield from self._off()
                continue
            if st.external and len(buf.items) > 1:  # a controller chooses among the waiting parts
                part = yield from self._decision()
                if part is None:
                    continue
            else:
                part = buf.try_get(self.family if st.same_family else None)
            if part is None and st.supply is not None:
                part = st.supply.new_part()
            if part is None:
                self.switch(IDLE)
                ev = self.waiting = buf.wait_get()
                part = yield from self._await_part(ev, buf.cancel_get)
                if part is None:
                    continue
                if self.standby_after is not None and self.env._now - self.t_idle > self.standby_after \
                        and st.wakeup > 0.0:
                    yield from self._work(st.wakeup, SETUP)
            part_started(env._now - part.t_buf)
            # setup
            fam = part.family
            if fam != self.family:
                if self.family is not None and self.setup_samplers is not None:
                    sampler = self.setup_samplers.get((self.family, fam)) or self.setup_samplers.get(None)
                    d = next(sampler) if sampler is not None else 0.0
                    if d > 0.0:
                        if events is not None:
                            events.append((env._now, st.name, self.name, part.id, part.product.name, "setup_start"))
                        yield from self._work(d, SETUP)
                        if events is not None:
                            events.append((env._now, st.name, self.name, part.id, part.product.name, "setup_end"))
                self.family = fam
            # process
            t_start = env._now
            factor = st.factor  # the recipe in force when the operation starts
            pt = next(samplers[part.product.index]) * factor
            if events is not None:
                events.append((t_start, st.name, self.name, part.id, part.product.name, "start"))
            if self.op_modes:
                yield from self._busy_with_op_failures(pt)
            else:
                self.switch(BUSY)
                end = env._now + pt
                try:
                    yield env.timeout(pt)
                except Interrupt as irq:
                    remaining = end - env._now
                    yield from self._repair(_failure(irq))
                    yield from self._work(remaining, BUSY)
            if op_trace is not None:
                op_trace.append((self.name, st.name, part.product.name, t_start, env._now))
            good = operation_done(part, factor, quality)  # counted and inspected
            if events is not None:
                events.append((env._now, st.name, self.name, part.id, part.product.name, "end"))
                if not good or part.step == -1:  # scrapped, or sent to rework (its route restarts)
                    events.append((env._now, st.name, self.name, part.id, part.product.name,
                                   "rework" if good else "scrap"))
            if not good:
                continue
            # hand over
            part.step += 1
            route = part.route
            if part.step == len(route):
                line.exit(part)
                continue
            nxt = route[part.step].buffer
            if not nxt.try_put(part):
                yield from self._wait_for_room(nxt, part)

    def _wait_for_room(self, nxt: Buffer, part: Part) -> Process:
        """Blocked after service: hold the finished ``part`` until ``nxt`` takes it; a failure
        meanwhile is repaired without holding the part back."""
        env, st = self.env, self.station
        if st.enabled:
            self.switch(BLOCKED)
        else:  # finished after its station went off: a planned stop, not a blockage
            self._block_off(env._now, st.off_state)
        ev = nxt.wait_put(part)
        try:
            yield ev
        except Interrupt as irq:
            yield from self._repair(_failure(irq))
            while not ev.processed:
                if st.enabled:
                    self.switch(BLOCKED)
                elif not self.blocked_off:
                    self._block_off(env._now, st.off_state)
                try:
                    yield ev
                except Interrupt as irq2:
                    yield from self._repair(_failure(irq2))
        if self.blocked_off:
            self._unblock_off(env._now, BLOCKED)

    def _resume(self, start: Start) -> Process:
        """Carry on from the state the line started in (once, before :meth:`run`'s loop): finish
        the repair, then the setup and the work on the part (with the station's current recipe),
        then hand the part over as the loop would. The part started before t = 0, so it is not
        counted as started here; its completed operation is."""
        env, st = self.env, self.station
        part = start.part
        if start.state == DOWN:
            self.failing = True  # as if a failure had struck: no second failure, no planned stop meanwhile
            yield from self._repair_for(start.repair)
        if part is None:
            if start.state == SETUP and start.setup > 0.0:  # a warm-up without a part
                yield from self._work(start.setup, SETUP)
            return
        self.family = part.family
        if start.state != BLOCKED:
            if start.state == SETUP and start.setup > 0.0:
                yield from self._work(start.setup, SETUP)
            t_start, factor = env._now, st.factor
            if self.op_modes:
                yield from self._busy_with_op_failures(start.work)
            else:
                yield from self._work(start.work, BUSY)
            if st.line.op_trace is not None:
                st.line.op_trace.append((self.name, st.name, part.product.name, t_start, env._now))
            if not st.operation_done(part, factor, self.quality):
                return
            part.step += 1
        if part.step == len(part.route):
            st.line.exit(part)
            return
        nxt = part.route[part.step].buffer
        if not nxt.try_put(part):
            yield from self._wait_for_room(nxt, part)

    def _decision(self) -> Generator[simpy.Event, Any, Part | None]:
        """Ask the line's controller which waiting part to start (takes no simulated time)."""
        line = self.station.line
        self.switch(IDLE)
        ev = simpy.Event(self.env)
        line.request_decision(self, ev)
        return (yield from self._await_part(ev, line.cancel_decision))

    def _await_part(self, ev: simpy.Event, withdraw: Callable[[simpy.Event], None]
                    ) -> Generator[simpy.Event, Any, Part | None]:
        """Wait for ``ev`` to hand over a part. Interrupted (failure or planned stop), withdraw the
        request with ``withdraw(ev)`` unless the part was already handed over, deal with the
        interruption, and return the part or None."""
        part: Part | None
        try:
            part = yield ev
        except Interrupt as irq:
            part = ev.value if ev.triggered else None
            self.waiting = None
            if part is None:
                withdraw(ev)
            if irq.cause is DISABLE:
                self.pending = None
            else:
                yield from self._repair(_failure(irq))
        self.waiting = None
        return part

    def _work(self, duration: float, state: int) -> Process:
        """``duration`` of work in ``state``, resuming the remainder after any failure."""
        env = self.env
        self.switch(state)
        end = env._now + duration
        while True:
            try:
                yield env.timeout(end - env._now)
                return
            except Interrupt as irq:
                remaining = end - env._now
                yield from self._repair(_failure(irq))
                self.switch(state)
                end = env._now + remaining

    def _busy_with_op_failures(self, pt: float) -> Process:
        remaining = pt
        modes = self.op_modes
        while True:
            mode = min(modes, key=lambda m: m.left)
            if mode.left > remaining:
                for m in modes:
                    m.left -= remaining
                yield from self._work(remaining, BUSY)
                return
            step = mode.left
            for m in modes:
                m.left -= step
            yield from self._work(step, BUSY)
            remaining -= step
            mode.left = next(mode.ttf)
            yield from self._repair(mode)

    def _repair(self, mode: FailureMode) -> Process:
        return self._repair_for(next(mode.repair))

    def _repair_for(self, duration: float) -> Process:
        env = self.env
        self.switch(DOWN)
        self._not_up(env._now)
        end = env._now + duration
        events = self.station.line.events
        if events is not None:
            events.append((env._now, self.station.name, self.name, -1, "", "fail"))
        while True:
            try:
                yield env.timeout(end - env._now)
                break
            except Interrupt as irq:  # a second failure mode struck at the same moment
                if irq.cause is DISABLE:
                    self.pending = None
                else:
                    end += next(_failure(irq).repair)
        if events is not None:
            events.append((env._now, self.station.name, self.name, -1, "", "repair"))
        self.failing = False
        self._up(env._now)
        if self.repaired is not None:
            ev, self.repaired = self.repaired, None
            ev.succeed()

    def _off(self) -> Process:
        env, st = self.env, self.station
        self.switch(st.off_state)
        now = env._now
        self.off_since = now
        self._not_up(now)
        while not st.enabled:
            enable_ev = st.enable_ev
            assert enable_ev is not None  # the station made it when it went off
            yield enable_ev
        now = env._now
        self.planned_off += now - self.off_since
        self.off_since = None
        self._up(now)
        d = st.startup if self.state == OFF else st.wakeup  # cold start, or back from standby
        if d > 0.0:
            yield from self._work(d, SETUP)

    def _time_failures(self, mode: FailureMode) -> Process:
        """Time-based failure clock: fail after ``ttf`` units of up time."""
        env = self.env
        need = mode.left
        while True:
            while env._now + need > env._now:  # (a remainder below float resolution counts as done)
                u0 = self.up_time(env._now)
                yield env.timeout(need)
                need -= self.up_time(env._now) - u0
            while True:
                if self.not_up_since is not None:
                    if self.up_again is None:
                        self.up_again = simpy.Event(env)
                    yield self.up_again
                elif self.failing:
                    if self.repaired is None:
                        self.repaired = simpy.Event(env)
                    yield self.repaired
                elif self.pending is not None:
                    yield env.timeout(0)
                else:
                    break
            self.failing = True
            self.repaired = simpy.Event(env)
            repaired = self.repaired
            self.proc.interrupt(mode)
            yield repaired
            need = next(mode.ttf)


#: Where :meth:`Machine.run` waits for a part (its local ``part`` is stale there), and the start-up
#: generator whose own ``part`` is current; see :meth:`Machine.holding`.
_WAITING = (Machine._off.__code__, Machine._await_part.__code__, Machine._decision.__code__)
_RESUME = Machine._resume.__code__
