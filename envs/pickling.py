"""Pickling an env that runs the SimPy twin: a running SimPy model holds generators, which cannot
be pickled, so such an env pickles as its episode so far — the seeded generator as it was at the
last ``reset`` and the actions since — and unpickling replays them in a fresh twin (same random
streams, same actions: the same state). Pickled envs are what ``copy.deepcopy``, checkpoints and
some vector-env backends need.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    from twins.model import Line


class PicklesByReplay(gym.Env):
    """Base for a ``gymnasium.Env`` whose live twin sits in the attributes named in ``_live``.

    The env calls :meth:`_record_reset` in ``reset`` right after ``super().reset(seed=seed)``
    (before drawing from ``np_random``) and :meth:`_record_step` at the start of ``step``.
    """

    #: attributes holding the live simulation; dropped when pickling, rebuilt by the replay
    _live: tuple[str, ...] = ("line",)
    _replay: tuple[np.random.Generator, dict[str, Any] | None, list[Any]] | None = None
    #: the running twin (None before the first ``reset``)
    line: Line | None

    def _twin(self) -> Line:
        """The running twin; RuntimeError before the first ``reset``."""
        if self.line is None:
            raise RuntimeError("call reset() first")
        return self.line

    def _record_reset(self, options: dict[str, Any] | None) -> None:
        self._replay = (copy.deepcopy(self.np_random), options, [])

    def _record_step(self, action: Any) -> None:
        if self._replay is not None:
            self._replay[2].append(np.array(action, copy=True))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in self._live:
            state[name] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._replay is not None:
            start, options, actions = self._replay
            self._np_random = copy.deepcopy(start)
            self.reset(options=options)
            for action in actions:
                self.step(action)
