"""Replications per second in local processes and on Ray, Ray's cost per task, and a projection of a
200-parameter Sobol' study on N nodes (docs/scaling.md).

The glue cell (scenarios/glue_dispensing.yaml, one 8 h shift per replication), one seed:

1. Replications, one task each (``twinopt run``, ``compare``, search trials): ``--replications``
   of them in this process, in 1 and 2 local worker processes, and as Ray tasks on a private local
   Ray with 1 and 2 CPUs (``ray.init(num_cpus=…)``, started once per size; its start-up is reported
   apart, and a warm-up batch starts the worker processes before the clock runs).
2. Design points in chunked tasks (``sensitivity``, ``dataset``: optimizers.design.evaluate_points,
   up to 64 replications per task): an LHS design of ``--points`` points × 2 replications, on the
   same executors.
3. Ray's cost per task: ``--noops`` empty tasks (submit → result) on the 1-CPU Ray.

Every executor must give bit-identical KPIs; the benchmark checks it. A paper projection follows:
a Sobol' study of ``--params`` parameters with ``--base`` base samples has base × (params + 2)
design points × ``--reps`` replications; its wall time on N nodes of ``--cores`` CPUs from the cost
per replication measured here (CPU seconds in this process plus an empty task's cost; and the
wall time per replication on the 1-CPU Ray in chunked tasks) and the measured Ray start-up;
docs/scaling.md states the assumptions. Nothing of it ran on N nodes.

    nice python benchmarks/bench_scale.py                       # a few minutes on 2 shared cores
    python benchmarks/bench_scale.py --replications 20 --points 10 --noops 100   # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import Executor, ProcessPoolExecutor

import numpy as np

from optimizers.design import design_points, evaluate_points
from optimizers.setpoints import search_space
from twins.executors import RayExecutor, chunk_size, fan_out
from twins.loader import load_scenario
from twins.stats import replicate


def noop(x: int) -> int:
    return x


class Glue:
    """The measured work: replications and a design, with the in-process reference numbers."""

    def __init__(self, replications: int, points: int, seed: int):
        self.scenario = load_scenario("glue_dispensing")
        self.n, self.seed = replications, seed
        self.space = search_space(self.scenario)
        self.points = design_points(self.space, "lhs", points, seed)
        self.ref_reps: dict | None = None
        self.ref_design: dict | None = None
        self.cpu_per_rep = float("nan")

    def warm_up(self, executor: Executor | None, width: int) -> None:
        replicate(self.scenario, 2 * width, self.seed + 1, workers=1, executor=executor)

    def replications(self, executor: Executor | None) -> float:
        started, cpu = time.perf_counter(), time.process_time()
        summary = replicate(self.scenario, self.n, self.seed, workers=1, executor=executor).summary()
        seconds = time.perf_counter() - started
        if executor is None:  # CPU seconds of this process: the cost on a core of its own
            self.cpu_per_rep = (time.process_time() - cpu) / self.n
        if self.ref_reps is None:
            self.ref_reps = summary
        assert summary == self.ref_reps, "KPIs differ from the in-process run"
        return seconds

    def design(self, executor: Executor | None) -> float:
        started = time.perf_counter()
        ev = evaluate_points(self.scenario, self.space, self.points, 2, self.seed, workers=1, executor=executor)
        seconds = time.perf_counter() - started
        if self.ref_design is None:
            self.ref_design = ev.kpis
        assert ev.kpis.keys() == self.ref_design.keys()
        for k, v in ev.kpis.items():
            assert np.array_equal(v, self.ref_design[k], equal_nan=True), f"{k} differs from the in-process run"
        return seconds


def projection(per_rep_s: float, per_task_s: float, params: int, base: int, reps: int, cores: int,
               nodes: list[int], startup_s: float) -> list[dict]:
    """Wall time of base × (params + 2) × reps replications on each node count: the replications
    shared evenly over nodes × cores, in chunked tasks (twins.executors.chunk_size) that each pay
    ``per_task_s`` on a CPU, plus the start-up."""
    jobs = base * (params + 2) * reps
    rows = []
    for n in nodes:
        width = n * cores
        chunk = chunk_size(jobs, width)
        tasks = -(-jobs // chunk)
        seconds = (jobs * per_rep_s + tasks * per_task_s) / width + startup_s
        rows.append({"nodes": n, "cpus": width, "replications": jobs, "tasks": tasks, "chunk": chunk,
                     "minutes": seconds / 60})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replications", type=int, default=120)
    p.add_argument("--points", type=int, default=60, help="LHS design points (× 2 replications)")
    p.add_argument("--noops", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--params", type=int, default=200)
    p.add_argument("--base", type=int, default=1024, help="Sobol' base samples N (a power of 2)")
    p.add_argument("--reps", type=int, default=2, help="replications per design point")
    p.add_argument("--cores", type=int, default=16, help="CPUs per node in the projection")
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args()

    glue = Glue(args.replications, args.points, args.seed)
    glue.warm_up(None, 1)
    rows: list[dict] = [{"executor": "in this process", "reps_s": glue.replications(None),
                         "design_s": glue.design(None), "startup_s": 0.0}]
    for w in (1, 2):  # pools started and warmed up before the clock runs, like Ray's workers
        with ProcessPoolExecutor(w) as pool:
            glue.warm_up(pool, w)
            rows.append({"executor": f"local processes, {w}", "reps_s": glue.replications(pool),
                         "design_s": glue.design(pool), "startup_s": 0.0})
    noop_ms = float("nan")
    for cpus in (1, 2):
        started = time.perf_counter()
        ray = RayExecutor(workers=cpus)
        try:
            startup = time.perf_counter() - started
            glue.warm_up(ray, cpus)
            rows.append({"executor": f"Ray tasks, {cpus} CPU{'s' if cpus > 1 else ''}",
                         "reps_s": glue.replications(ray), "design_s": glue.design(ray), "startup_s": startup})
            if cpus == 1 and args.noops:
                fan_out(noop, list(range(4)), executor=ray)
                t0 = time.perf_counter()
                fan_out(noop, list(range(args.noops)), executor=ray)
                noop_ms = 1000 * (time.perf_counter() - t0) / args.noops
        finally:
            ray.shutdown()

    n, d = args.replications, 2 * args.points
    print(f"glue_dispensing, seed {args.seed}; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the end; identical KPIs on every executor: yes")
    print(f"{'executor':<24}{'replications/s':>16}{'design reps/s':>15}{'start-up s':>12}")
    print(f"{'':<24}{f'({n}, 1 per task)':>16}{f'({d}, chunked)':>15}")
    for r in rows:
        print(f"{r['executor']:<24}{n / r['reps_s']:>16.1f}{d / r['design_s']:>15.1f}{r['startup_s']:>12.1f}")
    inproc, ray1 = rows[0], rows[3]
    per_rep = inproc["reps_s"] / n
    per_rep_ray = ray1["design_s"] / d
    print(f"per replication: {1000 * glue.cpu_per_rep:.1f} ms CPU in this process; wall {1000 * per_rep:.1f} ms in "
          f"this process, {1000 * ray1['reps_s'] / n:.1f} ms on the 1-CPU Ray as one task each, "
          f"{1000 * per_rep_ray:.1f} ms in chunked tasks")
    print(f"Ray, 1 CPU: {args.noops} empty tasks, {noop_ms:.2f} ms each (submit to result, pipelined)")
    startup = max(r["startup_s"] for r in rows)
    jobs = args.base * (args.params + 2) * args.reps
    print(f"projection (paper, not run): Sobol' study of {args.params} parameters, N = {args.base}, {args.reps} "
          f"replications per point = {jobs:,} glue replications on nodes of {args.cores} CPUs, "
          f"+{startup:.0f} s start-up")
    best = projection(glue.cpu_per_rep, noop_ms / 1000, args.params, args.base, args.reps, args.cores, args.nodes,
                      startup)
    here = projection(per_rep_ray, 0.0, args.params, args.base, args.reps, args.cores, args.nodes, startup)
    print(f"{'nodes':>6}{'CPUs':>7}{'tasks':>8}{'chunk':>7}{'min, CPU cost + empty task':>28}"
          f"{'min, Ray wall cost here':>25}")
    for a, b in zip(best, here, strict=True):
        print(f"{a['nodes']:>6}{a['cpus']:>7}{a['tasks']:>8}{a['chunk']:>7}{a['minutes']:>28.1f}{b['minutes']:>25.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"replications": n, "design_replications": d, "rows": rows, "noop_task_ms": noop_ms,
                       "per_replication_ms": 1000 * per_rep, "per_replication_ray_chunked_ms": 1000 * per_rep_ray,
                       "cpu_per_replication_ms": 1000 * glue.cpu_per_rep,
                       "projection_in_process_cost": best, "projection_ray_cost_here": here}, f, indent=2)


if __name__ == "__main__":
    main()
