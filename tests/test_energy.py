"""Energy accounting adds up: kWh by state sums to the total, and the cost equals the energy of
each moment times the tariff price of that moment — recomputed here independently from the
twin's per-machine state trace and the tariff's clock times."""
from __future__ import annotations

import pytest

from twins.energy import STATES
from twins.loader import scenario_from_data
from twins.stats import run_replication

PRICES = [("22:00", "06:00", 0.10), ("08:00", "12:00", 0.30), ("17:00", "19:30", 0.25)]
DEFAULT_PRICE = 0.18
START_CLOCK_MIN = 5 * 60 + 30


def scenario():
    return scenario_from_data({
        "name": "energy-check", "time_unit": "min", "start_clock": "05:30",
        "horizon": {"length": 2 * 1440, "warmup": 0},
        "products": [{"name": "A", "family": "a", "route": ["press", "oven"]},
                     {"name": "B", "family": "b", "route": ["press", "oven"]}],
        "sources": [{"kind": "arrivals", "interarrival": {"dist": "exponential", "mean": 4.0}, "when_full": "wait",
                     "mix": {"A": 2, "B": 1}}],
        "stations": [
            {"name": "press", "buffer": 5, "process_time": {"dist": "gamma", "mean": 2.5, "cv": 0.5},
             "setup": {"default": 6}, "breakdowns": [{"mtbf": 120, "mttr": 8}],
             "energy": {"power_kw": {"off": 0.1, "idle": 2, "setup": 3, "busy": 7.5, "blocked": 2.5, "down": 0.5}}},
            {"name": "oven", "machines": 2, "buffer": 1, "process_time": {"dist": "uniform", "low": 4, "high": 8},
             "energy": {"power_kw": {"off": 0.2, "idle": 6, "setup": 12, "busy": 9, "standby": 1.5},
                        "standby": {"after": 5, "wakeup": 3}, "startup": 20}},
        ],
        "calendar": {"shifts": [{"start": "06:00", "end": "22:00"}], "breaks": [{"start": "12:00", "duration": 30}]},
        "tariff": {"default_price": DEFAULT_PRICE,
                   "periods": [{"start": a, "end": b, "price": p} for a, b, p in PRICES]},
        "co2_kg_per_kwh": 0.4,
    })


def clock_minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def price_at(t_min: float) -> float:
    """Price at scenario time t (minutes), straight from the clock windows."""
    tod = (START_CLOCK_MIN + t_min) % 1440
    for a, b, p in PRICES:
        a, b = clock_minutes(a), clock_minutes(b)
        if (a <= tod < b) if a < b else (tod >= a or tod < b):
            return p
    return DEFAULT_PRICE


def test_energy_by_state_sums_to_total_and_cost_matches_tariff():
    sc = scenario()
    rep = run_replication(sc, seed=5, trace=True)
    k = rep.kpis
    by_state = [k[f"energy_kwh_{s}"] for s in STATES]
    assert sum(by_state) == pytest.approx(k["energy_kwh"], rel=1e-12)
    assert k["co2_kg"] == pytest.approx(0.4 * k["energy_kwh"])
    assert sum(rep.stations[s]["energy_kwh"] for s in rep.stations) == pytest.approx(k["energy_kwh"])

    power = {st.name: st.energy.power_kw.vector() for st in sc.stations}
    kwh = [0.0] * len(STATES)
    cost = 0.0
    for machine, state, t0, t1 in rep.trace:
        kw = power[machine.split("#")[0]][state]
        kwh[state] += kw * (t1 - t0) / 60
        # every price change falls on a whole minute here: integrate minute slot by minute slot
        t = t0
        while t < t1:
            nxt = min(t1, float(int(t) + 1))
            cost += kw * (nxt - t) / 60 * price_at(t)
            t = nxt
    assert kwh == pytest.approx(by_state, rel=1e-9)
    assert cost == pytest.approx(k["energy_cost"], rel=1e-9)
    # every state actually occurred, so the check covers them all
    occurred = dict(zip(STATES, by_state, strict=True))
    assert all(v > 0 for s, v in occurred.items() if s != "blocked"), occurred
    # and the tariff mattered: the cost is not just energy × one price
    assert not k["energy_cost"] == pytest.approx(k["energy_kwh"] * DEFAULT_PRICE, rel=1e-3)


def test_trace_covers_every_machine_for_the_whole_horizon():
    sc = scenario()
    rep = run_replication(sc, seed=6, trace=True)
    covered: dict[str, float] = {}
    for machine, _state, t0, t1 in rep.trace:
        assert t1 >= t0
        covered[machine] = covered.get(machine, 0.0) + (t1 - t0)
    assert covered == pytest.approx({"press": 2880.0, "oven#1": 2880.0, "oven#2": 2880.0})


def test_largest_consumer_weighs_machines_by_their_highest_draw_not_idle_power():
    from envs.energy import EnergyEnv
    from twins.energy import largest_consumer

    data = {
        "name": "two", "time_unit": "min", "horizon": {"length": 60},
        "products": [{"name": "p", "route": ["warm", "hot", "plain"]}], "sources": [{"kind": "external"}],
        "tariff": {"default_price": 0.2},
        "stations": [
            {"name": "warm", "machines": 2, "process_time": 1, "energy": {"power_kw": {"idle": 5, "busy": 5}}},
            {"name": "hot", "process_time": 1, "energy": {"power_kw": {"idle": 1, "busy": 12}}},
            {"name": "plain", "machines": 9, "process_time": 1},
        ],
    }
    scenario = scenario_from_data(data)
    assert largest_consumer(scenario) == "hot"  # 1 x 12 kW busy beats 2 x 5 kW idle and busy
    assert EnergyEnv(scenario).station_name == "hot"
