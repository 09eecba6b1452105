"""One dispatching policy for every job-shop size: greedy gaps to the best-known makespan on
Taillard's ta01-ta80 (15x15 to 100x20, ten instances per size class) of the shipped size-agnostic
policy (optimizers/rl/policies/jss15x15.zip: trained on 15x15, schedules any size), the
dispatching rules of optimizers.heuristics.rules (non-delay) and, as published numbers, L2D
(Zhang et al., NeurIPS 2020, greedy, one model trained per size; their table, not rerun here).
Then inference speed: decisions per second (decisions the policy is asked about on its own
trajectory, forced single-candidate ones excluded) and seconds for each 50x20 instance. Prints,
never asserts. Gap = (makespan - best known) / best known, in %, averaged over the class.
Targets: beat MWKR by >= 5 points on every class, <= 12 % on ta01-ta10.

    python benchmarks/bench_dispatch_sizes.py [--model PATH] [--classes 15x15,20x15,...] [--per-class 10]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from optimizers.heuristics.rules import RULES, schedule_with_rule
from optimizers.rl.dispatch import SHIPPED_POLICY, load_policy, schedule_with_policy
from optimizers.rl.imitation import expert_action
from twins.jobshop.engine import JobShopEngine
from twins.jobshop.instances import JobShopInstance, load_instance
from twins.jobshop.schedule import Schedule, check_schedule

#: Taillard's size classes: (jobs x machines, first instance number); ten instances each
CLASSES = {"15x15": 1, "20x15": 11, "20x20": 21, "30x15": 31, "30x20": 41, "50x15": 51, "50x20": 61, "100x20": 71}
#: L2D's published greedy gaps on Taillard (Zhang et al. 2020), in %, for the classes quoted in
#: issue 14 (the larger ones are left blank rather than quoted from memory)
L2D = {"15x15": 26.0, "20x15": 30.0, "20x20": 31.6, "30x15": 33.0}


def _l2d(size_class: str) -> str:
    return f"{L2D[size_class]:.1f}" if size_class in L2D else "-"


def decisions(instance: JobShopInstance, schedule: Schedule, mode: str = "active") -> int:
    """How many decisions with two or more candidates the policy made while building ``schedule``:
    its trajectory replayed without the network (at every decision the candidate whose operation
    starts first in ``schedule``, which rebuilds it), counting the multi-candidate ones."""
    starts = np.full((instance.n_jobs, instance.n_machines + 1), np.inf)
    for o in schedule.operations:
        starts[o.job, o.op] = o.start
    engine, count = JobShopEngine(instance, mode), 0
    while not engine.done:
        count += len(engine.candidates) > 1
        engine.dispatch(expert_action(engine, starts))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SHIPPED_POLICY), help="policy to benchmark (default: shipped)")
    parser.add_argument("--classes", default=",".join(CLASSES))
    parser.add_argument("--per-class", type=int, default=10, help="instances per class (the first N)")
    args = parser.parse_args()
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    rules = [r for r in RULES if r != "random"]
    load_policy(args.model)  # load once, outside the timings
    print(f"bench_dispatch_sizes: {args.model}, gap to best known in %, mean over {args.per_class} instances "
          f"per class, load average {os.getloadavg()[0]:.2f}")
    print(f"{'class':<8}{'insts':<10}{'rl':>7}{'L2D*':>7}" + "".join(f"{r:>7}" for r in rules) + f"{'rl-mwkr':>9}")
    rl_seconds: dict[str, list[float]] = {}
    rl_decisions: dict[str, list[int]] = {}
    for c in classes:
        first = CLASSES[c]
        names = [f"ta{first + k:02d}" for k in range(args.per_class)]
        gaps: dict[str, list[float]] = {k: [] for k in ["rl", *rules]}
        for name in names:
            inst = load_instance(name)
            assert isinstance(inst, JobShopInstance) and inst.bounds.best_known is not None
            best = inst.bounds.best_known
            started = time.perf_counter()
            sched = schedule_with_policy(inst, args.model)
            rl_seconds.setdefault(c, []).append(time.perf_counter() - started)
            rl_decisions.setdefault(c, []).append(decisions(inst, sched))
            for k in gaps:
                schedule = sched if k == "rl" else schedule_with_rule(inst, k)
                problems = check_schedule(inst, schedule)
                if problems:
                    raise SystemExit(f"{k} on {name}: infeasible schedule: {problems[0]}")
                gaps[k].append(100 * (schedule.makespan - best) / best)
        mean = {k: float(np.mean(v)) for k, v in gaps.items()}
        print(f"{c:<8}{names[0] + '-' + names[-1][2:]:<10}{mean['rl']:>7.1f}{_l2d(c):>7}"
              + "".join(f"{mean[r]:>7.1f}" for r in rules) + f"{mean['rl'] - mean['mwkr']:>9.1f}", flush=True)
    print("* L2D: published greedy gaps (Zhang et al. 2020), not rerun (- = not quoted); "
          "rl-mwkr < 0: the policy is better")
    print(f"{'class':<8}{'decisions':>10}{'s/instance':>12}{'decisions/s':>13}")
    for c in classes:
        d, sec = float(np.mean(rl_decisions[c])), float(np.mean(rl_seconds[c]))
        print(f"{c:<8}{d:>10.0f}{sec:>12.2f}{d / sec:>13.0f}")
    if "50x20" in rl_seconds:
        print("seconds per 50x20 instance (ta61-): " + " ".join(f"{s:.2f}" for s in rl_seconds["50x20"]))


if __name__ == "__main__":
    main()
