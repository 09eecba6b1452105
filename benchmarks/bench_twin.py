"""Twin speed against a plain hand-written SimPy model of the same line, in the same process.

The line: 5 stations in series, one machine each, input buffers of 5 waiting places, exponential
process times (mean 1.0 min), time-based breakdowns (MTBF 100 min, MTTR 5 min, exponential),
raw material always available at the first station. The hand-written model is the textbook
SimPy pattern (``simpy.Store`` buffers, a breakdown process interrupting the machine, as in
SimPy's "machine shop" example). Both run the same horizon; we report finished parts per
wall-clock second (best of ``--repeat`` runs each, interleaved) and the ratio.

Also measured: replication speed-up from 1 to 2 worker processes on the same twin scenario, and
how cost grows with the line: serial lines of 5, 20, 50 and 100 stations (the same station
repeated) and the shipped foaming line (200+ process parameters), each run for about the same
number of SimPy events. Reported per size: SimPy events per wall second, microseconds per event,
parts per second, and the same line hand-written. Events are counted by SimPy's own event
counter (every scheduled event: timeouts, store and resource events, process starts).

    python benchmarks/bench_twin.py [--horizon 100000] [--repeat 3] [--replications 8] [--sizes 5,20,50,100]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import simpy

from twins.loader import scenario_from_data
from twins.model import Line
from twins.stats import replicate

N_STATIONS, BUFFER, MEAN_PT, MTBF, MTTR = 5, 5, 1.0, 100.0, 5.0


def twin_scenario(horizon: float, stations: int = N_STATIONS) -> dict:
    return {
        "name": f"bench-{stations}-station-line",
        "time_unit": "min",
        "horizon": {"length": horizon, "warmup": 0},
        "products": [{"name": "P", "route": [f"S{i + 1}" for i in range(stations)]}],
        "sources": [{"kind": "saturated"}],
        "stations": [{"name": f"S{i + 1}", "buffer": BUFFER,
                      "process_time": {"dist": "exponential", "mean": MEAN_PT},
                      "breakdowns": [{"mtbf": MTBF, "mttr": MTTR}]} for i in range(stations)],
    }


def run_twin(horizon: float, seed: int) -> int:
    line = Line(scenario_from_data(twin_scenario(horizon)), seed, 0)
    line.run()
    return line.good


def events_of(env: simpy.Environment) -> int:
    """Events scheduled so far: SimPy numbers every scheduled event with ``Environment._eid``."""
    return next(env._eid)


def timed_line(scenario, seed: int, horizon: float | None = None) -> tuple[float, int, int]:
    """(wall seconds, SimPy events, good parts) of one run of ``scenario`` (building the line included)."""
    t = time.perf_counter()
    line = Line(scenario, seed, 0)
    line.run(horizon)
    return time.perf_counter() - t, events_of(line.env), line.good


class HandwrittenMachine:
    """One machine of the hand-written model: takes a part from its input store (raw material at
    the first station), processes it, puts it into the next store; breakdowns interrupt it."""

    def __init__(self, env: simpy.Environment, rng: np.random.Generator, stores: list[simpy.Store],
                 done: list[int], i: int):
        self.env, self.rng, self.stores, self.done, self.i = env, rng, stores, done, i
        self.broken = False
        self.process = env.process(self.work())
        env.process(self.breakdowns())

    def work(self):
        env, rng, stores, done = self.env, self.rng, self.stores, self.done
        while True:
            if self.i == 0:  # raw material is always there
                part = object()
            else:  # a breakdown while starved keeps the request: a new one would strand a part in the old
                get = stores[self.i].get()
                while True:
                    try:
                        part = yield get
                        break
                    except simpy.Interrupt:
                        yield env.timeout(rng.exponential(MTTR))
                        self.broken = False
            left = rng.exponential(MEAN_PT)
            while left > 0:
                start = env.now
                try:
                    yield env.timeout(left)
                    left = 0
                except simpy.Interrupt:
                    left -= env.now - start
                    yield env.timeout(rng.exponential(MTTR))
                    self.broken = False
            if self.i == len(stores) - 1:
                done[0] += 1
                continue
            put = stores[self.i + 1].put(part)
            while not put.triggered:
                try:
                    yield put
                except simpy.Interrupt:
                    yield env.timeout(rng.exponential(MTTR))
                    self.broken = False

    def breakdowns(self):
        env, rng = self.env, self.rng
        while True:
            yield env.timeout(rng.exponential(MTBF))
            if not self.broken:
                self.broken = True
                self.process.interrupt()


def run_handwritten(horizon: float, seed: int, stations: int = N_STATIONS, events: list[int] | None = None) -> int:
    """A straightforward SimPy model of the same line, as one would write it by hand; appends
    its SimPy event count to ``events`` when given."""
    env = simpy.Environment()
    rng = np.random.default_rng(seed)
    stores = [simpy.Store(env, capacity=BUFFER) for _ in range(stations)]
    done = [0]
    for i in range(stations):
        HandwrittenMachine(env, rng, stores, done, i)
    env.run(until=horizon)
    if events is not None:
        events.append(events_of(env))
    return done[0]


def parts_per_second(fn, horizon: float, repeat: int) -> tuple[float, int]:
    best, parts = 0.0, 0
    for k in range(repeat):
        t = time.perf_counter()
        parts = fn(horizon, 1 + k)
        best = max(best, parts / (time.perf_counter() - t))
    return best, parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--horizon", type=float, default=100_000.0, help="simulated minutes per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--replications", type=int, default=8, help="for the 1 → 2 worker speed-up")
    ap.add_argument("--sizes", default="5,20,50,100", help="serial line sizes of the sweep (stations)")
    args = ap.parse_args()
    args.sizes = [int(n) for n in args.sizes.split(",")]

    twin_best = hand_best = 0.0
    for _ in range(args.repeat):  # interleaved so machine noise hits both alike
        t, tp = parts_per_second(run_twin, args.horizon, 1)
        h, hp = parts_per_second(run_handwritten, args.horizon, 1)
        twin_best, hand_best = max(twin_best, t), max(hand_best, h)
    print(f"line: {N_STATIONS} stations, buffers {BUFFER}, exp(mean {MEAN_PT}) times, MTBF {MTBF}/MTTR {MTTR}, "
          f"horizon {args.horizon:g} min")
    print(f"twin        : {twin_best:12,.0f} parts/s  ({tp} parts per run)")
    print(f"handwritten : {hand_best:12,.0f} parts/s  ({hp} parts per run)")

    sc = scenario_from_data(twin_scenario(args.horizon / 4))
    timings = {}
    for workers in (1, 2):
        t = time.perf_counter()
        res = replicate(sc, args.replications, seed=7, workers=workers)
        timings[workers] = time.perf_counter() - t
        timings[f"tp{workers}"] = res.values("throughput").tolist()
    same = timings["tp1"] == timings["tp2"]
    print(f"replications: {args.replications} x {args.horizon / 4:g} min: 1 worker {timings[1]:.2f} s, "
          f"2 workers {timings[2]:.2f} s, speed-up {timings[1] / timings[2]:.2f}x, identical KPIs: {same}")
    size_sweep(args)
    print(f"ratio twin/handwritten: {twin_best / hand_best:.2f}")


def size_sweep(args: argparse.Namespace) -> None:
    """Events/s and parts/s as the serial line grows, and the foaming line; per-event cost should
    stay flat (a station's work per event does not depend on how many stations there are)."""
    from twins.loader import load_scenario

    budget = args.horizon * N_STATIONS  # station-minutes: every size simulates about as many events
    print(f"size sweep (best of {args.repeat}, ~{budget:,.0f} station-minutes each):")
    print(f"  {'line':<34}{'events':>10}{'events/s':>10}{'µs/event':>9}{'parts/s':>9}"
          f"{'hand µs/event':>14}{'hand parts/s':>13}{'twin/hand parts/s':>18}")
    rows: list[tuple[str, tuple[float, int, int], tuple[float, int, int] | None]] = []
    for n in args.sizes:
        horizon = budget / n
        sc = scenario_from_data(twin_scenario(horizon, n))
        twin = min((timed_line(sc, 1 + k) for k in range(args.repeat)), key=lambda r: r[0])
        hand = (float("inf"), 0, 0)
        for k in range(args.repeat):
            ev: list[int] = []
            t = time.perf_counter()
            parts = run_handwritten(horizon, 1 + k, n, ev)
            hand = min(hand, (time.perf_counter() - t, ev[0], parts))
        rows.append((f"serial, {n} stations", twin, hand))
    try:
        foam = load_scenario("foaming_line")
    except Exception as err:  # not shipped in this checkout
        print(f"  (foaming line skipped: {err})")
    else:
        twin = min((timed_line(foam, 1 + k) for k in range(args.repeat)), key=lambda r: r[0])
        n_params = sum(len(st.parameters) for st in foam.stations)
        rows.append((f"foaming line ({len(foam.stations)} st, {n_params} par)", twin, None))
    for name, (secs, events, parts), hand in rows:
        line = f"  {name:<34}{events:>10,}{events / secs:>10,.0f}{secs / events * 1e6:>9.2f}{parts / secs:>9,.0f}"
        if hand is not None:
            hand_rate = hand[2] / hand[0]
            line += f"{hand[0] / hand[1] * 1e6:>14.2f}{hand_rate:>13,.0f}{parts / secs / hand_rate:>18.2f}"
        print(line)
    serial = [r for r in rows if r[2] is not None]
    twin_cost = [r[1][0] / r[1][1] for r in serial]
    hand_cost = [r[2][0] / r[2][1] for r in serial]
    print(f"  per-event cost, {args.sizes[-1]} / {args.sizes[0]} stations: twin x{twin_cost[-1] / twin_cost[0]:.2f}, "
          f"hand-written x{hand_cost[-1] / hand_cost[0]:.2f} (SimPy's event heap and the memory touched grow "
          f"with the line)")


if __name__ == "__main__":
    main()
