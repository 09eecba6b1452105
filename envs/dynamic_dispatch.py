"""``twinopt/DynamicDispatch-v0`` (also ``twinopt/Dispatch-v0`` with ``scenario=…``): choose which
waiting part a freed machine starts next, in the SimPy twin with order arrivals, due dates and
breakdowns. The decisions come from :class:`envs.dynamic_engine.TwinDispatchEngine`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from envs.dispatch import BaseDispatchEnv
from envs.dynamic_engine import FEATURES, TwinDispatchEngine
from envs.parameter import resolve_scenario
from twins.spec import Scenario


class DynamicDispatchEnv(BaseDispatchEnv):
    """Dynamic job-shop dispatching in the twin: minimise the orders' tardiness.

    The scenario's stations with ``dispatch: external`` leave the choice of the next part to the
    agent; the twin runs everything else (random or listed order arrivals with due dates,
    breakdowns, setups, shifts, blocking) and stops whenever a freed machine of such a station
    has two or more parts waiting.

    ## Action Space
    ``Discrete(slots)``: a slot, i.e. one of the ``slots`` oldest waiting parts (more are not
    offered). :meth:`action_masks` (also ``info["action_mask"]``) marks the occupied slots; an
    action outside the mask is replaced by the lowest occupied slot and flagged with
    ``info["invalid_action"] = True``.

    ## Observation Space
    ``Box(-1e6, 1e6, (slots * N_FEATURES,), float32)``: a slot-major flattening of an
    ``(slots, N_FEATURES)`` matrix, columns :data:`envs.dynamic_engine.FEATURES` (the part's
    process time, setup need, remaining work and operations, time waited and in the system, due
    date and slack, the next station's queue and load, this station's queue and breakdowns).
    Times are relative to the decision time and divided by S, the mean nominal process time;
    empty slots have all-zero rows.

    ## Rewards
    ``-(tardiness accrued until the next decision) / S``, summed over orders (a late order
    accrues its lateness until it completes), so an episode's return is minus the total
    tardiness in units of S (completed orders, plus open orders' lateness at the horizon).

    ## Starting State
    The scenario's line, empty, run to its first decision; ``reset(seed=s)`` seeds the twin's
    random streams from the env's generator, so the same seed gives the same episode.

    ## Episode End
    Terminates when the scenario's horizon is reached (``info["tardiness"]`` then holds the
    episode's tardiness); never truncated. ``info`` also reports ``tardiness_so_far``,
    ``decisions``, ``time`` and ``good_units``.

    ## Arguments
    * ``scenario``: a shipped scenario name (default ``"dynamic_jobshop"``), a YAML path or a
      :class:`~twins.spec.Scenario` with at least one ``dispatch: external`` station.
    * ``slots``: waiting parts offered per decision (default 10, at least 2).
    * ``render_mode``: ``"ansi"`` returns the episode's counters as text. :meth:`figure`
      returns a plotly Gantt chart of the twin's operations so far.
    """

    engine: TwinDispatchEngine

    def __init__(self, scenario: str | Path | Scenario = "dynamic_jobshop", slots: int = 10,
                 render_mode: str | None = None):
        self.scenario = resolve_scenario(scenario)
        self.engine = TwinDispatchEngine(self.scenario, slots)  # validates the scenario
        super().__init__(slots, FEATURES, render_mode)
        self.n_machines = len(self.scenario.stations)

    # -- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.engine.reset(int(self.np_random.integers(2**31 - 1)))
        return self.engine.observation().reshape(-1), {"action_mask": self.engine.mask, **self.engine.info()}

    def step(self, action):
        eng = self.engine
        a, invalid = self._legal(action, eng.mask)
        cost = eng.dispatch(a) if not eng.done else 0.0
        info = {"action_mask": eng.mask, **eng.info()}
        if invalid:
            info["invalid_action"] = True
        if eng.done:
            info["tardiness"] = info["tardiness_so_far"]
        return eng.observation().reshape(-1), -cost / eng.scale, eng.done, False, info

    def render(self):
        if self.render_mode == "ansi":
            return ", ".join(f"{k} {v:g}" for k, v in self.engine.info().items())
        return None

    def figure(self, title: str | None = None):
        """Plotly Gantt chart of the operations the twin has processed so far, one colour per
        product. Returns a ``plotly.graph_objects.Figure``."""
        return self.engine.figure(title)
