"""EnergyEnv (twinopt/Energy-v0): episode accounting, seeds, vector envs, a PPO run end to end (the env
checkers, determinism and pickling: tests/test_envs.py)."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers twinopt/*)
from envs.energy import FEATURES, EnergyEnv
from twins.errors import InputError

ENV_ID = "twinopt/Energy-v0"
#: A shorter episode for speed: 8 h from 16:00 (evening peak, shoulder, off-peak), 30-min steps.
SHORT = {"step": 1800.0, "target": 400}


def short_env(**kw) -> gym.Env:
    from conftest import SCENARIOS

    from twins.loader import parse_yaml, scenario_from_data

    data = parse_yaml((SCENARIOS / "smt_reflow_energy.yaml").read_text())[0]
    data.update(start_clock="16:00", horizon={"length": 28800})
    return EnergyEnv(scenario_from_data(data), **{**SHORT, **kw})


def rollout(env: gym.Env, seed: int, actions: np.ndarray) -> tuple[list[np.ndarray], list[float], dict]:
    obs, info = env.reset(seed=seed)
    seen, rewards = [obs], []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        seen.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    return seen, rewards, info


def test_observation_is_documented_and_different_seeds_differ():
    assert gym.make(ENV_ID).observation_space.shape == (len(FEATURES),)
    env = short_env()
    actions = np.random.default_rng(0).integers([0, 0], [3, 5], size=(env.unwrapped.n_steps, 2))
    a = rollout(env, 7, actions)
    c = rollout(env, 8, actions)
    assert a[1] != c[1]  # another twin seed: other process times, other energy


def test_episode_accounting_always_on_meets_target_and_penalises_shortfall():
    env = short_env()
    on = np.array([0, 4])
    obs, rewards, info = rollout(env, 0, [on] * env.n_steps)
    assert info["good_units"] == info["target"] == 400 and info["missing"] == 0
    assert -sum(rewards) == pytest.approx(info["episode_energy_cost"])
    assert len(env.history) == env.n_steps
    # never releasing anything: the whole target is missing and paid for
    obs, rewards, info = rollout(env, 0, [np.array([2, 0])] * env.n_steps)
    assert info["missing"] == 400
    assert -sum(rewards) == pytest.approx(info["episode_energy_cost"] + env.penalty * 400)
    assert info["episode_energy_cost"] < 2.0  # the oven was off all evening (0.05 kW/slot)


def test_switching_off_through_the_peak_and_running_off_peak_beats_always_on():
    env = short_env()
    n = env.n_steps  # 16 half-hour steps from 16:00: peak 17-20 h, off-peak from 22 h
    always = sum(rollout(env, 3, [np.array([0, 4])] * n)[1])
    plan = [np.array([2, 0])] * 8 + [np.array([0, 4])] * (n - 8)  # off through the peak, start up at 20:00
    planned, info = rollout(env, 3, plan)[1:]
    assert info["missing"] == 0
    assert sum(planned) > always + 5.0  # EUR


def test_figure_shows_power_against_tariff():
    env = short_env()
    rollout(env, 0, [np.array([0, 4])] * 4)
    fig = env.figure()
    names = [t.name for t in fig.data]
    assert {"power (kW)", "price", "good units"} <= set(names)
    assert len(fig.data[0].x) == 4


def test_vector_envs_sync_async_and_sb3_subproc():
    from functools import partial

    from stable_baselines3.common.vec_env import SubprocVecEnv

    from optimizers.rl.train import make_env  # module level, registers twinopt/* in the worker

    kwargs = {"step": 3600.0}
    for cls in (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv):
        venv = cls([lambda: gym.make(ENV_ID, **kwargs) for _ in range(2)])
        obs, _ = venv.reset(seed=[1, 2])
        assert obs.shape == (2, len(FEATURES))
        for _ in range(3):
            obs, r, term, trunc, _ = venv.step(np.array([[0, 4], [1, 2]]))
        assert r.shape == (2,)
        venv.close()
    sub = SubprocVecEnv([partial(make_env, ENV_ID, kwargs) for _ in range(2)])
    sub.seed(5)
    obs = sub.reset()
    obs, r, done, info = sub.step(np.array([[0, 4], [2, 0]]))
    assert obs.shape == (2, len(FEATURES)) and r.shape == (2,)
    sub.close()


def test_short_ppo_run_end_to_end_and_always_on_baseline(tmp_path):
    from optimizers.rl.evaluate import evaluate
    from optimizers.rl.train import train

    kwargs = {"step": 3600.0, "target": 1500}
    path = train(ENV_ID, algo="ppo", timesteps=256, n_envs=2, seed=0, out_dir=tmp_path, env_kwargs=kwargs,
                 algo_kwargs={"n_steps": 64, "batch_size": 64, "n_epochs": 2}, eval_episodes=1, progress_bar=False)
    assert path.is_file() and (tmp_path / "progress.csv").is_file()
    ev = evaluate(path, ENV_ID, episodes=2, seed=0, baselines=["always-on"], env_kwargs=kwargs)
    assert {"policy", "always-on"} <= set(ev.summary)
    assert ev.summary["always-on"]["missing"][0] == 0


@pytest.mark.parametrize("kw, match", [
    ({"scenario": "scenarios/smt_line.yaml"}, "external"),
    ({"station": "oven"}, "unknown station"),
    ({"step": 7000}, "whole number of steps"),
    ({"target": 10**6}, "target"),
    ({"render_mode": "human"}, "render mode"),
])
def test_bad_arguments_are_one_line_input_errors(kw, match):
    with pytest.raises(InputError, match=match) as err:
        EnergyEnv(**kw)
    assert "\n" not in str(err.value)
