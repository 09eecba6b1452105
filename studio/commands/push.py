"""Push a setpoint recommendation to equipment over OPC UA, checked against the safety envelope;
publish a schedule recommendation as per-station dispatch lists; or follow an energy plan.

Reads the current values, checks the recommendation against the scenario's envelope (or
--envelope), then writes it step by step (ramps, dwell), rechecking permissives and interlocks
before every step and reading every value back; any failure rolls back every changed tag. Every
step goes to the audit trail (--data DIR/audit.jsonl). docs/gateway.md ("Push") has the details.

Exit codes: 0 verified, dry-run or already pushed; 2 bad input, unreachable endpoint or refused
(envelope, approval, permissive, endpoint blocked); 4 rolled back; 5 uncertain (the endpoint is
blocked until --reconcile).

An energy plan runs as a timed sequence of mode commands (on/standby/off per station per slot):
`--follow` checks the whole plan offline, then at each slot's start on the plant's clock checks that
slot's commands against live values, writes and reads them back; Ctrl-C, a refused slot or a
failure leaves every station in its safe mode. Exit codes: 0 completed (or already followed),
2 bad input or refused, 4 failed (stations left in their safe modes), 5 uncertain, 130 stopped
by Ctrl-C (stations left in their safe modes).

Examples:
  twinopt push out/glue_rec.json --endpoint opc.tcp://127.0.0.1:4840/twinopt/ --insecure --dry-run
  twinopt push out/glue_rec.json --endpoint opc.tcp://plc:4840/ --username alice --password-env PLC_PW \\
      --approved-by carol
  twinopt push --reconcile --endpoint opc.tcp://plc:4840/ --scenario glue_dispensing --insecure
  twinopt push out/energy_rec.json --follow --endpoint opc.tcp://127.0.0.1:4840/twinopt/ --insecure
  twinopt push out/ft06.json --endpoint opc.tcp://127.0.0.1:4840/twinopt/ --insecure   # a schedule: dispatch lists
"""
from __future__ import annotations

import argparse
from pathlib import Path

from studio.endpoint import add_endpoint_arguments, endpoint_password, endpoint_security


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recommendation", metavar="RECOMMENDATION", nargs="?",
                   help="a setpoint or schedule Recommendation JSON file (twinopt optimize --json, "
                        "twinopt recommend schedule --out), or an energy plan with --follow")
    add_endpoint_arguments(p)
    p.add_argument("--user", metavar="NAME", help="who pushes, for the audit trail (default: the OS user)")
    p.add_argument("--approved-by", metavar="NAME", help="approver's sign-off (someone else than --user)")
    p.add_argument("--dry-run", action="store_true", help="read and check, print the plan, write nothing")
    p.add_argument("--staging", action="store_true",
                   help="write targets to the staging nodes and apply each step with staging.ApplyStaged")
    p.add_argument("--reconcile", action="store_true",
                   help="read the live values, record them as reconciled and lift the block of an uncertain push")
    p.add_argument("--scenario", metavar="S",
                   help="scenario file or name, or a shipped instance for its shop (default: the recommendation's)")
    p.add_argument("--envelope", metavar="FILE", help="envelope file (default: the scenario's equipment section)")
    p.add_argument("--data", default="twinopt-data", metavar="DIR", help="data folder of the audit trail")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S", help="timeout of every request (default 5)")
    p.add_argument("--readback-timeout", type=float, default=2.0, metavar="S",
                   help="how long a written value may take to read back (default 2)")
    p.add_argument("--settle", type=float, default=3.0, metavar="S",
                   help="how long a rollback's values must hold when a write may be in flight (default 3)")
    p.add_argument("--dwell-scale", type=float, default=1.0, metavar="F",
                   help="factor on every step's dwell (default 1; 1/S for a virtual plant at --speed S)")
    p.add_argument("--follow", action="store_true",
                   help="follow an energy plan: its mode commands at each slot's start, until the horizon or Ctrl-C")
    p.add_argument("--start", choices=("now", "clock"), default="now",
                   help="--follow: the plan's t = 0 is the plant time now (default), or the plan's start_clock "
                        "on the plant's clock")
    p.add_argument("--on-refusal", choices=("stop", "skip"), default="stop",
                   help="--follow: a slot the envelope refuses stops the follow in the safe modes (default) or "
                        "is skipped")
    p.add_argument("--reconnect", type=float, default=30.0, metavar="S",
                   help="--follow: how long a dropped connection may stay down (default 30)")


