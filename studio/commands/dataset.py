"""Synthetic training data: simulate a design over the process parameters, write Parquet or CSV.

One row per design point × replication: the parameters in force and every line KPI (--per-part:
one row per part instead, for supervised learning of its quality outcome, station times or energy). The design
(--design lhs|sobol|grid, scipy.stats.qmc) stays within the parameters' bounds; every point runs
under the same master seed (common random numbers). The seed, the design and the scenario's
fingerprint are stored in the file's metadata (Parquet schema key "twinopt"; for CSV in
OUT.meta.json). Same arguments ⇒ byte-identical file, whatever --workers.

examples:
  twinopt dataset glue_dispensing --design lhs --n 5000 --out data.parquet --workers 4
  twinopt dataset glue_dispensing --design grid --n 1000 --replications 3 --out grid.csv
  twinopt dataset glue_dispensing --design sobol --n 1024 --params dispenser.speed_mm_s,dispenser.pressure_bar \\
      --out sobol.parquet
"""
from __future__ import annotations

import argparse

from studio.executor import add_arguments as add_executor_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", metavar="SCENARIO", help="scenario YAML file or shipped name")
    p.add_argument("--design", default="lhs", choices=("lhs", "sobol", "grid"),
                   help="Latin hypercube (default), scrambled Sobol' sequence, or full factorial grid "
                        "(round(n^(1/d)) values per parameter)")
    p.add_argument("--n", type=int, default=1000, metavar="N", help="design points (default 1000)")
    p.add_argument("--replications", "-r", type=int, default=1, metavar="R",
                   help="replications per design point, same seeds at every point (default 1)")
    p.add_argument("--params", default=None, metavar="ST.P1,ST.P2",
                   help="comma-separated station.parameter names to vary (default: all parameters)")
    p.add_argument("--per-part", action="store_true",
                   help="one row per part that left the line after warm-up: parameters in force, product, "
                        "entry/exit/lead time, outcome (good|scrap), processing time per station "
                        "(STATION.process_time), the energy its processing drew (process_energy_kwh) and the "
                        "replication's energy per good unit")
    p.add_argument("--seed", type=int, default=0, help="seed of the design and master seed of the twin (default 0)")
    p.add_argument("--out", required=True, metavar="OUT", help="output file: .parquet (needs the data extra) or .csv")
    p.add_argument("--workers", type=int, default=1, metavar="K",
                   help="processes for the simulations (default 1; the file is identical for any K)")
    add_executor_arguments(p)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a scenario field first, e.g. horizon.length=3600 (repeatable)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from studio.executor import executor_of
    from studio.output import check_writable
    from twins.errors import InputError
    from twins.extras import requires
    from twins.loader import load_scenario

    suffix = Path(args.out).suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InputError(f"--out {args.out}: give a .parquet or .csv file")
    for flag, value in (("--n", args.n), ("--replications", args.replications), ("--workers", args.workers)):
        if value < 1:
            raise InputError(f"{flag} must be ≥ 1, got {value}")
    check_writable(args.out)
    if suffix == ".parquet":
        with requires("data", "twinopt dataset --out *.parquet"):
            import pyarrow  # noqa: F401 - fail before simulating, not after
    from optimizers.dataset import make_dataset, write_csv, write_parquet

    scenario = load_scenario(args.scenario, args.overrides)
    params = [p for p in args.params.split(",") if p.strip()] if args.params else None
    with executor_of(args) as executor:
        ds = make_dataset(scenario, design=args.design, n=args.n, replications=args.replications, seed=args.seed,
                          params=params, workers=args.workers, executor=executor, progress=not args.quiet,
                          per_part=args.per_part)
    if suffix == ".parquet":
        write_parquet(ds, args.out)
        where = args.out
    else:
        where = f"{args.out} (metadata: {write_csv(ds, args.out)})"
    if not args.quiet:
        m = ds.metadata
        print(f"{m['scenario']}: {m['design']} design, {m['points']} points × {m['replications']} replications, "
              f"{ds.rows} rows{' (one per part)' if args.per_part else ''}, {len(ds.columns)} columns, "
              f"seed {m['seed']}")
        print(f"wrote {where}")
    return 0
