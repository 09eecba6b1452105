"""The static job-shop dispatching engine behind :class:`envs.dispatch.DispatchEnv` and the
dispatch rules of ``optimizers.heuristics.rules`` (one engine, so a rule and a policy see exactly
the same decisions).

It implements :class:`twins.jobshop.dispatching.DispatchEngine` with one row per job
(``dispatch(job)`` returns the increase of the makespan lower bound, time units), plus what only
a static instance has: ``reset()`` (empty schedule, first decision prepared), ``makespan_lb``,
``next_op``, ``copy()`` and ``schedule_rows()``. A static instance has no due dates of its own;
``due`` gives each job the TWK due date ``DUE_DATE_FACTOR x its total work`` (Baker 1984, all
jobs released at 0), which is what the EDD rule orders by.

Every dispatch *appends* the job's next operation to its machine at its earliest start
``est = max(job ready, machine ready)`` (no insertion into earlier gaps).

Candidate sets (``mode``):

* ``"active"`` (default, Giffler & Thompson 1960): among unscheduled next operations take the one
  with the earliest completion ``ect* = min(est + p)``, on machine ``m*``; the candidates are the
  jobs whose next operation is on ``m*`` and could start before ``ect*``. With positive durations
  every sequence of choices gives an *active* schedule, and every active schedule (hence an
  optimal one) is reachable.
* ``"non_delay"``: the machine ``m*`` that can start something earliest (``s* = min est``);
  candidates are the jobs whose next operation is on ``m*`` and can start at ``s*``. Smaller,
  greedier sets (a machine is never left idle while a job waits for it); optimal schedules may be
  unreachable.

In both modes ``m*`` is "the freed machine" of the environment's story: the decision is which
waiting job it starts next.
"""
from __future__ import annotations

import numpy as np

from twins.errors import InputError
from twins.jobshop.instances import JobShopInstance

#: Column names of :meth:`JobShopEngine.observation`, one row per job. Times are relative to the
#: decision time ``T`` (earliest start on the freed machine) and divided by ``S`` (the instance's
#: mean operation duration). Work sums are divided by their own natural scale, so that the same
#: weights see the same ranges at every size: a job's work by ``H = S * n_machines`` (a job has
#: one operation per machine), a machine's work by ``HM = S * n_jobs`` (one operation per job),
#: distances to the makespan bound by ``HL = S * max(n_jobs, n_machines)``; on square instances
#: the three are equal (the 15x15 policy was trained with all three = H). ``LB`` is the current
#: makespan lower bound. "next op" is the job's first unscheduled operation, on machine
#: ``m``; "follow-up" is the operation after it, on machine ``m2``. Finished jobs have all-zero rows.
FEATURES = (
    "candidate",          # 1 if the job may be dispatched now (== action mask)
    "alive",              # 1 while the job has unscheduled operations
    "p",                  # next op duration / S
    "wait",               # (est - T) / S: how long after T the next op could start
    "job_ready",          # (job ready - T) / S; negative = the job has been waiting
    "machine_ready",      # (ready time of m - T) / S
    "remaining_work",     # job's unscheduled work (incl. next op) / H
    "remaining_ops",      # job's unscheduled operations / n_machines
    "job_slack",          # (est + remaining work - LB) / HL; 0 = the job is critical
    "machine_load",       # unscheduled work on m / HM
    "machine_slack",      # (ready(m) + load(m) - LB) / HL
    "queue_jobs",         # jobs whose next op is on m / n_jobs
    "queue_work",         # their next ops' work / HM
    "p_follow",           # follow-up op duration / S (0 if none)
    "follow_machine_gap",  # (ready(m2) - (est + p)) / S: would m2 be busy when the op ends
    "follow_machine_load",  # unscheduled work on m2 / HM
    "follow_queue_jobs",  # jobs whose next op is on m2 / n_jobs
    "delay_caused",       # candidates only: sum of start delays imposed on the other candidates / S
    "lb_increase",        # candidates only: makespan-LB increase if dispatched now / S
    "progress",           # (global) scheduled operations / all operations
    "n_candidates",       # (global) candidates / n_jobs
    "horizon",            # (global) (LB - T) / HL
    "lb_growth",          # (global) LB / initial LB - 1
)
N_FEATURES = len(FEATURES)
MODES = ("active", "non_delay")
#: TWK due dates of a static instance: due_j = DUE_DATE_FACTOR x total work of job j
DUE_DATE_FACTOR = 1.5
_BIG = 1e9  # stands in for "never" in padded tables (finite, so 0 * _BIG == 0)


