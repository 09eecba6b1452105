"""A what-if from the plant as it is now: a plant state (twins/state.py, docs/state.md) puts the twin's
parts, machines, setpoints and clock where the plant's are at t = 0, and a run from it converges to
the same steady state as a run from empty."""
from __future__ import annotations

import json

import pytest
from conftest import run_cli

from twins.errors import InputError, ScenarioError
from twins.loader import load_scenario, scenario_from_data
from twins.model import Line
from twins.spec import fingerprint
from twins.state import PlantState, load_state, state_from_line, what_if
from twins.stats import replicate


def settle(line: Line) -> None:
    """Process every event due at t = 0 (machines take up their start state), without advancing."""
    while line.env.peek() == 0.0:
        line.env.step()


def tandem(horizon: float = 30_000.0, warmup: float = 3_000.0) -> dict:
    """Three stations in series with small buffers, a breakdown and blocking: enough of everything."""
    return {
        "name": "tandem", "time_unit": "min", "horizon": {"length": horizon, "warmup": warmup},
        "products": [{"name": "A", "route": ["s1", "s2", "s3"]}, {"name": "B", "route": ["s1", "s2", "s3"]}],
        "sources": [{"kind": "saturated", "mix": {"A": 0.5, "B": 0.5}}],
        "stations": [
            {"name": "s1", "buffer": 0, "process_time": {"dist": "exponential", "mean": 1.0}},
            {"name": "s2", "buffer": 2, "machines": 2, "process_time": {"dist": "exponential", "mean": 2.1},
             "breakdowns": [{"mtbf": 60, "mttr": 6}]},
            {"name": "s3", "buffer": 1, "process_time": {"dist": "uniform", "low": 0.8, "high": 1.2}},
        ],
    }


def test_a_captured_state_is_reproduced_at_t0_and_round_trips():
    sc = load_scenario("smt_line")
    plant = Line(sc, seed=3)
    plant.run(50_000)
    state = state_from_line(plant)
    parts = sum(len(s.waiting()) + sum(m.product is not None for m in s.machines) for s in state.stations.values())
    assert parts == plant.wip > 0
    assert any(m.state == "busy" and m.remaining for s in state.stations.values() for m in s.machines)

    twin = Line(sc, seed=9, state=state)
    assert state_from_line(twin) == state  # as built
    assert twin.snapshot()["wip"] == plant.wip
    settle(twin)  # the machines have taken up their parts: same buffers, same machines, same times left
    assert state_from_line(twin) == state
    assert twin.snapshot()["wip"] == plant.wip
    assert twin.start_clock == pytest.approx((6 + 50_000 / 3600) % 24, abs=1 / 60)


def test_a_state_file_round_trips_and_names_its_scenario(tmp_path):
    sc = load_scenario("smt_line")
    plant = Line(sc, seed=1)
    plant.run(20_000)
    state = state_from_line(plant)
    path = tmp_path / "state.json"
    path.write_text(state.model_dump_json(exclude_none=True))
    data = json.loads(path.read_text())
    assert data["scenario"] == "smt_line" and data["fingerprint"] == fingerprint(sc)
    assert data["time_of_day"] == "11:33"  # 06:00 + 20,000 s, to the minute
    assert load_state(path, sc) == state


