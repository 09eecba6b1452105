"""The safety envelope: no value outside it, over its rate limits or across an interlock ever
appears in a CheckedPlan; only the checker makes plans; bad input is one line, exit 2."""
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import math

import pytest
import yaml
from conftest import SCENARIOS, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizers.recommendation import Provenance, Recommendation, fingerprint
from studio.gateway.envelope import Change, CheckedPlan, check, recheck
from twins.errors import EnvelopeViolation, InputError, ScenarioError
from twins.loader import load_envelope, load_scenario, parse_yaml, scenario_from_data

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
TOL = 1e-9

ENVELOPE = {
    "tags": [
        {"parameter": "cell.a", "resolution": 0.5, "hard": [10, 90], "soft": [20, 80], "max_up_per_push": 20,
         "max_down_per_push": 30, "max_up_per_hour": 40, "max_down_per_hour": 50, "ramp_step": 7, "dwell_s": 1},
        {"parameter": "cell.b", "resolution": 0.01, "soft": [1, 9], "max_up_per_push": 3, "max_down_per_push": 3,
         "max_up_per_hour": 5, "ramp_step": 0.7, "dwell_s": 2},
        {"parameter": "cell.c", "type": "Int32", "resolution": 1, "hard": [-40, 40], "approval": True,
         "max_down_per_hour": 25},
    ],
    "signals": [{"name": "cell.alarm"}],
    "permissives": ["not cell.alarm"],
    "interlocks": ["cell.a <= 60 or cell.b >= 5", "cell.c < 30 or cell.a < 50"],
}
# the same rules, written independently of the checker
HARD = {"cell.a": (10, 90), "cell.b": (0, 10), "cell.c": (-40, 40)}
SOFT = {"cell.a": (20, 80), "cell.b": (1, 9)}
RESOLUTION = {"cell.a": 0.5, "cell.b": 0.01, "cell.c": 1}
RAMP = {"cell.a": 7, "cell.b": 0.7}
PER_PUSH = {"cell.a": (20, 30), "cell.b": (3, 3)}
PER_HOUR = {"cell.a": (40, 50), "cell.b": (5, None), "cell.c": (None, 25)}
INTERLOCKS = [lambda s: s["cell.a"] <= 60 or s["cell.b"] >= 5, lambda s: s["cell.c"] < 30 or s["cell.a"] < 50]
BOUNDS = {"cell.a": (0, 100), "cell.b": (0, 10), "cell.c": (-50, 50)}


def scenario_data(equipment: dict | None = ENVELOPE) -> dict:
    params = [{"name": n.split(".")[1], "min": lo, "max": hi, "default": (lo + hi) / 2}
              for n, (lo, hi) in BOUNDS.items()]
    data = {"name": "cell_line", "horizon": {"length": 100},
            "products": [{"name": "p", "route": ["cell"]}], "sources": [{"kind": "saturated"}],
            "stations": [{"name": "cell", "process_time": 1.0, "parameters": params}]}
    if equipment is not None:
        data["equipment"] = copy.deepcopy(equipment)
    return data


SCENARIO = scenario_from_data(scenario_data())
BASE = Recommendation(kind="setpoints", scenario=SCENARIO.name, scenario_fingerprint=fingerprint(SCENARIO),
                      payload={}, provenance=Provenance(method="test", library_versions={}))


def rec(**targets: float) -> Recommendation:
    return BASE.model_copy(update={"payload": {"cell": dict(targets)}})


def le(x: float, limit: float) -> bool:
    return x <= limit + TOL * max(1.0, abs(limit))


def on_grid(x: float, res: float) -> bool:
    return abs(x / res - round(x / res)) < 1e-6


# ------------------------------------------------------------------------------ the property

targets = st.fixed_dictionaries({}, optional={
    "a": st.one_of(st.floats(-20, 120), st.sampled_from([10, 20, 60, 80, 90, 90.2])),
    "b": st.one_of(st.floats(-2, 12), st.sampled_from([0, 1, 5, 9, 10])),
    "c": st.one_of(st.floats(-60, 60), st.sampled_from([-40, 29, 30, 40])),
})
currents = st.fixed_dictionaries({n: st.floats(lo, hi) for n, (lo, hi) in BOUNDS.items()})
changes = st.builds(lambda tag, minutes, old, new: Change(tag, NOW - dt.timedelta(minutes=minutes), old, new, "u"),
                    st.sampled_from(list(BOUNDS)), st.floats(0, 120), st.floats(-50, 100), st.floats(-50, 100))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(targets, currents, st.lists(changes, max_size=8))
