"""twinopt/Dispatch-v0 in dynamic mode: decisions from the twin (arrivals, due dates, breakdowns)."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401
from envs.dispatch import DispatchEnv
from optimizers.rl.baselines import baselines_for
from twins.errors import InputError


def make():
    return DispatchEnv(scenario="dynamic_jobshop")


def test_dynamic_mode_passes_both_env_checkers():
    check_env(make(), skip_render_check=True)
    sb3_check_env(make())


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), choice_seed=st.integers(0, 10_000))
def test_masked_random_rollouts_are_valid_and_the_return_is_minus_the_tardiness(seed, choice_seed):
    env = make()
    rng = np.random.default_rng(choice_seed)
    obs, info = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        mask = env.action_masks()
        assert mask.sum() >= 2 and env.observation_space.contains(obs)
        obs, reward, done, _, info = env.step(int(rng.choice(np.flatnonzero(mask))))
        assert "invalid_action" not in info
        total += reward
    assert total == pytest.approx(-info["tardiness"] / env.engine.scale)
    assert info["time"] == pytest.approx(env.engine.scenario.horizon.length)


def test_same_seed_same_episode():
    def run(seed):
        env = make()
        env.reset(seed=seed)
        out, done = [], False
        while not done:
            _, r, done, _, _ = env.step(int(np.flatnonzero(env.action_masks())[-1]))
            out.append(r)
        return out
    assert run(3) == run(3) and run(3) != run(4)


def test_due_date_rules_beat_processing_time_rules_on_tardiness():
    base = baselines_for("twinopt/Dispatch-v0")
    tard = {name: np.mean([base[name](make(), s)["tardiness"] for s in range(4)]) for name in ("edd", "spt", "random")}
    assert tard["edd"] < tard["random"] < tard["spt"]


def test_dynamic_mode_in_vector_envs_and_maskable_ppo():
    venv = gym.vector.AsyncVectorEnv([lambda: gym.make("twinopt/Dispatch-v0", scenario="dynamic_jobshop")] * 2)
    obs, info = venv.reset(seed=[1, 2])
    assert obs.shape == (2, 10 * len(make().feature_names))
    obs, *_ = venv.step(np.zeros(2, dtype=int))
    venv.close()
    from sb3_contrib import MaskablePPO

    from optimizers.rl.train import make_vec_env

    sb3 = make_vec_env("twinopt/Dispatch-v0", 2, seed=0, env_kwargs={"scenario": "dynamic_jobshop"})
    MaskablePPO("MlpPolicy", sb3, n_steps=64, batch_size=64, seed=0).learn(256)
    sb3.close()


def test_figure_and_bad_scenario():
    env = make()
    env.reset(seed=0)
    for _ in range(20):
        env.step(int(np.flatnonzero(env.action_masks())[0]))
    assert len(env.figure().data) == 4
    with pytest.raises(InputError, match="dispatch: external"):
        DispatchEnv(scenario="glue_dispensing")
