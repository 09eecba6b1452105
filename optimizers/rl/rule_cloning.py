"""Warm start a dispatching policy by cloning a dispatching rule, for envs without references.

The dynamic job shop (``twinopt/DynamicDispatch-v0``) has no CP-SAT reference schedule to imitate,
but it has a strong rule for its objective (EDD for tardiness). Cloning it gives PPO a start at
the rule's level instead of a random policy's::

    python -m optimizers.rl.rule_cloning --env twinopt/DynamicDispatch-v0 --rule edd --episodes 40 --out runs/dyn_bc
    twinopt train twinopt/DynamicDispatch-v0 --algo maskable_ppo --init runs/dyn_bc/model.zip ...

Episodes are seeded ``seed, seed+1, …``; every decision with two or more candidates is labelled
with the rule's choice (:func:`optimizers.heuristics.rules.choose`), and the
:class:`~optimizers.rl.networks.JobScoringPolicy` is fitted by masked cross-entropy
(:func:`optimizers.rl.imitation.fit`, the value head on the returns-to-go of the rule's episodes).

``--rule rollout:atc`` is a rollout (pilot) teacher instead of a rule: at every decision it copies
the twin once per candidate (an engine pickles as its seed and decisions, see
:mod:`envs.dynamic_engine`), starts the candidate, lets the base rule (``atc``) dispatch for
``--window`` time units and picks the candidate with the least tardiness accrued by then. The
copies replay the episode's own random streams, so the teacher sees that episode's future
(arrivals, process times, breakdowns): a hindsight teacher the policy imitates from its
observation alone. ``--init`` starts from a saved model (e.g. a rule clone) instead of fresh
weights; the labelled decisions are saved as ``out/data.npz`` and ``--data`` reuses such a file.
"""
from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

#: JobScoringPolicy kwargs for the dynamic env's slots (envs.dynamic_engine.FEATURES; alive = occupied)
SLOT_POLICY_KWARGS: dict[str, Any] = {"hidden": 64, "attention_layers": 1, "n_features": 14, "alive_feature": None}


#: rollout teachers' look-ahead (time units) when the name gives none
ROLLOUT_WINDOW = 480.0