def main(args: argparse.Namespace) -> int:
    from studio.shop import resolve_scenario
    from twins.errors import InputError
    from twins.extras import requires
    from twins.loader import load_envelope, load_scenario

    password = endpoint_password(args)
    if args.reconcile and (args.recommendation or args.dry_run or args.approved_by):
        raise InputError("--reconcile reads and records the live values: give no RECOMMENDATION, --dry-run or "
                         "--approved-by")
    if not args.reconcile and not args.recommendation:
        raise InputError("push needs a RECOMMENDATION file (or --reconcile)")
    rec = _read_recommendation(args.recommendation) if args.recommendation else None
    if args.follow and (args.reconcile or args.staging):
        raise InputError("--follow writes mode commands: give no --reconcile or --staging")
    if rec is not None and rec.kind == "energy_plan" and not args.follow:
        raise InputError("an energy plan runs as a timed sequence of mode commands: add --follow")
    if rec is not None and rec.kind == "schedule":
        return _publish(args, rec, password)
    scenario_ref = args.scenario or (rec.scenario if rec is not None else None)
    if scenario_ref is None:
        raise InputError("--reconcile needs --scenario (whose envelope names the tags to read)")
    scenario = resolve_scenario(scenario_ref)[0] if args.reconcile else load_scenario(scenario_ref)
    envelope = load_envelope(args.envelope, scenario) if args.envelope else None

    with requires("gateway", "twinopt push"):
        import asyncua  # noqa: F401 - the extra, named before any work

        from studio.gateway import push as gw
        from studio.gateway.audit import AuditLog
    import logging

    logging.getLogger("asyncua").setLevel(logging.CRITICAL)  # its warnings are for developers
    security = endpoint_security(args, password)
    timing = gw.Timing(call_s=args.timeout, readback_s=args.readback_timeout, settle_s=args.settle,
                       dwell_scale=args.dwell_scale)
    audit = AuditLog(Path(args.data) / "audit.jsonl")
    user = args.user or gw.default_user()
    if args.reconcile and envelope is None and scenario.equipment is None:  # a shop: its dispatch lists
        from studio.gateway.publish import reconcile_dispatch

        lists = gw.run(reconcile_dispatch(endpoint=args.endpoint, scenario=scenario, audit=audit, security=security,
                                          user=user, timing=timing))
        print(f"reconciled: {gw.normalize_endpoint(args.endpoint)}: "
              + "; ".join(f"{st} = [{', '.join(v)}]" for st, v in lists.items()))
        return 0
    if args.reconcile:
        values = gw.run(gw.reconcile(endpoint=args.endpoint, scenario=scenario, audit=audit, security=security,
                                     user=user, envelope=envelope, timing=timing))
        shown = ", ".join(f"{n} = {v:g}" for n, v in values.items())
        print(f"reconciled: {gw.normalize_endpoint(args.endpoint)}: {shown}")
        return 0
    assert rec is not None
    if args.follow:
        return _follow(args, rec, scenario, envelope, audit, security, user, timing)
    result = gw.run(gw.push(rec, endpoint=args.endpoint, scenario=scenario, audit=audit, security=security,
                            user=user, envelope=envelope, dry_run=args.dry_run, staging=args.staging,
                            approved_by=args.approved_by, timing=timing))
    if result.outcome == "dry-run":
        _print_plan(result, args.dwell_scale)
        return 0
    return _report(result, rec)


def _report(result, rec) -> int:
    """Exit 0 for verified or already pushed; raise the outcome's error otherwise."""
    from twins.errors import EquipmentError, EquipmentUncertain, PushRefused

    if result.ok:
        print(f"{result.outcome}: recommendation {rec.id} v{rec.version} at {result.endpoint}"
              + (f" ({result.steps_done} steps)" if result.outcome == "verified" else ""))
        return 0
    if result.outcome.startswith("refused"):
        raise PushRefused(result.outcome)
    if result.uncertain_tags:
        raise EquipmentUncertain(f"{result.outcome} ({result.detail}); pushes to {result.endpoint} are refused until "
                                 f"`twinopt push --reconcile`")
    raise EquipmentError(f"{result.outcome}: {result.detail}")


def _publish(args: argparse.Namespace, rec, password: str | None) -> int:
    """A schedule recommendation: publish each machine's job order as the station's dispatch list."""
    from studio.shop import recommendation_scenario, resolve_scenario
    from twins.errors import InputError
    from twins.extras import requires
    from twins.loader import load_envelope

    if args.staging:
        raise InputError("--staging applies to setpoints: dispatch lists are written in one batched call")
    scenario = resolve_scenario(args.scenario)[0] if args.scenario else recommendation_scenario(rec)
    envelope = None
    if args.envelope:
        if scenario is None:
            raise InputError("--envelope needs the scenario it belongs to: add --scenario")
        envelope = load_envelope(args.envelope, scenario)
    equipment = envelope if envelope is not None else (scenario.equipment if scenario is not None else None)
    with requires("gateway", "twinopt push"):
        import asyncua  # noqa: F401 - the extra, named before any work

        from studio.gateway import push as gw
        from studio.gateway.audit import AuditLog
        from studio.gateway.publish import publish_schedule
    import logging

    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    timing = gw.Timing(call_s=args.timeout, readback_s=args.readback_timeout, settle_s=args.settle,
                       dwell_scale=args.dwell_scale)
    result = gw.run(publish_schedule(
        rec, endpoint=args.endpoint, scenario=scenario, audit=AuditLog(Path(args.data) / "audit.jsonl"),
        security=endpoint_security(args, password), user=args.user or gw.default_user(),
        nodes=equipment.dispatch if equipment is not None else None,
        handshake=equipment.handshake if equipment is not None else None,
        dry_run=args.dry_run, approved_by=args.approved_by, timing=timing))
    if result.outcome == "dry-run":
        plan = result.plan
        width = max(len(c.station) for c in plan.changes)
        print(f"dry run: {len(plan.writes)} of {len(plan.changes)} dispatch lists change at {result.endpoint}, "
              f"nothing written")
        for c in plan.changes:
            what = "unchanged" if c.old == c.new else f"[{', '.join(c.old)}] → [{', '.join(c.new)}]"
            print(f"{c.station:<{width}}  {what}")
        if plan.approval_needed:
            state = f"approved by {', '.join(plan.approved_by)}" if plan.approved_by else "needs --approved-by NAME"
            print(f"approval: dispatch lists: {state}")
        return 0
    return _report(result, rec)


