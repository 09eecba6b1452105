"""Search at size: evaluations TPE, CMA-ES, GP-based BO, screening+search and the rough-cut model's
start + search need to come within 1 % of the best margin a long reference run found on the
foaming line (208 process parameters).

The objective is ``twinopt optimize``'s default, mean ``margin`` (EUR per 2 h window after a
10 min warm-up) of scenarios/foaming_line.yaml over ``--replications`` replications, always with
twin master seed 0 (common random numbers): one deterministic function of the 208 setpoints for
every method, seed and the reference.

1. Reference: one long run (``--reference-sampler``, default ``model``, ``--reference-budget``
   trials, warm start, sampler seed 1000). Its best value is the target's base; if any benchmarked
   run beats it, that is printed too (the target stays the reference's). Not CMA-ES: optuna's
   CMA-ES stores its whole 208 × 208 covariance with every trial, about a second per trial here.
   A reference can only be as good as its method: earlier screening references (1408 EUR in 500
   trials) sat far below what the GP over all 208 parameters (1666 EUR) and the model's optimum
   (2071 EUR) later found.
2. Each method runs ``--budget`` trials for sampler seeds 0 … ``--seeds``−1, warm start (trial 0
   is today's setpoints). ``screen`` spends its first trials on the screening (26 random groups of
   8, then one at a time inside the groups that matter; optimizers/screening.py) and searches
   the kept parameters with the GP sampler within ± 10 % of each range around today's setpoints;
   ``model`` optimises the rough-cut model first (no twin run; optimizers/model_guided.py), scores
   its optimum as trial 1 and searches with the GP within ± 5 % around it.
   Reported per method: evaluations until a trial first scores ≥ 99 % of the reference (mean and
   median over the seeds that got there, how many did), the best value found, time per evaluation.

    nice python benchmarks/bench_search_many.py [--budget 400] [--seeds 5] [--methods tpe,cmaes,gp,screen,model]
    python benchmarks/bench_search_many.py --quick    # budget 300, 1 seed, reference 500 trials
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import optuna

from benchmarks.bench_search import budgets, evaluations_to_reach, method_row
from optimizers.search import parameter_search
from twins.loader import load_scenario

SCENARIO = "foaming_line"  # shipped
SIM_SEED = 0
METHODS = ("tpe", "cmaes", "gp", "screen", "model")


def run(scenario, sampler: str, budget: int, replications: int, seed: int) -> tuple[list[float], float, dict]:
    """Trial values in order, seconds per evaluation, and the screening summary (screen only)."""
    result = parameter_search(scenario, budget=budget, sampler=sampler, replications=replications, seed=seed,
                              sim_seed=SIM_SEED, top_k=1, final_replications=2, sensitivity_step=None)
    extra = result.recommendation.provenance.extra
    return [t.value for t in result.trials], float(extra["seconds_per_evaluation"]), extra.get("screening", {})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=400, help="trials per search run (default 400)")
    ap.add_argument("--seeds", type=int, default=5, help="sampler seeds per method (default 5)")
    ap.add_argument("--replications", type=int, default=2, help="replications per evaluation (default 2)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated (default {','.join(METHODS)})")
    ap.add_argument("--reference-sampler", default="model", help="sampler of the long reference run (default model)")
    ap.add_argument("--reference-budget", type=int, default=600, help="trials of the reference run (default 600)")
    ap.add_argument("--reference-from", default=None, metavar="JSON",
                    help="reuse the reference of an earlier --json report (same replications)")
    ap.add_argument("--tolerance", type=float, default=0.01, help="relative gap to the reference (default 0.01)")
    ap.add_argument("--quick", action="store_true", help="budget 300, 1 seed, reference budget 500")
    ap.add_argument("--budget-of", action="append", default=[], metavar="METHOD=N",
                    help="another budget for one method, e.g. model=40 (repeatable; a method that reaches the "
                         "target early needs no more trials to be counted)")
    ap.add_argument("--json", default=None, help="also write the numbers as JSON")
    args = ap.parse_args()
    budget_of = budgets(args.budget_of)
    if args.quick:
        args.budget, args.seeds, args.reference_budget = 300, 1, 500
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scenario = load_scenario(SCENARIO)
    R = args.replications
    d = sum(len(st.parameters) for st in scenario.stations)
    print(f"foaming_line: {d} process parameters, objective margin (EUR per "
          f"{scenario.horizon.length - scenario.horizon.warmup:g} s window), mean of {R} replications, "
          f"twin seed {SIM_SEED} (CRN)", flush=True)

    if args.reference_from:
        ref = json.loads(Path(args.reference_from).read_text())["reference"]
    else:
        started = time.perf_counter()
        values, ref_per_eval, _ = run(scenario, args.reference_sampler, args.reference_budget, R, seed=1000)
        ref = {"sampler": args.reference_sampler, "budget": args.reference_budget, "best_value": max(values),
               "today": values[0], "seconds": time.perf_counter() - started, "seconds_per_evaluation": ref_per_eval,
               "reached_at": values.index(max(values)) + 1}
    threshold = ref["best_value"] * (1 - args.tolerance)
    print(f"reference: {ref['sampler']}, {ref['budget']} trials, {ref['seconds']:.0f} s: best "
          f"{ref['best_value']:.1f} EUR (trial {ref['reached_at']}; today's setpoints {ref['today']:.1f})"
          + (f" (from {args.reference_from})" if args.reference_from else ""))
    print(f"  target: ≥ {threshold:.1f} EUR (within {100 * args.tolerance:g} % of the reference)\n", flush=True)

    report: dict = {"reference": ref, "budget": args.budget, "threshold": threshold, "replications": R,
                    "methods": {}}
    header = (f"{'method':<8} {'reached':>8} {'mean evals':>10} {'median':>7} {'per seed':<28} "
              f"{'best found (mean)':>17} {'ms/eval':>8}")
    print(f"search: {args.budget} trials per run" + "".join(f" ({m}: {n})" for m, n in budget_of.items())
          + ", warm start (trial 0 = today's setpoints)")
    print(header)
    print("-" * len(header), flush=True)
    best_seen = -float("inf")
    for sampler in [m.strip() for m in args.methods.split(",") if m.strip()]:
        hits, bests, per_eval, kept = [], [], [], []
        budget = budget_of.get(sampler, args.budget)
        for seed in range(args.seeds):
            values, seconds, screening = run(scenario, sampler, budget, R, seed)
            hits.append(evaluations_to_reach(values, threshold))
            bests.append(max(values))
            per_eval.append(seconds)
            if screening:
                kept.append(screening["kept"])
            print(f"  {sampler} seed {seed}: reached at {hits[-1]}, best {bests[-1]:.1f}, "
                  f"{1000 * seconds:.0f} ms/eval", file=sys.stderr, flush=True)
        best_seen = max(best_seen, *bests)
        line, report["methods"][sampler] = method_row(sampler, hits, bests, per_eval, budget)
        print(line, flush=True)
        if kept:
            report["methods"][sampler]["kept"] = kept
    screened = report["methods"].get("screen", {}).get("kept")
    if screened:
        print(f"\nscreen kept (seed 0): {', '.join(screened[0])}")
    if round(best_seen, 1) > round(ref["best_value"], 1):  # not a float's last digits
        print(f"note: a benchmarked run found {best_seen:.1f} EUR, above the reference's {ref['best_value']:.1f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
