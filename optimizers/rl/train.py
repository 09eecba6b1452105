"""One training function for every registered environment and every algorithm.

``train("twinopt/Dispatch-v0", algo="maskable_ppo", timesteps=200_000, n_envs=2, seed=0,
out_dir="runs/dispatch")`` writes into ``out_dir``:

* ``model.zip``       the trained SB3 / sb3-contrib model (its ``twinopt_config`` attribute holds
                      the env id and env kwargs it was trained on);
* ``progress.csv``    SB3's logger, one row per rollout/update: the learning curve
                      (``rollout/ep_rew_mean``, losses, ``eval/mean_reward`` …);
* ``eval/evaluations.npz`` and ``best/best_model.zip`` from the periodic evaluation
                      (``MaskableEvalCallback`` for ``maskable_ppo``, ``EvalCallback`` otherwise),
                      on the same seeded episodes every time;
* ``config.json``     the exact call (and command line, when run from the CLI), library versions,
                      wall time, steps actually run and final evaluation.

SB3 learns in whole rounds (PPO: rollouts of ``n_steps`` × ``n_envs`` steps; SAC: ``train_freq``
× ``n_envs``), so a run may take more steps than requested; :func:`planned_timesteps` says how
many, and the progress bar counts to that number.

The algorithms differ only in the class constructed and in their defaults; the loop (vector env,
callbacks, logger, saving) is shared.
"""
from __future__ import annotations

import importlib
import json
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym

from twins.errors import InputError

#: algo name -> (module, class)
ALGOS = {
    "ppo": ("stable_baselines3", "PPO"),
    "sac": ("stable_baselines3", "SAC"),
    "maskable_ppo": ("sb3_contrib", "MaskablePPO"),
}
#: (env id, algo) -> policy class path; anything else uses "MlpPolicy"
DEFAULT_POLICIES = {
    ("twinopt/Dispatch-v0", "maskable_ppo"): "optimizers.rl.networks:JobScoringPolicy",
    # needs policy kwargs {"n_features": 14, "alive_feature": null} (envs.dynamic_engine.FEATURES)
    ("twinopt/DynamicDispatch-v0", "maskable_ppo"): "optimizers.rl.networks:JobScoringPolicy",
}