def _read_recommendation(path: str):
    from optimizers.recommendation import Recommendation
    from twins.errors import InputError

    try:
        text = Path(path).read_text()
    except OSError as err:
        raise InputError(f"{path}: cannot read the recommendation ({err.strerror or err})") from None
    try:
        return Recommendation.from_json(text)
    except ValueError as err:
        first = str(err).splitlines()
        raise InputError(f"{path}: not a Recommendation ({' '.join(first[:3])})") from None


def _print_plan(result, dwell_scale: float) -> None:
    plan = result.plan
    moving = {c.tag: sum(1 for s in plan.steps if c.tag in s.values) for c in plan.changes}
    width = max([len(c.tag) for c in plan.changes] + [3])
    print(f"dry run: {len(plan.steps)} step{'s' * (len(plan.steps) != 1)} to {result.endpoint}, nothing written")
    print(f"{'tag':<{width}}  {'old → new':<22}  steps  approval")
    for c in plan.changes:
        approval = "needed" if c.tag in plan.approvals_needed else ""
        move = f"{c.old:g} → {c.target:g} {c.unit}"
        print(f"{c.tag:<{width}}  {move:<22}  {moving[c.tag]:>5}  {approval}")
    dwell = sum(s.dwell_s for s in plan.steps[:-1])
    print(f"dwell: {dwell:g} s in total (× {dwell_scale:g})")
    if plan.approvals_needed:
        state = f"approved by {', '.join(plan.approved_by)}" if plan.approved_by else "needs --approved-by NAME"
        print(f"approval: {', '.join(plan.approvals_needed)}: {state}")


def _follow(args, rec, scenario, envelope, audit, security, user, timing) -> int:
    import sys

    from studio.gateway import follow as fw
    from studio.gateway.modes import timeline
    from twins.errors import EquipmentError, EquipmentUncertain, PushRefused

    tl = timeline(rec, scenario, envelope)  # bad input: exit 2 before connecting
    if args.dry_run:
        _print_timeline(tl, args.endpoint)
        return 0

    def make(stop):
        return fw.follow(rec, endpoint=args.endpoint, scenario=scenario, audit=audit, security=security, user=user,
                         envelope=envelope, approved_by=args.approved_by, start=args.start,
                         on_refusal=args.on_refusal, timing=timing, reconnect_s=args.reconnect, stop=stop)

    result = fw.run_until_interrupted(make)
    where = f"plan {rec.id} v{rec.version} at {result.endpoint}"
    if result.ok:
        print(f"{result.outcome}: {where}" + (f" ({result.commands_written} mode commands, {result.slots_done} slots)"
                                              if result.outcome == "completed" else ""))
        return 0
    if result.uncertain_stations:
        raise EquipmentUncertain(f"{result.outcome} ({result.detail}); pushes to {result.endpoint} are refused "
                                 f"until `twinopt push --reconcile`")
    if result.outcome == "stopped":
        safe = ", ".join(f"{s} {m}" for s, m in result.safe)
        print(f"twinopt: stopped: {where} after {result.slots_done} slots; stations left in their safe modes: "
              f"{safe}", file=sys.stderr)
        return 130
    if result.outcome.startswith("refused"):
        raise PushRefused(result.detail or result.outcome)
    raise EquipmentError(result.detail or result.outcome)


def _print_timeline(tl, endpoint: str) -> None:
    hh, mm = (int(x) for x in tl.start_clock.split(":"))
    from twins.calendar import UNITS_PER_HOUR

    per_s = UNITS_PER_HOUR[tl.time_unit] / 3600.0
    commands = tl.commands()
    print(f"dry run: {tl.n_slots} slots of {tl.slot:g} {tl.time_unit} to {endpoint}, nothing written; each "
          f"command is checked against live values when its slot starts")
    width = max([len(s) for s in tl.stations] + [7])
    print(f"{'slot':>4}  {'t':>10}  clock  {'station':<{width}}  mode")
    for k, t, station, mode in commands:
        sod = int(hh * 3600 + mm * 60 + t / per_s) % 86400
        print(f"{k:>4}  {t:>10g}  {sod // 3600:02d}:{sod % 3600 // 60:02d}  {station:<{width}}  {mode}")
    if tl.approvals_needed:
        print(f"approval: {', '.join(tl.approvals_needed)}: needs --approved-by NAME")
