"""The documented semantics of the twin (docs/scenario.md), each checked on a small line."""
from __future__ import annotations

import pytest

from optimizers.setpoints import with_setpoints
from twins.errors import InputError
from twins.loader import scenario_from_data
from twins.model import Line
from twins.stats import compare, replicate, run_replication


def line_of(stations, products=None, source=None, horizon=2000.0, warmup=0.0, **extra):
    products = products or [{"name": "P", "route": [s["name"] for s in stations]}]
    data = {"name": "t", "time_unit": "min", "horizon": {"length": horizon, "warmup": warmup},
            "products": products, "sources": [source or {"kind": "saturated"}], "stations": stations, **extra}
    return scenario_from_data(data)


def test_blocking_after_service_with_zero_waiting_places():
    sc = line_of([{"name": "fast", "process_time": 1.0, "buffer": 0},
                  {"name": "slow", "process_time": 2.0, "buffer": 0}], horizon=10_000)
    rep = run_replication(sc)
    assert rep.kpis["throughput"] == pytest.approx(0.5, abs=1e-3)
    # the fast machine works 1 min, then holds its part 1 min until the slow one takes it
    assert rep.stations["fast"]["utilization"] == pytest.approx(0.5, abs=2e-3)
    assert rep.stations["fast"]["blocked"] == pytest.approx(0.5, abs=2e-3)
    assert rep.kpis["wip"] == pytest.approx(2.0, abs=0.01)


def test_interrupted_part_resumes_its_remaining_work_after_repair():
    sc = line_of([{"name": "m", "process_time": 10.0,
                   "breakdowns": [{"time_to_failure": 25.0, "repair_time": 5.0}]}], horizon=60)
    line = Line(sc, trace=True)
    line.run()
    exits = [span[2] for span in line.part_trace]
    # 0–10, 10–20, 20–25 work + 25–30 repair + 30–35 the remaining 5, 35–45
    assert exits[:4] == pytest.approx([10, 20, 35, 45])


def test_time_based_failure_clock_runs_while_idle_operation_based_only_while_busy():
    arrivals = {"kind": "arrivals", "interarrival": {"dist": "exponential", "mean": 2.0}}
    common = {"name": "m", "process_time": 1.0}
    timed = line_of([{**common, "breakdowns": [{"mtbf": 100, "mttr": 10}]}], source=arrivals, horizon=200_000)
    per_op = line_of([{**common, "breakdowns": [{"mtbf": 20, "mttr": 2, "basis": "operation"}]}], source=arrivals,
                     horizon=200_000)
    r_t = replicate(timed, 8, seed=3, workers=1)
    r_o = replicate(per_op, 8, seed=3, workers=1)
    # time-based: up 100, down 10 on average whatever the load → down 10/110 of the time
    m, h = r_t.ci("down", "m")
    assert abs(m - 10 / 110) <= h
    # operation-based: one failure per 20 busy minutes; busy half the time → down 0.5/20·2 = 0.05
    m, h = r_o.ci("down", "m")
    assert abs(m - 0.05) <= h
    assert r_o.ci("utilization", "m")[0] == pytest.approx(0.5, abs=0.01)


def test_shifts_and_breaks_stop_the_line_and_count_as_planned_off():
    sc = line_of([{"name": "m", "process_time": {"dist": "exponential", "mean": 0.5}}],
                 source={"kind": "arrivals", "interarrival": {"dist": "exponential", "mean": 1.0},
                         "off_shift": "pause"},
                 horizon=3 * 1440, calendar={"shifts": [{"start": "06:00", "end": "14:00"},
                                                        {"start": "14:00", "end": "22:00"}],
                                             "breaks": [{"start": "10:00", "duration": 30},
                                                        {"start": "18:00", "duration": 30}]})
    rep = run_replication(sc, seed=1, trace=True)
    assert rep.stations["m"]["off"] == pytest.approx(9 / 24, abs=0.002)  # 8 h night + 2 × 30 min breaks
    busy = [(t0 % 1440, t1 % 1440) for _, state, t0, t1 in rep.trace if state == 3]
    at_night = [iv for iv in busy if 22 * 60 + 10 < iv[0] or iv[0] < 6 * 60 or 10 * 60 + 5 < iv[0] < 10 * 60 + 30]
    assert busy and not at_night


