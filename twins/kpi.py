"""KPIs for the window between two snapshots of a :class:`~twins.model.Line`.

Line KPIs
  throughput       good units leaving the last station per time unit
  lead_time        mean time from entering the first buffer to leaving the last station (good units)
  lead_time_p95    95th percentile of the same
  wip              time-average number of units in the line (buffers, machines, blocked)
  lost_fraction    arrivals lost because the first buffer was full / all arrivals
  scrap_rate       scrapped units / units leaving (good + scrapped)
  energy_kwh       electrical energy of all machines; ``energy_kwh_<state>`` by machine state
  energy_kwh_per_unit, energy_cost (under the tariff), energy_cost_per_unit, co2_kg
  margin           Σ good units × margin − scrapped units × scrap cost − energy cost
  tardiness        mean tardiness of orders completed in the window (orders only), tardy_fraction

Station KPIs — time fractions are of the *planned busy time* PBT (machine time minus planned
off time: off shift, breaks, planned stops, commanded off), ISO 22400-2:
  utilization  busy / PBT (= APT / PBT, actual production time)
  setup, blocked, down, starved (idle or standby while planned to work)  — with utilization they sum to 1
  off          planned off time / total machine time
  availability APT / PBT
  performance  Σ planned run time per item × produced quantity / APT (ISO "effectiveness"); the
               planned run time of an item is the mean nominal process time × the cycle-time factor
               of the setpoints in force (the recipe's planned rate), so a faster recipe raises
               throughput, not performance, and performance stays near 1 without speed losses
  quality      good quantity / produced quantity (scrapped and reworked parts are not good)
  oee          availability × performance × quality
  queue_length time-average parts waiting in the input buffer
  waiting_time mean time from entering the buffer to starting on a machine
  throughput, energy_kwh
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from twins.energy import BLOCKED, BUSY, DOWN, SETUP, STATES

if TYPE_CHECKING:
    from twins.model import Line, Snapshot
    from twins.spec import Scenario

LINE_UNITS = {
    "throughput": "units/{t}", "lead_time": "{t}", "lead_time_p95": "{t}", "wip": "units",
    "lost_fraction": "fraction", "scrap_rate": "fraction", "good_units": "units", "scrapped_units": "units",
    "energy_kwh": "kWh", "energy_kwh_per_unit": "kWh/unit", "energy_cost": "{cur}",
    "energy_cost_per_unit": "{cur}/unit", "co2_kg": "kg", "margin": "{cur}",
    **{f"energy_kwh_{s}": "kWh" for s in STATES},
    "tardiness": "{t}", "tardy_fraction": "fraction", "orders_completed": "orders",
}
STATION_UNITS = {
    "utilization": "fraction", "setup": "fraction", "blocked": "fraction", "down": "fraction",
    "starved": "fraction", "off": "fraction", "availability": "fraction", "performance": "fraction",
    "quality": "fraction", "oee": "fraction", "queue_length": "parts", "waiting_time": "{t}",
    "throughput": "units/{t}", "energy_kwh": "kWh",
}


def _div(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def line_kpis(line: Line, s0: Snapshot, s1: Snapshot) -> dict[str, float]:
    """Line-level KPIs over the window (s0, s1]."""
    sc = line.scenario
    T = s1["t"] - s0["t"]
    good = s1["good"] - s0["good"]
    scrapped = s1["scrapped"] - s0["scrapped"]
    arrivals = s1["arrivals"] - s0["arrivals"]
    lt = np.asarray(line.lead_times[s0["n_lead"]:s1["n_lead"]], float)
    stations = list(zip(s0["stations"], s1["stations"], strict=True))
    kwh_state = [sum(st1["kwh"][k] - st0["kwh"][k] for st0, st1 in stations) for k in range(len(STATES))]
    kwh = float(sum(kwh_state))
    cost = sum(st1["cost"] - st0["cost"] for st0, st1 in stations)
    margin_units = sum((g1 - g0) * p.margin
                       for g0, g1, p in zip(s0["good_by_product"], s1["good_by_product"], line.products, strict=True))
    out = {
        "throughput": _div(good, T),
        "lead_time": float(lt.mean()) if lt.size else float("nan"),
        "lead_time_p95": float(np.percentile(lt, 95)) if lt.size else float("nan"),
        "wip": _div(s1["wip_area"] - s0["wip_area"], T),
        "lost_fraction": _div(s1["lost"] - s0["lost"], arrivals) if arrivals else 0.0,
        "scrap_rate": _div(scrapped, good + scrapped) if good + scrapped else 0.0,
        "good_units": float(good),
        "scrapped_units": float(scrapped),
        "energy_kwh": kwh,
        "energy_kwh_per_unit": _div(kwh, good),
        "energy_cost": cost,
        "energy_cost_per_unit": _div(cost, good),
        "co2_kg": kwh * sc.co2_kg_per_kwh,
        "margin": margin_units - scrapped * sc.economics.scrap_cost - cost,
    }
    for k, s in enumerate(STATES):
        out[f"energy_kwh_{s}"] = kwh_state[k]
    if line.orders:
        done = line.completed_orders[s0["n_orders"]:s1["n_orders"]]
        tard = [max(0.0, o.completed - o.due) for o in done if o.due is not None and o.completed is not None]
        out["orders_completed"] = float(len(done))
        out["tardiness"] = float(np.mean(tard)) if tard else 0.0
        out["tardy_fraction"] = float(np.mean([t > 0 for t in tard])) if tard else 0.0
    return out


def station_kpis(line: Line, s0: Snapshot, s1: Snapshot) -> dict[str, dict[str, float]]:
    """Per-station KPIs over the window (s0, s1]."""
    T = s1["t"] - s0["t"]
    out: dict[str, dict[str, float]] = {}
    for st, a, b in zip(line.stations, s0["stations"], s1["stations"], strict=True):
        time = [b["time"][k] - a["time"][k] for k in range(len(STATES))]
        total = b["machines"] * T
        planned_off = b["planned_off"] - a["planned_off"]
        pbt = total - planned_off
        busy, setup, blocked, down = time[BUSY], time[SETUP], time[BLOCKED], time[DOWN]
        ops = b["ops"] - a["ops"]
        good = b["good"] - a["good"]
        started = b["started"] - a["started"]
        availability = _div(busy, pbt)
        performance = _div(b["ideal"] - a["ideal"], busy)
        quality = _div(good, ops)
        out[st.name] = {
            "utilization": availability,
            "setup": _div(setup, pbt),
            "blocked": _div(blocked, pbt),
            "down": _div(down, pbt),
            "starved": _div(max(pbt - busy - setup - blocked - down, 0.0), pbt),
            "off": _div(planned_off, total),
            "availability": availability,
            "performance": performance,
            "quality": quality,
            "oee": availability * performance * quality,
            "queue_length": _div(b["queue_area"] - a["queue_area"], T),
            "waiting_time": _div(b["wait_sum"] - a["wait_sum"], started),
            "throughput": _div(ops, T),
            "energy_kwh": float(sum(b["kwh"]) - sum(a["kwh"])),
        }
    return out


def units(scenario: Scenario) -> tuple[dict[str, str], dict[str, str]]:
    """Unit strings of the line and station KPIs for this scenario's time unit and currency."""
    cur = scenario.tariff.currency if scenario.tariff else "EUR"
    fmt = {"t": scenario.time_unit, "cur": cur}
    return ({k: v.format(**fmt) for k, v in LINE_UNITS.items()},
            {k: v.format(**fmt) for k, v in STATION_UNITS.items()})
