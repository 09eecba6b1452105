"""Warm start for the job-shop dispatch policy: imitate near-optimal CP-SAT schedules.

Reproduces ``optimizers/rl/policies/jss15x15.zip`` in three commands (see also
``optimizers/rl/policies/README.md``)::

    python -m optimizers.rl.imitation references --count 400 --seed 1000 --out runs/jss15_refs
    python -m optimizers.rl.imitation clone --refs runs/jss15_refs --out runs/jss15_bc
    twinopt train twinopt/Dispatch-v0 --algo maskable_ppo --init runs/jss15_bc/model.zip ...

1. ``references``: random 15x15 Taillard-style instances (``envs.jobshop_engine.random_instance``
   with ``numpy.random.default_rng((seed, i))``, never the ta01-ta10 benchmark instances), each
   solved by CP-SAT with one worker and a *deterministic* time budget, so the files are
   reproducible bit for bit. One ``.npz`` per instance: resumable and usable while running.
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
from pathlib import Path

import numpy as np

from envs.jobshop_engine import JobShopEngine, random_instance
from twins.instances import Bounds, JobShopInstance


def solve_reference(instance: JobShopInstance, deterministic_seconds: float = 10.0,
                    workers: int = 1) -> tuple[np.ndarray, int, int]:
    """CP-SAT schedule of ``instance``: (start times (n_jobs, max ops), makespan, proven bound).

    A deterministic time budget with one worker makes the result independent of machine load.
    """
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    horizon = sum(d for ops in instance.jobs for _, d in ops)
    starts, ends, per_machine = {}, {}, {}
    for j, ops in enumerate(instance.jobs):
        for k, (m, d) in enumerate(ops):
            s = model.new_int_var(0, horizon, f"s{j}_{k}")
            e = model.new_int_var(0, horizon, f"e{j}_{k}")
            per_machine.setdefault(m, []).append(model.new_interval_var(s, d, e, f"o{j}_{k}"))
            starts[j, k], ends[j, k] = s, e
            if k:
                model.add(s >= ends[j, k - 1])
    for intervals in per_machine.values():
        model.add_no_overlap(intervals)
    makespan = model.new_int_var(0, horizon, "makespan")
    model.add_max_equality(makespan, [ends[j, len(ops) - 1] for j, ops in enumerate(instance.jobs) if ops])
    model.minimize(makespan)
    solver = cp_model.CpSolver()
    solver.parameters.max_deterministic_time = deterministic_seconds
    solver.parameters.num_workers = workers
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise RuntimeError(f"CP-SAT found no schedule for {instance.name}")
    K = max(len(ops) for ops in instance.jobs)
    out = np.full((instance.n_jobs, K), -1, dtype=np.int64)
    for (j, k), s in starts.items():
        out[j, k] = solver.value(s)
    return out, int(solver.objective_value), int(solver.best_objective_bound)


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
        jobs = tuple(tuple((int(m), int(d)) for m, d in zip(mr, dr)) for mr, dr in zip(z["machines"], z["durations"]))
        inst = JobShopInstance(path.stem, jobs, int(z["machines"].shape[1]),
                               Bounds(int(z["bound"]), int(z["makespan"])))
        refs.append((inst, z["starts"]))
    return refs


def expert_action(engine: JobShopEngine, ref_starts: np.ndarray) -> int:
    """The candidate whose next operation starts earliest in the reference (lowest job on ties)."""
    c = engine.candidates
    ref = ref_starts[c, engine.next_op[c]]
    return int(c[ref.argmin()])


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimizers.rl.imitation", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("references", help="solve random instances with CP-SAT")
    r.add_argument("--count", type=int, default=400)
    r.add_argument("--seed", type=int, default=1000)
    r.add_argument("--out", type=Path, default=Path("runs/jss15_refs"))
    r.add_argument("--deterministic-seconds", type=float, default=10.0)
    r.add_argument("--size", type=int, nargs=2, default=(15, 15), metavar=("JOBS", "MACHINES"))
    args = parser.parse_args(argv)
    if args.cmd == "references":
        make_references(args.count, args.seed, args.out, args.deterministic_seconds, *args.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(_cli())
