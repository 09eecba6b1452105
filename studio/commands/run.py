"""Simulate a scenario with replications; print KPIs with 95 % CIs, write JSON and an HTML report.

Example:
  twinopt run smt_line --replications 10 --seed 1 --json out/smt.json --html out/smt.html
  twinopt run glue_dispensing --set dispenser.pressure_bar=3.0
  twinopt run glue_dispensing --from-state state.json --set dispenser.speed_mm_s=35
"""
from __future__ import annotations

import argparse

from studio.executor import add_arguments as add_executor_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", metavar="SCENARIO", help="scenario YAML file or shipped name (smt_line …)")
    p.add_argument("--replications", "-n", type=int, default=None, help="default: the scenario's `replications`")
    p.add_argument("--seed", type=int, default=0, help="master seed (same seed ⇒ identical results)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a field: station.parameter=value or a dotted path (repeatable)")
    p.add_argument("--from-state", dest="from_state", metavar="STATE",
                   help="start from a plant state file (docs/state.md) instead of an empty line; no warm-up "
                        "unless --set horizon.warmup=… is given")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: one per core)")
    add_executor_arguments(p)
    p.add_argument("--json", metavar="OUT", help="write the KPI summary as JSON")
    p.add_argument("--html", metavar="OUT", help="write an HTML report with plots")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no table")


def simulate(args: argparse.Namespace):
    """Validate the options and run the replications: ``(results, summary)``, the summary being
    exactly what ``--json`` writes (the API's run jobs call this too)."""
    from studio.executor import executor_of
    from studio.output import check_writable
    from twins.errors import InputError, check_replications
    from twins.loader import load_scenario
    from twins.stats import replicate

    if args.replications is not None:
        check_replications(args.replications, name="--replications")
    if args.workers is not None and args.workers < 1:
        raise InputError("--workers must be ≥ 1")
    for out in (args.json, args.html):
        check_writable(out)
    scenario = load_scenario(args.scenario, args.overrides)
    state = None
    if args.from_state:
        from twins.state import load_state, what_if

        # the state belongs to the line as it is (its fingerprint), the what-if's --set come on top
        as_is = load_scenario(args.scenario) if args.overrides else scenario
        scenario, state = what_if(load_state(args.from_state, as_is), scenario, args.overrides)
    sample_every = scenario.horizon.length / 600 if args.html else None
    with executor_of(args) as executor:
        results = replicate(scenario, args.replications, args.seed, workers=args.workers, executor=executor,
                            progress=not args.quiet, sample_every=sample_every, series_replications=1, state=state)
    summary = results.summary()
    summary["scenario_file"] = args.scenario
    if args.overrides:
        summary["overrides"] = list(args.overrides)
    if args.from_state:
        summary["from_state"] = args.from_state
    return results, summary


def main(args: argparse.Namespace) -> int:
    from studio.output import print_kpi_table, write_json

    results, summary = simulate(args)
    if not args.quiet:
        print_kpi_table(summary, results.scenario)
    if args.json:
        write_json(args.json, summary)
    if args.html:
        from studio.report import write_report

        write_report(results, args.html, source=args.scenario)
    if not args.quiet:
        for label, path in (("json", args.json), ("report", args.html)):
            if path:
                print(f"{label}: {path}")
    return 0