def test_no_value_outside_the_envelope_ever_appears_in_a_checked_plan(want, current, history):
    verdict = check(rec(**want), current, history, scenario=SCENARIO, now=NOW)
    if verdict.plan is None:
        assert verdict.violations
        return
    assert not verdict.violations
    plan = verdict.plan
    state = dict(current)
    written: dict[str, list[float]] = {t: [] for t in BOUNDS}
    for step in plan.steps:
        for w in step.writes:
            lo, hi = HARD[w.tag]
            assert le(lo, w.value) and le(w.value, hi), (w, "hard")
            assert on_grid(w.value, RESOLUTION[w.tag]), (w, "resolution")
            if w.tag in RAMP:
                assert le(abs(w.value - state[w.tag]), RAMP[w.tag]), (w, state[w.tag], "ramp")
            state[w.tag] = w.value
            written[w.tag].append(w.value)
        for rule in INTERLOCKS:
            assert rule(state), (state, "interlock")
    recent = [c for c in history if c.time > NOW - dt.timedelta(hours=1)]
    for short, value in want.items():
        tag = f"cell.{short}"
        assert abs(state[tag] - value) <= RESOLUTION[tag] / 2 + 1e-9 or not written[tag]
        up, down = max(state[tag] - current[tag], 0), max(current[tag] - state[tag], 0)
        if tag in PER_PUSH:
            assert le(up, PER_PUSH[tag][0]) and le(down, PER_PUSH[tag][1])
        max_up, max_down = PER_HOUR.get(tag, (None, None))
        done_up = sum(max(c.new - c.old, 0) for c in recent if c.tag == tag)
        done_down = sum(max(c.old - c.new, 0) for c in recent if c.tag == tag)
        if max_up is not None and up > 0:
            assert le(done_up + up, max_up)
        if max_down is not None and down > 0:
            assert le(done_down + down, max_down)
        outside_soft = tag in SOFT and any(not (le(SOFT[tag][0], v) and le(v, SOFT[tag][1])) for v in written[tag])
        if written[tag] and (outside_soft or tag == "cell.c"):
            assert tag in plan.approvals_needed
    assert plan.ready == (not plan.approvals_needed)


@settings(max_examples=200, deadline=None)
@given(st.floats(-20, 120), currents)
def test_a_target_beyond_hard_limits_is_always_refused(a, current):
    target = round(a / 0.5) * 0.5
    verdict = check(rec(a=a), current, scenario=SCENARIO, now=NOW)
    if not (10 <= target <= 90):
        assert verdict.plan is None
        assert any(v.tag == "cell.a" and v.rule == "hard" for v in verdict.violations)


# ------------------------------------------------------------------------------ examples

CURRENT = {"cell.a": 20.0, "cell.b": 3.0, "cell.c": 0.0}


def test_a_large_change_is_ramped_in_steps_no_larger_than_ramp_step():
    plan = check(rec(a=39.9), CURRENT, scenario=SCENARIO, now=NOW).plan
    assert plan is not None
    assert [s.values["cell.a"] for s in plan.steps] == [27.0, 34.0, 40.0]
    assert all(s.dwell_s == 1 for s in plan.steps)
    assert plan.changes[0].old == 20.0 and plan.changes[0].target == 40.0


def test_tags_move_one_after_another_when_lockstep_would_cross_an_interlock():
    current = {"cell.a": 55.0, "cell.b": 3.0, "cell.c": 0.0}
    verdict = check(rec(a=65, b=6), current, scenario=SCENARIO, now=NOW)
    assert verdict.plan is not None, verdict.violations
    state = dict(current)
    for step in verdict.plan.steps:
        state.update(step.values)
        assert state["cell.a"] <= 60 or state["cell.b"] >= 5
    assert state["cell.a"] == 65 and state["cell.b"] == 6


def test_a_target_crossing_an_interlock_gets_no_plan_and_names_the_rule():
    verdict = check(rec(a=65), CURRENT | {"cell.a": 60.0}, scenario=SCENARIO, now=NOW)
    assert verdict.plan is None
    assert [v.rule for v in verdict.violations] == ["interlock"]
    assert "cell.a = 65" in verdict.violations[0].message


def test_every_violation_is_listed_with_its_numbers():
    verdict = check(rec(a=95, b=6.5), CURRENT, scenario=SCENARIO, now=NOW)
    rules = {(v.tag, v.rule) for v in verdict.violations}
    assert rules == {("cell.a", "hard"), ("cell.a", "per_push_up"), ("cell.a", "per_hour_up"),
                     ("cell.b", "per_push_up")}
    assert any("95" in v.message and "[10, 90]" in v.message for v in verdict.violations)


def test_the_hourly_limit_counts_the_rolling_hour_of_history():
    recent = [Change("cell.a", NOW - dt.timedelta(minutes=30), 0.0, 35.0, "bob")]
    old = [Change("cell.a", NOW - dt.timedelta(minutes=61), 0.0, 35.0, "bob")]
    assert [v.rule for v in check(rec(a=30), CURRENT, recent, scenario=SCENARIO, now=NOW).violations] == ["per_hour_up"]
    assert check(rec(a=30), CURRENT, old, scenario=SCENARIO, now=NOW).plan is not None
    assert check(rec(a=15), CURRENT, recent, scenario=SCENARIO, now=NOW).plan is not None  # down is not up


