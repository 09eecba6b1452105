"""Scheduling benchmarks: makespan gaps to the best-known values of public instances. Prints,
never asserts. Gap = (makespan - best known) / best known, in %.

Sections (run all, or pick with ``--only cpsat,milp,ig``):

* ``cpsat`` — CP-SAT on Taillard's 15x15 job shops ta01–ta10, 10 s and 2 workers each
  (target mean gap <= 1.5 %, goal <= 1.0 %).
* ``milp``  — the Pyomo disjunctive job-shop MILP with HiGHS on la01–la05, 60 s each
  (status, solver gap and gap to best known; target <= 2 %).
* ``ig``    — iterated greedy on Taillard's 20x5 flow shops ta001–ta010, 2 s each (target mean
  gap <= 0.5 %), with NEH alongside (published mean gap 3.35 %).

Adding a section: write ``def bench_<name>(args) -> None`` printing one line per case and a
summary line, decorate it with ``@section("<name>")`` and, if it needs options, add them in
``add_options``. Wall-clock budgets are per instance; on a shared machine the load average
printed in the header says how much CPU the run really had.

    python benchmarks/bench_schedule.py [--only cpsat,milp,ig] [--cpsat-time 10] [--workers 2]
        [--milp-time 60] [--ig-time 2] [--seed 0]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable

from optimizers import cp
from optimizers.heuristics.iterated_greedy import iterated_greedy
from optimizers.heuristics.neh import neh
from optimizers.milp import jobshop, solve
from twins.jobshop.instances import load_instance
from twins.jobshop.schedule import check_schedule

SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {}


def section(name: str):
    """Register a benchmark section under ``name`` (order of registration = order of runs)."""
    def register(fn: Callable[[argparse.Namespace], None]):
        SECTIONS[name] = fn
        return fn
    return register


def gap(makespan: float, best: float) -> float:
    return 100.0 * (makespan - best) / best


def cpu_seconds() -> float:
    """CPU time of this process, all threads, user + system (s)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _line(*cells: str) -> None:
    print("  " + "  ".join(cells), flush=True)


def _verified(instance, schedule) -> None:
    problems = check_schedule(instance, schedule)
    if problems:  # a benchmark of an infeasible schedule would be meaningless
        raise RuntimeError(f"{schedule.solver} on {instance.name}: {problems[0]}")


@section("cpsat")
def bench_cpsat(args: argparse.Namespace) -> None:
    print(f"CP-SAT job shop, Taillard 15x15 ta01-ta10: {args.cpsat_time:g} s, {args.workers} workers each", flush=True)
    gaps, cpu_share = [], []
    for name in [f"ta{i:02d}" for i in range(1, 11)]:
        instance = load_instance(name)
        cpu = cpu_seconds()
        schedule = cp.solve(instance, time_limit=args.cpsat_time, workers=args.workers, seed=args.seed)
        cpu = cpu_seconds() - cpu
        _verified(instance, schedule)
        best = instance.bounds.best_known
        gaps.append(gap(schedule.makespan, best))
        _line(f"{name}", f"makespan {schedule.makespan:5g}", f"best {best:5d}", f"gap {gaps[-1]:5.2f} %",
              f"bound {schedule.lower_bound:5d}", f"{schedule.status:8s}", f"{schedule.seconds:5.1f} s",
              f"cpu {cpu:5.1f} s ({cpu / schedule.seconds / args.workers:4.0%} of {args.workers} cores)")
        cpu_share.append(cpu / schedule.seconds / args.workers)
    print(f"  mean cpu share {statistics.mean(cpu_share):.0%} of {args.workers} cores "
          f"(below 100 %: the machine was shared)", flush=True)
    print(f"  mean gap {statistics.mean(gaps):.2f} %  (target <= 1.5 %, goal <= 1.0 %)", flush=True)


@section("milp")
def bench_milp(args: argparse.Namespace) -> None:
    print(f"Pyomo disjunctive MILP + HiGHS, la01-la05: {args.milp_time:g} s each", flush=True)
    gaps = []
    for name in [f"la{i:02d}" for i in range(1, 6)]:
        instance = load_instance(name)
        started = time.perf_counter()
        model = jobshop.build_model(instance)
        built = time.perf_counter() - started
        cpu = cpu_seconds()
        result = solve(model, time_limit=args.milp_time, seed=args.seed)
        cpu = cpu_seconds() - cpu
        schedule = jobshop.extract_schedule(instance, model, result)
        _verified(instance, schedule)
        best = instance.bounds.best_known
        gaps.append(gap(schedule.makespan, best))
        _line(f"{name}", f"makespan {schedule.makespan:4g}", f"best {best:4d}", f"gap {gaps[-1]:5.2f} %",
              f"bound {result.integer_bound:4d}", f"solver gap {100 * result.gap:5.2f} %", f"{result.status:8s}",
              f"build {built:4.2f} s", f"solve {result.seconds:5.1f} s", f"cpu {cpu:5.1f} s")
    print(f"  mean gap {statistics.mean(gaps):.2f} %  (target <= 2 %)", flush=True)


@section("ig")
def bench_ig(args: argparse.Namespace) -> None:
    print(f"Permutation flow shop, Taillard 20x5 ta001-ta010: NEH, then iterated greedy {args.ig_time:g} s each",
          flush=True)
    neh_gaps, ig_gaps = [], []
    for name in [f"ta{i:03d}" for i in range(1, 11)]:
        instance = load_instance(name, "taillard")
        start = neh(instance)
        cpu = cpu_seconds()
        schedule = iterated_greedy(instance, time_limit=args.ig_time, seed=args.seed)
        cpu = cpu_seconds() - cpu
        for s in (start, schedule):
            _verified(instance, s)
        best = instance.bounds.best_known
        neh_gaps.append(gap(start.makespan, best))
        ig_gaps.append(gap(schedule.makespan, best))
        _line(f"{name}", f"best {best:4d}",
              f"NEH {start.makespan:4g} ({neh_gaps[-1]:4.2f} %, {1000 * start.seconds:4.1f} ms)",
              f"IG {schedule.makespan:4g} ({ig_gaps[-1]:4.2f} %, {schedule.seconds:4.2f} s, cpu {cpu:4.2f} s)")
    print(f"  mean gap NEH {statistics.mean(neh_gaps):.2f} % (published 3.35 %), "
          f"IG {statistics.mean(ig_gaps):.2f} % (target <= 0.5 %)", flush=True)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", help=f"comma-separated sections to run ({', '.join(SECTIONS)}); default all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpsat-time", type=float, default=10.0, help="seconds per instance")
    parser.add_argument("--workers", type=int, default=2, help="CP-SAT workers")
    parser.add_argument("--milp-time", type=float, default=60.0, help="seconds per instance")
    parser.add_argument("--ig-time", type=float, default=2.0, help="seconds per instance")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser)
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"bench_schedule: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min) at start", flush=True)
    for name in chosen:
        started = time.perf_counter()
        SECTIONS[name](args)
        print(f"  [{name}: {time.perf_counter() - started:.0f} s wall]\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
