"""Environment speed: random masked steps per second of twinopt/Dispatch-v0 next to JSSEnv
(pip package ``jssenv``, env ``jss-v1``) on the same instance (Taillard ta01, 15x15), same run.
Prints, never asserts; the last line is ``ratio twinopt/jssenv: X.XX`` (target >= 2).

Both envs get the same driver: reset, then until done pick a uniformly random allowed action
(``np.flatnonzero(mask)`` + one ``Generator.integers`` draw) and step. A step of either env
dispatches one operation (JSSEnv's mask also allows a no-op now and then, which it then takes).
DispatchEnv is built with ``gymnasium.make`` (order-enforcing wrapper included, env checker off);
JSSEnv is instantiated directly (its ``reset()`` predates gymnasium's seeding API). Rounds
alternate between the envs so both see the same machine load; the best round of each counts.
``--skip-forced`` also reports DispatchEnv with single-candidate decisions folded into the step.

    python benchmarks/bench_envs.py [--seconds 2] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import time

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers twinopt/*)
from twins.jobshop.instances import resolve_instance_path


def drive(reset, step, mask, seconds: float, rng: np.random.Generator) -> tuple[float, float]:
    """(steps/s, episodes/s) of random masked play for about ``seconds``."""
    steps = episodes = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        reset()
        done = False
        while not done:
            allowed = np.flatnonzero(mask())
            done = step(allowed[rng.integers(len(allowed))])
            steps += 1
        episodes += 1
    elapsed = time.perf_counter() - started
    return steps / elapsed, episodes / elapsed


def twinopt_driver(**kwargs):
    env = gym.make("twinopt/Dispatch-v0", instance="ta01", disable_env_checker=True, **kwargs)
    seed = iter(range(10**9))
    return (lambda: env.reset(seed=next(seed)), lambda a: env.step(a)[2], env.unwrapped.action_masks)


def jssenv_driver():
    from JSSEnv.envs import JssEnv

    env = JssEnv({"instance_path": str(resolve_instance_path("ta01"))})
    state = {}

    def reset():
        state["obs"] = env.reset()

    def step(a):
        state["obs"], _, done, _, _ = env.step(a)
        return done

    return reset, step, lambda: state["obs"]["action_mask"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per round and env")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-forced", action="store_true", help="also time skip_forced=True")
    args = parser.parse_args()
    print(f"bench_envs: ta01 (15x15), random masked actions, {args.rounds} rounds x {args.seconds:g} s, "
          f"load average {os.getloadavg()[0]:.2f}")
    contenders = {"twinopt": twinopt_driver(), "jssenv": jssenv_driver()}
    if args.skip_forced:
        contenders["twinopt skip_forced"] = twinopt_driver(skip_forced=True)
    best = {name: (0.0, 0.0) for name in contenders}
    for r in range(args.rounds):
        for name, (reset, step, mask) in contenders.items():
            rate = drive(reset, step, mask, args.seconds, np.random.default_rng(r))
            best[name] = max(best[name], rate)
    for name, (steps, episodes) in best.items():
        print(f"{name:<22} {steps:>10,.0f} steps/s {episodes:>8.1f} episodes/s")
    print(f"episodes ratio twinopt/jssenv: {best['twinopt'][1] / best['jssenv'][1]:.2f}")
    print(f"ratio twinopt/jssenv: {best['twinopt'][0] / best['jssenv'][0]:.2f}")


if __name__ == "__main__":
    main()