def rollout_rule(base_name: str, window: float = ROLLOUT_WINDOW):
    """A rule-shaped rollout teacher: key of a candidate = the tardiness accrued ``window`` time
    units after the decision when it starts now and ``base_name`` dispatches from then on, in a
    copy of the engine (which must pickle, and offer ``now`` and ``tardiness_until(t)``, as
    :class:`envs.dynamic_engine.TwinDispatchEngine` does)."""
    from optimizers.heuristics.rules import choose, get_rule

    base = get_rule(base_name)

    def keys(engine, cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        state, start = pickle.dumps(engine), engine.now
        out = np.empty(len(cand))
        for i, row in enumerate(cand):
            twin = pickle.loads(state)
            twin.dispatch(int(row))
            while not twin.done and twin.now < start + window:
                twin.dispatch(choose(base, twin, rng))
            out[i] = twin.tardiness_until(min(start + window, twin.now))
        return out
    return keys


def teacher(name: str, window: float = ROLLOUT_WINDOW):
    """The rule ``name``, or for ``rollout:<rule>`` the rollout teacher over that base rule."""
    from optimizers.heuristics.rules import get_rule

    if name.lower().startswith("rollout:"):
        return rollout_rule(name.split(":", 1)[1], window)
    return get_rule(name)


def rule_data(env_id: str, env_kwargs: dict[str, Any], rule_name: str, episodes: int, seed: int = 0,
              window: float = ROLLOUT_WINDOW):
    """(obs, masks, rule actions, returns-to-go) of ``episodes`` rule-driven episodes, decisions
    with one candidate left out (they teach nothing). The env's engine must follow the
    :class:`~twins.jobshop.dispatching.DispatchEngine` protocol."""
    from optimizers.heuristics.rules import choose
    from optimizers.rl.train import make_env

    rule, rng = teacher(rule_name, window), np.random.default_rng(seed)
    env = make_env(env_id, env_kwargs)
    obs_all: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    acts: list[int] = []
    rets: list[float] = []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        engine = env.unwrapped.engine  # type: ignore[attr-defined]
        rewards: list[float] = []
        kept: list[int] = []
        done = False
        while not done:
            action = choose(rule, engine, rng)
            if len(engine.candidates) > 1:
                obs_all.append(obs)
                masks.append(np.asarray(info["action_mask"], dtype=bool).copy())
                acts.append(action)
                kept.append(len(rewards))
            obs, reward, terminated, truncated, info = env.step(action)
            rewards.append(float(reward))
            done = terminated or truncated
        to_go = np.cumsum(rewards[::-1])[::-1]
        rets.extend(to_go[kept])
    return (np.asarray(obs_all, dtype=np.float32), np.asarray(masks), np.asarray(acts),
            np.asarray(rets, dtype=np.float32))


def clone_rule(env_id: str, rule_name: str, episodes: int, out: Path, env_kwargs: dict[str, Any] | None = None,
               policy_kwargs: dict[str, Any] | None = None, epochs: int = 10, seed: int = 0,
               value_coef: float = 0.01, window: float = ROLLOUT_WINDOW, init: Path | None = None,
               data_path: Path | None = None, lr: float = 1e-3) -> Path:
    """Fit a MaskablePPO + JobScoringPolicy (fresh, or ``init``'s weights) to the rule's (or
    rollout teacher's, see :func:`teacher`) choices; saves ``out/model.zip`` (loadable by
    ``twinopt train --init``), ``out/data.npz`` (the labelled decisions; ``data_path`` loads
    such a file instead of running episodes) and ``out/config.json``. The default policy kwargs
    (:data:`SLOT_POLICY_KWARGS`) suit the dynamic env's slots."""
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from optimizers.rl.imitation import CONFIG, fit
    from optimizers.rl.networks import JobScoringPolicy
    from optimizers.rl.train import make_env

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    env_kwargs, policy_kwargs = env_kwargs or {}, policy_kwargs or dict(SLOT_POLICY_KWARGS)
    if data_path is not None:
        with np.load(data_path) as z:
            data = (z["obs"], z["masks"], z["acts"], z["rets"])
    else:
        data = rule_data(env_id, env_kwargs, rule_name, episodes, seed, window)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "data.npz", obs=data[0], masks=data[1], acts=data[2], rets=data[3])
    venv = DummyVecEnv([lambda: make_env(env_id, env_kwargs)])
    model = MaskablePPO(JobScoringPolicy, venv, seed=seed, policy_kwargs=policy_kwargs)
    if init is not None:
        model.policy.load_state_dict(MaskablePPO.load(init, device="cpu").policy.state_dict())
    setattr(model, CONFIG, {"env_id": env_id, "env_kwargs": env_kwargs, "algo": "maskable_ppo"})
    acc = fit(model, [data], epochs, batch_size=256, lr=lr, value_coef=value_coef,
              rng=np.random.default_rng(seed))
    model.save(out / "model.zip")
    (out / "config.json").write_text(json.dumps(
        {"env_id": env_id, "env_kwargs": env_kwargs, "rule": rule_name, "episodes": episodes,
         "decisions": int(len(data[2])), "epochs": epochs, "seed": seed, "policy_kwargs": policy_kwargs,
         "window": window, "init": None if init is None else str(init),
         "data": None if data_path is None else str(data_path), "lr": lr,
         "train_share_p_rule_over_half": round(acc, 4)}, indent=2) + "\n")
    print(f"{len(data[2])} decisions, share with p(rule's choice) > 1/2: {acc:.3f}; wrote {out / 'model.zip'}")
    return out / "model.zip"


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimizers.rl.rule_cloning", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="twinopt/DynamicDispatch-v0")
    parser.add_argument("--rule", default="edd")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/dyn_bc"))
    parser.add_argument("--env-kwargs", type=json.loads, default={})
    parser.add_argument("--policy-kwargs", type=json.loads, default=SLOT_POLICY_KWARGS)
    parser.add_argument("--window", type=float, default=ROLLOUT_WINDOW, help="rollout teachers' look-ahead")
    parser.add_argument("--init", type=Path, default=None, help="start from this saved model's weights")
    parser.add_argument("--data", type=Path, default=None, help="labelled decisions (a data.npz) to fit instead")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    clone_rule(args.env, args.rule, args.episodes, args.out, args.env_kwargs, args.policy_kwargs, args.epochs,
               args.seed, window=args.window, init=args.init, data_path=args.data, lr=args.lr)
    return 0


if __name__ == "__main__":
    raise SystemExit(_cli())
