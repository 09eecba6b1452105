"""Schedule a job shop, flexible job shop or permutation flow shop instance (minimum makespan).

INSTANCE is a file path or the name of a shipped instance (ft06, la01 … la20, ta01 … ta10 with
--format orlib; ta001 … ta010 with --format taillard; mk01, mk02 with --format fjs). Solvers:
cpsat (OR-Tools CP-SAT), milp (Pyomo model, HiGHS or --mip-solver NAME), neh and ig (flow shop
heuristics), rule:<name> (dispatching rule), rl:<model path> (trained dispatching policy).

examples:
  twinopt schedule ft06 --solver cpsat
  twinopt schedule la01 --solver milp --time-limit 60 --json out/la01.json
  twinopt schedule ta001 --format taillard --solver ig --time-limit 2 --html out/ta001.html
  twinopt schedule mk01 --format fjs
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from twins.errors import InputError
from twins.jobshop.instances import FlexibleJobShopInstance, FlowShopInstance


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("instance", metavar="INSTANCE", help="instance file or shipped instance name")
    parser.add_argument("--solver", default="cpsat",
                        help="cpsat (default) | milp | neh | ig | rule:<name> | rl:<model path>")
    parser.add_argument("--format", default="orlib", choices=("orlib", "taillard", "fjs"),
                        help="orlib: job shop (default); taillard: permutation flow shop; "
                             "fjs: flexible job shop (Brandimarte layout)")
    parser.add_argument("--time-limit", type=float, default=None, metavar="S",
                        help="wall-clock limit in seconds (default: 60 for cpsat and milp, which stop "
                             "sooner once optimal; n*m/2*30 ms for ig)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the solver (default 0)")
    parser.add_argument("--workers", type=int, default=2, metavar="K", help="CP-SAT search workers (default 2)")
    parser.add_argument("--mip-solver", default="highs", metavar="NAME",
                        help="Pyomo solver for --solver milp: highs (default, built in) or any installed "
                             "one (cbc, glpk, gurobi, cplex, scip, …)")
    parser.add_argument("--json", metavar="OUT", help="write the schedule as JSON ('-' for stdout)")
    parser.add_argument("--html", metavar="OUT", help="write a plotly Gantt chart")


def main(args: argparse.Namespace) -> int:
    from optimizers.solvers import solve_instance

    instance = _load(args.instance, args.format)
    if sys.stderr.isatty():  # a person waits for up to a minute; scripts get one line on error only
        limit = f" (time limit {args.time_limit:g} s)" if args.time_limit else ""
        print(f"scheduling {instance.name} with {args.solver}{limit} …", file=sys.stderr, flush=True)
    schedule = solve_instance(instance, args.solver, time_limit=args.time_limit, seed=args.seed,
                              mip_solver=args.mip_solver, workers=args.workers)  # checked there
    doc = schedule.to_json()
    if args.json == "-":
        json.dump(doc, sys.stdout, indent=1)
        print()
    else:
        print(summary(instance, schedule))
        if args.json:
            _write(args.json, json.dumps(doc, indent=1) + "\n")
            print(f"wrote {args.json}")
    if args.html:
        from twins.jobshop.gantt import gantt_figure

        title = f"{instance.name} — {schedule.solver}, makespan {schedule.makespan:g} ({schedule.status})"
        _write(args.html, gantt_figure(schedule, title=title).to_html(include_plotlyjs=True))
        print(f"wrote {args.html}", file=sys.stderr if args.json == "-" else sys.stdout)
    return 0


def summary(instance, schedule) -> str:
    """A few human lines: makespan, best known and gap, lower bound, status, time."""
    best = instance.bounds.best_known
    gap = f"  (gap {100 * (schedule.makespan - best) / best:.2f} %)" if best else ""
    kind = ("permutation flow shop" if isinstance(instance, FlowShopInstance) else
            "flexible job shop" if isinstance(instance, FlexibleJobShopInstance) else "job shop")
    rows = [
        f"{instance.name}: {instance.n_jobs} jobs x {instance.n_machines} machines, {kind}; solver {schedule.solver}",
        f"  makespan     {schedule.makespan:g}",
        f"  best known   {best if best is not None else 'n/a'}{gap}",
        f"  lower bound  {schedule.lower_bound if schedule.lower_bound is not None else 'n/a'}",
        f"  status       {schedule.status}",
        f"  seconds      {schedule.seconds:.2f}",
    ]
    if schedule.permutation is not None:
        rows.append(f"  permutation  {' '.join(map(str, schedule.permutation))}")
    elif kind == "permutation flow shop":
        rows.append("  permutation  none: the job order differs between machines")
    return "\n".join(rows)


def _load(name: str, fmt: str):
    from twins.jobshop.instances import FORMATS, load_instance, shipped_instances

    try:
        return load_instance(name, fmt)
    except InputError:
        if not Path(name).exists():  # a shipped name under another format: say which
            other = next((f for f in FORMATS if f != fmt and name in shipped_instances(f)), None)
            if other:
                raise InputError(f"{name} is a shipped {other} instance: add --format {other}") from None
        raise


def _write(path: str, text: str) -> None:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    except OSError as err:
        raise InputError(f"{path}: cannot write ({err.strerror or err})") from None
