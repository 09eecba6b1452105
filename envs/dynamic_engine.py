"""The dynamic dispatching engine behind :class:`envs.dynamic_dispatch.DynamicDispatchEnv`: the
SimPy twin decides everything except which waiting part a freed machine starts next.

A scenario whose stations have ``dispatch: external`` (see docs/scenario.md) runs in the twin —
random or listed order arrivals with due dates, breakdowns, setups, shifts, blocking — and stops
whenever a machine of such a station frees up while two or more parts wait for it. The waiting
parts, oldest first, fill ``slots`` fixed rows (more are not offered: the oldest ``slots`` are the
candidates), and the engine implements :class:`twins.jobshop.dispatching.DispatchEngine` with one row
per slot (``due`` holds the orders' due dates, ``inf`` for parts without one), as
:class:`twins.jobshop.engine.JobShopEngine` does for static instances, so a rule and a policy see
the same decisions. ``reset(seed)`` restarts the twin with that seed.

Pickling: a running SimPy model holds generators, which cannot be pickled, so an engine pickles
as its seed and the slots dispatched so far, and unpickling replays them in a fresh twin (same
seed, same decisions: the same state).

Cost (the environment's reward is ``-cost / scale``): the tardiness accrued between two
decisions, summed over orders — a late order accrues its lateness until it completes. An
episode's costs add up to the total tardiness of completed orders plus the lateness of open
ones at the horizon.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from twins.errors import InputError
from twins.model import Line
from twins.spec import Scenario

if TYPE_CHECKING:
    from twins.machine import Machine, Part

#: Columns of :meth:`TwinDispatchEngine.observation`, one row per slot; times relative to the
#: decision time T and divided by S (mean nominal process time); work sums by S × stations.
FEATURES = (
    "candidate",       # 1 if the slot holds a waiting part (== action mask)
    "p",               # its nominal process time on this station / S
    "setup",           # 1 if starting it needs a family change on this machine
    "remaining_work",  # nominal work left on its route, this station included / (S × stations)
    "remaining_ops",   # operations left / stations
    "waited",          # (T − time it entered this buffer) / S
    "in_system",       # (T − time it entered the line) / S
    "due_in",          # (due − T) / S, clipped to ±50 (0 without a due date)
    "slack",           # (due − T − remaining work) / S, clipped to ±50
    "next_queue",      # parts waiting at its next station / slots (0 at the last station)
    "next_busy",       # share of the next station's machines not idle
    "queue",           # (global) parts waiting here / slots
    "down",            # (global) share of this station's machines down
    "stations_waiting",  # (global) share of stations with a non-empty buffer
)
N_FEATURES = len(FEATURES)
_CLIP = 50.0


class TwinDispatchEngine:
    """Dispatching decisions of a twin scenario (see the module docstring)."""

    machine: Machine | None  # the machine that chooses now (None once done)
    waiting: list[Part]  # the parts it chooses among, oldest first, at most ``slots``

    def __init__(self, scenario: Scenario, slots: int = 10, seed: int = 0):
        if not any(st.dispatch == "external" for st in scenario.stations):
            raise InputError(f"scenario {scenario.name!r} has no station with 'dispatch: external' to decide for")
        if slots < 2:
            raise InputError("slots must be ≥ 2")
        self.scenario, self.slots = scenario, int(slots)
        means = [m for st in scenario.stations for m in st.nominal_process_times()]
        self.scale = float(np.mean(means)) if means else 1.0
        self.n_stations = len(scenario.stations)
        self.reset(seed)

    # -- protocol -------------------------------------------------------------------------------
    def reset(self, seed: int = 0) -> None:
        self.seed = seed
        self.line = Line(self.scenario, seed=seed, trace=True)
        self.decisions = 0
        self._dispatched: list[int] = []  # the episode's slots, to replay on unpickling
        self._closed = 0.0  # tardiness of completed orders
        self._n_completed = 0
        self._advance()

    def _advance(self) -> None:
        found = self.line.next_decision()
        if found is None:
            self.done, self.machine, self.waiting = True, None, []
        else:
            self.done = False
            self.machine, waiting = found
            self.waiting = waiting[: self.slots]
        self._tables()

    def accrued_tardiness(self) -> float:
        """Tardiness accrued so far: completed orders' tardiness + open orders' lateness now."""
        line, now = self.line, self.line.env.now
        done = line.completed_orders
        for order in done[self._n_completed:]:
            if order.due is not None and order.completed is not None:  # completed: set for every done order
                self._closed += max(0.0, order.completed - order.due)
        self._n_completed = len(done)
        open_late = sum(now - o.due for o in line.orders
                        if o.completed is None and o.due is not None and o.due < now)
        return self._closed + open_late

    def tardiness_until(self, t: float) -> float:
        """Tardiness accrued up to time ``t`` (≤ now): each order's lateness by ``t``, counted
        until it completed. ``tardiness_until(now) == accrued_tardiness()``."""
        late = 0.0
        for order in self.line.orders:
            if order.due is not None and order.due < t:
                end = t if order.completed is None else min(order.completed, t)
                late += max(0.0, end - order.due)
        return late

    def dispatch(self, slot: int) -> float:
        """Start the part in ``slot``; run the twin to the next decision. Returns the tardiness
        accrued meanwhile (time units)."""
        if not (0 <= slot < len(self.waiting)):
            raise InputError(f"slot {slot} holds no waiting part")
        before = self.accrued_tardiness()
        self.line.decide(self.waiting[slot])
        self._dispatched.append(slot)
        self.decisions += 1
        self._advance()
        return self.accrued_tardiness() - before

    def __getstate__(self) -> dict:
        return {"scenario": self.scenario, "slots": self.slots, "scale": self.scale,
                "n_stations": self.n_stations, "seed": self.seed, "dispatched": list(self._dispatched)}

    def __setstate__(self, state: dict) -> None:
        self.scenario, self.slots, self.scale = state["scenario"], state["slots"], state["scale"]
        self.n_stations = state["n_stations"]
        self.reset(state["seed"])
        for slot in state["dispatched"]:
            self.dispatch(slot)

    @property
    def mask(self) -> np.ndarray:
        return np.arange(self.slots) < len(self.waiting)

    @property
    def candidates(self) -> np.ndarray:
        return np.arange(len(self.waiting))

    # -- what rules and policies see ------------------------------------------------------------
    @property
    def now(self) -> float:
        """Decision time: the twin's simulation clock."""
        return float(self.line.env.now)

    def _tables(self) -> None:
        """Per-slot arrays (NaN-free, padded with zeros) for rules and features."""
        k = self.slots
        self.job_ready = np.zeros(k)
        self.op_duration = np.zeros(k)
        self.remaining_work = np.zeros(k)
        self.remaining_ops = np.zeros(k)
        self.total_work = np.zeros(k)
        self.entered = np.zeros(k)
        self.due = np.full(k, np.inf)
        if not self.waiting or self.machine is None:  # (no parts wait once done)
            return
        st = self.machine.station
        for i, part in enumerate(self.waiting):
            ideal = part.product.ideal
            route = part.route[part.step:]
            self.job_ready[i] = part.t_buf
            self.op_duration[i] = ideal[st.index] * st.factor
            self.remaining_work[i] = sum(ideal[s.index] for s in route)
            self.remaining_ops[i] = len(route)
            self.total_work[i] = sum(ideal[s.index] for s in part.product.route)
            self.entered[i] = part.t_entry
            if part.order is not None and part.order.due is not None:
                self.due[i] = part.order.due

    def observation(self) -> np.ndarray:
        k, S, n = self.slots, self.scale, self.n_stations
        obs = np.zeros((k, N_FEATURES), dtype=np.float32)
        machine = self.machine
        if not self.waiting or machine is None:  # (no parts wait once done)
            return obs
        line, T = self.line, self.line.env.now
        st = machine.station
        queue = len(st.buffer.items) / k
        down = np.mean([m.state == 5 for m in st.machines])
        waiting = np.mean([len(s.buffer.items) > 0 for s in line.stations])
        for i, part in enumerate(self.waiting):
            nxt = part.route[part.step + 1] if part.step + 1 < len(part.route) else None
            due_in = np.clip((self.due[i] - T) / S, -_CLIP, _CLIP) if np.isfinite(self.due[i]) else 0.0
            slack = (np.clip((self.due[i] - T - self.remaining_work[i]) / S, -_CLIP, _CLIP)
                     if np.isfinite(self.due[i]) else 0.0)
            obs[i] = (1.0, self.op_duration[i] / S, float(part.family != machine.family),
                      self.remaining_work[i] / (S * n), self.remaining_ops[i] / n,
                      min((T - self.job_ready[i]) / S, _CLIP), min((T - self.entered[i]) / S, _CLIP),
                      due_in, slack,
                      len(nxt.buffer.items) / k if nxt is not None else 0.0,
                      np.mean([m.state != 1 for m in nxt.machines]) if nxt is not None else 0.0,
                      queue, down, waiting)
        return obs

    def info(self) -> dict[str, float]:
        return {"tardiness_so_far": self.accrued_tardiness(), "decisions": float(self.decisions),
                "time": float(self.line.env.now), "good_units": float(self.line.good)}

    def figure(self, title: str | None = None):
        """Plotly Gantt chart of the operations the twin has processed so far (one colour per product)."""
        import plotly.graph_objects as go
        from plotly.colors import qualitative

        fig = go.Figure()
        products = [p.name for p in self.scenario.products]
        for k, name in enumerate(products):
            ops = [o for o in self.line.op_trace or [] if o[2] == name]  # (reset() traces: never None)
            fig.add_trace(go.Bar(x=[o[4] - o[3] for o in ops], base=[o[3] for o in ops], y=[o[0] for o in ops],
                                 orientation="h", name=name, marker_color=qualitative.Dark24[k % 24]))
        fig.update_layout(barmode="overlay", xaxis_title=f"time [{self.scenario.time_unit}]", yaxis_title="machine",
                          title=title or f"{self.scenario.name}: {self.decisions} decisions, "
                                         f"tardiness so far {self.accrued_tardiness():g}")
        return fig

