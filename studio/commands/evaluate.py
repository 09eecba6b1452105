"""Compare a saved policy with the environment's baselines over the same seeds (95 % CIs).

MODEL is a model.zip written by `twinopt train`, or the name of a shipped policy
(optimizers/rl/policies/<name>.zip: jss15x15, dynamic_jobshop, glue_dispensing). Baselines for twinopt/Dispatch-v0 and
twinopt/DynamicDispatch-v0 are the dispatching rules (fifo, spt, lpt, mwkr, lwkr, mor, lor, edd,
mdd, slack, cr, atc) and a random masked policy.

examples:
  twinopt evaluate runs/dispatch/model.zip --env twinopt/Dispatch-v0 --episodes 20 --html out/eval.html
  twinopt evaluate optimizers/rl/policies/jss15x15.zip --env twinopt/Dispatch-v0 --baselines mwkr,spt
  twinopt evaluate dynamic_jobshop --seed 100 --baselines edd,atc --metric tardiness
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="saved model (.zip) or shipped policy name")
    parser.add_argument("--env", default=None, metavar="ENV_ID", help="environment id (default: the model's own)")
    parser.add_argument("--episodes", type=int, default=10, metavar="N", help="episodes (default 10)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="first episode seed (default 0)")
    parser.add_argument("--env-kwargs", default=None, metavar="JSON",
                        help="env keyword arguments (default: the model's)")
    parser.add_argument("--baselines", default=None, metavar="A,B", help="comma-separated baselines (default: all)")
    parser.add_argument("--metric", default=None, help="metric of the table (default: makespan if any, else return)")
    parser.add_argument("--html", default=None, metavar="OUT", help="write a plotly comparison chart")
    parser.add_argument("--json", default=None, metavar="OUT", help="write all episodes and summaries as JSON")


def main(args: argparse.Namespace) -> int:
    from optimizers.rl.evaluate import POLICY, comparison_figure, evaluate
    from studio.commands.train import parse_json_object

    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()] if args.baselines else None
    ev = evaluate(args.model, args.env, episodes=args.episodes, seed=args.seed, baselines=baselines,
                  env_kwargs=parse_json_object(args.env_kwargs, "--env-kwargs"))
    metric = args.metric or ("makespan" if "makespan" in ev.summary[POLICY] else "return")
    if metric not in ev.summary[POLICY]:
        from twins.errors import InputError
        raise InputError(f"unknown metric {metric!r}; choose one of {', '.join(ev.summary[POLICY])}")
    print(f"{ev.env_id}, {len(ev.seeds)} episodes (seeds {ev.seeds[0]}..{ev.seeds[-1]})")
    print(ev.table(metric))
    for path, text in ((args.html, lambda: comparison_figure(ev).to_html(include_plotlyjs=True)),
                       (args.json, lambda: json.dumps(ev.to_json(), indent=1) + "\n")):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text())
            print(f"wrote {path}")
    return 0
