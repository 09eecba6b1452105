"""Self-labeling for the size-agnostic job-shop dispatching policy (Corsini et al. 2024,
"Self-Labeling the Job Shop Scheduling Problem").

No expert: for every random training instance the current policy samples ``k`` complete
schedules (candidates drawn from the masked softmax of its scores; the ``k`` engines run in
lockstep, one batched network call per step), the shortest one becomes the label, and the scorer
is fitted by cross-entropy to that schedule's decisions (state -> chosen candidate, over the
masked candidates). Repeat on fresh instances. Instances come from
:func:`twins.jobshop.generate.random_instance` with ``numpy.random.default_rng((seed, i))`` (never
a Taillard instance); sizes are drawn from a mixed list, since the network has no size-dependent
weight. Validation: greedy makespans on held-out random instances of several sizes, relative to
MWKR and to the starting weights; the best checkpoint is kept.

    python -m optimizers.rl.self_labeling train --init optimizers/rl/policies/jss15x15.zip \\
        --out runs/sls --sizes 10x10,15x15,20x15,20x20,30x15,30x20 --k 32 --minutes 30
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twins.jobshop.engine import JobShopEngine
from twins.jobshop.generate import random_instance
from twins.jobshop.instances import JobShopInstance

ENV_ID = "twinopt/Dispatch-v0"
CONFIG = "twinopt_config"


@dataclass
class Run:
    """One engine of a lockstep batch and the jobs it dispatched at multi-candidate decisions."""

    engine: JobShopEngine
    choices: list[int]


def _advance_forced(engine: JobShopEngine) -> None:
    while not engine.done and len(engine.candidates) == 1:
        engine.dispatch(int(engine.candidates[0]))


def rollouts(scorer, instances: list[JobShopInstance], k: int, rng: np.random.Generator | None,
             mode: str = "active", temperature: float = 1.0) -> list[list[Run]]:
    """``k`` complete schedules of every instance (all of one number of jobs), all engines in
    lockstep with one batched scorer call per step. ``rng`` None = greedy (masked argmax, lowest
    job on ties, as :func:`optimizers.rl.dispatch.greedy_dispatch`), else each choice is drawn
    from the masked softmax of the scores / ``temperature`` (Gumbel-max with ``rng``; below 1 the
    samples stay closer to the greedy schedule). Single-candidate decisions
    are taken without the scorer. Returns ``runs[instance][sample]``."""
    import torch

    if len({inst.n_jobs for inst in instances}) > 1:
        raise ValueError("rollouts: every instance of one call needs the same number of jobs")
    if not temperature > 0:
        raise ValueError(f"rollouts: the sampling temperature must be > 0, got {temperature}")
    runs = [[Run(JobShopEngine(inst, mode), []) for _ in range(k)] for inst in instances]
    live = [r for group in runs for r in group]
    with torch.inference_mode():
        while True:
            for r in live:
                _advance_forced(r.engine)
            live = [r for r in live if not r.engine.done]
            if not live:
                break
            obs = torch.from_numpy(np.stack([r.engine.observation().reshape(-1) for r in live]))
            mask = np.stack([r.engine.mask for r in live])
            logits = scorer.forward_actor(obs).numpy().astype(np.float64)
            if rng is not None:
                logits = logits / temperature + rng.gumbel(size=logits.shape)
            act = np.where(mask, logits, -np.inf).argmax(axis=1)
            for r, a in zip(live, act, strict=True):
                r.choices.append(int(a))
                r.engine.dispatch(int(a))
    return runs


def makespan(run: Run) -> float:
    return float(run.engine.makespan_lb)


def labels(instance: JobShopInstance, choices: list[int],
           mode: str = "active") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replay ``choices`` (the multi-candidate decisions of one schedule) on a fresh engine:
    (observations (N, n * F) float32, masks (N, n) bool, chosen jobs (N,)) of its decisions."""
    engine = JobShopEngine(instance, mode)
    obs, masks = [], []
    for a in choices:
        _advance_forced(engine)
        if not engine.mask[a]:
            raise ValueError(f"{instance.name}: job {a} is not a candidate when replayed")
        obs.append(engine.observation().reshape(-1))
        masks.append(engine.mask.copy())
        engine.dispatch(a)
    _advance_forced(engine)
    if not engine.done:
        raise ValueError(f"{instance.name}: the replayed choices do not complete the schedule")
    n = instance.n_jobs
    return (np.array(obs, dtype=np.float32).reshape(len(choices), -1), np.array(masks, dtype=bool).reshape(-1, n),
            np.array(choices, dtype=np.int64))


