"""What Sobol' indices cost in twin evaluations, and how close they get for it.

1. Accuracy against a closed form: scenarios/known_optimum.yaml (plus a ``humidity`` parameter no
   response reads) has an expected margin 360·g(speed)·h(T) whose indices follow by quadrature.
   For each N the design has N × (d + 2) points (d = 3) × R replications; reported: evaluations,
   wall time, the largest |S1 − exact| and |ST − exact|, the widest 95 % half width, and the
   ignored parameter's indices (exactly 0 under common random numbers).
2. The glue cell (scenarios/glue_dispensing.yaml, one 8 h shift per replication): evaluations,
   wall time and the indices with their half widths for each N in ``--glue``.

Measured (2 shared cores, R = 2, seed 0): on the cell the largest error of S1/ST against the
closed form falls from 0.10/0.17 at N = 16 (160 evaluations) to 0.07/0.04 at N = 128 (1280) and
0.011/0.012 at N = 512 (5120), the widest 95 % half width from 0.39 to 0.18 to 0.086; humidity's
indices are exactly 0 at every N. The glue cell (about 35 ms per replication on one core) took
12 s for N = 32 (320 evaluations), 73 s for N = 128 (1280) and 237 s for N = 512 (5120); its margin
is interaction-dominated (N = 512: S1 ≤ 0.2 ± 0.13 for every parameter, ST 0.72–0.85 ± 0.13: the
bead-size ridge couples pressure, temperature and speed), so one-at-a-time screening would mislead.

    nice python benchmarks/bench_sensitivity.py [--n 16 32 64 128 256 512] [--glue 32 128] [--workers 2]
    python benchmarks/bench_sensitivity.py --quick      # N 16, 64 on the cell only
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from optimizers.sensitivity import sobol_indices
from twins.loader import load_scenario, parse_yaml, scenario_from_data

ROOT = Path(__file__).resolve().parent.parent


def cell():
    data = parse_yaml((ROOT / "scenarios" / "known_optimum.yaml").read_text())[0]
    data["stations"][0]["parameters"].append({"name": "humidity", "unit": "%", "min": 20, "max": 80, "default": 50})
    return scenario_from_data(data)


def exact() -> dict[str, tuple[float, float]]:
    """(S1, ST) of 360·g(s)·h(T) for independent uniform s, T (tests/test_sensitivity.py explains)."""
    s, t = np.linspace(0.5, 3, 200_001), np.linspace(30, 70, 200_001)
    g, h = 360 * s * (1 - 0.1 * s**2), 1 - ((t - 47) / 25) ** 2
    v = (g**2).mean() * (h**2).mean() - g.mean() ** 2 * h.mean() ** 2
    v1, v2 = g.var() * h.mean() ** 2, g.mean() ** 2 * h.var()
    return {"cell.speed": (v1 / v, 1 - v2 / v), "cell.temperature_c": (v2 / v, 1 - v1 / v), "cell.humidity": (0, 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512])
    ap.add_argument("--glue", type=int, nargs="*", default=[32, 128])
    ap.add_argument("--replications", type=int, default=2)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None, help="also write the numbers as JSON")
    args = ap.parse_args()
    if args.quick:
        args.n, args.glue = [16, 64], []
    truth = exact()
    report: dict = {"workers": args.workers, "replications": args.replications, "cell": [], "glue": []}
    print(f"known_optimum + ignored humidity, R = {args.replications}, {args.workers} workers")
    print(f"{'N':>5} {'evals':>7} {'s':>7} {'max|dS1|':>9} {'max|dST|':>9} {'max hw':>7} humidity S1/ST")
    sc = cell()
    for n in args.n:
        r = sobol_indices(sc, n=n, replications=args.replications, seed=0, workers=args.workers)
        d1 = max(abs(r.indices[k]["S1"] - truth[k][0]) for k in truth)
        dt = max(abs(r.indices[k]["ST"] - truth[k][1]) for k in truth)
        hw = max(max(ix["S1_conf"], ix["ST_conf"]) for ix in r.indices.values())
        hum = r.indices["cell.humidity"]
        print(f"{n:>5} {r.simulated:>7} {r.seconds:>7.1f} {d1:>9.3f} {dt:>9.3f} {hw:>7.3f} {hum['S1']:g}/{hum['ST']:g}")
        report["cell"].append({"n": n, "evaluations": r.simulated, "seconds": round(r.seconds, 2),
                               "max_abs_error_S1": d1, "max_abs_error_ST": dt, "max_half_width": hw, "humidity": hum})
    glue = load_scenario("glue_dispensing")
    for n in args.glue:
        r = sobol_indices(glue, n=n, replications=args.replications, seed=0, workers=args.workers)
        print(f"glue_dispensing N = {n}: {r.simulated} evaluations, {r.seconds:.1f} s "
              f"({r.seconds / r.simulated * 1000:.0f} ms per replication on {args.workers} workers)")
        for k, ix in r.indices.items():
            print(f"  {k:<26} S1 {ix['S1']:6.3f} ± {ix['S1_conf']:.3f}   ST {ix['ST']:6.3f} ± {ix['ST_conf']:.3f}")
        report["glue"].append({"n": n, "evaluations": r.simulated, "seconds": round(r.seconds, 2),
                               "indices": r.indices})
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
