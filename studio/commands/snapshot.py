"""Read a plant's current state over OPC UA into a plant-state file (docs/state.md).

Reads the time of day, the setpoints in force, the parts waiting in every buffer and what every
machine is doing (state, product, time left) from the plant's nodes (docs/plant.md), checks them
against the scenario and writes a state file that `twinopt run SCENARIO --from-state FILE` starts
a what-if from. The scenario defaults to the one the plant serves (its `line.scenario` node).

Exit codes: 0 written; 2 bad input, unreachable endpoint or a state that is not one of the scenario.

Examples:
  twinopt snapshot --endpoint opc.tcp://127.0.0.1:4840/twinopt/ --insecure --out state.json
  twinopt snapshot --endpoint opc.tcp://plc:4840/ --username alice --password-env PLC_PW \\
      --scenario glue_dispensing --out state.json
"""
from __future__ import annotations

import argparse
from pathlib import Path

from studio.endpoint import add_endpoint_arguments, endpoint_password, endpoint_security


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_endpoint_arguments(p)
    p.add_argument("--scenario", metavar="S",
                   help="scenario file or name (default: the plant's, from its line.scenario node)")
    p.add_argument("--out", required=True, metavar="FILE", help="the plant-state file to write (JSON)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S", help="timeout of every request (default 5)")


def main(args: argparse.Namespace) -> int:
    from twins.errors import InputError
    from twins.extras import requires
    from twins.loader import load_scenario

    password = endpoint_password(args)
    if not (args.timeout > 0):
        raise InputError(f"--timeout must be positive, got {args.timeout}")

    with requires("gateway", "twinopt snapshot"):
        import asyncua  # noqa: F401 - the extra, named before any work

        from studio.gateway import push as gw
        from studio.gateway import snapshot as snap
    import logging

    logging.getLogger("asyncua").setLevel(logging.CRITICAL)  # its warnings are for developers
    security = endpoint_security(args, password)
    scenario_ref = args.scenario
    if scenario_ref is None:
        scenario_ref = gw.run(snap.plant_scenario(args.endpoint, security=security, timeout=args.timeout))
        if scenario_ref is None:
            raise InputError(f"{args.endpoint} does not say which scenario it runs (no line.scenario node): "
                             "give --scenario")
    scenario = load_scenario(scenario_ref)
    got = gw.run(snap.read_snapshot(args.endpoint, scenario=scenario, security=security, timeout=args.timeout))
    out = Path(args.out)
    try:
        out.write_text(got.state.model_dump_json(indent=2, exclude_none=True) + "\n")
    except OSError as err:
        raise InputError(f"{out}: cannot write the state ({err.strerror or err})") from None
    waiting = sum(len(s.waiting()) for s in got.state.stations.values())
    print(f"snapshot: {scenario.name} at {got.state.model_dump(mode='json')['time_of_day']} "
          f"(t = {got.sim_time:g} {scenario.time_unit}, WIP {got.wip}, {waiting} waiting) -> {out}")
    return 0