def best_of_k(scorer, instances: list[JobShopInstance], k: int, rng: np.random.Generator,
              mode: str = "active", temperature: float = 1.0) -> list[tuple[Run, np.ndarray]]:
    """Per instance (same number of jobs): the shortest of ``k`` sampled schedules and all ``k``
    sampled makespans."""
    runs = rollouts(scorer, instances, k, rng, mode, temperature)
    out = []
    for group in runs:
        spans = np.array([makespan(r) for r in group])
        out.append((group[int(spans.argmin())], spans))
    return out


def greedy_makespans(scorer, instances: list[JobShopInstance], mode: str = "active") -> np.ndarray:
    """Greedy makespan of every instance (grouped by number of jobs, lockstep)."""
    spans = np.zeros(len(instances))
    for n in sorted({inst.n_jobs for inst in instances}):
        idx = [i for i, inst in enumerate(instances) if inst.n_jobs == n]
        runs = rollouts(scorer, [instances[i] for i in idx], 1, None, mode)
        for i, group in zip(idx, runs, strict=True):
            spans[i] = makespan(group[0])
    return spans


def train_step(scorer, optimizer, data: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
               batch_size: int, rng: np.random.Generator, clip: float = 1.0) -> float:
    """One pass of masked cross-entropy over ``data`` (per-size (obs, masks, actions) arrays;
    minibatches hold one size, in a shuffled order). Returns the mean loss."""
    import torch

    batches = []
    for d, (rows, _, _) in enumerate(data):
        perm = rng.permutation(len(rows))
        batches += [(d, perm[s:s + batch_size]) for s in range(0, len(perm), batch_size)]
    losses = []
    scorer.train()
    for j in rng.permutation(len(batches)):
        d, idx = batches[j]
        obs, masks, acts = (torch.as_tensor(np.asarray(x)[idx]) for x in data[d])
        logits = scorer.forward_actor(obs).masked_fill(~masks, -1e8)
        loss = torch.nn.functional.cross_entropy(logits, acts)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(scorer.parameters(), clip)
        optimizer.step()
        losses.append(float(loss.detach()))
    scorer.eval()
    return float(np.mean(losses)) if losses else 0.0


def parse_sizes(text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in (s.strip().split("x") for s in text.split(",") if s.strip())]


def validation_set(sizes: list[tuple[int, int]], per_size: int, seed: int) -> list[JobShopInstance]:
    """Held-out random instances: ``per_size`` of each size, generator ``(seed, size index, i)``."""
    return [random_instance(np.random.default_rng((seed, s, i)), n, m, name=f"val{n}x{m}_{i}")
            for s, (n, m) in enumerate(sizes) for i in range(per_size)]


def _mwkr(instances: list[JobShopInstance]) -> np.ndarray:
    from optimizers.heuristics.rules import schedule_with_rule

    return np.array([schedule_with_rule(inst, "mwkr").makespan for inst in instances], dtype=float)


def _per_size(instances: list[JobShopInstance], ratio: np.ndarray) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    for inst, r in zip(instances, ratio, strict=True):
        out.setdefault(f"{inst.n_jobs}x{inst.n_machines}", []).append(float(r))
    return {k: round(float(np.mean(v)), 4) for k, v in out.items()}


