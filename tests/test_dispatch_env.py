"""twinopt/Dispatch-v0 on static job shops: observations, seeded instances, and that masks only ever
allow feasible schedules (the env checkers, determinism and pickling: tests/test_envs.py)."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs  # noqa: F401  (registers twinopt/*)
from envs.dispatch import DispatchEnv
from twins.errors import InputError
from twins.jobshop.engine import FEATURES, N_FEATURES, JobShopEngine
from twins.jobshop.generate import random_instance
from twins.jobshop.instances import JobShopInstance, load_instance
from twins.jobshop.schedule import check_schedule

ENV_ID = "twinopt/Dispatch-v0"


def random_masked_episode(env: gym.Env, rng: np.random.Generator, seed: int | None = None):
    """Play uniformly random masked actions; returns (return, last info)."""
    obs, info = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        assert env.observation_space.contains(obs)
        choices = np.flatnonzero(env.unwrapped.action_masks())
        assert len(choices) >= 1
        obs, reward, done, truncated, info = env.step(int(rng.choice(choices)))
        assert not truncated
        total += reward
    return total, info


def is_active(instance: JobShopInstance, schedule) -> bool:
    """No operation could start earlier in an idle gap of its machine without moving another."""
    ops = {(o.job, o.op): o for o in schedule.operations}
    by_machine: dict[int, list] = {}
    for o in sorted(schedule.operations):
        by_machine.setdefault(o.machine, []).append(o)
    for o in schedule.operations:
        ready = ops[(o.job, o.op - 1)].end if o.op else 0.0
        seq = by_machine[o.machine]
        gap_start = 0.0
        for other in seq:
            if other is o:
                break
            if min(other.start, o.start) - max(gap_start, ready) >= o.end - o.start > 0:
                return False
            gap_start = other.end
    return True


def test_observation_is_fixed_size_for_a_family_and_documented():
    env = gym.make(ENV_ID, n_jobs=15, n_machines=15)
    shapes = {env.reset(seed=s)[0].shape for s in range(3)}
    assert shapes == {(15 * N_FEATURES,)}
    assert env.unwrapped.feature_names == FEATURES and len(FEATURES) == N_FEATURES
    fixed = gym.make(ENV_ID, instance="ta01")
    assert fixed.observation_space == env.observation_space  # one policy serves both


def test_reset_seed_draws_the_random_instance():
    a, b = gym.make(ENV_ID, n_jobs=6, n_machines=4), gym.make(ENV_ID, n_jobs=6, n_machines=4)
    a.reset(seed=0)
    b.reset(seed=0)
    first = a.unwrapped.instance.jobs
    assert b.unwrapped.instance.jobs == first
    a.reset(seed=1)
    assert a.unwrapped.instance.jobs != first  # another seed, another instance


def test_random_instance_is_taillard_style():
    inst = random_instance(np.random.default_rng(3), 15, 15)
    durations = [d for job in inst.jobs for _, d in job]
    assert all(1 <= d <= 99 for d in durations)
    assert all(sorted(m for m, _ in job) == list(range(15)) for job in inst.jobs)


@settings(max_examples=40, deadline=None)
@given(n_jobs=st.integers(1, 7), n_machines=st.integers(1, 6), seed=st.integers(0, 2**31),
       mode=st.sampled_from(["active", "non_delay"]), skip=st.booleans(), zero=st.booleans())
def test_masked_actions_always_give_feasible_schedules(n_jobs, n_machines, seed, mode, skip, zero):
    env = DispatchEnv(n_jobs=n_jobs, n_machines=n_machines, durations=(0 if zero else 1, 9), mode=mode,
                      skip_forced=skip)
    total, info = random_masked_episode(env, np.random.default_rng(seed), seed)
    inst, sched = env.instance, env.schedule()
    assert check_schedule(inst, sched) == []
    recomputed = max(o.end for o in sched.operations)
    assert sched.makespan == recomputed == info["makespan"]
    # the dense reward telescopes: return = -(makespan - trivial bound) / mean duration
    assert total == pytest.approx(-(recomputed - inst.trivial_lower_bound) / env.engine.scale, abs=1e-9)
    if mode == "active" and not zero:  # Giffler-Thompson's guarantee assumes positive durations
        assert is_active(inst, sched)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_small_conflict_sets_take_the_python_path_with_the_same_features(seed):
    inst = random_instance(np.random.default_rng(seed), 8, 5)
    fast, slow = JobShopEngine(inst), JobShopEngine(inst)
    slow.python_lookahead_max = 0  # always numpy
    rng = np.random.default_rng(seed)
    while not fast.done:
        np.testing.assert_allclose(fast.observation(), slow.observation(), atol=1e-5)
        job = int(rng.choice(fast.candidates))
        fast.dispatch(job)
        slow.dispatch(job)


def test_active_mode_reaches_the_ft06_optimum():
    # Giffler-Thompson candidates: following an optimal schedule's start order rebuilds it
    from optimizers.rl.imitation import expert_action, solve_reference

    ft06 = load_instance("ft06")
    starts, makespan, bound = solve_reference(ft06, deterministic_seconds=5.0)
    assert makespan == bound == 55
    engine = JobShopEngine(ft06, "active")
    while not engine.done:
        engine.dispatch(expert_action(engine, starts))
    assert engine.makespan_lb == 55


def test_invalid_action_is_replaced_by_a_candidate_and_reported():
    env = DispatchEnv("ft06")
    env.reset(seed=0)
    first = int(np.flatnonzero(env.action_masks())[0])
    bad = int(np.flatnonzero(~env.action_masks())[0])
    _, _, _, _, info = env.step(bad)
    assert info["invalid_action"] is True
    assert [o.job for o in env.schedule().operations] == [first]


def test_schedule_figure_and_ansi_render():
    env = DispatchEnv("ft06", render_mode="ansi")
    random_masked_episode(env, np.random.default_rng(0), 0)
    sched = env.schedule()
    assert sched.status == "heuristic" and len(sched.operations) == 36
    text = env.render()
    assert text.startswith("ft06: 36/36 operations") and text.count("\n") == 6
    fig = env.figure()
    assert len(fig.data) == 6 and sum(len(t.x) for t in fig.data) == 36


def test_reset_option_switches_instance_of_the_same_size():
    env = DispatchEnv(n_jobs=15, n_machines=15)
    env.reset(seed=0, options={"instance": "ta02"})
    assert env.instance.name == "ta02"
    env.reset()
    assert env.instance.name == "ta02"
    with pytest.raises(InputError, match="has 6 jobs"):
        env.reset(options={"instance": "ft06"})


@pytest.mark.parametrize("kwargs, message", [({"instance": "nope"}, "no such file"),
                                             ({"mode": "greedy"}, "unknown dispatch mode"),
                                             ({"render_mode": "human"}, "unknown render mode"),
                                             ({"n_jobs": 0}, "bad random family")])
def test_bad_options_are_one_line_input_errors(kwargs, message):
    with pytest.raises(InputError, match=message) as err:
        DispatchEnv(**kwargs)
    assert "\n" not in str(err.value)


def _masked_vector_rollout(vec, call_masks, steps: int = 60) -> int:
    rng = np.random.default_rng(0)
    vec.reset(seed=0)
    finished = 0
    for _ in range(steps):
        masks = call_masks()
        actions = [int(rng.choice(np.flatnonzero(m))) if m.any() else 0 for m in masks]
        out = vec.step(np.array(actions))
        finished += int(np.sum(out[2]))
    return finished


@pytest.mark.parametrize("vector_cls", [gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv])
def test_gymnasium_vector_envs_expose_masks(vector_cls):
    vec = vector_cls([lambda: gym.make(ENV_ID, instance="ft06") for _ in range(2)])
    try:
        assert _masked_vector_rollout(vec, lambda: vec.call("action_masks"), steps=40) == 2
    finally:
        vec.close()


def test_sb3_subproc_vec_env_exposes_masks():
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from optimizers.rl.train import make_vec_env

    vec = make_vec_env(ENV_ID, 2, seed=0, env_kwargs={"instance": "ft06"})
    try:
        assert isinstance(vec, SubprocVecEnv)
        rng = np.random.default_rng(0)
        vec.reset()
        done_count = 0
        for _ in range(40):
            masks = get_action_masks(vec)
            assert masks.shape == (2, 6) and masks.any(axis=1).all()
            _, _, dones, _ = vec.step(np.array([rng.choice(np.flatnonzero(m)) for m in masks]))
            done_count += int(dones.sum())
        assert done_count == 2  # ft06 has 36 operations: each copy finished once
    finally:
        vec.close()