def test_scrap_and_rework_loop_counts():
    stations = [{"name": "aoi", "process_time": 1.0, "scrap": 0.05,
                 "rework": {"probability": 0.2, "station": "bench", "return_to": "aoi", "max_cycles": 5}},
                {"name": "bench", "process_time": 0.5}]
    sc = line_of(stations, products=[{"name": "P", "route": ["aoi"]}], horizon=50_000)
    rep = run_replication(sc, seed=2)
    aoi, bench = rep.stations["aoi"], rep.stations["bench"]
    assert aoi["quality"] == pytest.approx(0.75, abs=0.01)
    # every rework comes back: bench operations ≈ 20 % of AOI operations
    assert bench["throughput"] / aoi["throughput"] == pytest.approx(0.2, abs=0.01)
    # a board leaves as scrap with probability 0.05/(0.05+0.75) per final AOI outcome
    assert rep.kpis["scrap_rate"] == pytest.approx(0.05 / 0.8, abs=0.01)


def test_sequence_dependent_setups_by_family():
    products = [{"name": "A", "family": "fa", "route": ["m"]}, {"name": "B", "family": "fb", "route": ["m"]}]
    stations = [{"name": "m", "process_time": 1.0,
                 "setup": {"default": 10.0, "matrix": {"fa": {"fb": 4.0}}}}]
    sc = line_of(stations, products=products, source={"kind": "saturated", "lot_size": 20}, horizon=200_000)
    res = replicate(sc, 6, seed=4, workers=1)
    # lots of 20 (20 min); half the lot boundaries change family, A→B costs 4, B→A 10 → 7 on average
    expected = 0.5 * 7 / (0.5 * 7 + 20)
    m, h = res.ci("setup", "m")
    assert abs(m - expected) <= max(h, 0.003)


def test_same_family_dispatch_needs_fewer_setups_than_fifo():
    products = [{"name": "A", "family": "fa", "route": ["m"]}, {"name": "B", "family": "fb", "route": ["m"]}]
    base = {"name": "m", "buffer": 10, "process_time": 1.0, "setup": {"default": 3.0}}
    src = {"kind": "arrivals", "interarrival": {"dist": "exponential", "mean": 1.6}}
    fifo = line_of([base], products=products, source=src, horizon=20_000)
    fam = line_of([{**base, "dispatch": "same_family"}], products=products, source=src, horizon=20_000)
    cmp = compare(fifo, fam, 5, seed=1, workers=1)
    d, hw, _ = cmp.diff("setup", "m")
    assert d + hw < 0


def test_orders_with_due_dates_give_tardiness():
    orders = [{"product": "P", "quantity": 5, "release": 0, "due": 4},
              {"product": "P", "quantity": 5, "release": 0, "due": 10},
              {"product": "P", "quantity": 5, "release": 0, "due": 15}]
    sc = line_of([{"name": "m", "process_time": 1.0}], source={"kind": "orders", "orders": orders}, horizon=30)
    rep = run_replication(sc)
    assert rep.kpis["orders_completed"] == 3
    assert rep.kpis["tardiness"] == pytest.approx(1 / 3)  # first order done at 5, due 4
    assert rep.kpis["tardy_fraction"] == pytest.approx(1 / 3)


def test_lost_arrivals_are_counted_never_dropped():
    sc = line_of([{"name": "m", "buffer": 1, "process_time": {"dist": "exponential", "mean": 1.0}}],
                 source={"kind": "arrivals", "interarrival": {"dist": "exponential", "mean": 0.8},
                         "when_full": "lost"}, horizon=5000)
    line = Line(sc, seed=3)
    line.run()
    assert line.lost > 0
    assert line.arrivals == line.lost + line.good + line.scrapped + line.wip


def test_standby_saves_energy_and_wakeup_delays_parts():
    energy = {"power_kw": {"idle": 10, "busy": 12, "setup": 15, "standby": 1}}
    st = {"name": "oven", "process_time": 2.0}
    src = {"kind": "arrivals", "interarrival": {"dist": "exponential", "mean": 30.0}}
    always_on = line_of([{**st, "energy": energy}], source=src, horizon=50_000)
    standby = line_of([{**st, "energy": {**energy, "standby": {"after": 5, "wakeup": 3}}}], source=src,
                      horizon=50_000)
    a, b = run_replication(always_on, seed=9), run_replication(standby, seed=9)
    assert b.kpis["energy_kwh"] < 0.5 * a.kpis["energy_kwh"]
    assert b.kpis["energy_kwh_standby"] > 0 and a.kpis["energy_kwh_standby"] == 0
    # most parts find the oven in standby (idle > 5 min) and wait 3 min for it to heat up
    assert 2.0 + 2.0 < b.kpis["lead_time"] < 2.0 + 3.0 + 0.5


