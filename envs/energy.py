"""``twinopt/Energy-v0``: switch a machine group on / standby / off and release work under a
time-of-use tariff, over the SimPy twin (:class:`EnergyEnv`)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from envs.pickling import PicklesByReplay
from twins.calendar import UNITS_PER_HOUR
from twins.energy import BLOCKED, BUSY, DOWN, IDLE, OFF, SETUP, STANDBY, largest_consumer
from twins.errors import InputError
from twins.loader import load_scenario
from twins.model import Line
from twins.spec import Scenario

COMMANDS = ("on", "standby", "off")
FEATURES = ("tod_sin", "tod_cos", "price_now", "price_next", "price_next_4h", "price_min_left", "time_left",
            "queue", "busy", "idle", "warming", "standby", "off", "output", "released", "missing_vs_capacity",
            "cmd_on", "cmd_standby", "cmd_off")
#: Machine state → observation bucket (busy, idle, warming, standby, off).
_BUCKET = {BUSY: 0, BLOCKED: 0, IDLE: 1, DOWN: 1, SETUP: 2, STANDBY: 3, OFF: 4}
OBS_HIGH = 10.0


class EnergyEnv(PicklesByReplay, gym.Env):
    """On/standby/off and batch release of a station under a time-of-use tariff.

    A scenario whose work enters on command (a ``kind: external`` source; default
    the shipped ``smt_reflow_energy``: the SMT line's 10-slot reflow oven fed from a rack of
    placed boards). An episode is the scenario's horizon (one day from 06:00) cut into decision
    steps of ``step`` (default 15 min). Within it ``target`` units must leave the line; the
    controller decides when the station runs and when boards are released.

    ## Action Space
    ``MultiDiscrete([3, release_levels])``: ``a[0]`` commands the station ``0`` on, ``1`` standby,
    ``2`` off (:meth:`StationRT.set_available`: idle machines switch at once, busy ones after their
    part; from off the next start takes the start-up time, from standby the wake-up time, both at
    setup power); ``a[1] = k`` releases ``round(k / (release_levels - 1) x capacity per step)``
    units, at most what is left of the target, spread evenly over the step.

    ## Observation Space
    ``Box(float32, (19,))``, see :data:`FEATURES`: time of day (sin, cos), price now, next step,
    mean over the next 4 h and the lowest price left in the episode (/ the tariff's top price),
    share of the episode left, units released but not started (/ capacity per step), shares of the
    station's machines busy, idle, warming up, in standby and off, output and releases so far /
    target, units still missing / what the station can still make, and the last command one-hot.

    ## Rewards
    ``-energy cost of the step`` (the whole line, in the tariff's currency) and, at the last step,
    ``- penalty x missing units`` (units of the target that did not leave the line). ``penalty``
    defaults to the scenario's margin per unit (the contribution lost; 6.5 EUR per board for the
    reflow oven, some hundred times the energy cost of a board), else 1.

    ## Starting State
    The line empty at the horizon's start, the station on. ``reset(seed=s)`` seeds ``np_random``,
    which draws the twin's master seed (every twin stream follows from it) and, with
    ``target_range``, the episode's target: same seed, same episode.

    ## Episode End
    Terminates at the end of the horizon (``info`` then adds ``missing``,
    ``episode_energy_cost`` and ``episode_energy_kwh``); never truncated.

    ## Arguments
    * ``scenario``: scenario (or a YAML path, or a shipped scenario's name) with an ``external``
      source.
    * ``station``: the station commanded (default: the one with the largest installed power).
    * ``step``: decision interval in the scenario's time unit (default 15 min); the horizon must
      be a whole number of steps.
    * ``target``: units to make per episode (default: half the station's capacity).
    * ``target_range``: draw the target per episode uniformly from this range of capacity shares
      instead (e.g. ``(0.3, 0.7)``).
    * ``penalty``: cost per missing unit at the end (default: the scenario's margin per unit).
    * ``release_levels``: number of release levels, from nothing to the capacity per step.

    :meth:`figure` returns a plotly figure of the episode so far: mean power per step (kW)
    against the tariff price, and cumulative output against the target.
    """

    metadata = {"render_modes": []}
    observation_space: gym.spaces.Box
    _live = ("line", "station")

    def __init__(self, scenario: str | Path | Scenario = "smt_reflow_energy",
                 station: str | None = None, step: float | None = None, target: int | None = None,
                 target_range: tuple[float, float] | None = None, penalty: float | None = None,
                 release_levels: int = 5, render_mode: str | None = None):
        if render_mode is not None:
            raise InputError(f"EnergyEnv has no render mode {render_mode!r}; use figure()")
        self.render_mode = None
        sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        if not any(s.kind == "external" for s in sc.sources):
            raise InputError(f"{sc.name}: the energy environment releases work itself and needs a "
                             f"'kind: external' source")
        if sc.tariff is None:
            raise InputError(f"{sc.name} has no tariff")
        self.scenario = sc
        names = [s.name for s in sc.stations]
        self.station_name = station or largest_consumer(sc)
        if self.station_name not in names:
            raise InputError(f"unknown station {self.station_name!r} (stations: {', '.join(names)})")
        uph = self.uph = UNITS_PER_HOUR[sc.time_unit]
        self.step_length = 0.25 * uph if step is None else float(step)
        self.horizon = sc.horizon.length
        n = self.horizon / self.step_length
        if self.step_length <= 0 or abs(n - round(n)) > 1e-6:
            raise InputError(f"the horizon ({self.horizon:g} {sc.time_unit}) must be a whole number of steps "
                             f"of {self.step_length:g}")
        self.n_steps = int(round(n))
        spec = sc.station(self.station_name)
        # not None: a product visiting a station has a process time there (the scenario is validated)
        pts = [t for p in sc.products
               if self.station_name in p.route and (t := spec.nominal_process_time(p.name)) is not None]
        self.machines = spec.machines
        self.step_capacity = spec.machines * self.step_length / float(np.mean(pts))
        self.capacity = self.step_capacity * self.n_steps
        if release_levels < 2:
            raise InputError(f"release_levels must be ≥ 2, got {release_levels}")
        self.release_levels = int(release_levels)
        if target is not None and not 0 < target <= self.capacity:
            raise InputError(f"target must be within (0, {self.capacity:.0f}] units, got {target}")
        self.fixed_target, self.target_range = target, target_range
        self.penalty = float(penalty if penalty is not None else (sc.economics.margin_per_unit or 1.0))
        self.products = [p.name for p in sc.products]
        segs = sc.tariff.price_segments(self.horizon + 4 * uph, sc.start_clock, sc.time_unit)
        grid = np.arange(self.n_steps + int(4 * uph / self.step_length) + 1) * self.step_length
        times = np.array([t for t, _ in segs])
        self.step_price = np.array([p for _, p in segs])[np.searchsorted(times, grid, side="right") - 1]
        self.price_scale = max(p for _, p in segs) or 1.0
        self.action_space = gym.spaces.MultiDiscrete([len(COMMANDS), self.release_levels])
        low = np.zeros(len(FEATURES), np.float32)
        low[:2] = -1.0
        self.observation_space = gym.spaces.Box(low, np.full(len(FEATURES), OBS_HIGH, np.float32), dtype=np.float32)
        self.line: Line | None = None

    # -- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._record_reset(options)
        twin_seed = int(self.np_random.integers(2**31 - 1))
        if self.fixed_target is not None:
            self.target = int(self.fixed_target)
        elif self.target_range is not None:
            lo, hi = self.target_range
            self.target = max(1, int(round(self.np_random.uniform(lo, hi) * self.capacity)))
        else:
            self.target = int(round(0.5 * self.capacity))
        self.line = Line(self.scenario, twin_seed, 0)
        self.station = self.line.station(self.station_name)
        self.k, self.released, self.command = 0, 0, 0
        self.last = self.line.snapshot()
        self.history: list[tuple[float, float, float, int]] = []  # (t, kW, price, good)
        return self._observation(), {"target": self.target, "twin_seed": twin_seed}

    def step(self, action):
        self._record_step(action)
        cmd, level = int(action[0]), int(action[1])
        line, st = self._twin(), self.station
        t0 = self.k * self.step_length
        if cmd != self.command:
            if cmd == 0:
                st.set_available(command=True)
            else:
                st.set_available(command=False, command_state=STANDBY if cmd == 1 else OFF)
            self.command = cmd
        n = min(int(round(level / (self.release_levels - 1) * self.step_capacity)), self.target - self.released)
        if n > 0:
            gap = self.step_length / n
            line.env.process(self._releases([t0 + (i + 0.5) * gap for i in range(n)]))
            self.released += n
        self.k += 1
        line.run(self.k * self.step_length)
        snap = line.snapshot()
        cost = sum(b["cost"] - a["cost"] for a, b in zip(self.last["stations"], snap["stations"], strict=True))
        kwh = sum(sum(b["kwh"]) - sum(a["kwh"]) for a, b in zip(self.last["stations"], snap["stations"], strict=True))
        self.last = snap
        self.history.append((t0, kwh * self.uph / self.step_length, float(self.step_price[self.k - 1]), snap["good"]))
        reward = -cost
        terminated = self.k >= self.n_steps
        info = {"energy_cost": cost, "energy_kwh": kwh, "good_units": snap["good"], "released": self.released,
                "target": self.target}
        if terminated:
            missing = max(0, self.target - snap["good"])
            reward -= self.penalty * missing
            total = sum(s["cost"] for s in snap["stations"])
            info.update(missing=missing, episode_energy_cost=total,
                        episode_energy_kwh=sum(sum(s["kwh"]) for s in snap["stations"]))
        return self._observation(), float(reward), terminated, False, info

    def _releases(self, times: list[float]):
        line = self._twin()
        env, products = line.env, self.products
        for i, at in enumerate(times):
            if at > env.now:
                yield env.timeout(at - env.now)
            line.release(products[(self.released + i) % len(products)], 1)

    def _observation(self) -> np.ndarray:
        line, k, sc = self._twin(), self.k, self.scenario
        now = line.env.now
        hour = (sc.start_clock + now / self.uph) % 24.0
        ahead = int(round(4 * self.uph / self.step_length))
        prices = self.step_price
        states = np.zeros(5)
        for m in self.station.machines:
            states[_BUCKET[m.current_state(now)]] += 1
        states /= self.machines
        good = line.good
        left_steps = self.n_steps - k
        missing = max(0, self.target - good)
        obs = np.array([
            math.sin(2 * math.pi * hour / 24), math.cos(2 * math.pi * hour / 24),
            prices[min(k, len(prices) - 1)] / self.price_scale,
            prices[min(k + 1, len(prices) - 1)] / self.price_scale,
            prices[k + 1:k + 1 + ahead].mean() / self.price_scale,
            (prices[k:self.n_steps].min() if left_steps else prices[-1]) / self.price_scale,
            left_steps / self.n_steps,
            (self.released - self.station.started) / self.step_capacity,
            *states,
            good / self.target, self.released / self.target,
            missing / max(left_steps * self.step_capacity, 1.0) if missing else 0.0,
            *(1.0 if self.command == c else 0.0 for c in range(3)),
        ], dtype=np.float32)
        return np.clip(obs, self.observation_space.low, self.observation_space.high)

    def figure(self):
        """Plotly figure of the episode so far: mean power per step (kW) with the tariff price on
        a second axis, and cumulative good output against the target."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        clock = [(self.scenario.start_clock + t / self.uph) for t, *_ in self.history]
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35],
                            specs=[[{"secondary_y": True}], [{}]])
        fig.add_trace(go.Bar(x=clock, y=[h[1] for h in self.history], name="power (kW)", marker_color="#d62728",
                             offset=0, width=self.step_length / self.uph), row=1, col=1)
        fig.add_trace(go.Scatter(x=clock, y=[h[2] for h in self.history], name="price", line_shape="hv",
                                 line_color="#1f77b4"), row=1, col=1, secondary_y=True)
        fig.add_trace(go.Scatter(x=clock, y=[h[3] for h in self.history], name="good units", line_color="#2ca02c"),
                      row=2, col=1)
        fig.add_hline(y=self.target, line_dash="dash", annotation_text="target", row=2, col=1)
        cur = self.scenario.tariff.currency
        fig.update_yaxes(title_text="kW", row=1, col=1)
        fig.update_yaxes(title_text=f"{cur}/kWh", secondary_y=True, row=1, col=1)
        fig.update_yaxes(title_text="units", row=2, col=1)
        fig.update_xaxes(title_text="clock time (h since midnight of day 1)", row=2, col=1)
        fig.update_layout(title=f"{self.scenario.name}: {self.station_name} power vs tariff", bargap=0)
        return fig
