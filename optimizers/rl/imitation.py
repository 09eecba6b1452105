"""Warm start for the job-shop dispatch policy: imitate near-optimal CP-SAT schedules.

Reproduces ``optimizers/rl/policies/jss15x15.zip`` in three commands (the exact options are in
``optimizers/rl/policies/jss15x15.json``, under "reproduce")::

    python -m optimizers.rl.imitation references --count 300 --seed 1000 --out runs/jss15_refs
    python -m optimizers.rl.imitation clone --refs runs/jss15_refs --out runs/jss15_bc
    twinopt train twinopt/Dispatch-v0 --algo maskable_ppo --init runs/jss15_bc/model.zip ...

1. ``references``: random 15x15 Taillard-style instances (``twins.jobshop.generate.random_instance``
   with ``numpy.random.default_rng((seed, i))``, never the ta01-ta10 benchmark instances), each
   solved by CP-SAT (:func:`optimizers.cp.solve`) with one worker and a *deterministic* time
   budget, so the files are reproducible bit for bit. One ``.npz`` per instance: resumable and
   usable while running. (The shipped policy's references came from an earlier, plainer copy of
   the CP-SAT model: same instances and budget, but start times and bounds of the references not
   proven optimal differ from what this version writes.)
2. ``clone``: behaviour cloning with DAgger. The expert at any state of the dispatch engine picks,
   among the candidates, the job whose next operation starts earliest in the reference schedule
   (Giffler-Thompson guided by the reference; on the reference's own trajectory this rebuilds an
   active schedule no longer than the reference). Rounds roll out the current policy, label the
   states it visits with the expert, aggregate and refit (Ross et al., 2011). The value head is
   fitted to the returns of those rollouts so PPO fine-tuning starts from a sensible critic.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from twins.errors import InputError, NoSolutionFound
from twins.jobshop.engine import JobShopEngine
from twins.jobshop.generate import random_instance
from twins.jobshop.instances import Bounds, JobShopInstance


def solve_reference(instance: JobShopInstance, deterministic_seconds: float = 10.0,
                    workers: int = 1) -> tuple[np.ndarray, int, int]:
    """CP-SAT schedule of ``instance`` (:func:`optimizers.cp.solve`): (start times (n_jobs, max
    ops), makespan, proven bound).

    A deterministic time budget with one worker makes the result independent of machine load.

    Raises:
        NoSolutionFound: CP-SAT found no schedule within the budget.
    """
    from optimizers import cp

    schedule = cp.solve(instance, time_limit=None, workers=workers, deterministic_time=deterministic_seconds)
    if not schedule.operations or schedule.lower_bound is None:  # (the bound comes with any schedule)
        raise NoSolutionFound(f"CP-SAT found no schedule for {instance.name}", schedule.status)
    K = max(len(ops) for ops in instance.jobs)
    out = np.full((instance.n_jobs, K), -1, dtype=np.int64)
    for o in schedule.operations:
        out[o.job, o.op] = o.start
    return out, int(schedule.makespan), int(schedule.lower_bound)


def reference_instance(seed: int, index: int, n_jobs: int = 15, n_machines: int = 15) -> JobShopInstance:
    """The ``index``-th training instance of the family (its own seeded generator)."""
    return random_instance(np.random.default_rng((seed, index)), n_jobs, n_machines,
                           name=f"ref{seed}_{index}")


def make_references(count: int, seed: int, out: Path, deterministic_seconds: float = 10.0,
                    n_jobs: int = 15, n_machines: int = 15,
                    sizes: list[tuple[int, int]] | None = None) -> None:
    """Write ``out/ref_<i>.npz`` (machines, durations, reference starts, makespan, bound) for
    ``i < count``; existing files are kept, so an interrupted run resumes. With ``sizes``
    (jobs, machines) reference ``i`` has size ``sizes[i % len(sizes)]`` (a mixed-size family for
    a size-agnostic policy), else every reference is ``n_jobs`` x ``n_machines``."""
    out.mkdir(parents=True, exist_ok=True)
    sizes = sizes or [(n_jobs, n_machines)]
    for i in range(count):
        path = out / f"ref_{i:05d}.npz"
        if path.exists():
            continue
        inst = reference_instance(seed, i, *sizes[i % len(sizes)])
        t0 = time.perf_counter()
        starts, makespan, bound = solve_reference(inst, deterministic_seconds)
        arr = np.array(inst.jobs)  # (n_jobs, n_machines, 2)
        tmp = out / f".tmp_{i:05d}.npz"
        np.savez(tmp, machines=arr[:, :, 0], durations=arr[:, :, 1], starts=starts,
                 makespan=makespan, bound=bound)
        tmp.rename(path)
        print(f"{path.name} {inst.n_jobs}x{inst.n_machines} makespan {makespan} bound {bound} "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)


def load_references(folder: Path) -> list[tuple[JobShopInstance, np.ndarray]]:
    """All (instance, reference starts) pairs in ``folder``, in file order."""
    refs = []
    for path in sorted(Path(folder).glob("ref_*.npz")):
        z = np.load(path)
        jobs = tuple(tuple((int(m), int(d)) for m, d in zip(mr, dr, strict=True))
                     for mr, dr in zip(z["machines"], z["durations"], strict=True))
        inst = JobShopInstance(path.stem, jobs, int(z["machines"].shape[1]),
                               Bounds(int(z["bound"]), int(z["makespan"])))
        refs.append((inst, z["starts"]))
    return refs


def mirrored(instance: JobShopInstance, starts: np.ndarray) -> tuple[JobShopInstance, np.ndarray]:
    """The time-reversed problem with its reference: every route reversed, and the schedule read
    backwards (start' = makespan - end). Feasible and of the same makespan, so a reference for the
    mirror costs nothing (a standard job-shop symmetry)."""
    jobs = tuple(tuple(reversed(ops)) for ops in instance.jobs)
    ends = np.array([[starts[j, k] + d for k, (_, d) in enumerate(ops)] for j, ops in enumerate(instance.jobs)])
    makespan = ends.max()
    mirror = (makespan - ends)[:, ::-1].copy()
    return JobShopInstance(instance.name + "_mirror", jobs, instance.n_machines, instance.bounds), mirror


#: an expert: (engine, reference starts (n_jobs, max ops)) -> job to dispatch. Experts read the
#: static engine's ``next_op`` and ``copy()``, which the DispatchEngine protocol does not declare.
Expert = Callable[[JobShopEngine, np.ndarray], int]


def expert_action(engine: JobShopEngine, ref_starts: np.ndarray) -> int:
    """The candidate whose next operation starts earliest in the reference (lowest job on ties)."""
    c = engine.candidates
    ref = ref_starts[c, engine.next_op[c]]
    return int(c[ref.argmin()])


ENV_ID = "twinopt/Dispatch-v0"
#: the model attribute recording the env it is for (optimizers.rl.train; saved with the model)
CONFIG = "twinopt_config"


def new_model(n_jobs: int = 15, n_machines: int = 15, hidden: int = 128, seed: int = 0, attention_layers: int = 0,
              **algo_kwargs):
    """An untrained MaskablePPO + :class:`~optimizers.rl.networks.JobScoringPolicy` for the
    family, with the env kwargs the policy is meant for recorded in ``twinopt_config``."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from optimizers.rl.networks import JobScoringPolicy
    from optimizers.rl.train import make_env

    env_kwargs = {"n_jobs": n_jobs, "n_machines": n_machines, "mode": "active", "skip_forced": True}
    venv = DummyVecEnv([lambda: make_env(ENV_ID, env_kwargs)])
    model = MaskablePPO(JobScoringPolicy, venv, seed=seed,
                        policy_kwargs={"hidden": hidden, "attention_layers": attention_layers}, **algo_kwargs)
    setattr(model, CONFIG, {"env_id": ENV_ID, "env_kwargs": env_kwargs, "algo": "maskable_ppo"})
    return model


#: rollout data of one instance size: (obs (N, n*F) float32, masks (N, n) bool, expert actions (N,),
#: returns-to-go (N,)); a mixed-size family gives one bucket per number of jobs
Bucket = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _greedy(policy, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The policy's masked argmax for a batch of same-size observations, scored by its
    :class:`~optimizers.rl.networks.JobScorer` directly (any number of job rows)."""
    import torch

    with torch.no_grad():
        logits = policy.mlp_extractor.forward_actor(torch.as_tensor(obs))
    return logits.masked_fill(~torch.as_tensor(masks), -torch.inf).argmax(dim=1).numpy()


def rollout(refs: list[tuple[JobShopInstance, np.ndarray]], policy=None, beta: float = 1.0,
            rng: np.random.Generator | None = None,
            expert: Expert = expert_action) -> tuple[list[Bucket], np.ndarray]:
    """Run every instance to completion, same-size engines in lockstep (one batched forward per
    step and size).

    At each decision with two or more candidates the acting choice is the expert's with
    probability ``beta``, else the policy's greedy choice; every visited state is labelled with
    the expert's choice. Returns one :data:`Bucket` per number of jobs (returns-to-go =
    -(final makespan - LB at the state) / S) and the final makespans in ``refs`` order.
    """
    rng = rng or np.random.default_rng(0)
    makespans = np.zeros(len(refs))
    buckets = []
    for n_jobs in sorted({inst.n_jobs for inst, _ in refs}):
        group = [i for i, (inst, _) in enumerate(refs) if inst.n_jobs == n_jobs]
        engines = {i: JobShopEngine(refs[i][0], "active") for i in group}
        obs, masks, labels, lbs, owner = [], [], [], [], []
        live = group
        while live:
            batch = []
            for i in live:
                e = engines[i]
                while not e.done and len(e.candidates) == 1:
                    e.dispatch(int(e.candidates[0]))
                if not e.done:
                    batch.append(i)
            live = batch
            if not live:
                break
            o = np.stack([engines[i].observation().reshape(-1) for i in live])
            m = np.stack([engines[i].mask for i in live])
            labels_now = np.array([expert(engines[i], refs[i][1]) for i in live])
            act = labels_now.copy()
            if policy is not None and beta < 1.0:
                use_policy = rng.random(len(live)) >= beta
                act[use_policy] = _greedy(policy, o, m)[use_policy]
            obs.append(o)
            masks.append(m)
            labels.append(labels_now)
            lbs.append([engines[i].makespan_lb for i in live])
            owner.append(live)
            for i, a in zip(live, act, strict=True):
                engines[i].dispatch(int(a))
        for i in group:
            makespans[i] = engines[i].makespan_lb
        if not obs:
            continue
        owner_a, lb_a = np.concatenate(owner), np.concatenate(lbs)
        scale = np.array([engines[i].scale for i in owner_a])
        returns = -(makespans[owner_a] - lb_a) / scale
        buckets.append((np.concatenate(obs).astype(np.float32), np.concatenate(masks), np.concatenate(labels),
                        returns.astype(np.float32)))
    return buckets, makespans


def fit(model, buckets: list[Bucket], epochs: int, batch_size: int = 512, lr: float = 1e-3, value_coef: float = 0.5,
        rng: np.random.Generator | None = None) -> float:
    """Supervised epochs on per-size buckets of (obs, masks, expert actions, returns): masked
    cross-entropy on the actions plus ``value_coef`` x MSE of the value head. Every minibatch
    holds one size (the scorer reads n from the row count, so no padding); minibatches of all
    sizes are shuffled together. Returns the last epoch's share of states where the expert's
    action has probability > 1/2."""
    import torch

    rng = rng or np.random.default_rng(0)
    policy = model.policy
    policy.set_training_mode(True)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    data = [tuple(torch.as_tensor(x) for x in b) for b in buckets]
    n = sum(len(b[2]) for b in data)
    steps = sum((len(b[2]) + batch_size - 1) // batch_size for b in data)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    acc = 0.0
    for _ in range(epochs):
        batches = []
        for k, b in enumerate(data):
            perm = torch.as_tensor(rng.permutation(len(b[2])))
            batches += [(k, perm[s:s + batch_size]) for s in range(0, len(perm), batch_size)]
        correct = 0
        for j in rng.permutation(len(batches)):
            k, idx = batches[j]
            obs, masks, acts, rets = (x[idx] for x in data[k])
            logits, latent_vf = policy.mlp_extractor(obs)
            log_p = torch.log_softmax(logits.masked_fill(~masks, -1e8), dim=1).gather(1, acts[:, None]).squeeze(1)
            values = policy.value_net(latent_vf).flatten()
            loss = -log_p.mean() + value_coef * torch.nn.functional.mse_loss(values, rets)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
            sched.step()
            correct += int((log_p > np.log(0.5)).sum())
        acc = correct / n
    policy.set_training_mode(False)
    return acc


def greedy_gaps(model, refs: list[tuple[JobShopInstance, np.ndarray]]) -> np.ndarray:
    """Greedy policy makespan / reference makespan - 1 for each instance."""
    _, makespans = rollout(refs, model.policy, beta=0.0)
    return makespans / np.array([_reference_makespan(inst) for inst, _ in refs]) - 1.0


def _reference_makespan(instance: JobShopInstance) -> int:
    """The reference (CP-SAT) makespan a loaded reference instance carries as its upper bound."""
    if instance.bounds.upper_bound is None:
        raise InputError(f"{instance.name}: no reference makespan")
    return instance.bounds.upper_bound


def clone(refs_dir: Path, out: Path, rounds: int = 5, epochs: int = 8, hidden: int = 128, seed: int = 0,
          validation: int = 40, limit: int | None = None, attention_layers: int = 0, lr: float = 1e-3,
          mirror: bool = False, betas: tuple[float, ...] | None = None, expert: str = "reference",
          init: Path | None = None) -> Path:
    """Behaviour cloning with DAgger on the references in ``refs_dir`` (any mix of sizes); the
    last ``validation`` references are held out. ``init`` warm-starts from a saved
    JobScoringPolicy model (its weights do not depend on the number of jobs), which is also the
    model to beat on the validation references. Saves ``out/model.zip`` (a MaskablePPO model)
    and ``out/config.json``."""
    import json
    import sys

    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    refs = load_references(refs_dir)
    if limit:
        refs = refs[:limit]
    if len(refs) <= validation:
        raise InputError(f"{refs_dir}: {len(refs)} references, need more than {validation} (the validation share)")
    train_refs, val_refs = refs[:-validation], refs[-validation:]
    if mirror:
        train_refs = train_refs + [mirrored(inst, st) for inst, st in train_refs]
    inst0 = refs[0][0]
    out.mkdir(parents=True, exist_ok=True)
    best: tuple[float, int | None] = (np.inf, None)  # (validation gap, round)
    if init is not None:
        from optimizers.rl.train import load_model

        model = load_model(str(init))
        setattr(model, CONFIG, getattr(model, CONFIG, None) or {"env_id": ENV_ID, "algo": "maskable_ppo",
                "env_kwargs": {"n_jobs": inst0.n_jobs, "n_machines": inst0.n_machines, "mode": "active",
                               "skip_forced": True}})
        best = (float(greedy_gaps(model, val_refs).mean()), None)
        print({"init": str(init), "val_gap_to_reference": round(best[0], 4)}, flush=True)
        model.save(out / "model.zip")
    else:
        model = new_model(inst0.n_jobs, inst0.n_machines, hidden, seed, attention_layers, gamma=1.0)
    from optimizers.heuristics.rules import schedule_with_rule

    mwkr = np.mean([schedule_with_rule(i, "mwkr").makespan / _reference_makespan(i) - 1 for i, _ in val_refs])
    history: list[dict] = []
    data: list[Bucket] | None = None
    started = time.perf_counter()
    betas = betas or tuple(1.0 if r == 0 else 0.5 ** r if r < 3 else 0.0 for r in range(rounds))
    for r, beta in enumerate(betas):
        new, _ = rollout(train_refs, model.policy, beta=beta, rng=rng, expert=EXPERTS[expert])
        data = _merge(data, new)
        acc = fit(model, data, epochs, lr=lr, rng=rng)
        gaps = greedy_gaps(model, val_refs)
        history.append({"round": r, "beta": beta, "samples": int(sum(len(b[2]) for b in data)),
                        "train_share_p_expert_over_half": round(acc, 4),
                        "val_gap_to_reference": round(float(gaps.mean()), 4),
                        "minutes": round((time.perf_counter() - started) / 60, 1)})
        print(history[-1], flush=True)
        if gaps.mean() < best[0]:
            best = (float(gaps.mean()), r)
            model.save(out / "model.zip")
    config = {"command": "python -m optimizers.rl.imitation " + " ".join(sys.argv[1:]),
              "references": str(refs_dir), "train_instances": len(train_refs), "validation_instances": len(val_refs),
              "rounds": rounds, "epochs": epochs, "hidden": hidden, "attention_layers": attention_layers,
              "lr": lr, "mirror": mirror, "betas": list(betas), "expert": expert, "seed": seed,
              "init": str(init) if init else None,
              "val_gap_mwkr_to_reference": round(float(mwkr), 4), "best_round": best[1],
              "best_val_gap_to_reference": round(best[0], 4), "history": history,
              "call": {"algo": "maskable_ppo", "env_id": ENV_ID, "env_kwargs": getattr(model, CONFIG)["env_kwargs"]}}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out / "model.zip"


def _merge(data: list[Bucket] | None, new: list[Bucket]) -> list[Bucket]:
    """DAgger's aggregate: ``new`` buckets appended to the same-size buckets of ``data``."""
    if data is None:
        return new
    by_size = {b[1].shape[1]: b for b in data}
    for b in new:
        old = by_size.get(b[1].shape[1])
        by_size[b[1].shape[1]] = b if old is None else tuple(  # type: ignore[assignment]
            np.concatenate([x, y]) for x, y in zip(old, b, strict=True))
    return [by_size[k] for k in sorted(by_size)]


def lookahead_expert(engine: JobShopEngine, ref_starts: np.ndarray) -> int:
    """A stronger expert off the reference's trajectory: try every candidate, finish each copy
    with :func:`expert_action`, keep the candidate with the shortest makespan (the reference's own
    choice on ties). On the reference trajectory it is at least as good as the reference."""
    default = expert_action(engine, ref_starts)
    best, best_makespan = default, np.inf
    for c in [default] + [int(c) for c in engine.candidates if c != default]:
        trial = engine.copy()
        trial.dispatch(c)
        while not trial.done:
            trial.dispatch(expert_action(trial, ref_starts))
        if trial.makespan_lb < best_makespan:
            best, best_makespan = c, trial.makespan_lb
    return best


EXPERTS: dict[str, Expert] = {"reference": expert_action, "lookahead": lookahead_expert}


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimizers.rl.imitation", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("references", help="solve random instances with CP-SAT")
    r.add_argument("--count", type=int, default=400)
    r.add_argument("--seed", type=int, default=1000)
    r.add_argument("--out", type=Path, default=Path("runs/jss15_refs"))
    r.add_argument("--deterministic-seconds", type=float, default=10.0)
    r.add_argument("--size", type=int, nargs=2, default=(15, 15), metavar=("JOBS", "MACHINES"))
    r.add_argument("--sizes", default=None,
                   help="comma-separated JOBSxMACHINES cycled over the references (overrides --size), e.g. 10x10,20x15")
    c = sub.add_parser("clone", help="behaviour cloning + DAgger on the references")
    c.add_argument("--refs", type=Path, default=Path("runs/jss15_refs"))
    c.add_argument("--out", type=Path, default=Path("runs/jss15_bc"))
    c.add_argument("--rounds", type=int, default=5)
    c.add_argument("--epochs", type=int, default=8)
    c.add_argument("--hidden", type=int, default=128)
    c.add_argument("--attention", type=int, default=0, help="transformer layers over the job rows")
    c.add_argument("--lr", type=float, default=1e-3)
    c.add_argument("--mirror", action="store_true", help="add the time-reversed twin of every training reference")
    c.add_argument("--betas", default=None, help="comma-separated expert share per round (overrides --rounds)")
    c.add_argument("--expert", default="reference", choices=sorted(EXPERTS))
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--validation", type=int, default=40)
    c.add_argument("--limit", type=int, default=None, help="use only the first N references")
    c.add_argument("--init", type=Path, default=None, help="warm start from this saved JobScoringPolicy model")
    args = parser.parse_args(argv)
    if args.cmd == "clone":
        clone(args.refs, args.out, args.rounds, args.epochs, args.hidden, args.seed, args.validation, args.limit,
              args.attention, args.lr, args.mirror,
              tuple(float(b) for b in args.betas.split(",")) if args.betas else None, args.expert, args.init)
    elif args.cmd == "references":
        sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")] if args.sizes else None
        n_jobs, n_machines = args.size
        make_references(args.count, args.seed, args.out, args.deterministic_seconds, n_jobs, n_machines,
                        sizes=sizes)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(_cli())
