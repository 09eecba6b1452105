"""Follow a plant and raise a drift alarm when it stops behaving like its twin.

Every window of --window simulated hours (the plant's line.sim_time) the shadow reads the plant's
counters (good, scrap, energy, operations per station) and samples its station states, then
predicts the same window with the twin: --replications replications from the plant state at the
window's start, at the plant's setpoints (active.*). Each statistic's residual against the twin's
95 % prediction interval (Student t) feeds a one-sided CUSUM (k = 0.5, h = 8 standard deviations);
when one crosses h the shadow prints a drift alarm naming the station most likely at fault (the
one busier than the twin predicts) and suggests recalibrating the scenario (twinopt calibrate).
docs/drift.md has the statistics.

Exit codes: 0 done (drift or not: the alarm is a finding, printed and in --json); 2 bad input or
unreachable endpoint; 130 interrupted (Ctrl-C; the windows so far are written to --json).

Examples:
  twinopt shadow smt_line --endpoint opc.tcp://127.0.0.1:4840/twinopt/ --insecure --window 1 --windows 8
  twinopt shadow line.yaml --endpoint opc.tcp://plc:4840/ --username alice --password-env PLC_PW --json drift.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from studio.endpoint import add_endpoint_arguments, endpoint_password, endpoint_security


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", metavar="SCENARIO", help="the plant's scenario: a YAML file or a shipped name")
    add_endpoint_arguments(p)
    p.add_argument("--window", type=float, default=1.0, metavar="H",
                   help="window length in simulated hours (default 1)")
    p.add_argument("--windows", type=int, default=None, metavar="N",
                   help="stop after N windows (default: until the plant's horizon or Ctrl-C)")
    p.add_argument("--replications", type=int, default=10, metavar="N",
                   help="twin replications per window (default 10)")
    p.add_argument("--seed", type=int, default=1, metavar="S", help="master seed of the twin's replications")
    p.add_argument("--stop-on-alarm", action="store_true", help="stop at the first drift alarm")
    p.add_argument("--json", metavar="OUT", help="write every window's residuals, CUSUMs and the alarm (JSON)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S", help="timeout of every request (default 5)")


def _line(w: Any, unit: str) -> str:
    g, s, e = w.line["good"], w.line["scrap"], w.line["energy_kwh"]
    busiest = max(w.stations, key=lambda n: w.stations[n]["busy"].z)
    return (f"window {w.index + 1}: t {w.t0:g}-{w.t1:g} {unit}: good {g.observed:g} (twin {g.low:.0f}-{g.high:.0f}), "
            f"scrap {s.observed:g} (twin {max(s.low, 0):.0f}-{s.high:.0f}), energy {e.observed:.1f} kWh "
            f"(twin {e.low:.1f}-{e.high:.1f}); busiest vs twin: {busiest} "
            f"(z {w.stations[busiest]['busy'].z:+.1f}); max CUSUM {max(w.cusum.values()):.1f}")


def main(args: argparse.Namespace) -> int:
    import logging

    from twins.errors import InputError
    from twins.extras import requires
    from twins.loader import load_scenario

    password = endpoint_password(args)
    if not (args.timeout > 0):
        raise InputError(f"--timeout must be positive, got {args.timeout}")
    scenario = load_scenario(args.scenario)
    out = Path(args.json) if args.json else None
    with requires("gateway", "twinopt shadow"):
        import asyncua  # noqa: F401 - the extra, named before any work

        from studio.gateway import push as gw
        from studio.gateway import shadow as sh
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    security = endpoint_security(args, password)
    windows: list[Any] = []
    alarmed: list[Any] = []

    def report(w: Any) -> None:
        windows.append(w)
        print(_line(w, scenario.time_unit), flush=True)
        if w.alarm and not alarmed:
            alarmed.append(w)
            print(f"DRIFT: {w.alarm} CUSUM {w.cusum[w.alarm]:.1f} > h {sh.H:g} in window {w.index + 1}; "
                  f"station most likely at fault: {w.suspect} (busier than the twin predicts, "
                  f"z {w.stations[w.suspect]['busy'].z:+.1f})", flush=True)
            print(f"suggestion: recalibrate the scenario from the plant's recent data (twinopt calibrate), "
                  f"starting with {w.suspect}'s process times", flush=True)

    def write() -> None:
        if out is None:
            return
        doc = {"scenario": scenario.name, "endpoint": args.endpoint, "window_h": args.window,
               "replications": args.replications, "seed": args.seed, "k": sh.K, "h": sh.H,
               "alarm": None if not alarmed else {"window": alarmed[0].index + 1, "statistic": alarmed[0].alarm,
                                                  "station": alarmed[0].suspect},
               "windows": [w.as_dict() for w in windows]}
        try:
            out.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        except OSError as err:
            raise InputError(f"{out}: cannot write ({err.strerror or err})") from None

    try:
        gw.run(sh.shadow(args.endpoint, scenario, security=security, window_h=args.window, windows=args.windows,
                         replications=args.replications, seed=args.seed, timeout=args.timeout, on_window=report,
                         stop_on_alarm=args.stop_on_alarm))
    finally:
        write()
    if not alarmed:
        print(f"no drift in {len(windows)} windows (max CUSUM "
              f"{max((max(w.cusum.values()) for w in windows), default=0.0):.1f} <= h {sh.H:g})")
    return 0
