"""Dispatching quality on Taillard's 15x15 job shops ta01-ta10: gap to the best-known makespan
of every dispatching rule (non-delay, optimizers.heuristics.rules) and of the shipped RL policy
(optimizers/rl/policies/jss15x15.zip, greedy, masked, Giffler-Thompson candidates). Prints,
never asserts. Gap = (makespan - best known) / best known, in %. Targets: the policy beats the
best rule (MWKR, about 19 %) and reaches a mean gap <= 12 %.

    python benchmarks/bench_dispatch.py [--model PATH] [--instances ta01,ta02,...]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from optimizers.heuristics.rules import RULES, schedule_with_rule
from optimizers.rl.dispatch import SHIPPED_POLICY, schedule_with_policy
from twins.jobshop.instances import load_instance
from twins.jobshop.schedule import check_schedule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SHIPPED_POLICY), help="policy to benchmark (default: shipped)")
    parser.add_argument("--instances", default=",".join(f"ta{i:02d}" for i in range(1, 11)))
    args = parser.parse_args()
    names = [n.strip() for n in args.instances.split(",") if n.strip()]
    contenders = list(RULES) + ["rl"]
    print(f"bench_dispatch: {len(names)} instances, gap to best known in %, load average {os.getloadavg()[0]:.2f}")
    print(f"{'instance':<9}{'best':>6}" + "".join(f"{c:>8}" for c in contenders))
    gaps = {c: [] for c in contenders}
    seconds = []
    for name in names:
        inst = load_instance(name)
        best = inst.bounds.best_known
        row = f"{name:<9}{best:>6}"
        for c in contenders:
            if c == "rl":
                started = time.perf_counter()
                sched = schedule_with_policy(inst, args.model)
                seconds.append(time.perf_counter() - started)
            else:
                sched = schedule_with_rule(inst, c)
            problems = check_schedule(inst, sched)
            if problems:
                raise SystemExit(f"{c} on {name}: infeasible schedule: {problems[0]}")
            gap = 100 * (sched.makespan - best) / best
            gaps[c].append(gap)
            row += f"{gap:>8.1f}"
        print(row)
    print(f"{'mean':<15}" + "".join(f"{np.mean(gaps[c]):>8.1f}" for c in contenders))
    best_rule = min(RULES, key=lambda r: np.mean(gaps[r]))
    print(f"policy {args.model}: {np.mean(seconds):.2f} s per instance")
    print(f"mean gap best rule ({best_rule}): {np.mean(gaps[best_rule]):.2f} %")
    print(f"mean gap rl policy: {np.mean(gaps['rl']):.2f} %")


if __name__ == "__main__":
    main()
