"""The equipment gateway's speeds.

1. Plant speed-up over real time for the SMT line: how many simulated seconds per wall second the
   virtual plant (``studio.gateway.plant.VirtualPlant``, the server included) can sustain. The
   plant is asked for an unreachable speed, so its clock runs flat out in ticks between which the
   server keeps answering; a client reads the clock and a counter twice a second meanwhile. We
   report simulated seconds per wall second (the ratio to real time) and the client's read latency.
   The horizon (3 days for smt_line) ends a run early when the twin is faster than that.

2. Push latency (``studio.gateway.push.push``: connect, read, check, write, read back, audit) of a
   3-tag and a 200-tag setpoint recommendation against the virtual plant, p50 and p99 over
   ``--pushes`` pushes alternating between two targets (one write step each, no dwell). The 200
   tags are the glue cell's three plus 197 parameters added to ``uv_cure`` (a station without a
   response model: the response range check enumerates 2^n corners).
3. Rollback time after an injected fault (``reject_writes`` on the second tag of a two-step push):
   from the failed step to the previous values read back, and the whole push.

    python benchmarks/bench_gateway.py [--scenario smt_line] [--seconds 5] [--pushes 50]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import statistics
import tempfile
import time
from pathlib import Path

from asyncua import Client

from optimizers.recommendation import Provenance, Recommendation, fingerprint
from studio.gateway.audit import AuditLog
from studio.gateway.faults import Faults
from studio.gateway.plant import PlantSecurity, VirtualPlant
from studio.gateway.push import PushSecurity, Timing, push
from twins.loader import load_scenario, parse_yaml, scenario_from_data
from twins.shipped import scenario_path


async def plant_speed(scenario_name: str, seconds: float) -> None:
    scenario = load_scenario(scenario_name)
    plant = VirtualPlant(scenario, security=PlantSecurity.insecure(), speed=1e12, seed=1, on_event=lambda m: None)
    latencies = []
    async with plant:
        async with Client(plant.endpoint, timeout=10) as client:
            clock = client.get_node("ns=2;s=line.sim_time")
            good = client.get_node("ns=2;s=line.good")
            wall0, sim0 = time.perf_counter(), await clock.read_value()
            while time.perf_counter() - wall0 < seconds and plant.line.env.now < plant.line.horizon:
                await asyncio.sleep(0.5)
                t = time.perf_counter()
                await good.read_value()
                latencies.append(time.perf_counter() - t)
            wall = time.perf_counter() - wall0
            sim = await clock.read_value() - sim0
    to_s = 3600.0 / {"s": 3600.0, "min": 60.0, "h": 1.0}[scenario.time_unit]
    ratio = sim * to_s / wall
    print(f"plant speed-up over real time ({scenario_name}, server running): {ratio:,.0f} simulated s per wall s "
          f"({sim * to_s / 3600:,.1f} simulated h in {wall:.1f} s; = {ratio / 60:,.0f}x a '--speed 60' plant)")
    if latencies:
        print(f"  client read latency meanwhile: median {statistics.median(latencies) * 1e3:.1f} ms, "
              f"max {max(latencies) * 1e3:.1f} ms")
    if plant.line.env.now >= plant.line.horizon:
        print("  (the horizon ended the run early)")


def _glue_with(extra: int):
    """The glue cell with ``extra`` more Double tags (uv_cure.p000 …, 0–100, resolution 0.1)."""
    data = parse_yaml(Path(scenario_path("glue_dispensing")).read_text())[0]
    station = next(s for s in data["stations"] if s["name"] == "uv_cure")
    station["parameters"] = [{"name": f"p{i:03d}", "min": 0, "max": 100, "default": 50} for i in range(extra)]
    data["equipment"]["tags"] += [{"parameter": f"uv_cure.p{i:03d}", "resolution": 0.1} for i in range(extra)]
    return scenario_from_data(data)


def _rec(scenario, values: dict[str, float], version: int) -> Recommendation:
    payload: dict[str, dict[str, float]] = {}
    for name, value in values.items():
        station, _, param = name.rpartition(".")
        payload.setdefault(station, {})[param] = value
    return Recommendation(kind="setpoints", scenario=scenario.name, scenario_fingerprint=fingerprint(scenario),
                          payload=payload, provenance=Provenance(method="bench"), version=version)


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


async def push_latency(n_tags: int, pushes: int) -> None:
    scenario = _glue_with(n_tags - 3)
    faults = Faults(signals={"dispenser.alarm": False})  # a random nozzle-clog alarm would refuse a push
    plant = VirtualPlant(scenario, security=PlantSecurity.insecure(), speed=600, faults=faults,
                         on_event=lambda m: None)
    timing = Timing(dwell_scale=0.0)
    names = [t.name for t in scenario.equipment.tags]
    a = {n: {"dispenser.pressure_bar": 3.25, "dispenser.speed_mm_s": 35.0, "dispenser.temperature_c": 42.0}.get(n, 60.0)
         for n in names}
    b = {n: {"dispenser.pressure_bar": 3.0, "dispenser.speed_mm_s": 30.0, "dispenser.temperature_c": 40.0}.get(n, 50.0)
         for n in names}
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        # every push moves every tag; the hourly limits are the envelope's business, not the bench's
        async with plant:
            for k in range(pushes):
                log = AuditLog(Path(tmp) / f"audit{k}.jsonl")
                t = time.perf_counter()
                result = await push(_rec(scenario, a if k % 2 == 0 else b, k + 1), endpoint=plant.endpoint,
                                    scenario=scenario, audit=log, security=PushSecurity.insecure(), user="bench",
                                    approved_by="approver", timing=timing)
                times.append(time.perf_counter() - t)
                assert result.outcome == "verified", result.outcome
    print(f"push latency, {n_tags} tags ({pushes} pushes, 1 step each): p50 {_pct(times, 0.5) * 1e3:.0f} ms, "
          f"p99 {_pct(times, 0.99) * 1e3:.0f} ms")


async def rollback_time(runs: int) -> None:
    scenario = load_scenario("glue_dispensing")
    faults = Faults(signals={"dispenser.alarm": False}, reject_writes=["dispenser.temperature_c"])
    plant = VirtualPlant(scenario, security=PlantSecurity.insecure(), speed=600, faults=faults,
                         on_event=lambda m: None)
    totals, rollbacks = [], []
    target = {"dispenser.pressure_bar": 3.5, "dispenser.speed_mm_s": 40.0}
    with tempfile.TemporaryDirectory() as tmp:
        async with plant:
            for k in range(runs):
                log = AuditLog(Path(tmp) / f"audit{k}.jsonl")
                # pressure and speed move in step 1, temperature (refused) joins in step 2
                rec = _rec(scenario, {**target, "dispenser.temperature_c": 40.5 if k % 2 else 41.0}, k + 1)
                t = time.perf_counter()
                result = await push(rec, endpoint=plant.endpoint, scenario=scenario, audit=log,
                                    security=PushSecurity.insecure(), user="bench", approved_by="approver",
                                    timing=Timing(dwell_scale=0.0))
                total = time.perf_counter() - t
                assert result.outcome == "rolled back", result.outcome
                failed = next(e for e in log.entries() if e["outcome"] == "failed")["time"]
                done = next(e for e in log.entries() if e["action"] == "rollback")["time"]
                rollbacks.append((dt.datetime.fromisoformat(done) - dt.datetime.fromisoformat(failed)).total_seconds())
                totals.append(total)
    print(f"rollback after a refused write ({runs} pushes): rollback p50 {_pct(rollbacks, 0.5) * 1e3:.0f} ms, "
          f"p99 {_pct(rollbacks, 0.99) * 1e3:.0f} ms; whole push p50 {_pct(totals, 0.5) * 1e3:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="smt_line")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pushes", type=int, default=50)
    args = parser.parse_args()
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    print("== 1. plant speed-up over real time")
    asyncio.run(plant_speed(args.scenario, args.seconds))
    print("== 2. push latency (check + write + read-back, audit included)")
    asyncio.run(push_latency(3, args.pushes))
    asyncio.run(push_latency(200, args.pushes))
    print("== 3. rollback time after an injected fault")
    asyncio.run(rollback_time(max(args.pushes // 2, 5)))


if __name__ == "__main__":
    main()
