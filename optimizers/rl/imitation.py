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
                    n_jobs: int = 15, n_machines: int = 15) -> None:
    """Write ``out/ref_<i>.npz`` (machines, durations, reference starts, makespan, bound) for
    ``i < count``; existing files are kept, so an interrupted run resumes."""
    out.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = out / f"ref_{i:05d}.npz"
        if path.exists():
            continue
        inst = reference_instance(seed, i, n_jobs, n_machines)
        t0 = time.perf_counter()
        starts, makespan, bound = solve_reference(inst, deterministic_seconds)
        arr = np.array(inst.jobs)  # (n_jobs, n_machines, 2)
        tmp = out / f".tmp_{i:05d}.npz"
        np.savez(tmp, machines=arr[:, :, 0], durations=arr[:, :, 1], starts=starts,
                 makespan=makespan, bound=bound)
        tmp.rename(path)
        print(f"{path.name} makespan {makespan} bound {bound} ({time.perf_counter() - t0:.1f} s)", flush=True)


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


def rollout(refs: list[tuple[JobShopInstance, np.ndarray]], policy=None, beta: float = 1.0,
            rng: np.random.Generator | None = None, expert: Expert = expert_action):
    """Run every instance to completion, engines in lockstep (one batched forward per step).

    At each decision with two or more candidates the acting choice is the expert's with
    probability ``beta``, else the policy's greedy choice; every visited state is labelled with
    the expert's choice. Returns (obs (N, n*F) float32, masks (N, n) bool, expert actions (N,),
    returns-to-go (N,) = -(final makespan - LB at the state) / S, makespans (instances,)).
    """
    import torch

    rng = rng or np.random.default_rng(0)
    engines = [JobShopEngine(inst, "active") for inst, _ in refs]
    obs, masks, labels, lbs, owner = [], [], [], [], []
    live = list(range(len(engines)))
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
            with torch.no_grad():
                dist = policy.get_distribution(torch.as_tensor(o), action_masks=m)
                greedy = dist.distribution.probs.argmax(dim=1).numpy()
            use_policy = rng.random(len(live)) >= beta
            act[use_policy] = greedy[use_policy]
        obs.append(o)
        masks.append(m)
        labels.append(labels_now)
        lbs.append([engines[i].makespan_lb for i in live])
        owner.append(live)
        for i, a in zip(live, act, strict=True):
            engines[i].dispatch(int(a))
    makespans = np.array([e.makespan_lb for e in engines])
    scale = np.array([e.scale for e in engines])
    owner_a, lb_a = np.concatenate(owner), np.concatenate(lbs)
    returns = -(makespans[owner_a] - lb_a) / scale[owner_a]
    return (np.concatenate(obs).astype(np.float32), np.concatenate(masks), np.concatenate(labels),
            returns.astype(np.float32), makespans)


def fit(model, data, epochs: int, batch_size: int = 512, lr: float = 1e-3, value_coef: float = 0.5,
        rng: np.random.Generator | None = None) -> float:
    """Supervised epochs on (obs, masks, expert actions, returns): masked cross-entropy on the
    actions plus ``value_coef`` x MSE of the value head. Returns the last epoch's accuracy."""
    import torch

    rng = rng or np.random.default_rng(0)
    policy = model.policy
    policy.set_training_mode(True)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    obs, masks, acts, rets = (torch.as_tensor(x) for x in data)
    n = len(acts)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * ((n + batch_size - 1) // batch_size))
    acc = 0.0
    for _ in range(epochs):
        perm = torch.as_tensor(rng.permutation(n))
        correct = 0
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            values, log_prob, _ = policy.evaluate_actions(obs[idx], acts[idx], action_masks=masks[idx])
            loss = -log_prob.mean() + value_coef * torch.nn.functional.mse_loss(values.flatten(), rets[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
            sched.step()
            correct += int((log_prob > np.log(0.5)).sum())
        acc = correct / n
    policy.set_training_mode(False)
    return acc


def greedy_gaps(model, refs: list[tuple[JobShopInstance, np.ndarray]]) -> np.ndarray:
    """Greedy policy makespan / reference makespan - 1 for each instance."""
    *_, makespans = rollout(refs, model.policy, beta=0.0)
    return makespans / np.array([_reference_makespan(inst) for inst, _ in refs]) - 1.0


def _reference_makespan(instance: JobShopInstance) -> int:
    """The reference (CP-SAT) makespan a loaded reference instance carries as its upper bound."""
    if instance.bounds.upper_bound is None:
        raise InputError(f"{instance.name}: no reference makespan")
    return instance.bounds.upper_bound


def clone(refs_dir: Path, out: Path, rounds: int = 5, epochs: int = 8, hidden: int = 128, seed: int = 0,
          validation: int = 40, limit: int | None = None, attention_layers: int = 0, lr: float = 1e-3,
          mirror: bool = False, betas: tuple[float, ...] | None = None, expert: str = "reference") -> Path:
    """Behaviour cloning with DAgger on the references in ``refs_dir``; the last ``validation``
    references are held out. Saves ``out/model.zip`` (a MaskablePPO model) and ``out/config.json``."""
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
    model = new_model(inst0.n_jobs, inst0.n_machines, hidden, seed, attention_layers, gamma=1.0)
    out.mkdir(parents=True, exist_ok=True)
    from optimizers.heuristics.rules import schedule_with_rule

    mwkr = np.mean([schedule_with_rule(i, "mwkr").makespan / _reference_makespan(i) - 1 for i, _ in val_refs])
    history, data = [], None
    best: tuple[float, int | None] = (np.inf, None)  # (validation gap, round)
    started = time.perf_counter()
    betas = betas or tuple(1.0 if r == 0 else 0.5 ** r if r < 3 else 0.0 for r in range(rounds))
    for r, beta in enumerate(betas):
        new = rollout(train_refs, model.policy, beta=beta, rng=rng, expert=EXPERTS[expert])[:4]
        data = new if data is None else tuple(np.concatenate([a, b]) for a, b in zip(data, new, strict=True))
        acc = fit(model, data, epochs, lr=lr, rng=rng)
        gaps = greedy_gaps(model, val_refs)
        history.append({"round": r, "beta": beta, "samples": int(len(data[2])),
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
              "val_gap_mwkr_to_reference": round(float(mwkr), 4), "best_round": best[1],
              "best_val_gap_to_reference": round(best[0], 4), "history": history,
              "call": {"algo": "maskable_ppo", "env_id": ENV_ID, "env_kwargs": getattr(model, CONFIG)["env_kwargs"]}}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out / "model.zip"


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
    args = parser.parse_args(argv)
    if args.cmd == "clone":
        clone(args.refs, args.out, args.rounds, args.epochs, args.hidden, args.seed, args.validation, args.limit,
              args.attention, args.lr, args.mirror,
              tuple(float(b) for b in args.betas.split(",")) if args.betas else None, args.expert)
    elif args.cmd == "references":
        make_references(args.count, args.seed, args.out, args.deterministic_seconds, *args.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(_cli())
