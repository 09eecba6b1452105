"""Compare two scenarios under common random numbers: paired differences B − A with 95 % CIs.

Example:
  twinopt compare smt_line smt_line --set-b stations.pnp.machines=3
"""
from __future__ import annotations

import argparse

from studio.executor import add_arguments as add_executor_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A", help="scenario YAML file or shipped name")
    p.add_argument("b", metavar="B", help="scenario YAML file or shipped name")
    p.add_argument("--replications", "-n", type=int, default=None, help="default: A's `replications`")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set-a", dest="set_a", action="append", default=[], metavar="PATH=VALUE", help="override in A")
    p.add_argument("--set-b", dest="set_b", action="append", default=[], metavar="PATH=VALUE", help="override in B")
    p.add_argument("--from-state", dest="from_state", metavar="STATE",
                   help="both start from a plant state file of A's line (docs/state.md); no warm-up unless set")
    p.add_argument("--workers", type=int, default=None)
    add_executor_arguments(p)
    p.add_argument("--json", metavar="OUT")
    p.add_argument("--quiet", "-q", action="store_true")


def main(args: argparse.Namespace) -> int:
    from rich.table import Table

    from studio.executor import executor_of
    from studio.output import LINE_KPIS, check_writable, console, fmt, write_json
    from twins.errors import check_replications
    from twins.loader import load_scenario
    from twins.stats import compare

    if args.replications is not None:  # a paired comparison needs a spread
        check_replications(args.replications, 2, "--replications")
    check_writable(args.json)
    a = load_scenario(args.a, args.set_a)
    b = load_scenario(args.b, args.set_b)
    state = state_b = None
    if args.from_state:
        from twins.state import load_state, what_if

        plant = load_state(args.from_state, load_scenario(args.a) if args.set_a else a)
        a, state = what_if(plant, a, args.set_a)
        b, state_b = what_if(plant, b, args.set_b)
    with executor_of(args) as executor:
        result = compare(a, b, args.replications, args.seed, workers=args.workers, executor=executor,
                         progress=not args.quiet, state=state, state_b=state_b)
    summary = result.summary()
    if args.from_state:
        summary["from_state"] = args.from_state
    if not args.quiet:
        t = Table(title=f"B − A under common random numbers ({summary['replications']} paired replications, "
                        f"seed {summary['seed']}, 95 % CI)", title_justify="left")
        for col in ("KPI", f"A: {a.name}", f"B: {b.name}", "B − A", "p", ""):
            t.add_column(col, justify="left" if col in ("KPI", "") else "right")
        for k in LINE_KPIS:
            e = summary["kpis"].get(k)
            if e is None:
                continue
            sig = e["p_value"] is not None and e["p_value"] < 0.05
            t.add_row(k, fmt(e["a"]), fmt(e["b"]), fmt(e["diff"], e["half_width"]),
                      "–" if e["p_value"] is None else f"{e['p_value']:.3g}", "significant" if sig else "")
        console().print(t)
    if args.json:
        write_json(args.json, summary)
    return 0
