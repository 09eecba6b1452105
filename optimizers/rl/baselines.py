"""Baselines a trained policy is compared with, keyed by environment id.

A baseline runs one episode: ``baseline(env, seed) -> {"return": float, <metric>: float, …}``,
where ``env`` is a fresh ``gymnasium.make(env_id, **env_kwargs)`` and ``seed`` the episode seed
(the policy under test gets the same seeds, hence the same instances / random streams).
Register new ones with ``@register_baseline("twinopt/Energy-v0", "always-on")``; the ``"*"`` key
holds baselines valid for any env (``random``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

Baseline = Callable[[gym.Env, int], dict[str, float]]
BASELINES: dict[str, dict[str, Baseline]] = {}


def register_baseline(env_id: str, name: str) -> Callable[[Baseline], Baseline]:
    """Decorator: register ``fn`` as baseline ``name`` of ``env_id`` (``"*"`` = every env)."""
    def add(fn: Baseline) -> Baseline:
        BASELINES.setdefault(env_id, {})[name] = fn
        return fn
    return add


def baselines_for(env_id: str) -> dict[str, Baseline]:
    """The env's own baselines, then the generic ones not overridden."""
    own = dict(BASELINES.get(env_id, {}))
    for name, fn in BASELINES.get("*", {}).items():
        own.setdefault(name, fn)
    return own


def final_metrics(info: dict[str, Any]) -> dict[str, float]:
    """Scalar numbers of an episode's last ``info`` (e.g. ``makespan``), as floats."""
    return {k: float(v) for k, v in info.items()
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)}


def run_episode(env: gym.Env, seed: int, act: Callable[[Any, dict], Any]) -> dict[str, float]:
    """Run ``act(obs, info) -> action`` for one episode from ``reset(seed=seed)``."""
    obs, info = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs, info))
        total += float(reward)
        done = terminated or truncated
    return {"return": total, **final_metrics(info)}


@register_baseline("*", "random")
def random_policy(env: gym.Env, seed: int) -> dict[str, float]:
    """Uniform random actions (within the action mask when the env has one)."""
    env.action_space.seed(seed)
    masked = hasattr(env.unwrapped, "action_masks")

    def act(obs, info):
        if masked:
            return env.action_space.sample(mask=env.unwrapped.action_masks().astype(np.int8))
        return env.action_space.sample()

    return run_episode(env, seed, act)


def _dispatch_rule(name: str) -> Baseline:
    def baseline(env: gym.Env, seed: int) -> dict[str, float]:
        # On a static instance a rule builds its schedule in its own (non-delay) candidate mode;
        # the return is what the env would have paid for that makespan. In the twin the rule
        # decides step by step on the env's engine.
        from envs.dispatch import DispatchEnv
        from envs.dynamic_dispatch import DynamicDispatchEnv
        from optimizers.heuristics.rules import choose, get_rule, schedule_with_rule

        base = env.unwrapped
        if isinstance(base, DynamicDispatchEnv):
            rule, rng = get_rule(name), np.random.default_rng(seed)
            return run_episode(env, seed, lambda obs, info: choose(rule, base.engine, rng))
        assert isinstance(base, DispatchEnv)  # twinopt/Dispatch-v0 without a scenario
        env.reset(seed=seed)
        engine = base.engine
        assert engine is not None  # reset() built it
        makespan = schedule_with_rule(engine.instance, name).makespan
        return {"return": -(makespan - engine.lb0) / engine.scale, "makespan": float(makespan),
                "makespan_lb": float(makespan)}
    baseline.__doc__ = f"dispatching rule {name} (optimizers.heuristics.rules)"
    return baseline


def _register_dispatch_rules() -> None:
    from optimizers.heuristics.rules import RULES

    for name in RULES:
        if name != "random":  # the generic masked random policy covers it, within the env's mode
            for env_id in ("twinopt/Dispatch-v0", "twinopt/DynamicDispatch-v0"):
                register_baseline(env_id, name)(_dispatch_rule(name))


_register_dispatch_rules()


@register_baseline("twinopt/Parameter-v0", "default-setpoints")
def default_setpoints(env: gym.Env, seed: int) -> dict[str, float]:
    """Keep the scenario's own setpoints for the whole episode (the as-is recipe)."""
    from envs.parameter import ParameterEnv

    base = env.unwrapped
    assert isinstance(base, ParameterEnv)
    return run_episode(env, seed, lambda obs, info: base.to_action(base.start))


@register_baseline("twinopt/Energy-v0", "always-on")
def always_on(env: gym.Env, seed: int) -> dict[str, float]:
    """EnergyEnv as-is: the station always on (under its own standby policy), work released at
    full capacity per step until the target is out."""
    from envs.energy import EnergyEnv

    base = env.unwrapped
    assert isinstance(base, EnergyEnv)
    top = base.release_levels - 1
    return run_episode(env, seed, lambda obs, info: np.array([0, top]))
