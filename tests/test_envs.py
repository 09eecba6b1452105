"""Every registered ``twinopt/*`` environment, one test each (as gymnasium's tests/envs/test_envs.py):
gymnasium's and SB3's env checkers, seeded determinism and pickling. A new env is covered by
registering it and giving it small, fast kwargs in :data:`KWARGS`."""
from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401  (registers twinopt/*)

#: small, fast kwargs for every registered id (a registered id missing here fails the tests)
KWARGS: dict[str, dict] = {
    "twinopt/Dispatch-v0": {"n_jobs": 6, "n_machines": 4},
    "twinopt/DynamicDispatch-v0": {},
    "twinopt/Parameter-v0": {"episode_steps": 3},
    "twinopt/Energy-v0": {"step": 3600.0},
}
IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("twinopt/"))


def make(env_id: str) -> gym.Env:
    return gym.make(env_id, **KWARGS[env_id])


def random_action(env: gym.Env, rng: np.random.Generator):
    """A random valid action from ``rng``: within the action mask where the env has one
    (sb3-contrib's ``action_masks()`` convention), else from the action space."""
    if hasattr(env.unwrapped, "action_masks"):
        return int(rng.choice(np.flatnonzero(env.unwrapped.action_masks())))
    env.action_space.seed(int(rng.integers(2**31 - 1)))
    return env.action_space.sample()


def play(env: gym.Env, rng: np.random.Generator, steps: int) -> list[tuple]:
    """``steps`` transitions of random valid actions; a finished episode is followed by
    ``reset()`` without a seed (the env's generator carries on)."""
    out = []
    for _ in range(steps):
        transition = env.step(random_action(env, rng))
        out.append(transition)
        if transition[2] or transition[3]:
            out.append(env.reset())
    return out


def test_every_registered_env_has_test_kwargs():
    assert IDS, "no twinopt/* env registered"
    assert [env_id for env_id in IDS if env_id not in KWARGS] == []


@pytest.mark.parametrize("env_id", IDS)
def test_env_passes_gymnasium_and_sb3_checkers(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warnings either
        check_env(make(env_id).unwrapped)
        sb3_check_env(make(env_id))


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_rollout(env_id):
    a, b = make(env_id), make(env_id)
    assert data_equivalence(a.reset(seed=7), b.reset(seed=7), exact=True)
    ra = play(a, np.random.default_rng(3), 30)
    rb = play(b, np.random.default_rng(3), 30)
    assert data_equivalence(ra, rb, exact=True)


@pytest.mark.parametrize("env_id", IDS)
def test_pickled_env_steps_identically(env_id):
    env = make(env_id)
    env.reset(seed=5)
    rng = np.random.default_rng(5)
    play(env, rng, 1)  # mid-episode
    twin = pickle.loads(pickle.dumps(env))
    state = rng.bit_generator.state
    ours = play(env, rng, 8)
    rng.bit_generator.state = state
    theirs = play(twin, rng, 8)
    assert data_equivalence(ours, theirs, exact=True)
