"""Calibrate a scenario from an event log (CSV or Parquet): fitted process times, breakdowns, setups,
scrap and rework, routes and arrivals; writes a scenario YAML, optionally the fits as JSON and an
HTML report. The log's format is in docs/calibration.md.

Example:
  twinopt calibrate events.csv --out calibrated.yaml --json fit.json --html fit.html
  twinopt calibrate events.parquet --skeleton line.yaml --out calibrated.yaml
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("log", metavar="LOG", help="event log: .csv, or .parquet (the 'data' extra)")
    p.add_argument("--out", required=True, metavar="SCENARIO", help="write the calibrated scenario YAML here")
    p.add_argument("--skeleton", metavar="S", help="scenario whose stations are filled in (buffers, energy, "
                                                   "calendar … are kept); default: a complete new scenario")
    p.add_argument("--failures", choices=("time", "operation"), default="time",
                   help="failure clocks run in up time (default) or only while processing")
    p.add_argument("--json", metavar="OUT", help="write every fit (parameters, CIs, AIC/BIC, KS) as JSON")
    p.add_argument("--html", metavar="OUT", help="write an HTML report: histograms with densities, QQ plots")
    p.add_argument("--quiet", "-q", action="store_true", help="no table")


def main(args: argparse.Namespace) -> int:
    import sys

    import yaml

    from studio.output import check_writable, write_json
    from twins.calibration.calibrate import calibrate, round_floats, scenario_data
    from twins.calibration.eventlog import read_event_log
    from twins.errors import InputError
    from twins.loader import load_scenario, parse_yaml

    for out in (args.out, args.json, args.html):
        check_writable(out)
    skeleton = None
    families = None
    if args.skeleton:
        sk = load_scenario(args.skeleton)  # validated first: its errors name its lines
        skeleton = sk.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        families = {p.name: p.setup_family for p in sk.products}
    log = read_event_log(args.log)
    cal = calibrate(log, families, args.failures)
    data = round_floats(scenario_data(cal, skeleton))
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    parsed, _ = parse_yaml(text, args.out)
    from twins.spec import Scenario

    try:
        Scenario.model_validate(parsed)
    except ValueError as err:  # pragma: no cover — a fit the format refuses is a bug here
        raise InputError(f"the calibrated scenario does not validate: {err}") from None
    with open(args.out, "w") as f:
        f.write(f"# calibrated by `twinopt calibrate` from {log.file}\n")
        f.write(text)
    if args.json:
        write_json(args.json, cal.summary())
    if args.html:
        from twins.calibration.report import write_calibration_report

        write_calibration_report(cal, args.html)
    if not args.quiet:
        for sf in cal.stations:
            for p, fit in sf.process.items():
                ci = f" [{fit.mean_ci[0]:.4g}, {fit.mean_ci[1]:.4g}]" if fit.mean_ci else ""
                ks = f"  KS {fit.ks:.3f}" if fit.ks is not None else ""
                print(f"{sf.name}{'/' + p if p else ''}: {fit.family} mean {fit.mean:.4g} s{ci} "
                      f"n={fit.n}{ks}  machines={sf.machines}")
        for note in cal.notes + [f"{sf.name}: {n}" for sf in cal.stations for n in sf.notes]:
            print(f"note: {note}", file=sys.stderr)
        print(f"scenario: {args.out}")
    return 0
