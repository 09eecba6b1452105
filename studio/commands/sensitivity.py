"""Explain a KPI: which process parameters move it (Sobol' indices or Morris screening, SALib, in the twin).

Sobol' (default): first-order S1 (what a parameter explains alone) and total-order ST (alone and
through interactions), 95 % bootstrap CIs, at N × (d + 2) design points for N base samples (a
power of 2) and d parameters. Morris (--method morris, for many parameters): mu* (mean absolute
effect over the range, in KPI units) and sigma, at N × (d + 1) points for N trajectories. Every
point is the mean of --replications replications under the same seeds (common random numbers).
The cost in twin evaluations is printed and stored in --json.

examples:
  twinopt sensitivity glue_dispensing --kpi margin --n 128 --json out/sobol.json --html out/sobol.html
  twinopt sensitivity glue_dispensing --method morris --n 20 --workers 4
  twinopt sensitivity glue_dispensing --params dispenser.speed_mm_s,dispenser.pressure_bar --kpi scrap_rate
"""
from __future__ import annotations

import argparse

from studio.executor import add_arguments as add_executor_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", metavar="SCENARIO", help="scenario YAML file or shipped name")
    p.add_argument("--method", default="sobol", choices=("sobol", "morris"),
                   help="Sobol' first- and total-order indices (default) or Morris screening")
    p.add_argument("--kpi", default="margin", metavar="KPI", help="line KPI to explain (default margin)")
    p.add_argument("--params", default=None, metavar="ST.P1,ST.P2",
                   help="comma-separated station.parameter names (default: all parameters)")
    p.add_argument("--n", type=int, default=None, metavar="N",
                   help="Sobol': base samples, a power of 2 (default 128); Morris: trajectories (default 20)")
    p.add_argument("--levels", type=int, default=4, metavar="L", help="Morris grid levels, even (default 4)")
    p.add_argument("--replications", "-r", type=int, default=2, metavar="R",
                   help="replications per design point, same seeds at every point (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the design, the bootstrap and the twin (default 0)")
    p.add_argument("--workers", type=int, default=1, metavar="K",
                   help="processes for the simulations (default 1; results identical for any K)")
    add_executor_arguments(p)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a scenario field first, e.g. horizon.length=3600 (repeatable)")
    p.add_argument("--json", metavar="OUT", help="write the indices, their CIs and the cost as JSON")
    p.add_argument("--html", metavar="OUT", help="write a bar chart of the indices with 95 % error bars")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no table")


def main(args: argparse.Namespace) -> int:
    from studio.executor import executor_of
    from studio.output import check_writable, write_json
    from twins.errors import InputError
    from twins.extras import requires
    from twins.loader import load_scenario

    if args.workers < 1:
        raise InputError(f"--workers must be ≥ 1, got {args.workers}")
    for path in (args.json, args.html):
        check_writable(path)
    with requires("data", "twinopt sensitivity"):
        import SALib  # noqa: F401 - fail before simulating, not after
    from optimizers.sensitivity import morris_screening, sobol_indices, write_html

    scenario = load_scenario(args.scenario, args.overrides)
    params = [p for p in args.params.split(",") if p.strip()] if args.params else None
    with executor_of(args) as executor:
        common = dict(kpi=args.kpi, params=params, replications=args.replications, seed=args.seed,
                      workers=args.workers, executor=executor, progress=not args.quiet)
        if args.method == "sobol":
            result = sobol_indices(scenario, n=128 if args.n is None else args.n, **common)
        else:
            result = morris_screening(scenario, n=20 if args.n is None else args.n, levels=args.levels,
                                      **common)
    if args.json:
        write_json(args.json, result.summary())
    if args.html:
        write_html(result, args.html)
    if not args.quiet:
        print_table(result)
        for label, path in (("json", args.json), ("chart", args.html)):
            if path:
                print(f"{label}: {path}")
    return 0


def print_table(result) -> None:
    from rich.table import Table

    from studio.output import console, fmt

    label = f"{result.kpi} ({result.unit})" if result.unit else result.kpi
    t = Table(title=f"{result.scenario}: {result.method} sensitivity of {label}, seed {result.seed}, 95 % CI",
              title_justify="left")
    cols = ("S1", "ST") if result.method == "sobol" else ("mu*", "sigma", "mu")
    for col in ("parameter", *cols):
        t.add_column(col, justify="left" if col == "parameter" else "right")
    for d in result.space:
        ix = result.indices[d.key]
        if result.method == "sobol":
            t.add_row(d.key, fmt(ix["S1"], ix["S1_conf"], 3), fmt(ix["ST"], ix["ST_conf"], 3))
        else:
            t.add_row(d.key, fmt(ix["mu_star"], ix["mu_star_conf"]), fmt(ix["sigma"]), fmt(ix["mu"]))
    out = console()
    out.print(t)
    out.print(f"cost: {result.points} design points × {result.replications} replications = "
              f"{result.simulated} twin evaluations ({result.summary()['cost']['formula']}, "
              f"N = {result.n}, d = {len(result.space)}), {result.seconds:.1f} s")