def _import(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def algo_class(algo: str):
    """The SB3 class for ``algo`` (``ppo``, ``sac``, ``maskable_ppo``); InputError otherwise."""
    if algo not in ALGOS:
        raise InputError(f"unknown algorithm {algo!r}; choose one of {', '.join(ALGOS)}")
    module, name = ALGOS[algo]
    return getattr(importlib.import_module(module), name)


def check_env_id(env_id: str) -> None:
    """InputError unless ``env_id`` is registered (twinopt's envs are imported first)."""
    import envs  # noqa: F401  (registers twinopt/*)

    if env_id not in gym.registry:
        ours = sorted(k for k in gym.registry if k.startswith("twinopt/"))
        raise InputError(f"unknown environment {env_id!r}; twinopt provides {', '.join(ours)}")


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """``gymnasium.make(env_id, **env_kwargs)`` with twinopt's ids registered; a picklable
    module-level function, so SubprocVecEnv workers can call it. Bad kwargs -> InputError."""
    check_env_id(env_id)
    try:
        return gym.make(env_id, **(env_kwargs or {}))
    except TypeError as err:
        raise InputError(f"bad env kwargs for {env_id}: {err}") from None


def _env_factory(env_id: str, env_kwargs: dict[str, Any] | None):
    return lambda: make_env(env_id, env_kwargs)


def make_vec_env(env_id: str, n_envs: int, seed: int, env_kwargs: dict[str, Any] | None = None,
                 subprocess: bool | None = None):
    """SB3 vector env of ``n_envs`` monitored copies seeded ``seed, seed+1, …``; SubprocVecEnv when
    ``n_envs > 1`` (unless ``subprocess=False``), DummyVecEnv otherwise."""
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    use_subproc = n_envs > 1 if subprocess is None else subprocess
    return sb3_make_vec_env(_env_factory(env_id, env_kwargs), n_envs=n_envs, seed=seed,
                            vec_env_cls=SubprocVecEnv if use_subproc else DummyVecEnv)


def train(env_id: str, algo: str = "ppo", timesteps: int = 100_000, n_envs: int = 4, seed: int = 0,
          out_dir: str | Path = "runs/train", env_kwargs: dict[str, Any] | None = None,
          policy_kwargs: dict[str, Any] | None = None, algo_kwargs: dict[str, Any] | None = None,
          eval_freq: int | None = None, eval_episodes: int = 10, init_model: str | Path | None = None,
          progress_bar: bool = True, subprocess: bool | None = None, command: str | None = None) -> Path:
    """Train ``algo`` on ``env_id`` and save everything in ``out_dir``; returns the model path.

    Args:
        env_id: a registered gymnasium id, e.g. ``twinopt/Dispatch-v0``.
        algo: ``ppo``, ``sac`` (Box action spaces only) or ``maskable_ppo`` (needs
            ``action_masks()``).
        timesteps: environment steps in total (summed over the ``n_envs`` copies), rounded up to
            whole rounds (:func:`planned_timesteps`).
        n_envs: parallel environment copies (subprocesses when > 1).
        seed: seeds the model and the training envs (``seed + i``); evaluation envs use
            ``seed + 10_000``.
        out_dir: output folder (created).
        env_kwargs / policy_kwargs / algo_kwargs: passed to ``gymnasium.make``, the policy and
            the algorithm constructor (e.g. ``{"learning_rate": 3e-4, "n_steps": 512}``).
        eval_freq: evaluate every this many total steps (default: 10 evaluations per run).
        eval_episodes: episodes per evaluation.
        init_model: a saved model of the same algorithm and architecture whose weights start
            the training (warm start, e.g. from imitation).
        command: the command line to record in ``config.json``.
    """
    cls = algo_class(algo)
    probe = make_env(env_id, env_kwargs)
    if algo == "sac" and not isinstance(probe.action_space, gym.spaces.Box):
        raise InputError(f"sac needs a continuous (Box) action space; {env_id} has {probe.action_space}")
    if algo == "maskable_ppo" and not hasattr(probe.unwrapped, "action_masks"):
        raise InputError(f"maskable_ppo needs an env with action_masks(); {env_id} has none")
    probe.close()
    if timesteps <= 0 or n_envs <= 0:
        raise InputError("timesteps and number of envs must be positive")
    if init_model is not None and not Path(init_model).is_file():
        raise InputError(f"{init_model}: no such model file")

    import torch
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.logger import configure

    # small networks: one intra-op thread is faster than two fighting over a shared CPU
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Training and eval env are not of the same type")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    venv = make_vec_env(env_id, n_envs, seed, env_kwargs, subprocess)
    eval_env = make_vec_env(env_id, 1, seed + 10_000, env_kwargs, subprocess=False)
    policy = DEFAULT_POLICIES.get((env_id, algo), "MlpPolicy")
    policy_obj = _import(policy) if ":" in policy else policy
    kwargs = dict(algo_kwargs or {})
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    model = cls(policy_obj, venv, seed=seed, verbose=0, **kwargs)
    if init_model is not None:
        model.set_parameters(str(init_model), exact_match=True)
    logger = configure(str(out), ["csv"])
    model.set_logger(logger)
    Eval: type[EvalCallback] = EvalCallback
    if algo == "maskable_ppo":
        from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback

        Eval = MaskableEvalCallback
    freq = max((eval_freq or max(timesteps // 10, 1)) // n_envs, 1)
    callback = _same_episodes(Eval)(eval_env, n_eval_episodes=eval_episodes, eval_freq=freq, deterministic=True,
                                    log_path=str(out / "eval"), best_model_save_path=str(out / "best"),
                                    verbose=0)
    callback.eval_seed = seed + 10_000
    callbacks = [callback, _progress_bar(planned_timesteps(model, timesteps))] if progress_bar else [callback]
    model.learn(total_timesteps=timesteps, callback=callbacks)
    model.twinopt_config = {"env_id": env_id, "env_kwargs": env_kwargs or {}, "algo": algo}
    path = out / "model.zip"
    model.save(path)
    venv.close()
    eval_env.close()
    logger.close()  # flushes and closes progress.csv
    config = {
        "command": command or " ".join(sys.argv),
        "call": {"env_id": env_id, "algo": algo, "timesteps": timesteps, "n_envs": n_envs, "seed": seed,
                 "env_kwargs": env_kwargs or {}, "policy_kwargs": policy_kwargs or {},
                 "algo_kwargs": algo_kwargs or {}, "eval_freq": freq * n_envs, "eval_episodes": eval_episodes,
                 "init_model": str(init_model) if init_model else None},
        "policy": policy,
        "versions": _versions(),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "timesteps_run": int(model.num_timesteps),
        "best_eval_mean_reward": float(callback.best_mean_reward),
        "last_eval_mean_reward": float(callback.last_mean_reward),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return path


def planned_timesteps(model, timesteps: int) -> int:
    """Environment steps ``model.learn(total_timesteps=timesteps)`` will run, summed over the
    envs: learning goes in whole rounds — an on-policy rollout of ``n_steps`` × ``n_envs`` steps
    (PPO: 2048 requested with 2 envs and the default n_steps 2048 run 4096), an off-policy
    collection of ``train_freq`` × ``n_envs`` steps — so ``timesteps`` is rounded up to a whole
    number of rounds. Rounds of whole episodes (``train_freq`` in episodes) have no length known
    in advance: then ``timesteps`` itself."""
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
    from stable_baselines3.common.type_aliases import TrainFrequencyUnit

    if isinstance(model, OnPolicyAlgorithm):
        per_round = model.n_steps * model.n_envs
    elif model.train_freq.unit == TrainFrequencyUnit.STEP:
        per_round = model.train_freq.frequency * model.n_envs
    else:
        return timesteps
    return -(-timesteps // per_round) * per_round  # learn() starts counting from 0


def _progress_bar(total: int):
    """SB3's progress bar, counting to ``total`` (the steps that will run, not those requested)."""
    from stable_baselines3.common.callbacks import ProgressBarCallback
    from tqdm.rich import tqdm  # as SB3's own bar

    class Progress(ProgressBarCallback):
        def _on_training_start(self) -> None:
            self.pbar = tqdm(total=total)

    return Progress()


def _same_episodes(base):
    """``base`` (an EvalCallback class) re-seeding its env before every evaluation, so each
    evaluation plays the same episodes (common random numbers: the curve shows learning, not
    which instances were drawn)."""
    class SameEpisodesEval(base):
        eval_seed = 0

        def _on_step(self) -> bool:
            if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
                self.eval_env.seed(self.eval_seed)
            return super()._on_step()
    return SameEpisodesEval


def _versions() -> dict[str, str]:
    import numpy
    import sb3_contrib
    import stable_baselines3
    import torch

    return {"python": platform.python_version(), "numpy": numpy.__version__, "torch": torch.__version__,
            "gymnasium": gym.__version__, "stable_baselines3": stable_baselines3.__version__,
            "sb3_contrib": sb3_contrib.__version__}


#: shipped policies (optimizers/rl/policies/<name>.zip, commands and numbers in <name>.json)
POLICIES = Path(__file__).resolve().parent / "policies"


def shipped_policy(name: str | Path) -> Path | None:
    """``optimizers/rl/policies/<name>.zip`` when ``name`` is a bare shipped policy name (e.g.
    ``dynamic_jobshop``) and no file of that name exists here; None otherwise."""
    text = str(name)
    if Path(text).exists() or "/" in text or "\\" in text or text.endswith(".zip"):
        return None
    path = POLICIES / f"{text}.zip"
    return path if path.is_file() else None


def load_model(model_path: str | Path, algo: str | None = None):
    """Load a saved model; the algorithm comes from ``algo``, the model's ``twinopt_config`` or
    the ``config.json`` next to it, else each known algorithm is tried. A bare shipped policy name
    (``jss15x15``, ``dynamic_jobshop``: :func:`shipped_policy`) loads that policy. InputError if
    unreadable."""
    path = shipped_policy(model_path) or Path(model_path)
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    if algo is None:
        cfg = path.parent / "config.json"
        if cfg.is_file():
            try:
                algo = json.loads(cfg.read_text()).get("call", {}).get("algo")
            except (OSError, json.JSONDecodeError):
                algo = None
    order = [algo] if algo in ALGOS else ["maskable_ppo", "ppo", "sac"]
    errors = []
    for name in order:
        try:
            return algo_class(name).load(str(path), device="cpu")
        except Exception as err:  # noqa: BLE001 - try the next algorithm, report all if none fits
            errors.append(f"{name}: {type(err).__name__}")
    raise InputError(f"{path}: not a loadable model ({'; '.join(errors)})")