def test_a_target_in_the_soft_band_needs_an_approvers_sign_off():
    current = CURRENT | {"cell.a": 80.0, "cell.b": 6.0}
    verdict = check(rec(a=85), current, scenario=SCENARIO, now=NOW)
    assert verdict.approvals_needed == ("cell.a",)
    assert not verdict.plan.ready
    approved = verdict.plan.approve("carol")
    assert approved.ready and approved.approved_by == ("carol",)
    assert check(rec(a=75), current, scenario=SCENARIO, now=NOW).plan.ready


def test_writes_are_rounded_to_the_resolution_and_typed():
    plan = check(rec(b=3.456, c=7.4), CURRENT, scenario=SCENARIO, now=NOW).plan
    writes = {w.tag: w for s in plan.steps for w in s.writes}
    assert writes["cell.b"].value == 3.46 and writes["cell.b"].node == "ns=2;s=cell.b"
    assert writes["cell.c"].typed_value == 7 and isinstance(writes["cell.c"].typed_value, int)


def test_a_checked_plan_cannot_be_made_or_altered_outside_the_checker():
    plan = check(rec(a=40), CURRENT, scenario=SCENARIO, now=NOW).plan
    fields = {f.name: getattr(plan, f.name) for f in dataclasses.fields(plan)}
    with pytest.raises(EnvelopeViolation):
        CheckedPlan(**{**fields, "seal": "0" * 64})
    with pytest.raises(EnvelopeViolation):
        dataclasses.replace(plan, steps=plan.steps[-1:])  # skip the ramp
    with pytest.raises(EnvelopeViolation):
        dataclasses.replace(plan, approved_by=("mallory",))
    forged = copy.copy(plan)
    object.__setattr__(forged, "steps", ())
    with pytest.raises(EnvelopeViolation):
        recheck(forged, 0, CURRENT, {"cell.alarm": False})


def test_recheck_reads_live_values_permissives_and_interlocks_before_each_step():
    plan = check(rec(a=40), CURRENT, scenario=SCENARIO, now=NOW).plan
    ok = {"cell.alarm": False}
    assert recheck(plan, 0, CURRENT, ok) == ()
    assert recheck(plan, 1, CURRENT | {"cell.a": 27.0}, ok) == ()
    assert [v.rule for v in recheck(plan, 1, CURRENT, ok)] == ["live_value"]  # step 0 did not arrive
    assert [v.rule for v in recheck(plan, 0, CURRENT, {"cell.alarm": True})] == ["permissive"]
    assert [v.rule for v in recheck(plan, 0, CURRENT, {})] == ["permissive"]  # unreadable: fail safe
    # the other tag moved since the check: the state after the step would cross an interlock
    plan = check(rec(a=54), CURRENT | {"cell.a": 50.0}, scenario=SCENARIO, now=NOW).plan
    live = CURRENT | {"cell.a": 50.0, "cell.c": 35.0}
    assert [v.rule for v in recheck(plan, 0, live, ok)] == ["interlock"]
    approval = check(rec(c=5), CURRENT, scenario=SCENARIO, now=NOW).plan
    assert [v.rule for v in recheck(approval, 0, CURRENT, ok)] == ["approval"]
    assert recheck(approval.approve("dave"), 0, CURRENT, ok) == ()


# ------------------------------------------------------------------------------ bad input

def test_bad_input_is_an_input_error_not_a_violation():
    with pytest.raises(InputError, match="another scenario"):
        check(BASE.model_copy(update={"payload": {"cell": {"a": 30}}, "scenario_fingerprint": "sha256:00"}),
              CURRENT, scenario=SCENARIO)
    with pytest.raises(InputError, match="unknown tag 'cell.z'"):
        check(rec(z=1.0), CURRENT, scenario=SCENARIO)
    with pytest.raises(InputError, match="unknown tag 'oven.t'"):
        check(rec(a=30), CURRENT | {"oven.t": 1.0}, scenario=SCENARIO)
    with pytest.raises(InputError, match="no current value"):
        check(rec(a=30), {"cell.b": 3.0}, scenario=SCENARIO)
    with pytest.raises(InputError, match="finite"):
        check(rec(a=math.nan), CURRENT, scenario=SCENARIO)
    with pytest.raises(InputError, match="--follow"):
        check(BASE.model_copy(update={"kind": "energy_plan"}), CURRENT, scenario=SCENARIO)
    bare = scenario_from_data(scenario_data(None))
    with pytest.raises(InputError, match="no equipment envelope"):
        check(rec(a=30), CURRENT, scenario=bare)