class JobShopEngine:
    """Dispatching state of one static job-shop instance (see the module docstring).

    Static per-instance tables are built once in ``__init__``; ``reset()`` only clears the
    dynamic state, so re-running the same instance is cheap.
    """

    #: conflict sets up to this size get their lookahead features in plain Python (faster there)
    python_lookahead_max = 6

    def __init__(self, instance: JobShopInstance, mode: str = "active"):
        if mode not in MODES:
            raise InputError(f"unknown candidate mode {mode!r}; choose one of {', '.join(MODES)}")
        self.instance, self.mode = instance, mode
        n, M = instance.n_jobs, instance.n_machines
        K = max(len(ops) for ops in instance.jobs)
        self.n_jobs, self.n_machines, self.n_ops = n, M, instance.n_operations
        self.op_count = np.array([len(ops) for ops in instance.jobs])
        # machine row M = "job finished" (never a candidate), row M + 1 = "no follow-up op"
        op_m = np.full((n, K + 1), M, dtype=np.intp)
        follow_m = np.full((n, K + 1), M + 1, dtype=np.intp)
        op_p = np.full((n, K + 1), _BIG)
        tab = np.zeros((n, K + 1, 4))  # p, remaining work, remaining ops, follow-up p
        for j, ops in enumerate(instance.jobs):
            work = 0.0
            for k in range(len(ops) - 1, -1, -1):
                m, d = ops[k]
                work += d
                op_m[j, k], op_p[j, k] = m, d
                tab[j, k] = (d, work, len(ops) - k, ops[k + 1][1] if k + 1 < len(ops) else 0.0)
                if k + 1 < len(ops):
                    follow_m[j, k] = ops[k + 1][0]
        self._op_m, self._follow_m, self._op_p, self._tab = op_m, follow_m, op_p, tab
        self._dur = [[d for _, d in ops] for ops in instance.jobs]
        self._mach = [[m for m, _ in ops] for ops in instance.jobs]
        total = sum(sum(ds) for ds in self._dur)
        self.scale = total / self.n_ops if total > 0 else 1.0  # S, time units
        self.horizon_scale = self.scale * M                     # H, time units
        self._load0 = np.zeros(M + 2)
        for ops in instance.jobs:
            for m, d in ops:
                self._load0[m] += d
        self._rows = np.arange(n)
        self.lb0 = float(instance.trivial_lower_bound)
        self._due = DUE_DATE_FACTOR * tab[:, 0, 1]
        self._build_feature_map()
        self.reset()

    # -- state ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Clear the schedule and prepare the first decision."""
        n, M = self.n_jobs, self.n_machines
        self.next_op = np.zeros(n, dtype=np.intp)
        self.job_ready = np.zeros(n)
        # machine state, one row per machine (+2 sentinel rows): ready, load, queue jobs, queue work
        self.machines = np.zeros((M + 2, 4))
        self.machines[:, 1] = self._load0
        np.add.at(self.machines[:, 2], self._op_m[:, 0], 1.0)
        np.add.at(self.machines[:, 3], self._op_m[:, 0], self._tab[:, 0, 0])
        self.machines[M:, 2:] = 0.0
        self._ready = np.zeros(M + 2)  # == machines[:, 0], kept apart for the hot gather
        # per-job view of the next operation, maintained incrementally by dispatch()
        self._m = self._op_m[:, 0].copy()
        self._p = self._op_p[:, 0].copy()
        self._rem = self._tab[:, 0, 1].copy()
        self._mm2 = np.stack([self._op_m[:, 0], self._follow_m[:, 0]], axis=1)
        self._raw[:] = 0.0
        self._raw[:, 0:4] = self._tab[:, 0]
        self._raw[:, 21] = 1.0
        self._finished: list[int] = [j for j in range(n) if self.op_count[j] == 0]
        self.start = np.full(self._op_p.shape, -1.0)
        self.n_scheduled = 0
        self.makespan_lb = self.lb0
        self.done = self.n_ops == 0
        if not self.done:
            self._prepare()
        else:
            self.mask, self.candidates = np.zeros(n, dtype=bool), np.zeros(0, dtype=np.intp)

    def copy(self) -> JobShopEngine:
        """An independent copy of the current state (static tables shared): for lookahead."""
        twin = object.__new__(JobShopEngine)
        twin.__dict__.update(self.__dict__)
        for name in ("next_op", "job_ready", "machines", "_ready", "_m", "_p", "_rem", "_mm2", "_raw", "start"):
            setattr(twin, name, getattr(self, name).copy())
        twin._finished = list(self._finished)
        return twin

    def _prepare(self) -> None:
        """Compute the candidate set of the next decision (and cache what features reuse)."""
        m, est = self._m, np.maximum(self.job_ready, self._ready[self._m])
        if self.mode == "active":
            ect = est + self._p
            i = ect.argmin()
            mask = (m == m[i]) & (est < ect[i])
            mask[i] = True  # a zero-duration op is its own conflict set
        else:
            alive_est = np.where(self._p < _BIG, est, np.inf)
            i = alive_est.argmin()
            mask = (m == m[i]) & (alive_est <= alive_est[i])
        self.mask, self.candidates = mask, mask.nonzero()[0]
        self.freed_machine = int(m[i])
        self._est = est

    def dispatch(self, job: int) -> float:
        """Append ``job``'s next operation on its machine at its earliest start.

        Returns the increase of the makespan lower bound (time units). ``job`` must be in
        :attr:`mask`; the engine does not re-check (the environment does).
        """
        k = int(self.next_op[job])
        m = self._mach[job][k]
        p = self._dur[job][k]
        ms = self.machines
        s = max(self.job_ready.item(job), self._ready.item(m))
        e = s + p
        self.start[job, k] = s
        self.job_ready[job] = e
        ms[m, 0] = e
        self._ready[m] = e
        ms[m, 1] -= p
        ms[m, 2] -= 1.0
        ms[m, 3] -= p
        k += 1
        self.next_op[job] = k
        raw = self._raw
        raw[job, 0:4] = self._tab[job, k]
        raw[job, 13] = e
        if k < len(self._dur[job]):
            m2, p2 = self._mach[job][k], self._dur[job][k]
            ms[m2, 2] += 1.0
            ms[m2, 3] += p2
            self._m[job], self._p[job] = m2, p2
            self._mm2[job, 0] = m2
            self._mm2[job, 1] = self._follow_m[job, k]
            self._rem[job] -= p
        else:
            self._m[job], self._p[job], self._rem[job] = self.n_machines, _BIG, 0.0
            self._mm2[job, 0] = self.n_machines
            self._mm2[job, 1] = self.n_machines + 1
            self._finished.append(job)
        self.n_scheduled += 1
        old = self.makespan_lb
        if self.n_scheduled == self.n_ops:
            self.done = True
            self.makespan_lb = max(old, self.job_ready.max())
            self.mask, self.candidates = np.zeros(self.n_jobs, dtype=bool), np.zeros(0, dtype=np.intp)
            return self.makespan_lb - old
        self._prepare()
        # LB = max(max_j est_j + remaining work_j, max_m ready_m + load_m); both terms only grow
        self.makespan_lb = max(old, (self._est + self._rem).max(), e + ms.item(m, 1))
        return self.makespan_lb - old

    # -- read-only views for dispatch rules (arrays of shape (n_jobs,), time units) -----------
    @property
    def now(self) -> float:
        """Decision time: the earliest start of the candidates' next operations (0 once done)."""
        return float(self._est[self.candidates].min()) if len(self.candidates) else 0.0

    @property
    def op_duration(self) -> np.ndarray:
        """Duration of each job's next operation (a huge number once the job is finished)."""
        return self._p

    @property
    def earliest_start(self) -> np.ndarray:
        """Earliest start of each job's next operation, max(job ready, machine ready)."""
        return self._est

    @property
    def remaining_work(self) -> np.ndarray:
        """Unscheduled work of each job, next operation included."""
        return self._rem

    @property
    def remaining_ops(self) -> np.ndarray:
        """Unscheduled operations of each job, next operation included."""
        return self.op_count - self.next_op

    @property
    def total_work(self) -> np.ndarray:
        """Total work of each job (constant)."""
        return self._tab[:, 0, 1]

    @property
    def due(self) -> np.ndarray:
        """TWK due date of each job, ``DUE_DATE_FACTOR`` x its total work (constant)."""
        return self._due

    # -- observation ------------------------------------------------------------------------
    def _build_feature_map(self) -> None:
        """Features are linear in a raw matrix, so the map is a (21, N_FEATURES) matrix built once.

        raw columns: 0-3 next op (p, remaining work, remaining ops, follow-up p); 4-7 machine m
        (ready, load, queue jobs, queue work); 8-11 machine m2 (same); 12 est; 13 job ready;
        14 candidate; 15 delay caused; 16 LB increase; 17 T; 18 LB; 19 progress; 20 candidates;
        21 constant 1. Then ``obs = raw @ W`` with finished jobs' rows zeroed.
        """
        S, H, n, M = self.scale, self.horizon_scale, self.n_jobs, self.n_machines
        HM, HL = S * n, S * max(n, M)
        W = np.zeros((22, N_FEATURES))
        f = {name: i for i, name in enumerate(FEATURES)}

        def feature(name: str, **terms: float) -> None:
            for col, w in terms.items():
                W[int(col[1:]), f[name]] = w

        feature("candidate", c14=1)
        feature("alive", c21=1)
        feature("p", c0=1 / S)
        feature("wait", c12=1 / S, c17=-1 / S)
        feature("job_ready", c13=1 / S, c17=-1 / S)
        feature("machine_ready", c4=1 / S, c17=-1 / S)
        feature("remaining_work", c1=1 / H)
        feature("remaining_ops", c2=1 / M)
        feature("job_slack", c12=1 / HL, c1=1 / HL, c18=-1 / HL)
        feature("machine_load", c5=1 / HM)
        feature("machine_slack", c4=1 / HL, c5=1 / HL, c18=-1 / HL)
        feature("queue_jobs", c6=1 / n)
        feature("queue_work", c7=1 / HM)
        feature("p_follow", c3=1 / S)
        feature("follow_machine_gap", c8=1 / S, c12=-1 / S, c0=-1 / S)
        feature("follow_machine_load", c9=1 / HM)
        feature("follow_queue_jobs", c10=1 / n)
        feature("delay_caused", c15=1 / S)
        feature("lb_increase", c16=1 / S)
        feature("progress", c19=1)
        feature("n_candidates", c20=1 / n)
        feature("horizon", c18=1 / HL, c17=-1 / HL)
        feature("lb_growth", c18=1 / max(self.lb0, 1.0), c21=-1)
        self._W = W.astype(np.float32)
        self._raw = np.zeros((n, 22), dtype=np.float32)

    def observation(self) -> np.ndarray:
        """Per-job features, float32 array of shape (n_jobs, N_FEATURES); see :data:`FEATURES`."""
        if self.done:
            return np.zeros((self.n_jobs, N_FEATURES), dtype=np.float32)
        raw, c, est, lb = self._raw, self.candidates, self._est, self.makespan_lb
        raw[:, 4:12] = self.machines[self._mm2].reshape(self.n_jobs, 8)
        raw[:, 12] = est
        raw[:, 14] = self.mask
        raw[:, 15:17] = 0.0
        ec = est[c]
        self._lookahead(c, ec, lb)
        raw[:, 17:21] = (ec.min(), lb, self.n_scheduled / self.n_ops, len(c))
        obs = raw @ self._W
        if self._finished:
            obs[self._finished] = 0.0
        return obs

    def _lookahead(self, c: np.ndarray, ec: np.ndarray, lb: float) -> None:
        """Raw columns 15-16 of the candidates: one-step lookahead inside the conflict set.

        Dispatching candidate i (finishing at fin_i) delays candidate j to max(est_j, fin_i); j's
        job bound becomes that plus its remaining work; i's own bound is est_i + its remaining
        work and the freed machine's bound est_i + its unscheduled load. Small sets (the usual
        case) go through plain Python, which beats numpy's per-call overhead there.
        """
        raw, q = self._raw, len(c)
        load = self.machines.item(self.freed_machine, 1)
        if q <= self.python_lookahead_max:
            el, pl, rl = ec.tolist(), self._p[c].tolist(), self._rem[c].tolist()
            delays, increases = [], []
            for a in range(q):
                fa = el[a] + pl[a]
                delay, bound = 0.0, el[a] + (rl[a] if rl[a] > load else load)
                for b in range(q):
                    if b != a and fa > el[b]:
                        delay += fa - el[b]
                        if fa + rl[b] > bound:
                            bound = fa + rl[b]
                delays.append(delay)
                increases.append(bound - lb if bound > lb else 0.0)
            raw[c, 15] = delays
            raw[c, 16] = increases
            return
        pc = self._p[c]
        start_if = np.maximum(ec, (ec + pc)[:, None])
        raw[c, 15] = start_if.sum(axis=1) - ec.sum() - pc  # the diagonal is the candidate's own p
        bound = start_if + self._rem[c]
        bound.flat[:: q + 1] -= pc  # the dispatched job itself: est_i + work_i
        bound = np.maximum(bound.max(axis=1), ec + load)
        raw[c, 16] = np.maximum(bound, lb) - lb

    # -- results ----------------------------------------------------------------------------
    def schedule_rows(self) -> list[tuple[float, float, int, int, int]]:
        """Scheduled operations as (start, end, job, op, machine) tuples, in job/op order."""
        rows = []
        for j, ops in enumerate(self.instance.jobs):
            for k in range(int(self.next_op[j])):
                s = float(self.start[j, k])
                rows.append((s, s + ops[k][1], j, k, ops[k][0]))
        return rows
