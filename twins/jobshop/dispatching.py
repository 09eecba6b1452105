"""The dispatch-engine contract: the state of a dispatching problem at a decision, as the
dispatching environments, the dispatching rules (``optimizers.heuristics.rules``) and the trained
policies (``optimizers.rl``) read it, so a rule and a policy see exactly the same decisions.

Two engines implement it: :class:`twins.jobshop.engine.JobShopEngine` (a static job-shop instance;
a row is a job) and :class:`envs.dynamic_engine.TwinDispatchEngine` (the SimPy twin; a row is a
slot holding a waiting part). A decision is "which row does the freed machine start next"::

    while not engine.done:
        row = choose(engine.candidates, engine.observation())   # rows with engine.mask True
        cost = engine.dispatch(row)                              # time units; reward = -cost / scale

Starting an episode is engine-specific (a static instance is rebuilt or cleared, a twin is
re-seeded), so ``reset`` is not part of the contract.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class DispatchEngine(Protocol):
    """What every dispatching engine offers; arrays have one entry per row (job or slot)."""

    @property
    def mask(self) -> np.ndarray:
        """Bool (rows,): rows that may be dispatched now (all False once done)."""
        ...

    @property
    def candidates(self) -> np.ndarray:
        """Indices of the rows in :attr:`mask`, ascending."""
        ...

    @property
    def done(self) -> bool:
        """True once no decision is left."""
        ...

    @property
    def scale(self) -> float:
        """S, the problem's time scale (mean operation or process time, time units): features
        and rewards are divided by it."""
        ...

    def dispatch(self, row: int, /) -> float:
        """Start ``row``'s next operation and advance to the next decision; returns the cost
        this caused (time units: makespan lower-bound increase, or tardiness accrued)."""
        ...

    def observation(self) -> np.ndarray:
        """Float32 (rows, n_features): one feature row per row, the engine's ``FEATURES``."""
        ...

    # -- what dispatching rules read (time units; arrays float (rows,)) ------------------------
    @property
    def now(self) -> float:
        """The decision time: when the freed machine can start a candidate (static: the earliest
        start of the candidates' next operations; twin: the simulation clock)."""
        ...

    @property
    def job_ready(self) -> np.ndarray:
        """Time each row became ready for its next operation (FIFO)."""
        ...

    @property
    def op_duration(self) -> np.ndarray:
        """Duration of each row's next operation."""
        ...

    @property
    def remaining_work(self) -> np.ndarray:
        """Work left on each row's route, next operation included."""
        ...

    @property
    def remaining_ops(self) -> np.ndarray:
        """Operations left on each row's route, next operation included."""
        ...

    @property
    def total_work(self) -> np.ndarray:
        """Total work of each row's route."""
        ...

    @property
    def due(self) -> np.ndarray:
        """Due date of each row (``inf`` where there is none)."""
        ...