def test_busy_setup_down_and_blocked_machines_carry_on_from_their_state():
    sc = scenario_from_data(tandem())
    state = PlantState.model_validate({
        "scenario": "tandem", "time_of_day": "07:30",
        "stations": {
            "s1": {"machines": [{"state": "blocked", "product": "A"}]},   # s2's buffer is full
            "s2": {"buffer": {"A": 1, "B": 1},
                   "machines": [{"state": "down", "product": "B", "remaining": 50.0},
                                {"state": "busy", "product": "A", "remaining": 40.0}]},
            "s3": {"buffer": ["B"], "machines": [{"state": "setup", "remaining": 0.5}]},
        },
    })
    line = Line(sc, state=state)
    assert line.snapshot()["wip"] == 6
    settle(line)
    line.run(10.0)
    now = state_from_line(line).stations
    s2 = now["s2"].machines
    assert s2[0].state == "down" and s2[0].product == "B" and s2[0].remaining == pytest.approx(40.0)
    assert s2[1].state == "busy" and s2[1].product == "A" and s2[1].remaining == pytest.approx(30.0)
    assert now["s1"].machines[0].state == "blocked" and now["s1"].machines[0].product == "A"
    assert now["s2"].buffer == ["A", "B"]
    line.run(50.001)  # the repair took the 50 minutes the plant reported
    assert line.stations[1].machines[0].cum_not_up == pytest.approx(50.0)
    line.run(200.0)  # and the blockage cleared: parts flow again
    assert line.good > 0


def test_a_run_from_a_mid_run_state_converges_to_the_normal_steady_state():
    sc = scenario_from_data(tandem())
    plant = Line(sc, seed=11)
    plant.run(7_000)
    scenario, state = what_if(state_from_line(plant), sc)
    assert scenario.horizon.warmup == 0
    from_state = replicate(scenario, 8, seed=5, workers=1, state=state)
    normal = replicate(sc, 8, seed=5, workers=1)
    (m1, h1), (m2, h2) = from_state.ci("throughput"), normal.ci("throughput")
    assert abs(m1 - m2) <= h1 + h2, (m1, h1, m2, h2)
    (w1, hw1), (w2, hw2) = from_state.ci("wip"), normal.ci("wip")
    assert abs(w1 - w2) <= hw1 + hw2, (w1, hw1, w2, hw2)


def test_same_seed_same_numbers_from_a_state_whatever_the_workers():
    sc = load_scenario("glue_dispensing")
    plant = Line(sc, seed=2)
    plant.run(3_000)
    scenario, state = what_if(state_from_line(plant), sc)
    scenario = scenario.model_copy(update={"horizon": scenario.horizon.model_copy(update={"length": 4_000.0})})
    a = replicate(scenario, 3, seed=4, workers=1, state=state).summary()
    b = replicate(scenario, 3, seed=4, workers=2, state=state).summary()
    assert a == b


def test_the_state_is_checked_against_the_scenario_it_runs():
    sc = scenario_from_data(tandem())
    bad = [
        {"scenario": "other"},
        {"scenario": "tandem", "stations": {"nope": {}}},
        {"scenario": "tandem", "stations": {"s2": {"buffer": {"A": 3}}}},
        {"scenario": "tandem", "stations": {"s2": {"buffer": ["C"]}}},
        {"scenario": "tandem", "stations": {"s1": {"machines": [{"state": "idle"}, {"state": "idle"}]}}},
        {"scenario": "tandem", "stations": {"s2": {"machines": [{"state": "busy"}]}}},
        {"scenario": "tandem", "stations": {"s3": {"machines": [{"state": "down"}]}}},
        {"scenario": "tandem", "stations": {"s3": {"machines": [{"state": "blocked", "product": "A"}]}}},
        {"scenario": "tandem", "stations": {"s1": {"machines": [{"state": "idle", "remaining": 3}]}}},
        {"scenario": "tandem", "setpoints": {"s1": {"speed": 1}}},
    ]
    for data in bad:
        with pytest.raises(InputError):
            Line(sc, state=PlantState.model_validate(data))


@pytest.mark.parametrize("text, line", [
    ('{"scenario": "glue_dispensing",\n "setpoints": {"dispenser": {"pressure_bar": 9}}}', 2),
    ('{"scenario": "glue_dispensing",\n "stations": {"uv_cure": {"buffer": {"housing": 3}}}}', 2),
    ('{"scenario": "glue_dispensing",\n "stations": {"dispenser": {"buffer": ["lid"]}}}', 2),
    ('{"scenario": "glue_dispensing",\n "fingerprint": "sha256:0000"}', 2),
    ('{"scenario": "glue_dispensing",\n "time_of_day": "25:00"}', 2),
    ('{"scenario": "glue_dispensing",\n "statons": {}}', 2),
])
def test_bad_state_files_are_one_line_errors_naming_file_line_and_field(tmp_path, text, line):
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_state(path, load_scenario("glue_dispensing"))
    assert err.value.file == str(path) and err.value.line == line and err.value.path


