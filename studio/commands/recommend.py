"""Write a Recommendation (setpoints, schedule or energy plan) replayed in the twin, with confidence intervals.

KIND is one of:
  setpoints SCENARIO   parameter search, as `twinopt optimize` (same options)
  schedule INSTANCE    solve a job shop (--format orlib) or flow shop (--format taillard), replay the
                       schedule in the twin and compare it with a FIFO dispatch-rule schedule
                       replayed the same way (payload: the schedule and each machine's job order)
  energy SCENARIO      time-of-use energy plan of one station (optimizers.energy_plan)

examples:
  twinopt recommend setpoints glue_dispensing --budget 60 --out out/setpoints.json
  twinopt recommend schedule ft06 --solver cpsat --time-limit 10 --out out/ft06.json
  twinopt recommend schedule ta001 --format taillard --solver ig --cv 0.1 --replications 20 --out out/ta001.json
  twinopt recommend energy smt_reflow_energy --target 1500 --out out/energy.json
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from studio.commands.optimize import add_search_arguments

    sub = parser.add_subparsers(dest="kind", metavar="KIND")
    sub.required = True
    sp = sub.add_parser("setpoints", help="process setpoints by simulation-based search (= twinopt optimize)")
    add_search_arguments(sp)
    _out(sp)

    sc = sub.add_parser("schedule", help="a solver's schedule, replayed in the twin against a FIFO baseline")
    sc.add_argument("instance", metavar="INSTANCE", help="instance file or shipped instance name (ft06, ta001 …)")
    sc.add_argument("--solver", default="cpsat", help="cpsat (default) | milp | neh | ig | rule:<name> | rl:<model>")
    sc.add_argument("--format", default="orlib", choices=("orlib", "taillard"),
                    help="orlib: job shop (default); taillard: permutation flow shop")
    sc.add_argument("--time-limit", type=float, default=None, metavar="S", help="solver wall-clock limit in seconds")
    sc.add_argument("--seed", type=int, default=0, help="seed of the solver and the twin (default 0)")
    sc.add_argument("--replications", "-n", type=int, default=1, metavar="R",
                    help="twin replications (default 1: the replay is deterministic unless --cv or --mtbf)")
    sc.add_argument("--cv", type=float, default=0.0, help="coefficient of variation of operation times (default 0)")
    sc.add_argument("--mtbf", type=float, default=None, help="mean time between failures of every machine")
    sc.add_argument("--mttr", type=float, default=None, help="mean time to repair (with --mtbf)")
    sc.add_argument("--idle-kw", type=float, default=None, help="machine power when idle, kW (energy KPIs)")
    sc.add_argument("--busy-kw", type=float, default=None, help="machine power when busy, kW (energy KPIs)")
    sc.add_argument("--time-unit", default="min", choices=("s", "min", "h"), help="unit of the instance's times")
    _out(sc)

    en = sub.add_parser("energy", help="a time-of-use energy plan for one station, replayed in the twin")
    en.add_argument("scenario", metavar="SCENARIO", help="scenario YAML file or shipped name")
    en.add_argument("--station", default=None, help="station to plan (default: the planner's choice)")
    en.add_argument("--target", type=float, default=None, help="output target in units over the horizon")
    en.add_argument("--slot", type=float, default=None, help="length of a planning slot, scenario time units")
    en.add_argument("--time-limit", type=float, default=None, metavar="S", help="MILP wall-clock limit in seconds")
    en.add_argument("--replications", "-n", type=int, default=None, metavar="R", help="twin replications")
    en.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    en.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                    help="override a scenario field first (repeatable)")
    _out(en)


def _out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", required=True, metavar="REC.json", help="where to write the Recommendation")


def main(args: argparse.Namespace) -> int:
    from studio.commands.optimize import run_search, write_recommendation

    if args.kind == "setpoints":
        run_search(args, args.out)
        return 0
    from studio.output import check_writable

    check_writable(args.out)
    rec = _schedule(args) if args.kind == "schedule" else _energy(args)
    write_recommendation(args.out, rec)
    _print(rec)
    print(f"recommendation: {args.out}")
    return 0


def _schedule(args: argparse.Namespace):
    from optimizers.replay import recommend_schedule
    from studio.commands.schedule import _load
    from twins.errors import InputError, check_replications, check_seed

    check_replications(args.replications, name="--replications")
    check_seed(args.seed, name="--seed")
    if (args.mtbf is None) != (args.mttr is None):
        raise InputError("give both --mtbf and --mttr (or neither)")
    for flag, v in (("--mtbf", args.mtbf), ("--mttr", args.mttr)):
        if v is not None and not v > 0:
            raise InputError(f"{flag} must be positive, got {v}")
    for flag, v in (("--idle-kw", args.idle_kw), ("--busy-kw", args.busy_kw), ("--cv", args.cv)):
        if v is not None and not v >= 0:
            raise InputError(f"{flag} must be ≥ 0, got {v}")
    instance = _load(args.instance, args.format)
    power = None
    if args.idle_kw is not None or args.busy_kw is not None:
        power = {"idle": args.idle_kw or 0.0, "busy": args.busy_kw or 0.0}
    breakdowns = [{"mtbf": args.mtbf, "mttr": args.mttr}] if args.mtbf is not None else []
    if sys.stderr.isatty():
        print(f"scheduling {instance.name} with {args.solver} and replaying it in the twin …", file=sys.stderr)
    return recommend_schedule(instance, args.solver, time_limit=args.time_limit, seed=args.seed,
                              replications=args.replications, cv=args.cv, breakdowns=breakdowns, power_kw=power,
                              time_unit=args.time_unit)


def _energy(args: argparse.Namespace):
    from optimizers.energy_plan import recommend_energy_plan as plan
    from twins.loader import load_scenario

    scenario = load_scenario(args.scenario, args.overrides)
    options = {k: v for k, v in (("station", args.station), ("target", args.target), ("slot", args.slot),
                                 ("time_limit", args.time_limit), ("replications", args.replications))
               if v is not None}
    return plan(scenario, seed=args.seed, **options)


def _print(rec) -> None:
    from rich.table import Table

    from studio.output import console, fmt

    prov = rec.provenance
    status = f", status {prov.solver_status}" if prov.solver_status else ""
    t = Table(title=f"{rec.kind} recommendation for {rec.scenario}: {prov.method}{status} "
                    f"({prov.replications} replication{'s' * ((prov.replications or 1) > 1)}, 95 % CI)",
              title_justify="left")
    for col in ("KPI", "baseline", "recommended", "difference", "unit"):
        t.add_column(col, justify="left" if col in ("KPI", "unit") else "right")
    for name in ("makespan", "margin", "throughput", "lead_time", "wip", "energy_kwh", "energy_cost", "scrap_rate"):
        if name in rec.predicted and name in rec.baseline:
            b, p = rec.baseline[name], rec.predicted[name]
            d = rec.difference.get(name)
            t.add_row(name, fmt(b.mean, b.half_width), fmt(p.mean, p.half_width),
                      fmt(d.mean, d.half_width) if d else "–", p.unit)
    console().print(t)