def test_process_parameters_drive_cycle_time_yield_and_power(glue_data):
    sc = scenario_from_data(glue_data)
    line = Line(sc, seed=1)
    st = line.station("dispenser")
    assert st.factor == pytest.approx(1.0)
    line.set_parameters("dispenser", {"speed_mm_s": 60})
    assert st.factor == pytest.approx((5 + 10) / 25)
    assert st.p_scrap > 0.1  # a bead pulled thin at 60 mm/s with 3 bar is mostly rejected
    assert st.power[3] == pytest.approx(0.35 + 0.04 * 15 + 0.03 * 3)
    with pytest.raises(InputError, match="outside the bounds"):
        line.set_parameters("dispenser", {"speed_mm_s": 61})
    with pytest.raises(InputError, match="unknown parameter"):
        line.set_parameters("dispenser", {"sped": 30})


def test_oee_factors_follow_iso_22400_and_a_faster_recipe_raises_throughput_not_performance(glue_data):
    # deterministic: 1 min per part, a failure after every 25 up-minutes repaired in 5, 10 % scrap
    sc = line_of([{"name": "m", "process_time": 1.0, "scrap": 0.1,
                   "breakdowns": [{"time_to_failure": 25.0, "repair_time": 5.0}]}], horizon=30_000)
    m = run_replication(sc, seed=4).stations["m"]
    assert m["availability"] == pytest.approx(25 / 30, abs=1e-3)
    assert m["performance"] == pytest.approx(1.0, abs=1e-3)
    assert m["quality"] == pytest.approx(0.9, abs=0.01)
    assert m["oee"] == pytest.approx(m["availability"] * m["performance"] * m["quality"])
    # the glue cell at a 27 % shorter cycle: more parts per hour, performance still ~1, OEE <= 1
    default = scenario_from_data(glue_data)
    faster = with_setpoints(default, {"dispenser": {"speed_mm_s": 45}})
    slow, fast = run_replication(default, seed=1), run_replication(faster, seed=1)
    assert fast.stations["dispenser"]["throughput"] > 1.3 * slow.stations["dispenser"]["throughput"]
    for rep in (slow, fast):
        d = rep.stations["dispenser"]
        assert d["performance"] == pytest.approx(1.0, abs=0.02)
        assert 0.0 < d["oee"] <= 1.0


def test_fitted_response_from_recipe_rows(glue_data):
    rows = [{"speed_mm_s": s, "pressure_bar": p, "temperature_c": t, "factor": (5 + 600 / s) / 25}
            for s in (10, 20, 30, 45, 60) for p in (2, 3, 4) for t in (30, 40, 50)]
    glue_data["stations"][1]["response"]["cycle_time_factor"] = {"fit": "quadratic", "data": rows,
                                                                  "target": "factor"}
    line = Line(scenario_from_data(glue_data))
    # a quadratic cannot follow 1/speed exactly, but is close at the default
    assert line.station("dispenser").factor == pytest.approx(1.0, abs=0.1)


def test_common_random_numbers_keep_shared_streams_identical():
    src = {"kind": "arrivals", "interarrival": {"dist": "exponential", "mean": 1.0}}
    a = line_of([{"name": "m1", "process_time": {"dist": "exponential", "mean": 0.5}},
                 {"name": "m2", "process_time": {"dist": "exponential", "mean": 0.6}}], source=src, horizon=500)
    b = line_of([{"name": "m1", "process_time": {"dist": "exponential", "mean": 0.5}},
                 {"name": "m2", "process_time": {"dist": "exponential", "mean": 0.9}}], source=src, horizon=500)
    la, lb = Line(a, seed=5, trace=True), Line(b, seed=5, trace=True)
    la.run()
    lb.run()
    def m1(line):
        return [(round(t0, 9), round(t1, 9)) for m, s, t0, t1 in line.trace if m == "m1" and s == 3]

    # same arrivals and same m1 draws; only the changed downstream machine differs (no blocking here)
    assert la.arrivals == lb.arrivals
    assert m1(la) == m1(lb)
    assert la.lead_times != lb.lead_times


def test_same_seed_gives_identical_results_and_different_seeds_differ(smt_data):
    sc = scenario_from_data(smt_data)
    r1 = replicate(sc, 3, seed=7, workers=1).summary()
    r2 = replicate(sc, 3, seed=7, workers=2).summary()
    r3 = replicate(sc, 3, seed=8, workers=1).summary()
    assert r1 == r2
    assert r1["kpis"]["throughput"] != r3["kpis"]["throughput"]