def test_cli_from_state_with_setpoints_gives_the_numbers_of_set(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text('{"scenario": "glue_dispensing"}')
    plant = tmp_path / "plant.json"
    plant.write_text(json.dumps({"scenario": "glue_dispensing",
                                 "setpoints": {"dispenser": {"pressure_bar": 3.5, "speed_mm_s": 40}}}))
    common = ("--replications", "2", "--seed", "3", "--quiet", "--set", "horizon.length=3600")
    outs = {}
    for name, extra in {
        "plain": ("--set", "horizon.warmup=0"),
        "empty": ("--from-state", str(empty)),
        "state": ("--from-state", str(plant)),
        "set": ("--from-state", str(empty), "--set", "dispenser.pressure_bar=3.5", "--set", "dispenser.speed_mm_s=40"),
    }.items():
        out = tmp_path / f"out-{name}.json"
        r = run_cli("run", "glue_dispensing", *common, *extra, "--json", str(out))
        assert r.returncode == 0, r.stderr
        outs[name] = json.loads(out.read_text())
    assert outs["state"]["from_state"] == str(plant)
    assert outs["empty"]["kpis"] == outs["plain"]["kpis"]  # an empty state at the scenario's clock: a run from empty
    assert outs["state"]["kpis"] == outs["set"]["kpis"]
    assert outs["state"]["kpis"]["throughput"] != outs["empty"]["kpis"]["throughput"]


def test_cli_bad_state_file_exits_2_with_one_line(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"scenario": "glue_dispensing",\n "stations": {"uv_cure": {"buffer": {"housing": 3}}}}')
    r = run_cli("run", "glue_dispensing", "--from-state", str(path), "-q")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and f"{path}:2: stations.uv_cure.buffer:" in r.stderr


def test_optimizers_fingerprint_is_the_twins_one():
    from optimizers.recommendation import fingerprint as rec_fingerprint

    sc = load_scenario("glue_dispensing")
    assert rec_fingerprint(sc) == fingerprint(sc)
    # unchanged format: sha256 of the canonical JSON without the envelope
    assert rec_fingerprint(sc) == fingerprint(sc.model_copy(update={"equipment": None}))


def test_compare_runs_both_what_ifs_from_the_state(tmp_path):
    plant = tmp_path / "plant.json"
    plant.write_text('{"scenario": "glue_dispensing", "setpoints": {"dispenser": {"speed_mm_s": 35}}}')
    out = tmp_path / "cmp.json"
    r = run_cli("compare", "glue_dispensing", "glue_dispensing", "--set-b", "dispenser.speed_mm_s=40", "-n", "2",
                "--set-a", "horizon.length=3600", "--set-b", "horizon.length=3600", "--from-state", str(plant),
                "--quiet", "--json", str(out))
    assert r.returncode == 0, r.stderr
    summary = json.loads(out.read_text())
    assert summary["from_state"] == str(plant) and summary["kpis"]["throughput"]["diff"] != 0


def test_docs_state_md_has_a_row_for_every_field():
    from conftest import ROOT

    from twins.state import MachineState, StationState

    doc = (ROOT / "docs" / "state.md").read_text()
    for model in (PlantState, StationState, MachineState):
        section = doc.split(f"## {model.__name__}")[1] if f"## {model.__name__}" in doc else ""
        rows = {line.split("|")[1].strip().strip("`") for line in section.split("\n\n")[1].splitlines()
                if line.startswith("| `")}
        assert rows == set(model.model_fields), model.__name__
