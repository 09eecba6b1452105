"""``twinopt/Dispatch-v0``: choose which waiting job a freed machine starts next (job shop).

Problem
    A static job shop in OR-Library form (``jobs[j][k] = (machine, duration)``), minimise the
    makespan. Either a fixed instance (``instance="ta01"``, a file path or a
    :class:`~twins.jobshop.instances.JobShopInstance`) or, with ``instance=None``, a fresh random
    instance of the size family ``n_jobs x n_machines`` at every reset (Taillard-style: integer
    durations uniform on ``durations``, random machine orders), drawn from the env's seeded
    ``np_random`` so ``reset(seed=s)`` reproduces the episode.

Decisions (see :mod:`envs.jobshop_engine`)
    Each step dispatches one operation: the next operation of the chosen job is appended to its
    machine at its earliest start. With ``mode="active"`` (default) the candidates are the
    Giffler-Thompson conflict set of the machine that frees first, so every episode yields an
    active schedule and an optimal one is reachable; ``mode="non_delay"`` gives non-delay
    schedules. By default every step dispatches exactly one operation (an episode has
    ``n_operations`` steps, forced ones included); with ``skip_forced=True`` decisions with a
    single candidate are taken inside the step, so the agent only sees real choices (what the
    shipped policy is trained with).

Action
    ``Discrete(n_jobs)``: a job index. :meth:`DispatchEnv.action_masks` (sb3-contrib MaskablePPO
    convention; also ``info["action_mask"]``) marks the candidates. An action outside the mask is
    replaced by the lowest-index candidate and flagged with ``info["invalid_action"] = True``,
    so unmasked agents and env checkers still run.

Observation
    ``Box(float32, shape=(n_jobs * N_FEATURES,))``: a job-major flattening of an
    ``(n_jobs, N_FEATURES)`` matrix (``obs.reshape(n_jobs, -1)`` recovers it), one row per job
    whatever the instance, so one policy serves a whole size family; the columns are :data:`envs.jobshop_engine.FEATURES`
    (candidate flag, next-operation duration, wait until it could start, job/machine ready times,
    remaining work and operations, job and machine slack to the makespan lower bound, the
    machine's queue, the follow-up machine's availability and load, the delay a choice imposes on
    the other candidates, the lower-bound increase it causes, and global progress). Times are
    relative to the decision time and scaled by the instance's mean duration, which makes the
    features scale-free.

Reward
    Dense: ``-(LB_after - LB_before) / S`` where ``LB`` is the makespan lower bound of the partial
    schedule, ``max(max_j est_j + remaining work_j, max_m ready_m + unscheduled load_m)``, and
    ``S`` the instance's mean operation duration. LB starts at the instance's trivial bound and
    ends at the makespan, so an episode's return is ``-(makespan - trivial LB) / S``.

Rendering
    ``render_mode="ansi"`` returns the machine sequences as text; :meth:`DispatchEnv.figure`
    returns a plotly Gantt chart; :meth:`DispatchEnv.schedule` returns the (partial) schedule as a
    :class:`~twins.jobshop.schedule.Schedule` that ``check_schedule`` can verify.

Dynamic mode (``scenario=…``)
    With ``scenario="dynamic_jobshop"`` (a shipped name, a YAML path or a Scenario whose stations
    have ``dispatch: external``) the decisions come from the SimPy twin instead: orders arrive at
    random with due dates, machines break down, and whenever a freed machine has two or more
    parts waiting the agent chooses one. The ``slots`` oldest waiting parts are the rows of the
    observation (columns :data:`envs.dynamic_engine.FEATURES`), the action is a slot, the mask
    marks occupied slots, and the reward is ``-(tardiness accrued until the next decision) / S``
    (S: mean nominal process time), so an episode's return is minus the total tardiness in units
    of S. Each ``reset(seed=…)`` seeds the twin's random streams from the env's generator. See
    :mod:`envs.dynamic_engine`.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs import dynamic_engine
from envs.jobshop_engine import FEATURES, MODES, N_FEATURES, JobShopEngine
from twins.errors import InputError
from twins.jobshop.gantt import gantt_figure
from twins.jobshop.generate import random_instance
from twins.jobshop.instances import JobShopInstance, load_instance
from twins.jobshop.schedule import Schedule, ScheduledOperation

#: Observation bound: every feature is a time or work ratio at most the number of operations.
OBS_BOUND = 1e6


class DispatchEnv(gym.Env):
    """Job-shop dispatching with masked discrete actions (see the module docstring)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, instance: str | JobShopInstance | None = None, n_jobs: int = 15,
                 n_machines: int = 15, durations: tuple[int, int] = (1, 99), mode: str = "active",
                 skip_forced: bool = False, render_mode: str | None = None, scenario=None, slots: int = 10):
        if mode not in MODES:
            raise InputError(f"unknown dispatch mode {mode!r}; choose one of {', '.join(MODES)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise InputError(f"unknown render mode {render_mode!r}; choose one of {self.metadata['render_modes']}")
        self.mode, self.skip_forced, self.render_mode = mode, bool(skip_forced), render_mode
        self.durations = (int(durations[0]), int(durations[1]))
        self._scenario = None
        if scenario is not None:  # dynamic mode: decisions from the twin
            from envs.parameter import resolve_scenario

            self._scenario = resolve_scenario(scenario)
            self.engine = dynamic_engine.TwinDispatchEngine(self._scenario, slots)  # validates the scenario
            self.n_jobs, self.n_machines = int(slots), len(self._scenario.stations)
            self.action_space = gym.spaces.Discrete(self.n_jobs)
            self.observation_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND,
                                                    shape=(self.n_jobs * dynamic_engine.N_FEATURES,),
                                                    dtype=np.float32)
            self.feature_names = dynamic_engine.FEATURES
            self._pending = 0.0
            return
        self._fixed = _as_instance(instance) if instance is not None else None
        if self._fixed is not None:
            n_jobs, n_machines = self._fixed.n_jobs, self._fixed.n_machines
        elif not (n_jobs > 0 and n_machines > 0 and 0 <= self.durations[0] <= self.durations[1]):
            raise InputError(f"bad random family {n_jobs}x{n_machines} with durations {durations}")
        self.n_jobs, self.n_machines = int(n_jobs), int(n_machines)
        self.action_space = gym.spaces.Discrete(self.n_jobs)
        self.observation_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, shape=(self.n_jobs * N_FEATURES,),
                                                dtype=np.float32)
        self.feature_names = FEATURES
        self.engine: JobShopEngine | None = None
        self._pending = 0.0  # LB increase of forced dispatches made by reset(), paid in step 1

    # -- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode. ``options={"instance": name | JobShopInstance}`` switches to that
        instance (same ``n_jobs``) for this and later episodes."""
        super().reset(seed=seed)
        if self._scenario is not None:
            self.engine.reset(int(self.np_random.integers(2**31 - 1)))
            return self.engine.observation().reshape(-1), {"action_mask": self.engine.mask, **self.engine.info()}
        if options and options.get("instance") is not None:
            inst = _as_instance(options["instance"])
            if inst.n_jobs != self.n_jobs:
                raise InputError(f"instance {inst.name} has {inst.n_jobs} jobs; this env observes {self.n_jobs}")
            self._fixed = inst
        self.engine = self._make_engine()
        reward = self._skip(leave_one=True)
        info = {"action_mask": self.engine.mask, "makespan_lb": self.engine.makespan_lb}
        self._pending = reward
        return self.engine.observation().reshape(-1), info

    def step(self, action):
        eng = self.engine
        a = int(action)
        invalid = not (0 <= a < self.n_jobs and eng.mask[a])
        if invalid:
            a = int(eng.mask.argmax())
        if self._scenario is not None:
            cost = eng.dispatch(a) if not eng.done else 0.0
            info = {"action_mask": eng.mask, **eng.info()}
            if invalid:
                info["invalid_action"] = True
            if eng.done:
                info["tardiness"] = info["tardiness_so_far"]
            return eng.observation().reshape(-1), -cost / eng.scale, eng.done, False, info
        increase = eng.dispatch(a) + self._skip() + self._pending
        self._pending = 0.0
        info = {"action_mask": eng.mask, "makespan_lb": eng.makespan_lb}
        if invalid:
            info["invalid_action"] = True
        if eng.done:
            info["makespan"] = eng.makespan_lb
        return eng.observation().reshape(-1), -increase / eng.scale, eng.done, False, info

    def action_masks(self) -> np.ndarray:
        """Bool array (n_jobs,): jobs that may be dispatched now (all False once done)."""
        return self.engine.mask

    def render(self):
        if self.render_mode == "ansi" and self._scenario is not None:
            return ", ".join(f"{k} {v:g}" for k, v in self.engine.info().items())
        if self.render_mode == "ansi":
            return self._ansi()
        return None

    # -- results ------------------------------------------------------------------------------
    @property
    def instance(self) -> JobShopInstance | None:
        """The instance of the current episode (None before the first reset)."""
        return self.engine.instance if self.engine is not None else None

    def schedule(self, solver: str = "dispatch-env") -> Schedule:
        """The operations dispatched so far as a :class:`Schedule` (complete once terminated)."""
        if self._scenario is not None:
            raise InputError("schedule() describes static instances; in dynamic mode see figure()")
        eng = self.engine
        ops = [ScheduledOperation(*row) for row in eng.schedule_rows()]
        status = "heuristic" if eng.done else "partial"
        return Schedule(eng.instance.name, ops, solver=solver, lower_bound=eng.instance.trivial_lower_bound,
                        status=status)

    def figure(self, title: str | None = None):
        """Plotly Gantt chart of the current (partial) schedule: one row per machine, one colour
        per job, hover shows job/op/start/end. Returns a ``plotly.graph_objects.Figure``.
        In dynamic mode: the twin's operations so far, one colour per product."""
        if self._scenario is not None:
            return self.engine.figure(title)
        return gantt_figure(self.schedule(), title=title)

    # -- internals ----------------------------------------------------------------------------
    def _make_engine(self) -> JobShopEngine:
        if self._fixed is not None:
            if self.engine is not None and self.engine.instance is self._fixed:
                self.engine.reset()
                return self.engine
            return JobShopEngine(self._fixed, self.mode)
        inst = random_instance(self.np_random, self.n_jobs, self.n_machines, self.durations)
        return JobShopEngine(inst, self.mode)

    def _skip(self, leave_one: bool = False) -> float:
        """Take single-candidate decisions automatically; returns the LB increase they caused.
        ``leave_one`` keeps the last operation for the agent (an episode never ends at reset)."""
        eng, increase = self.engine, 0.0
        last = eng.n_ops - 1 if leave_one else eng.n_ops
        while self.skip_forced and eng.n_scheduled < last and np.count_nonzero(eng.mask) == 1:
            increase += eng.dispatch(int(eng.mask.argmax()))
        return increase

    def _ansi(self) -> str:
        sched = self.schedule()
        lines = [f"{sched.instance}: {len(sched.operations)}/{self.engine.n_ops} operations, "
                 f"makespan {sched.makespan:g}"]
        by_m: dict[int, list[ScheduledOperation]] = {}
        for o in sorted(sched.operations):
            by_m.setdefault(o.machine, []).append(o)
        for m in range(self.engine.n_machines):
            lines.append(f"M{m:<3}" + " ".join(f"J{o.job}@{o.start:g}" for o in by_m.get(m, [])))
        return "\n".join(lines)


def _as_instance(instance: str | JobShopInstance) -> JobShopInstance:
    if isinstance(instance, JobShopInstance):
        return instance
    inst = load_instance(instance, fmt="orlib")
    if inst.n_operations == 0:
        raise InputError(f"instance {inst.name} has no operations")
    return inst