def test_external_dispatch_lets_a_controller_choose_and_due_dates_give_tardiness():
    sc = line_of([{"name": "m1", "dispatch": "external", "process_time": {"dist": "exponential", "mean": 1.0},
                   "breakdowns": [{"mtbf": 200, "mttr": 15}]},
                  {"name": "m2", "dispatch": "external", "process_time": {"dist": "exponential", "mean": 1.0}}],
                 products=[{"name": "A", "route": ["m1", "m2"]},
                           {"name": "B", "route": ["m1", "m2"]}],
                 source={"kind": "arrivals", "interarrival": {"dist": "exponential", "mean": 1.15},
                         "due_after": 12.0, "mix": {"A": 1, "B": 1}}, horizon=20_000, warmup=500)

    def run(choose):
        line = Line(sc, seed=4)
        line.run(500)
        s0, decisions = line.snapshot(), 0
        while (d := line.next_decision()) is not None:
            machine, waiting = d
            assert len(waiting) >= 2 and all(p in machine.station.buffer.items for p in waiting)
            line.decide(choose(waiting))
            decisions += 1
        from twins.kpi import line_kpis
        return decisions, line_kpis(line, s0, line.snapshot())

    n_edd, edd = run(lambda parts: min(parts, key=lambda p: p.order.due))
    n_lifo, lifo = run(lambda parts: parts[-1])
    assert n_edd > 100 and n_lifo > 100
    assert edd["orders_completed"] > 0 and edd["tardiness"] > 0
    assert edd["tardiness"] < lifo["tardiness"]
    assert run(lambda parts: min(parts, key=lambda p: p.order.due))[1] == edd  # deterministic


def test_commanded_off_and_standby_switch_parked_machines_and_set_the_restart_time():
    energy = {"power_kw": {"off": 0.0, "idle": 5, "setup": 8, "busy": 6, "standby": 1},
              "startup": 30, "standby": {"after": 1000, "wakeup": 10}}
    sc = line_of([{"name": "oven", "process_time": 1.0, "energy": energy}], horizon=400)
    from twins.energy import OFF, SETUP, STANDBY

    line = Line(sc, trace=True)
    oven = line.station("oven")
    line.run(50)
    oven.set_available(command=False, command_state=STANDBY)
    line.run(100)
    oven.set_available(command=False, command_state=OFF)  # parked in standby → now off
    line.run(150)
    oven.set_available(command=True)
    line.run(300)
    states = [(s, t0, t1) for _, s, t0, t1 in line.trace if t1 > t0]
    assert (STANDBY, 50.0, 100.0) in [(s, round(a), round(b)) for s, a, b in states]
    assert (OFF, 100.0, 150.0) in [(s, round(a), round(b)) for s, a, b in states]
    assert (SETUP, 150.0, 180.0) in [(s, round(a), round(b)) for s, a, b in states]  # cold start: 30


def test_a_setpoint_out_of_bounds_gets_one_message_through_every_door():
    from conftest import SCENARIOS

    from twins.errors import ScenarioError
    from twins.loader import load_scenario
    from twins.response import SetpointError

    path = SCENARIOS / "known_optimum.yaml"
    scenario = load_scenario(path)
    doors = [lambda v: Line(scenario, 0, 0).set_parameters("cell", v),
             lambda v: with_setpoints(scenario, {"cell": v})]
    for door in doors:
        with pytest.raises(SetpointError) as err:
            door({"speed": 9})
        assert str(err.value) == "cell.speed: 9 is outside the bounds [0.5, 3.0] x nominal"
        with pytest.raises(SetpointError) as err:
            door({"nope": 1})
        assert str(err.value) == "cell: unknown parameter 'nope' (parameters: speed, temperature_c)"
    with pytest.raises(ScenarioError) as err:
        load_scenario(path, ["cell.speed=9"])
    assert str(err.value).endswith("stations[0].parameters[0]: value 9.0 is outside the bounds [0.5, 3.0] x nominal")


def test_a_setup_matrix_without_default_costs_nothing_for_unlisted_changeovers():
    # regression: the default setup used to stay a bare number and crash the twin at build time
    from twins.spec import Scenario
    from twins.stats import run_replication

    sc = Scenario.model_validate({
        "name": "matrix only", "horizon": {"length": 100},
        "products": [{"name": "a", "route": ["s"]}, {"name": "b", "route": ["s"]}],
        "sources": [{"kind": "saturated"}],
        "stations": [{"name": "s", "process_time": 1.0, "setup": {"matrix": {"a": {"b": 2.0}}}}]})
    assert sc.stations[0].setup.default.mean == 0
    result = run_replication(sc, 1)
    assert 0 < result.kpis["throughput"] <= 1.0
