"""twinopt/DynamicDispatch-v0 (and twinopt/Dispatch-v0 with a scenario): decisions from the twin
(arrivals, due dates, breakdowns). The env checkers, determinism and pickling: tests/test_envs.py."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs  # noqa: F401
from envs.dispatch import DispatchEnv
from envs.dynamic_dispatch import DynamicDispatchEnv
from optimizers.rl.baselines import baselines_for
from twins.errors import InputError
from twins.jobshop.dispatching import DispatchEngine
from twins.jobshop.engine import JobShopEngine
from twins.jobshop.instances import load_instance


def make():
    return DynamicDispatchEnv(scenario="dynamic_jobshop")


def test_dispatch_v0_picks_the_env_from_its_kwargs_and_both_engines_follow_the_protocol():
    dynamic = gym.make("twinopt/Dispatch-v0", scenario="dynamic_jobshop").unwrapped
    static = gym.make("twinopt/Dispatch-v0", instance="ft06").unwrapped
    assert type(dynamic) is DynamicDispatchEnv and type(static) is DispatchEnv
    assert type(gym.make("twinopt/DynamicDispatch-v0").unwrapped) is DynamicDispatchEnv
    static.reset(seed=0)
    assert isinstance(dynamic.engine, DispatchEngine) and isinstance(static.engine, DispatchEngine)
    # a static instance's due dates are the TWK dates EDD has always used: 1.5 x total work
    engine = JobShopEngine(load_instance("ft06"))
    np.testing.assert_array_equal(engine.due, 1.5 * np.array([sum(d for _, d in job) for job in engine.instance.jobs]))


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


def test_different_seeds_different_episodes():
    def run(seed):
        env = make()
        env.reset(seed=seed)
        out, done = [], False
        while not done:
            _, r, done, _, _ = env.step(int(np.flatnonzero(env.action_masks())[-1]))
            out.append(r)
        return out
    assert run(3) != run(4)


@pytest.mark.parametrize("env_id", ["twinopt/Dispatch-v0", "twinopt/DynamicDispatch-v0"])
def test_due_date_rules_beat_processing_time_rules_on_tardiness(env_id):
    base = baselines_for(env_id)
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
        DynamicDispatchEnv(scenario="glue_dispensing")


def test_tardiness_until_matches_the_accrued_tardiness_and_grows_with_time():
    env = make()
    env.reset(seed=5)
    engine = env.engine
    for _ in range(150):
        engine.dispatch(0)
    now = engine.now
    assert engine.tardiness_until(now) == pytest.approx(engine.accrued_tardiness())
    assert engine.accrued_tardiness() > 0  # seed 5 has late orders by then under FIFO-by-slot
    earlier = [engine.tardiness_until(t) for t in np.linspace(0, now, 7)]
    assert earlier[0] == 0 and (np.diff(earlier) >= 0).all()


def test_rollout_teacher_leaves_the_engine_alone_and_its_key_is_what_the_episode_then_does():
    from optimizers.heuristics.rules import choose, get_rule
    from optimizers.rl.rule_cloning import rollout_rule

    env = make()
    env.reset(seed=11)
    engine, atc, rng = env.engine, get_rule("atc"), np.random.default_rng(0)
    for _ in range(60):
        engine.dispatch(choose(atc, engine, rng))
    while len(engine.candidates) < 3:
        engine.dispatch(choose(atc, engine, rng))
    obs, decisions, start = engine.observation(), engine.decisions, engine.now
    keys = rollout_rule("atc", window=300.0)(engine, engine.candidates, rng)
    np.testing.assert_array_equal(engine.observation(), obs)
    assert engine.decisions == decisions and len(keys) == len(engine.candidates)
    # replaying the same seed and decisions reproduces the copy's future: dispatch the best
    # candidate, let ATC go on for the window, and the tardiness by then is its key
    engine.dispatch(int(engine.candidates[np.argmin(keys)]))
    while not engine.done and engine.now < start + 300.0:
        engine.dispatch(choose(atc, engine, rng))
    assert engine.tardiness_until(start + 300.0) == pytest.approx(keys.min())


def test_shipped_dynamic_policy_runs_deterministically_and_follows_atc():
    # optimizers/rl/policies/dynamic_jobshop.zip: ATC cloned into the slot scorer (docs/dispatching.md)
    from optimizers.heuristics.rules import choose, get_rule
    from optimizers.rl.evaluate import policy_act
    from optimizers.rl.train import load_model, shipped_policy

    assert shipped_policy("dynamic_jobshop") is not None and shipped_policy("no_such_policy") is None
    model = load_model("dynamic_jobshop")
    assert model.twinopt_config["env_id"] == "twinopt/DynamicDispatch-v0"

    def episode(seed):
        env = gym.make("twinopt/DynamicDispatch-v0")
        act, atc, rng = policy_act(model, env), get_rule("atc"), np.random.default_rng(0)
        obs, info = env.reset(seed=seed)
        same, total, done = [], 0.0, False
        while not done:
            action = int(act(obs, info))
            same.append(action == choose(atc, env.unwrapped.engine, rng))
            obs, reward, done, _, info = env.step(action)
            assert "invalid_action" not in info
            total += reward
        assert total == pytest.approx(-info["tardiness"] / env.unwrapped.engine.scale)
        return info["tardiness"], np.mean(same)

    (t1, agree), (t2, _) = episode(100), episode(100)
    assert t1 == t2 and agree > 0.8