def test_the_fingerprint_does_not_depend_on_the_envelope():
    bare = scenario_from_data(scenario_data(None))
    tighter = scenario_data()
    tighter["equipment"]["tags"][0]["hard"] = [15, 85]
    assert fingerprint(bare) == fingerprint(SCENARIO) == fingerprint(scenario_from_data(tighter))
    moved = scenario_data()
    moved["stations"][0]["parameters"][0]["max"] = 99
    assert fingerprint(scenario_from_data(moved)) != fingerprint(SCENARIO)
    glue = parse_yaml((SCENARIOS / "glue_dispensing.yaml").read_text())[0]
    assert "equipment" in glue
    without = {k: v for k, v in glue.items() if k != "equipment"}
    assert fingerprint(scenario_from_data(glue)) == fingerprint(scenario_from_data(without))


@pytest.mark.parametrize("edit, where", [
    (lambda e: e["interlocks"].append("__import__('os').system('true')"), "equipment.interlocks[2]"),
    (lambda e: e["permissives"].append("cell.alarm.__class__"), "equipment.permissives[1]"),
    (lambda e: e["interlocks"].append("cell.q > 1"), "equipment.interlocks[2]"),
    (lambda e: e["tags"].append({"parameter": "cell.nope", "resolution": 1}), "equipment.tags[3].parameter"),
    (lambda e: e["tags"][0].update(hard=[-5, 90]), "equipment.tags[0].hard"),
    (lambda e: e["tags"][0].update(soft=[5, 95]), "equipment.tags[0]"),
    (lambda e: e["tags"][1].update(parameter="cell.a"), "equipment.tags[1].parameter"),
    (lambda e: e["tags"][0].update(resolution=0), "equipment.tags[0].resolution"),
    (lambda e: e["tags"][0].update(ramp_step=0.1), "equipment.tags[0]"),
    (lambda e: e["signals"].append({"name": "cell.x", "node": "ns=2;s=cell.a"}), "equipment.signals[1].node"),
])
def test_a_bad_envelope_is_a_scenario_error_naming_the_field(edit, where):
    env = copy.deepcopy(ENVELOPE)
    edit(env)
    with pytest.raises(ScenarioError) as err:
        scenario_from_data(scenario_data(env), "cell.yaml")
    assert f"cell.yaml: {where}" in str(err.value)


def test_an_unsafe_interlock_fails_twinopt_run_with_one_line(tmp_path):
    text = (SCENARIOS / "glue_dispensing.yaml").read_text()
    bad = text.replace('- "dispenser.temperature_c <= 45 or dispenser.pressure_bar <= 3.5"',
                       "- \"__import__('os').system('echo pwned')\"")
    assert bad != text
    path = tmp_path / "glue.yaml"
    path.write_text(bad)
    done = run_cli("run", str(path), "-n", "1", "-q")
    assert done.returncode == 2
    assert done.stdout == "" and "pwned" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{path}:" in lines[0] and "equipment.interlocks[0]" in lines[0]
    assert "__import__" in lines[0] and "is not allowed" in lines[0]


def test_an_envelope_file_is_read_with_file_line_errors(tmp_path):
    scenario = load_scenario(SCENARIOS / "glue_dispensing.yaml")
    path = tmp_path / "envelope.yaml"
    path.write_text(yaml.safe_dump(parse_yaml((SCENARIOS / "glue_dispensing.yaml").read_text())[0]["equipment"]))
    assert load_envelope(path, scenario) == scenario.equipment
    path.write_text("tags:\n  - parameter: dispenser.pressure_bar\n    resolution: 0.1\n"
                    "interlocks:\n  - \"dispenser.pressure_bar < 4 or open('x')\"\n")
    with pytest.raises(ScenarioError) as err:
        load_envelope(path, scenario)
    assert str(err.value).startswith(f"{path}:5: interlocks[0]: ")


def test_the_shipped_envelope_passes_a_moderate_recommendation():
    glue = load_scenario("glue_dispensing")
    current = {"dispenser.pressure_bar": 3.0, "dispenser.speed_mm_s": 30.0, "dispenser.temperature_c": 40.0}
    r = BASE.model_copy(update={"scenario": glue.name, "scenario_fingerprint": fingerprint(glue),
                                "payload": {"dispenser": {"pressure_bar": 3.4, "speed_mm_s": 38}}})
    verdict = check(r, current, scenario=glue, now=NOW)
    assert verdict.ok and verdict.plan.ready
    assert [s.values for s in verdict.plan.steps] == [{"dispenser.pressure_bar": 3.25, "dispenser.speed_mm_s": 35.0},
                                                      {"dispenser.pressure_bar": 3.4, "dispenser.speed_mm_s": 38.0}]
