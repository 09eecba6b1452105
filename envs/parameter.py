"""``twinopt/Parameter-v0``: choose process setpoints, the twin runs a decision interval
(:class:`ParameterEnv`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.pickling import PicklesByReplay
from twins.calendar import UNITS_PER_HOUR
from twins.errors import InputError
from twins.kpi import LINE_UNITS, line_kpis, station_kpis
from twins.learned import OutsideSupport
from twins.loader import load_scenario
from twins.model import Line
from twins.spec import Scenario

STATION_FEATURES = ("utilization", "blocked", "starved", "down")
#: draws a random start may take to find setpoints the process models accept
START_DRAWS = 100


def resolve_scenario(scenario: str | Path | Scenario) -> Scenario:
    """A Scenario, a YAML path, or the name of a shipped scenario (``glue_dispensing``)."""
    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


class ParameterEnv(PicklesByReplay, gym.Env):
    """Process setpoints of a line twin: each step applies setpoints for the next ``interval``
    (scenario time units) and returns what happened in it.

    ## Action Space
    ``Box(-1, 1, (n,), float32)``, one entry per process parameter. With
    ``action_mode="absolute"`` (default) it is mapped linearly onto the parameter's ``[min, max]``;
    a parameter's ``max_step`` (rate limit) is enforced: a request further than ``max_step`` from
    the current setpoint is clipped to it, and ``info["clipped"]`` lists the parameters that were
    (with requested and applied values). With ``action_mode="delta"`` the action is a change of
    ``action x max_step`` (x a tenth of the range where no ``max_step`` is set): holding still is
    0, moves respect the rate limit by construction, and only the bounds can clip. Incremental
    setpoint changes are how operators adjust a running process, and they are much easier to
    learn precisely than absolute targets (a Gaussian policy pushed to +-1 turns rate-limited
    absolute targets into an oscillation).

    ## Observation Space
    ``Box(-1, 10, (n + 5 x stations + 4,), float32)``: the current setpoints scaled to [-1, 1];
    then for the last interval, per station, utilization, blocked, starved and down fractions
    and the input buffer's mean queue length relative to its capacity (or to 10 when unlimited);
    then line throughput relative to the nominal bottleneck rate, scrap rate, energy per unit
    relative to the busy-power nominal, and the elapsed fraction of the episode. Scale-free, so
    one policy can serve nearby variants of a line.

    ## Rewards
    The line KPI ``objective`` over the interval (default ``margin``: good units x margin -
    scrapped x scrap cost - energy cost, money), negated with ``minimize=True``, divided by
    ``reward_scale`` (default: the margin per unit x the units the nominal bottleneck makes in
    one interval, so the default setpoints earn about 1 per step). An undefined KPI (NaN) counts 0.

    ## Starting State
    ``reset(seed=...)`` builds a fresh twin whose random streams come from the env's seeded
    generator and runs the scenario's warm-up at the starting setpoints (the scenario's values,
    or uniformly random ones with ``random_start=True``); the first observation describes the
    warm-up.

    ## Episode End
    Truncated after ``episode_steps`` decisions; never terminated.

    ## Arguments
    * ``scenario``: a shipped scenario name (default ``"glue_dispensing"``), a YAML path or a
      :class:`~twins.spec.Scenario` with process parameters.
    * ``interval``: decision interval, scenario time units (default: a 16th of the window after
      warm-up); ``episode_steps``: decisions per episode (default: the window's intervals).
    * ``parameters``: ``station.parameter`` names to control (default: all).
    * ``objective``: a line KPI name (:data:`twins.kpi.LINE_UNITS`, e.g. ``throughput``,
      ``energy_cost``); ``minimize``: reward its negative (for costs).
    * ``reward_scale``: divisor of the reward (default above); ``random_start``: random starting
      setpoints within the bounds that the process models accept (redrawn if a learned model
      refuses them); ``action_mode``: ``"absolute"`` or ``"delta"``.

    :meth:`figure` returns a plotly figure of the setpoints and KPIs over the episode.
    """

    metadata = {"render_modes": []}

    def __init__(self, scenario: str | Path | Scenario = "glue_dispensing", interval: float | None = None,
                 episode_steps: int | None = None, parameters: list[str] | None = None, objective: str = "margin",
                 minimize: bool = False, reward_scale: float | None = None, random_start: bool = False,
                 action_mode: str = "absolute"):
        self.scenario = resolve_scenario(scenario)
        sc = self.scenario
        self.params = [(st.name, p) for st in sc.stations for p in st.parameters
                       if parameters is None or f"{st.name}.{p.name}" in parameters]
        if not self.params:
            raise InputError(f"scenario {sc.name!r} has no process parameters"
                             + (f" named {', '.join(parameters)}" if parameters else ""))
        if parameters is not None:
            known = {f"{s}.{p.name}" for s, p in self.params}
            unknown = [p for p in parameters if p not in known]
            if unknown:
                raise InputError(f"unknown parameter(s) {', '.join(unknown)} (use station.parameter)")
        window = sc.horizon.length - sc.horizon.warmup
        self.interval = float(interval or window / 16)
        self.episode_steps = int(episode_steps or max(1, round(window / self.interval)))
        if self.interval <= 0 or self.episode_steps < 1:
            raise InputError("interval and episode_steps must be positive")
        if action_mode not in ("absolute", "delta"):
            raise InputError(f"action_mode must be absolute or delta, got {action_mode!r}")
        self.action_mode = action_mode
        if objective not in LINE_UNITS:
            raise InputError(f"unknown objective {objective!r}; choose a line KPI: {', '.join(LINE_UNITS)}")
        self.objective, self.sign = objective, (-1.0 if minimize else 1.0)
        self.random_start = random_start
        self.low = np.array([p.min for _, p in self.params])
        self.high = np.array([p.max for _, p in self.params])
        self.max_step = np.array([p.max_step if p.max_step else np.inf for _, p in self.params])
        self.delta_step = np.where(np.isfinite(self.max_step), self.max_step, (self.high - self.low) / 10)
        self.start = np.array([p.setpoint for _, p in self.params])
        # nominal bottleneck: units per time unit at nominal process times
        rates = []
        for st in sc.stations:
            means = st.nominal_process_times()
            if means:
                rates.append(st.machines / max(max(means), 1e-9))
        self.nominal_rate = min(rates)
        margin = abs(sc.economics.margin_per_unit) or 1.0
        self.reward_scale = float(reward_scale or margin * self.nominal_rate * self.interval)
        busy = [st.energy.power_kw.busy for st in sc.stations if st.energy] or [1.0]
        self.nominal_kwh_per_unit = max(sum(busy) / self.nominal_rate / UNITS_PER_HOUR[sc.time_unit], 1e-9)
        n = len(self.params)
        obs_size = n + len(STATION_FEATURES) * len(sc.stations) + len(sc.stations) + 4
        self.action_space = spaces.Box(-1.0, 1.0, (n,), dtype=np.float32)
        self.observation_space = spaces.Box(-1.0, 10.0, (obs_size,), dtype=np.float32)
        self.line: Line | None = None
        self.history: list[dict[str, Any]] = []

    # -- helpers --------------------------------------------------------------------------------
    def to_action(self, setpoints: np.ndarray) -> np.ndarray:
        """The action that requests ``setpoints`` (in delta mode: the largest allowed step towards them)."""
        if self.action_mode == "delta":
            return np.clip((np.asarray(setpoints, float) - self.current) / self.delta_step, -1, 1).astype(np.float32)
        return self.scaled(setpoints)

    def scaled(self, setpoints) -> np.ndarray:
        """Setpoints scaled to [-1, 1] over their bounds."""
        return (2 * (np.asarray(setpoints, float) - self.low) / (self.high - self.low) - 1).astype(np.float32)

    def _apply(self, values: np.ndarray) -> None:
        by_station: dict[str, dict[str, float]] = {}
        for (station, p), v in zip(self.params, values, strict=True):
            by_station.setdefault(station, {})[p.name] = float(v)
        line = self._twin()
        for station, vals in by_station.items():
            line.set_parameters(station, vals)

    def _observe(self, kpis: dict[str, float], stations: dict[str, dict[str, float]]) -> np.ndarray:
        feats = list(self.scaled(self.current))
        for st in self.scenario.stations:
            s = stations[st.name]
            feats += [0.0 if np.isnan(s[k]) else s[k] for k in STATION_FEATURES]
            cap = st.buffer if st.buffer else 10.0
            feats.append(min(s["queue_length"] / cap, 10.0) if st.buffer != 0 else 0.0)
        kwh_unit = kpis["energy_kwh_per_unit"]
        feats += [kpis["throughput"] / self.nominal_rate, kpis["scrap_rate"],
                  min((0.0 if np.isnan(kwh_unit) else kwh_unit) / self.nominal_kwh_per_unit, 10.0),
                  self.steps / self.episode_steps]
        return np.nan_to_num(np.asarray(feats, dtype=np.float32), nan=0.0, posinf=10.0, neginf=-10.0)

    # -- gymnasium API --------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._record_reset(options)
        twin_seed = int(self.np_random.integers(2**31 - 1))
        self.line = Line(self.scenario, seed=twin_seed, replication=0)
        self.steps = 0
        self.current = self._starting_setpoints()
        start = self.line.snapshot()
        self.line.run(self.scenario.horizon.warmup)
        self.s_last = self.line.snapshot()
        # the first observation describes the warm-up (all zeros without one)
        kpis, stations = line_kpis(self.line, start, self.s_last), station_kpis(self.line, start, self.s_last)
        self.history = [{"t": self.line.env.now, "setpoints": self.current.copy(), "kpis": kpis, "reward": None}]
        return self._observe(kpis, stations), {"setpoints": self._named(self.current), "twin_seed": twin_seed}

    def _starting_setpoints(self) -> np.ndarray:
        """Today's setpoints, or with ``random_start`` a uniform draw within the bounds that the
        process models accept (a learned model refuses points away from its data: redrawn, up to
        :data:`START_DRAWS` times, then today's setpoints), applied to the twin."""
        for _ in range(START_DRAWS if self.random_start else 0):
            x = self.np_random.uniform(self.low, self.high)
            try:
                self._apply(x)
            except OutsideSupport:
                continue
            return x
        self._apply(self.start)
        return self.start.copy()

    def step(self, action):
        if self.line is None:
            raise RuntimeError("call reset() before step()")
        self._record_step(action)
        a = np.clip(np.asarray(action, dtype=float).reshape(self.low.shape), -1.0, 1.0)
        if self.action_mode == "delta":
            requested = self.current + a * self.delta_step
        else:
            requested = self.low + (a + 1.0) / 2.0 * (self.high - self.low)
        applied = np.clip(requested, self.current - self.max_step, self.current + self.max_step)
        applied = np.clip(applied, self.low, self.high)
        clipped = {f"{s}.{p.name}": {"requested": float(r), "applied": float(v)}
                   for (s, p), r, v in zip(self.params, requested, applied, strict=True) if abs(r - v) > 1e-9}
        try:
            self._apply(applied)
        except OutsideSupport as err:  # a learned process model refuses them: infeasible, nothing changes
            refused = str(err)
            applied = self.current
        else:
            refused = None
        self.current = applied
        s_prev = self.s_last
        self.line.run(self.line.env.now + self.interval)
        self.s_last = self.line.snapshot()
        kpis, stations = line_kpis(self.line, s_prev, self.s_last), station_kpis(self.line, s_prev, self.s_last)
        value = kpis.get(self.objective, float("nan"))  # order KPIs appear with the first order
        reward = self.sign * (0.0 if np.isnan(value) else value) / self.reward_scale
        self.steps += 1
        truncated = self.steps >= self.episode_steps
        self.history.append({"t": self.line.env.now, "setpoints": applied.copy(), "kpis": kpis, "reward": reward})
        info = {"setpoints": self._named(applied), "clipped": clipped, "refused": refused, self.objective: value,
                "throughput": kpis["throughput"], "scrap_rate": kpis["scrap_rate"],
                "energy_cost": kpis["energy_cost"]}
        return self._observe(kpis, stations), float(reward), False, truncated, info

    def _named(self, values) -> dict[str, float]:
        return {f"{s}.{p.name}": float(v) for (s, p), v in zip(self.params, values, strict=True)}

    def figure(self):
        """Plotly figure: setpoints (top) and objective/throughput/scrap (bottom) over the episode."""
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                            subplot_titles=("setpoints (share of range)", "interval KPIs"))
        t = [h["t"] for h in self.history]
        for i, (s, p) in enumerate(self.params):
            y = [(h["setpoints"][i] - p.min) / (p.max - p.min) for h in self.history]
            fig.add_scatter(x=t, y=y, name=f"{s}.{p.name} [{p.min:g}–{p.max:g} {p.unit}]", line_shape="hv",
                            row=1, col=1)
        fig.add_scatter(x=t[1:], y=[h["reward"] for h in self.history[1:]], name=f"reward ({self.objective})",
                        row=2, col=1)
        fig.add_scatter(x=t, y=[h["kpis"]["throughput"] / self.nominal_rate for h in self.history],
                        name="throughput / nominal", row=2, col=1)
        fig.add_scatter(x=t, y=[h["kpis"]["scrap_rate"] for h in self.history], name="scrap rate", row=2, col=1)
        fig.update_layout(title=f"{self.scenario.name}: setpoints and KPIs per decision interval",
                          template="plotly_white")
        fig.update_xaxes(title_text=f"time [{self.scenario.time_unit}]", row=2, col=1)
        return fig
