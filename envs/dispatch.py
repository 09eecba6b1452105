"""``twinopt/Dispatch-v0``: choose which waiting job a freed machine starts next, on a static job
shop (:class:`DispatchEnv`); and :class:`BaseDispatchEnv`, what it shares with the dynamic twin
env :class:`envs.dynamic_dispatch.DynamicDispatchEnv` (``twinopt/DynamicDispatch-v0``).

The decisions come from an engine (:class:`twins.jobshop.dispatching.DispatchEngine`): here
:class:`twins.jobshop.engine.JobShopEngine`, whose module explains the candidate sets.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from twins.errors import InputError
from twins.jobshop.dispatching import DispatchEngine
from twins.jobshop.engine import FEATURES, MODES, JobShopEngine
from twins.jobshop.gantt import gantt_figure
from twins.jobshop.generate import random_instance
from twins.jobshop.instances import JobShopInstance, read_orlib, resolve_instance_path
from twins.jobshop.schedule import Schedule, ScheduledOperation

#: Observation bound: every feature is a time or work ratio at most the number of operations.
OBS_BOUND = 1e6


class BaseDispatchEnv(gym.Env):
    """Masked discrete dispatching over a :class:`~twins.jobshop.dispatching.DispatchEngine`: one
    observation row and one action per engine row (job or slot). Subclasses build the engine and
    write ``reset`` and ``step``."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    engine: DispatchEngine | None

    def __init__(self, rows: int, features: tuple[str, ...], render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise InputError(f"unknown render mode {render_mode!r}; choose one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.n_jobs = int(rows)
        self.feature_names = features
        self.action_space = gym.spaces.Discrete(self.n_jobs)
        self.observation_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, shape=(self.n_jobs * len(features),),
                                                dtype=np.float32)

    def _legal(self, action: Any, mask: np.ndarray) -> tuple[int, bool]:
        """The row to dispatch and whether ``action`` was outside the mask: such an action is
        replaced by the lowest-index candidate (and flagged in ``info``), so unmasked agents run."""
        a = int(action)
        if 0 <= a < self.n_jobs and mask[a]:
            return a, False
        return int(mask.argmax()), True

    def action_masks(self) -> np.ndarray:
        """Bool array (rows,): rows that may be dispatched now (all False once done)."""
        if self.engine is None:
            raise RuntimeError("call reset() first")
        return self.engine.mask


class DispatchEnv(BaseDispatchEnv):
    """Job-shop dispatching: each step, the freed machine starts one of the waiting jobs.

    A static job shop in OR-Library form (``jobs[j][k] = (machine, duration)``), minimise the
    makespan. Each step dispatches one operation: the chosen job's next operation is appended to
    its machine at its earliest start (:mod:`twins.jobshop.engine`). With ``mode="active"`` the
    candidates are the Giffler-Thompson conflict set of the machine that frees first (every
    episode yields an active schedule, an optimal one is reachable); ``mode="non_delay"`` gives
    non-delay schedules.

    ## Action Space
    ``Discrete(n_jobs)``: a job index. :meth:`action_masks` (sb3-contrib MaskablePPO convention;
    also ``info["action_mask"]``) marks the candidates. An action outside the mask is replaced by
    the lowest-index candidate and flagged with ``info["invalid_action"] = True``.

    ## Observation Space
    ``Box(-1e6, 1e6, (n_jobs * N_FEATURES,), float32)``: a job-major flattening of an
    ``(n_jobs, N_FEATURES)`` matrix (``obs.reshape(n_jobs, -1)`` recovers it), one row per job
    whatever the instance, so one policy serves a whole size family. The columns are
    :data:`twins.jobshop.engine.FEATURES` (candidate flag, next-operation duration, wait until it
    could start, job/machine ready times, remaining work and operations, job and machine slack to
    the makespan lower bound, the machine's queue, the follow-up machine's availability and load,
    the delay a choice imposes on the other candidates, the lower-bound increase it causes, and
    global progress). Times are relative to the decision time and scaled by the instance's mean
    duration, which makes the features scale-free. Finished jobs have all-zero rows.

    ## Rewards
    Dense: ``-(LB_after - LB_before) / S`` where ``LB`` is the makespan lower bound of the partial
    schedule, ``max(max_j est_j + remaining work_j, max_m ready_m + unscheduled load_m)``, and
    ``S`` the instance's mean operation duration. LB starts at the instance's trivial bound and
    ends at the makespan, so an episode's return is ``-(makespan - trivial LB) / S``.

    ## Starting State
    An empty schedule of the fixed instance, or with ``instance=None`` a fresh random instance of
    the size family ``n_jobs x n_machines`` (Taillard-style: integer durations uniform on
    ``durations``, random machine orders) drawn from the env's seeded ``np_random``, so
    ``reset(seed=s)`` reproduces the episode. ``reset(options={"instance": …})`` switches to that
    instance (same ``n_jobs``) for this and later episodes.

    ## Episode End
    Terminates when every operation is scheduled (``info["makespan"]`` then holds the makespan);
    never truncated. An episode has ``n_operations`` steps, or with ``skip_forced=True`` one step
    per decision with two or more candidates (single-candidate decisions are taken inside the
    step; what the shipped policy is trained with).

    ## Arguments
    * ``instance``: an instance name (``"ta01"``), an OR-Library file path or a
      :class:`~twins.jobshop.instances.JobShopInstance`; ``None`` (default) for random instances.
    * ``n_jobs``, ``n_machines``, ``durations``: the random size family (default 15 x 15, 1-99).
    * ``mode``: ``"active"`` (default) or ``"non_delay"`` candidate sets.
    * ``skip_forced``: take single-candidate decisions inside the step (default False).
    * ``render_mode``: ``"ansi"`` returns the machine sequences as text. :meth:`figure` returns
      a plotly Gantt chart, :meth:`schedule` the (partial) schedule as a
      :class:`~twins.jobshop.schedule.Schedule` that ``check_schedule`` can verify.
    """

    engine: JobShopEngine | None

    def __init__(self, instance: str | JobShopInstance | None = None, n_jobs: int = 15,
                 n_machines: int = 15, durations: tuple[int, int] = (1, 99), mode: str = "active",
                 skip_forced: bool = False, render_mode: str | None = None):
        if mode not in MODES:
            raise InputError(f"unknown dispatch mode {mode!r}; choose one of {', '.join(MODES)}")
        self.mode, self.skip_forced = mode, bool(skip_forced)
        self.durations = (int(durations[0]), int(durations[1]))
        self._fixed = _as_instance(instance) if instance is not None else None
        if self._fixed is not None:
            n_jobs, n_machines = self._fixed.n_jobs, self._fixed.n_machines
        elif not (n_jobs > 0 and n_machines > 0 and 0 <= self.durations[0] <= self.durations[1]):
            raise InputError(f"bad random family {n_jobs}x{n_machines} with durations {durations}")
        super().__init__(n_jobs, FEATURES, render_mode)
        self.n_machines = int(n_machines)
        self.engine = None
        self._pending = 0.0  # LB increase of forced dispatches made by reset(), paid in step 1

    # -- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and options.get("instance") is not None:
            inst = _as_instance(options["instance"])
            if inst.n_jobs != self.n_jobs:
                raise InputError(f"instance {inst.name} has {inst.n_jobs} jobs; this env observes {self.n_jobs}")
            self._fixed = inst
        self.engine = self._make_engine()
        self._pending = self._skip(leave_one=True)
        info = {"action_mask": self.engine.mask, "makespan_lb": self.engine.makespan_lb}
        return self.engine.observation().reshape(-1), info

    def step(self, action):
        eng = self.engine
        a, invalid = self._legal(action, eng.mask)
        increase = eng.dispatch(a) + self._skip() + self._pending
        self._pending = 0.0
        info = {"action_mask": eng.mask, "makespan_lb": eng.makespan_lb}
        if invalid:
            info["invalid_action"] = True
        if eng.done:
            info["makespan"] = eng.makespan_lb
        return eng.observation().reshape(-1), -increase / eng.scale, eng.done, False, info

    def render(self):
        return self._ansi() if self.render_mode == "ansi" else None

    # -- results ------------------------------------------------------------------------------
    @property
    def instance(self) -> JobShopInstance | None:
        """The instance of the current episode (None before the first reset)."""
        return self.engine.instance if self.engine is not None else None

    def schedule(self, solver: str = "dispatch-env") -> Schedule:
        """The operations dispatched so far as a :class:`Schedule` (complete once terminated)."""
        eng = self._engine()
        ops = [ScheduledOperation(*row) for row in eng.schedule_rows()]
        status = "heuristic" if eng.done else "partial"
        return Schedule(eng.instance.name, ops, solver=solver, lower_bound=eng.instance.trivial_lower_bound,
                        status=status)

    def figure(self, title: str | None = None):
        """Plotly Gantt chart of the current (partial) schedule: one row per machine, one colour
        per job, hover shows job/op/start/end. Returns a ``plotly.graph_objects.Figure``."""
        return gantt_figure(self.schedule(), title=title)

    # -- internals ----------------------------------------------------------------------------
    def _engine(self) -> JobShopEngine:
        """The current episode's engine; RuntimeError before the first reset."""
        if self.engine is None:
            raise RuntimeError("call reset() first")
        return self.engine

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
        eng, increase = self._engine(), 0.0
        last = eng.n_ops - 1 if leave_one else eng.n_ops
        while self.skip_forced and eng.n_scheduled < last and np.count_nonzero(eng.mask) == 1:
            increase += eng.dispatch(int(eng.mask.argmax()))
        return increase

    def _ansi(self) -> str:
        sched, eng = self.schedule(), self._engine()
        lines = [f"{sched.instance}: {len(sched.operations)}/{eng.n_ops} operations, "
                 f"makespan {sched.makespan:g}"]
        by_m: dict[int, list[ScheduledOperation]] = {}
        for o in sorted(sched.operations):
            by_m.setdefault(o.machine, []).append(o)
        for m in range(eng.n_machines):
            lines.append(f"M{m:<3}" + " ".join(f"J{o.job}@{o.start:g}" for o in by_m.get(m, [])))
        return "\n".join(lines)


def _as_instance(instance: str | JobShopInstance) -> JobShopInstance:
    if isinstance(instance, JobShopInstance):
        return instance
    inst = read_orlib(resolve_instance_path(instance, "orlib"))
    if inst.n_operations == 0:
        raise InputError(f"instance {inst.name} has no operations")
    return inst
