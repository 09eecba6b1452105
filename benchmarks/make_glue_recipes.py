"""Write scenarios/glue_recipes.csv: a few hundred noisy recipe records of the glue-dispensing cell.

The "plant" behind them is glue_dispensing.yaml's own response expressions (the truth the learned
process models of glue_dispensing_data.yaml are measured against, benchmarks/bench_process_models.py).
Recipes were run where the plant has run: a Latin hypercube over pressure 2.4–4.4 bar, speed
20–48 mm/s and temperature 32–52 °C (not the whole parameter box). Each record is one lot:
the yield is the good share of 200 parts (binomial), the cycle-time factor and the busy power are
measured with 1 % and 0.02 kW noise.

    python benchmarks/make_glue_recipes.py [--n 300] [--seed 7]
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from scipy.stats import qmc

from twins.loader import load_scenario

ROOT = Path(__file__).resolve().parent.parent
REGION = {"pressure_bar": (2.4, 4.4), "speed_mm_s": (20.0, 48.0), "temperature_c": (32.0, 52.0)}
LOT = 200


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    opts = ap.parse_args()
    rng = np.random.default_rng(opts.seed)
    st = next(s for s in load_scenario("glue_dispensing").stations if s.name == "dispenser")
    assert st.response is not None
    truth = st.response.compile(tuple(p.name for p in st.parameters))
    lo, hi = np.array([v[0] for v in REGION.values()]), np.array([v[1] for v in REGION.values()])
    X = qmc.scale(qmc.LatinHypercube(d=len(REGION), seed=rng).random(opts.n), lo, hi)
    rows = []
    for x in X:
        sp = dict(zip(REGION, (round(float(v), 3) for v in x), strict=True))
        y = float(truth["yield"](sp))
        rows.append({**sp,
                     "ct_factor": round(float(truth["cycle_time_factor"](sp)) * (1 + 0.01 * rng.standard_normal()), 5),
                     "yield": rng.binomial(LOT, min(max(y, 0.0), 1.0)) / LOT,
                     "power_kw": round(float(truth["power_kw"](sp)) + 0.02 * rng.standard_normal(), 4)})
    out = ROOT / "scenarios" / "glue_recipes.csv"
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out} ({len(rows)} recipes)")


if __name__ == "__main__":
    main()
