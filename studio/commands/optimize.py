"""Search a scenario's process parameters for the best KPI (optuna in the twin); write a Recommendation.

Every trial runs --replications replications with the same seeds (common random numbers); the
--top-k best trials and the as-is setpoints are then re-simulated with --final-replications fresh
replications and the recommendation is the one with the highest lower 95 % confidence bound of its
paired improvement. Same arguments and seed ⇒ the same recommendation.

examples:
  twinopt optimize glue_dispensing --budget 60 --json out/glue_rec.json --html out/glue_search.html
  twinopt optimize glue_dispensing --sampler cmaes --params dispenser.speed_mm_s,dispenser.pressure_bar
  twinopt optimize glue_dispensing --objective scrap_rate --minimize --budget 30
  twinopt optimize foaming_line --sampler screen --budget 300 -n 2   # 208 parameters: screen, then search
  twinopt optimize foaming_line --sampler model --budget 60 -n 2     # start from the rough-cut model's optimum
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studio.executor import add_arguments as add_executor_arguments


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    """The search options shared with ``twinopt recommend setpoints``."""
    p.add_argument("scenario", metavar="SCENARIO", help="scenario YAML file or shipped name")
    p.add_argument("--budget", type=int, default=60, metavar="N", help="trials (setpoint evaluations), default 60")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "cmaes", "gp", "random", "screen", "model"),
                   help="optuna TPE (default), optuna CMA-ES, optuna GP (Bayesian optimization), uniform random "
                        "search, screen: for many parameters, one-at-a-time screening from the as-is setpoints "
                        "(d + 1 trials of the budget; random groups of 8 first above 40 parameters), then GP "
                        "over the parameters that move the objective (above 40 parameters within +-10 %% of each "
                        "range around today's setpoints), the others held at their current values; or model: "
                        "optimize the line's rough-cut model (bottleneck capacity, yields and power from the "
                        "scenario's responses; no twin run), score its optimum in the twin, then GP within "
                        "+-5 %% of each range around it over the parameters that move the model's objective")
    p.add_argument("--objective", default="margin", metavar="KPI",
                   help="line KPI to optimize (default margin: money per replication window)")
    p.add_argument("--minimize", action="store_true", help="minimize the objective (default: maximize)")
    p.add_argument("--params", default=None, metavar="ST.P1,ST.P2",
                   help="comma-separated station.parameter names to search (default: all parameters)")
    p.add_argument("--replications", "-n", type=int, default=5, metavar="R",
                   help="replications per trial, same seeds for every trial (default 5)")
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="best trials re-simulated at the end (default 5)")
    p.add_argument("--final-replications", type=int, default=20, metavar="F",
                   help="fresh replications per finalist and for the as-is baseline (default 20)")
    p.add_argument("--seed", type=int, default=0, help="master seed of the sampler and the twin (default 0)")
    p.add_argument("--workers", type=int, default=1, metavar="K",
                   help="processes for the replications (default 1; results identical for any K)")
    add_executor_arguments(p)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a scenario field first, e.g. horizon.length=7500 (repeatable)")
    p.add_argument("--html", metavar="OUT", help="write the optimization history and parameter importance charts")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars, no tables")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_search_arguments(p)
    p.add_argument("--json", metavar="OUT", help="write the Recommendation as JSON")


def run_search(args: argparse.Namespace, out: str | None):
    """Validate the options, run the search, print a summary, write ``out`` and ``--html``."""
    import optuna

    from optimizers.search import MAXIMIZED_KPIS, Direction, parameter_search, write_html
    from optimizers.setpoints import check_objective
    from studio.executor import executor_of
    from studio.output import check_writable
    from twins.errors import InputError
    from twins.loader import load_scenario

    if args.budget < 1:
        raise InputError(f"--budget must be at least 1 trial, got {args.budget}")
    for flag, value, low in (("--replications", args.replications, 1), ("--top-k", args.top_k, 1),
                             ("--final-replications", args.final_replications, 2), ("--workers", args.workers, 1)):
        if value < low:
            raise InputError(f"{flag} must be ≥ {low}, got {value}")
    for path in (out, args.html):
        check_writable(path)
    scenario = load_scenario(args.scenario, args.overrides)
    params = [p for p in args.params.split(",") if p.strip()] if args.params else None
    check_objective(scenario, args.objective)
    direction: Direction = "minimize" if args.minimize else "maximize"
    if direction == "maximize" and args.objective not in MAXIMIZED_KPIS and not args.quiet:
        print(f"note: maximizing {args.objective}; pass --minimize to minimize it", file=sys.stderr)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with executor_of(args) as executor:
        result = parameter_search(scenario, budget=args.budget, sampler=args.sampler, objective=args.objective,
                                  direction=direction, params=params, replications=args.replications,
                                  seed=args.seed, top_k=args.top_k, final_replications=args.final_replications,
                                  workers=args.workers, progress=not args.quiet, executor=executor)
    if not args.quiet:
        print_summary(result)
    if out:
        write_recommendation(out, result.recommendation)
    if args.html:
        write_html(result, args.html)
    if not args.quiet:
        for label, path in (("recommendation", out), ("charts", args.html)):
            if path:
                print(f"{label}: {path}")
    return result


def main(args: argparse.Namespace) -> int:
    run_search(args, args.json)
    return 0


def write_recommendation(path: str, rec) -> None:
    """Write ``rec.to_json()`` atomically (never a half-written file)."""
    from studio.output import check_writable

    check_writable(path)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(rec.to_json() + "\n")
    tmp.replace(path)


def print_summary(result) -> None:
    from rich.table import Table

    from studio.output import console, fmt

    rec, out = result.recommendation, console()
    prov = rec.provenance
    per_trial = prov.budget["replications_per_trial"]
    t = Table(title=f"{rec.scenario}: {prov.method}, {len(result.trials)} trials × {per_trial} replications, "
                    f"seed {prov.seed}, {prov.wall_time_s:.1f} s", title_justify="left")
    local = prov.extra.get("sensitivity", {}).get("parameters", {})
    slope = f"d {result.objective}/d parameter there (95 % CI)"
    for col in ("parameter", "as-is", "recommended", "unit", "bounds", *([slope] if local else [])):
        t.add_column(col, justify="left" if col in ("parameter", "unit") else "right")
    for d in result.space:
        s = local.get(d.key)
        t.add_row(d.key, fmt(d.current), fmt(rec.payload[d.station][d.name]), d.unit, f"[{d.low:g}, {d.high:g}]",
                  *([fmt(s["slope"], s["slope_half_width"]) if s else "–"] if local else []))
    out.print(t)
    screening = prov.extra.get("screening")
    if screening:
        out.print(f"screening: {screening['parameters']} parameters, {screening['evaluations']} trials "
                  f"({screening['rule']}); kept {len(screening['kept'])}, the others stay at their current values")
    k = Table(title=f"replayed with {prov.replications} fresh replications (95 % CI; difference paired under CRN)",
              title_justify="left")
    for col in ("KPI", "as-is", "recommended", "difference", "unit"):
        k.add_column(col, justify="left" if col in ("KPI", "unit") else "right")
    for name in dict.fromkeys([result.objective, "margin", "throughput", "scrap_rate", "energy_kwh_per_unit"]):
        if name in rec.predicted:
            b, p, d = rec.baseline[name], rec.predicted[name], rec.difference[name]
            k.add_row(name, fmt(b.mean, b.half_width), fmt(p.mean, p.half_width), fmt(d.mean, d.half_width), p.unit)
    out.print(k)
    verdict = ("significant" if prov.extra["significant"] else
               "NOT significant at 95 % — consider keeping the as-is setpoints or a larger budget")
    out.print(f"improvement in {result.objective} over the as-is setpoints: {verdict}")
