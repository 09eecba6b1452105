"""Train a reinforcement-learning agent on a registered environment and save it.

ENV_ID is a registered gymnasium id, e.g. twinopt/Dispatch-v0. Writes OUT/model.zip,
OUT/progress.csv (learning curve), OUT/eval/evaluations.npz and OUT/best/best_model.zip
(periodic evaluation) and OUT/config.json (this command, versions, wall time).

examples:
  twinopt train twinopt/Dispatch-v0 --algo maskable_ppo --timesteps 200000 --envs 2 --out runs/dispatch
  twinopt train twinopt/Dispatch-v0 --algo maskable_ppo --env-kwargs '{"instance": "ft06"}' --timesteps 20000
"""
from __future__ import annotations

import argparse
import json
import shlex

from twins.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env_id", metavar="ENV_ID", help="registered environment id, e.g. twinopt/Dispatch-v0")
    parser.add_argument("--algo", default="ppo", help="ppo (default) | sac | maskable_ppo")
    parser.add_argument("--timesteps", type=int, default=100_000, metavar="N",
                        help="total env steps over all envs (default 100000), rounded up to whole rounds: PPO "
                             "collects n_steps x envs steps per rollout (2048 x 2 = 4096 with --envs 2), so "
                             "--timesteps 2048 --envs 2 runs 4096; the progress bar counts the steps that will run")
    parser.add_argument("--envs", type=int, default=4, metavar="K", help="parallel env copies (default 4)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--out", default=None, metavar="DIR", help="output folder (default runs/<env>-<algo>-s<seed>)")
    parser.add_argument("--env-kwargs", default=None, metavar="JSON", help="keyword arguments of the env, as JSON")
    parser.add_argument("--policy-kwargs", default=None, metavar="JSON", help="keyword arguments of the policy")
    parser.add_argument("--algo-kwargs", default=None, metavar="JSON",
                        help='algorithm hyper-parameters, e.g. \'{"learning_rate": 1e-4, "n_steps": 512}\'')
    parser.add_argument("--init", default=None, metavar="MODEL", help="start from this saved model's weights")
    parser.add_argument("--eval-freq", type=int, default=None, metavar="N", help="evaluate every N steps")
    parser.add_argument("--eval-episodes", type=int, default=10, metavar="N", help="episodes per evaluation")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_json_object(text: str | None, option: str) -> dict | None:
    """``--x '{"a": 1}'`` -> dict; anything else is a one-line InputError."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{option}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(value, dict):
        raise InputError(f"{option}: expected a JSON object like '{{\"key\": value}}', got {text!r}")
    return value


def canonical_command(args: argparse.Namespace, out: str) -> str:
    """The complete command line that reproduces this run (every option spelled out)."""
    parts = ["twinopt", "train", args.env_id, "--algo", args.algo, "--timesteps", str(args.timesteps),
             "--envs", str(args.envs), "--seed", str(args.seed), "--out", out]
    for option in ("env_kwargs", "policy_kwargs", "algo_kwargs", "init", "eval_freq"):
        value = getattr(args, option)
        if value is not None:
            parts += ["--" + option.replace("_", "-"), str(value)]
    parts += ["--eval-episodes", str(args.eval_episodes)]
    return " ".join(shlex.quote(p) for p in parts)


def main(args: argparse.Namespace) -> int:
    from optimizers.rl.train import train

    env_kwargs = parse_json_object(args.env_kwargs, "--env-kwargs")
    policy_kwargs = parse_json_object(args.policy_kwargs, "--policy-kwargs")
    algo_kwargs = parse_json_object(args.algo_kwargs, "--algo-kwargs")
    out = args.out or f"runs/{args.env_id.replace('/', '_')}-{args.algo}-s{args.seed}"
    command = canonical_command(args, out)
    path = train(args.env_id, algo=args.algo, timesteps=args.timesteps, n_envs=args.envs, seed=args.seed,
                 out_dir=out, env_kwargs=env_kwargs, policy_kwargs=policy_kwargs, algo_kwargs=algo_kwargs,
                 eval_freq=args.eval_freq, eval_episodes=args.eval_episodes, init_model=args.init,
                 progress_bar=not args.no_progress, command=command)
    print(f"wrote {path} (learning curve {path.parent / 'progress.csv'}, config {path.parent / 'config.json'})")
    return 0
