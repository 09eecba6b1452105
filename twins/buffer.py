"""A station's input buffer with blocking-after-service.

``capacity`` counts *waiting places only* (parts on machines are not in the buffer), so an
M/M/c/K station has a buffer of K − c, and a capacity of 0 is allowed: an upstream machine then
hands its part straight to a free machine or stays blocked. Waiting machines (getters) and
blocked upstream machines (putters) are served first come, first served.

The ``try_*`` calls succeed without creating a SimPy event when they can — the common case on a
busy line — and the ``wait_*`` calls return an event to yield on. The buffer also integrates
its level over time (for the mean queue length) and stamps each part's entry time.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

import simpy

if TYPE_CHECKING:
    from twins.machine import Part


class Buffer:
    __slots__ = ("env", "capacity", "items", "getters", "putters", "area", "t_last", "name", "sequence")

    def __init__(self, env: simpy.Environment, capacity: int | None, name: str = ""):
        self.env = env
        self.capacity: float = float("inf") if capacity is None else capacity
        self.items: deque[Part] = deque()
        self.getters: deque[simpy.Event] = deque()
        self.putters: deque[tuple[simpy.Event, Part]] = deque()
        self.area = 0.0  # ∫ level dt since t = 0
        self.t_last = 0.0
        self.name = name
        self.sequence: deque[int] | None = None  # fixed processing order (product indices), see take_in_order

    def __len__(self) -> int:
        return len(self.items)

    @property
    def full(self) -> bool:
        return not self.getters and len(self.items) >= self.capacity

    def _level_changes(self, now: float) -> None:
        self.area += len(self.items) * (now - self.t_last)
        self.t_last = now

    def try_put(self, part: Part) -> bool:
        """Place ``part`` if a machine waits for it or a place is free; False if full."""
        now = self.env._now
        part.t_buf = now
        if self.getters and (self.sequence is None or self._is_next(part)):
            if self.sequence is not None:
                self.sequence.popleft()
            self.getters.popleft().succeed(part)
            return True
        if len(self.items) < self.capacity:
            self._level_changes(now)
            self.items.append(part)
            return True
        return False

    def wait_put(self, part: Part) -> simpy.Event:
        """Event that fires once ``part`` got a place (the caller stays blocked until then)."""
        ev = simpy.Event(self.env)
        self.putters.append((ev, part))
        return ev

    def try_get(self, family: int | None = None) -> Part | None:
        """The next part (first in; with ``family`` (a family index), the first of that family if any), or None."""
        items = self.items
        if self.sequence is not None:
            return self._take_in_order()
        if not items:
            if self.putters:  # zero waiting places: take the part straight off the blocked machine
                ev, waiting = self.putters.popleft()
                ev.succeed()
                return waiting
            return None
        now = self.env._now
        self._level_changes(now)
        part: Part | None
        if family is None or items[0].family == family:
            part = items.popleft()
        else:
            part = next((p for p in items if p.family == family), None)
            if part is None:
                part = items.popleft()
            else:
                items.remove(part)
        if self.putters:  # a place became free: the longest-blocked upstream part takes it
            ev, waiting = self.putters.popleft()
            waiting.t_buf = now
            items.append(waiting)
            ev.succeed()
        return part

    def set_sequence(self, sequence: Iterable[int] | None) -> None:
        """Replace the fixed processing order now (product indices; None: back to first in, first
        out), and hand waiting parts to waiting machines where the new order allows it."""
        self.sequence = None if sequence is None else deque(sequence)
        while self.getters:
            part = self.try_get()
            if part is None:
                return
            self.getters.popleft().succeed(part)

    def _is_next(self, part: Part) -> bool:
        seq = self.sequence
        if not seq:
            return False
        index: int = part.product.index
        return index == seq[0]

    def _take_in_order(self) -> Part | None:
        """Fixed sequence: the next product of the sequence if it is waiting, else None."""
        if not self.sequence:
            return None
        want = self.sequence[0]
        part = next((p for p in self.items if p.product.index == want), None)
        if part is None:
            return None
        self._level_changes(self.env._now)
        self.items.remove(part)
        self.sequence.popleft()
        return part

    def take(self, part: Part) -> None:
        """Remove a chosen waiting ``part`` (a controller's dispatching decision)."""
        now = self.env._now
        self._level_changes(now)
        self.items.remove(part)
        if self.putters:
            ev, waiting = self.putters.popleft()
            waiting.t_buf = now
            self.items.append(waiting)
            ev.succeed()

    def wait_get(self) -> simpy.Event:
        """Event that fires with the next part put into the (empty) buffer."""
        ev = simpy.Event(self.env)
        self.getters.append(ev)
        return ev

    def cancel_get(self, ev: simpy.Event) -> None:
        """Withdraw a waiting machine (it broke down or went off shift)."""
        try:
            self.getters.remove(ev)
        except ValueError:
            pass

    def level_area(self, now: float) -> float:
        """∫ level dt from 0 to ``now``."""
        return self.area + len(self.items) * (now - self.t_last)