def train(init: Path, out: Path, sizes: list[tuple[int, int]], weights: list[float] | None = None, k: int = 32,
          instances_per_iter: int = 4, iterations: int = 1000, minutes: float | None = None, lr: float = 1e-5,
          batch_size: int = 256, seed: int = 0, val_sizes: list[tuple[int, int]] | None = None,
          val_per_size: int = 4, val_every: int = 10, val_seed: int = 99_000, mode: str = "active",
          progress: bool = True, temperature: float = 1.0) -> dict:
    """Self-labeling from the saved JobScoringPolicy model ``init``; writes ``out/model.zip`` (the
    checkpoint with the best mean validation greedy makespan / MWKR, the initial weights included)
    and ``out/config.json``. Each iteration draws ``instances_per_iter`` instances of one size
    (``weights`` = size probabilities), samples ``k`` schedules each, and takes one gradient pass
    over the best schedules' decisions."""
    import torch
    from tqdm import tqdm

    from optimizers.rl.train import load_model

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(str(init))
    scorer = model.policy.mlp_extractor
    scorer.eval()
    optimizer = torch.optim.Adam(scorer.parameters(), lr=lr)
    val = validation_set(val_sizes or sizes, val_per_size, val_seed)
    mwkr = _mwkr(val)

    def validate() -> tuple[float, dict[str, float]]:
        ratio = greedy_makespans(scorer, val, mode) / mwkr
        return float(ratio.mean()), _per_size(val, ratio)

    best_ratio, per_size = validate()
    history = [{"iteration": 0, "instances": 0, "val_ratio_to_mwkr": round(best_ratio, 4), "per_size": per_size}]
    print(json.dumps(history[-1]), flush=True)
    model.save(out / "model.zip")
    best_it = 0
    p = np.asarray(weights if weights else [1.0] * len(sizes), dtype=float)
    p = p / p.sum()
    started = time.perf_counter()
    count, recent_gain, recent_loss = 0, [], []
    bar = tqdm(range(1, iterations + 1), disable=not progress, mininterval=10)
    for it in bar:
        n, m = sizes[int(rng.choice(len(sizes), p=p))]
        insts = [random_instance(np.random.default_rng((seed, it, i)), n, m, name=f"sl{it}_{i}")
                 for i in range(instances_per_iter)]
        count += len(insts)
        best = best_of_k(scorer, insts, k, rng, mode, temperature)
        per_instance = [labels(inst, run.choices, mode) for inst, (run, _) in zip(insts, best, strict=True)]
        obs, masks, acts = (np.concatenate([d[j] for d in per_instance]) for j in range(3))
        data = [(obs, masks, acts)]
        recent_gain += [float(spans.min() / spans.mean()) for _, spans in best]
        recent_loss.append(train_step(scorer, optimizer, data, batch_size, rng))
        bar.set_postfix(size=f"{n}x{m}", loss=f"{np.mean(recent_loss[-20:]):.3f}",
                        best_over_mean=f"{np.mean(recent_gain[-40:]):.3f}")
        done = minutes is not None and time.perf_counter() - started > 60 * minutes
        if it % val_every == 0 or done or it == iterations:
            ratio, per_size = validate()
            history.append({"iteration": it, "instances": count, "val_ratio_to_mwkr": round(ratio, 4),
                            "per_size": per_size, "loss": round(float(np.mean(recent_loss[-val_every:])), 4),
                            "best_over_mean": round(float(np.mean(recent_gain[-4 * val_every:])), 4),
                            "minutes": round((time.perf_counter() - started) / 60, 1)})
            print(json.dumps(history[-1]), flush=True)
            model.save(out / f"it{it:05d}.zip")
            if ratio < best_ratio:
                best_ratio, best_it = ratio, it
                model.save(out / "model.zip")
        if done:
            break
    config = {"command": "python -m optimizers.rl.self_labeling " + " ".join(sys.argv[1:]), "init": str(init),
              "sizes": [f"{a}x{b}" for a, b in sizes], "weights": p.round(4).tolist(), "k": k,
              "instances_per_iter": instances_per_iter, "temperature": temperature, "lr": lr,
              "batch_size": batch_size, "seed": seed,
              "mode": mode, "val_sizes": [f"{a}x{b}" for a, b in (val_sizes or sizes)], "val_per_size": val_per_size,
              "val_seed": val_seed, "best_iteration": best_it, "best_val_ratio_to_mwkr": round(best_ratio, 4),
              "train_instances": count, "wall_minutes": round((time.perf_counter() - started) / 60, 1),
              "history": history}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return config


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimizers.rl.self_labeling", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="self-labeling from a saved JobScoringPolicy model")
    t.add_argument("--init", type=Path, required=True)
    t.add_argument("--out", type=Path, default=Path("runs/self_labeling"))
    t.add_argument("--sizes", default="10x10,15x15,20x15,20x20,30x15,30x20")
    t.add_argument("--weights", default=None, help="comma-separated probabilities of the sizes")
    t.add_argument("--k", type=int, default=32, help="sampled schedules per instance")
    t.add_argument("--instances-per-iter", type=int, default=4)
    t.add_argument("--temperature", type=_positive, default=1.0, help="sampling temperature of the k schedules")
    t.add_argument("--iterations", type=int, default=1000)
    t.add_argument("--minutes", type=float, default=None, help="stop after this wall time")
    t.add_argument("--lr", type=float, default=1e-5)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-sizes", default="15x15,20x15,20x20,30x15,30x20,50x20")
    t.add_argument("--val-per-size", type=int, default=4)
    t.add_argument("--val-every", type=int, default=10)
    t.add_argument("--mode", default="active", choices=("active", "non_delay"))
    t.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    train(args.init, args.out, parse_sizes(args.sizes),
          [float(w) for w in args.weights.split(",")] if args.weights else None, args.k, args.instances_per_iter,
          args.iterations, args.minutes, args.lr, args.batch_size, args.seed,
          parse_sizes(args.val_sizes) if args.val_sizes else None, args.val_per_size, args.val_every,
          mode=args.mode, progress=not args.no_progress, temperature=args.temperature)
    return 0


if __name__ == "__main__":
    raise SystemExit(_cli())
