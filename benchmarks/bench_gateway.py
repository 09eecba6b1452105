"""The equipment gateway's speeds.

1. Plant speed-up over real time for the SMT line: how many simulated seconds per wall second the
   virtual plant (``studio.gateway.plant.VirtualPlant``, the server included) can sustain. The
   plant is asked for an unreachable speed, so its clock runs flat out in ticks between which the
   server keeps answering; a client reads the clock and a counter twice a second meanwhile. We
   report simulated seconds per wall second (the ratio to real time) and the client's read latency.
   The horizon (3 days for smt_line) ends a run early when the twin is faster than that.

    python benchmarks/bench_gateway.py [--scenario smt_line] [--seconds 5]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time

from asyncua import Client

from studio.gateway.plant import PlantSecurity, VirtualPlant
from twins.loader import load_scenario


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="smt_line")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    print("== 1. plant speed-up over real time")
    asyncio.run(plant_speed(args.scenario, args.seconds))


if __name__ == "__main__":
    main()
