"""Calibration accuracy and speed: event logs written by the twin's own event trace from a known
scenario (the one tests/test_calibrate.py recovers: exponential arrivals, a gamma station, two
lognormal machines with exponential failures and 5 % scrap, a station with a Weibull time per
product) are fitted back, on a large and a small log; then the time to read and fit a log of
about 1 M events.

    python benchmarks/bench_calibrate.py [--large 120000] [--small 3000] [--million 1000000]

Prints a table true vs fitted (mean, family, relative error) per sample and log, and the seconds
to read the CSV and to fit it (simulating and writing the log is not counted).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_calibrate import TRUTH  # noqa: E402 - the scenario the tests recover

from twins.calibration.calibrate import Calibration, calibrate  # noqa: E402
from twins.calibration.eventlog import read_event_log  # noqa: E402
from twins.eventlog import Event, write_csv  # noqa: E402
from twins.model import Line  # noqa: E402
from twins.spec import Scenario  # noqa: E402


def log_of(length: float, path: Path, seed: int = 1) -> int:
    data = TRUTH | {"horizon": {"length": length, "warmup": 0.0}}
    events: list[Event] = []
    Line(Scenario.model_validate(data), seed, events=events).run()
    return write_csv(events, path)


def rows(cal: Calibration) -> list[tuple[str, str, float, str, float, int]]:
    """(sample, true family, true mean, fitted family, fitted mean, n)."""
    truth = Scenario.model_validate(TRUTH)
    st = {s.name: s for s in cal.stations}
    out = []
    if cal.interarrival is not None:
        out.append(("interarrival", "exponential", 5.0, cal.interarrival.family, cal.interarrival.mean,
                    cal.interarrival.n))
    for name in ("cut", "mill", "pack"):
        spec = truth.station(name)
        for p, f in st[name].process.items():
            dist = spec.process_time_of(p or "a")
            assert dist is not None
            out.append((f"{name} process{'/' + p if p else ''}", dist.dist, dist.mean, f.family, f.mean, f.n))
    mill = st["mill"]
    if mill.ttf is not None and mill.repair is not None:
        out.append(("mill up time (MTBF)", "exponential", 400.0, mill.ttf.family, mill.ttf.mean, mill.ttf.n))
        out.append(("mill repair (MTTR)", "exponential", 30.0, mill.repair.family, mill.repair.mean, mill.repair.n))
    k, n, (lo, hi) = mill.scrap
    out.append((f"mill scrap [{lo:.3f}, {hi:.3f}]", "binomial", 0.05, "binomial", k / n if n else 0.0, n))
    return out


def table(title: str, cal: Calibration) -> None:
    print(f"\n{title}: {cal.events} events over {cal.span:.0f} s")
    print(f"{'sample':34s} {'true':>12s} {'mean':>9s} {'fitted':>12s} {'mean':>9s} {'error':>8s} {'n':>7s}")
    for sample, tf, tm, ff, fm, n in rows(cal):
        flag = "" if tf == ff else "  (family differs)"
        print(f"{sample:34s} {tf:>12s} {tm:9.4g} {ff:>12s} {fm:9.4g} {100 * (fm / tm - 1):+7.2f}% {n:7d}{flag}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--large", type=float, default=120_000.0, help="horizon (s) of the large log")
    ap.add_argument("--small", type=float, default=3_000.0, help="horizon (s) of the small log")
    ap.add_argument("--million", type=int, default=1_000_000, help="events of the timing log (0: skip)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for title, length in (("large log", args.large), ("small log", args.small)):
            path = Path(tmp) / f"{title.split()[0]}.csv"
            log_of(length, path)
            table(title, calibrate(read_event_log(path)))
        if args.million:
            path = Path(tmp) / "million.csv"
            per_s = 189_883 / 120_000.0  # events per simulated second of this line (large log)
            n = log_of(args.million / per_s, path)
            t0 = time.perf_counter()
            log = read_event_log(path)
            t1 = time.perf_counter()
            calibrate(log)
            t2 = time.perf_counter()
            print(f"\n{n} events ({path.stat().st_size / 1e6:.0f} MB CSV): read {t1 - t0:.2f} s, "
                  f"fit {t2 - t1:.2f} s, total {t2 - t0:.2f} s")


if __name__ == "__main__":
    main()
