"""Schedule a job shop with a trained dispatching policy (``twinopt schedule X --solver rl:<model>``).

The policy acts greedily (its most probable candidate, masked) on the same engine as
``twinopt/Dispatch-v0`` in the candidate mode it was trained with; single-candidate decisions are
taken without asking it, as in training (``skip_forced``). A job-scoring policy
(:class:`~optimizers.rl.networks.JobScorer`, like the shipped one) schedules instances of any
size: it is called on the engine's own job rows. Any other network has a fixed input: an instance
with fewer jobs than its family is padded with finished-job rows (all zero, never candidates),
more jobs than the family is an input error.
"""
from __future__ import annotations

import inspect
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from twins.errors import InputError
from twins.jobshop.dispatching import DispatchEngine
from twins.jobshop.engine import N_FEATURES, JobShopEngine
from twins.jobshop.instances import JobShopInstance
from twins.jobshop.schedule import Schedule, ScheduledOperation

#: the shipped job-shop policy (trained on 15x15, schedules any size; see docs/dispatching.md)
SHIPPED_POLICY = Path(__file__).resolve().parent / "policies" / "jss15x15.zip"


@lru_cache(maxsize=4)
def _load(path: str, mtime: float):
    from optimizers.rl.train import load_model

    model = load_model(path)
    if not hasattr(model, "policy") or model.observation_space.shape[0] % N_FEATURES:
        raise InputError(f"{path}: not a dispatching policy (observation {model.observation_space.shape})")
    return model


def load_policy(model_path: str | Path):
    """The saved model at ``model_path`` (cached); ``"shipped"`` (or ``"jss15x15"``) names the
    shipped policy."""
    path = SHIPPED_POLICY if str(model_path) in ("shipped", "jss15x15") else Path(model_path)
    if not path.is_file():
        raise InputError(f"{model_path}: no such model file")
    return _load(str(path.resolve()), path.stat().st_mtime)


def scores_any_size(model) -> bool:
    """Whether ``model``'s network scores job rows one by one (:class:`~optimizers.rl.networks.JobScorer`),
    so it can be asked about any number of jobs, not only its training family's."""
    from optimizers.rl.networks import JobScorer

    return isinstance(getattr(getattr(model, "policy", None), "mlp_extractor", None), JobScorer)


def greedy_dispatch(engine: DispatchEngine, model, name: str = "the problem",
                    n_features: int = N_FEATURES) -> None:
    """Run ``engine`` to completion with ``model``'s greedy masked choices; ``n_features`` is
    the width of the engine's observation rows, ``name`` names the problem in errors.

    A :class:`~optimizers.rl.networks.JobScorer` policy is called directly on the engine's own
    ``n_jobs`` rows (any size: no padding, no limit); other policies see the observation padded to
    their fixed size, and more jobs than that is an input error.
    """
    if scores_any_size(model):
        _greedy_scored(engine, model)
        return
    n_policy = model.observation_space.shape[0] // n_features
    n = len(engine.mask)
    if n > n_policy:
        raise InputError(f"the policy schedules up to {n_policy} jobs; {name} has {n}")
    obs = np.zeros((n_policy, n_features), dtype=np.float32)
    mask = np.zeros(n_policy, dtype=bool)
    masked = "action_masks" in inspect.signature(model.predict).parameters
    while not engine.done:
        cand = engine.candidates
        if len(cand) == 1:
            engine.dispatch(int(cand[0]))
            continue
        obs[:n] = engine.observation()
        mask[:n] = engine.mask
        if masked:
            action = int(model.predict(obs.reshape(-1), deterministic=True, action_masks=mask)[0])
        else:  # an unmasked policy: an action outside the mask means the first candidate, as in the env
            action = int(model.predict(obs.reshape(-1), deterministic=True)[0])
            action = action if action < n and engine.mask[action] else int(cand[0])
        engine.dispatch(action)


def _greedy_scored(engine: DispatchEngine, model) -> None:
    """Greedy dispatch with the scorer's logits over the engine's real job rows: the candidate
    with the highest score (the lowest job index on ties, like SB3's masked argmax)."""
    import torch

    scorer = model.policy.mlp_extractor
    with torch.inference_mode():
        while not engine.done:
            cand = engine.candidates
            if len(cand) == 1:
                engine.dispatch(int(cand[0]))
                continue
            obs = torch.from_numpy(engine.observation().reshape(1, -1))
            logits = scorer.candidate_scores(obs, torch.from_numpy(cand)).numpy()
            engine.dispatch(int(cand[logits.argmax()]))


def schedule_with_policy(instance: JobShopInstance, model_path: str | Path) -> Schedule:
    """A complete schedule of ``instance`` built by the policy saved at ``model_path``."""
    model = load_policy(model_path)
    cfg = getattr(model, "twinopt_config", {}) or {}
    mode = cfg.get("env_kwargs", {}).get("mode", "active")
    started = time.perf_counter()
    engine = JobShopEngine(instance, mode)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batch of one, tiny layers: threading only costs
    try:
        greedy_dispatch(engine, model, instance.name)
    finally:
        torch.set_num_threads(threads)
    ops = [ScheduledOperation(*row) for row in engine.schedule_rows()]
    return Schedule(instance.name, ops, solver=f"rl:{Path(str(model_path)).name}",
                    lower_bound=instance.trivial_lower_bound, status="heuristic",
                    seconds=time.perf_counter() - started)
