"""Process models learned from recipe data: fitted at load, accurate where the data is, refused
outside it (never extrapolated), infeasible for the search and the parameter environment."""
from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip("sklearn")

from conftest import ROOT, run_cli  # noqa: E402

from twins.errors import ScenarioError  # noqa: E402
from twins.learned import LearnedModel, OutsideSupport  # noqa: E402
from twins.loader import load_scenario, parse_yaml, scenario_from_data  # noqa: E402
from twins.model import Line  # noqa: E402

ROWS = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(ROOT / "scenarios" / "glue_recipes.csv"))]
NAMES = ("pressure_bar", "speed_mm_s", "temperature_c")
INSIDE = {"pressure_bar": 3.0, "speed_mm_s": 30.0, "temperature_c": 40.0}
OUTSIDE = {"pressure_bar": 3.0, "speed_mm_s": 58.0, "temperature_c": 40.0}  # in bounds, beyond every recipe


def truth():
    st = next(s for s in load_scenario("glue_dispensing").stations if s.name == "dispenser")
    return st.response.compile(NAMES)


@pytest.mark.parametrize("kind, rmse_max", [("gp", 0.06), ("mlp_ensemble", 0.06), ("gbm", 0.25)])
def test_each_model_kind_learns_the_process_where_the_data_is(kind, rmse_max):
    model = LearnedModel(kind, ROWS, NAMES, {"yield": "yield", "cycle_time_factor": "ct_factor",
                                             "power_kw": "power_kw"}, max_distance=0.15, max_std={})
    real = truth()
    rng = np.random.default_rng(0)
    pts = [dict(zip(NAMES, rng.uniform([2.6, 22, 34], [4.2, 46, 50]), strict=True)) for _ in range(200)]
    pts = [p for p in pts if model.distance(p) <= 0.15]  # where the data is
    assert len(pts) > 150
    errs = {k: [] for k in ("yield", "cycle_time_factor", "power_kw")}
    for p in pts:
        pred = model.predict(p)
        for k in errs:
            errs[k].append(pred[k][0] - real[k](p))
            assert pred[k][1] >= 0
    rmse = {k: float(np.sqrt(np.mean(np.square(v)))) for k, v in errs.items()}
    assert rmse["yield"] < rmse_max, rmse
    assert rmse["cycle_time_factor"] < 0.05 and rmse["power_kw"] < 0.08, rmse


def test_setpoints_beyond_the_data_are_refused_not_extrapolated():
    model = LearnedModel("gp", ROWS, NAMES, {"yield": "yield"}, max_distance=0.15, max_std={})
    assert model.distance(INSIDE) < 0.15 < model.distance(OUTSIDE)
    with pytest.raises(OutsideSupport, match="outside the recipe data's support"):
        model.predict(OUTSIDE)
    strict = LearnedModel("gp", ROWS, NAMES, {"yield": "yield"}, max_distance=0.15, max_std={"yield": 1e-6})
    with pytest.raises(OutsideSupport, match="too uncertain"):
        strict.predict(INSIDE)


def test_the_shipped_data_scenario_runs_deterministically_and_refuses_unsupported_setpoints():
    sc = load_scenario("glue_dispensing_data")
    a = Line(sc, seed=3, replication=0)
    a.run(3600)
    b = Line(sc, seed=3, replication=0)
    b.run(3600)
    assert a.snapshot() == b.snapshot()
    with pytest.raises(OutsideSupport):
        a.set_parameters("dispenser", {"speed_mm_s": 58.0})
    assert a.station("dispenser").params["speed_mm_s"] == 30.0  # the station is as it was
    out = run_cli("run", "glue_dispensing_data", "-n", "2", "-q", "--set", "dispenser.speed_mm_s=58")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "support" in out.stderr, out.stderr


def test_the_search_keeps_to_the_data_and_counts_refused_setpoints_as_infeasible():
    pytest.importorskip("optuna")
    from optimizers.search import parameter_search
    from optimizers.setpoints import Evaluator, search_space

    sc = load_scenario("glue_dispensing_data", ["horizon.length=3900"])  # one simulated hour after the warm-up
    speed = next(d for d in search_space(sc) if d.name == "speed_mm_s")
    assert (speed.low, speed.high) != (10.0, 60.0) and 48 <= speed.high <= 48 + 0.15 * 28 + 1e-9  # the data's range
    with Evaluator(sc, "margin", 2, 0) as ev:
        assert np.isnan(ev({"dispenser": {"speed_mm_s": 58.0}})).all()  # infeasible, not an error
    res = parameter_search(sc, budget=10, sampler="random", replications=1, seed=0, top_k=2, final_replications=2)
    model = next(s for s in sc.stations if s.name == "dispenser").response._learned
    assert model.distance(res.recommendation.payload["dispenser"]) <= 0.15


def test_the_parameter_env_refuses_a_step_outside_the_data():
    pytest.importorskip("gymnasium")
    from envs.parameter import ParameterEnv

    env = ParameterEnv(scenario="glue_dispensing_data", action_mode="absolute", episode_steps=8)
    env.reset(seed=0)
    model = next(s for s in env.scenario.stations if s.name == "dispenser").response._learned
    refused = []
    for _ in range(8):  # towards 60 mm/s, at most max_step (5 mm/s) a step: the data ends near 52
        before = env.current.copy()
        _, _, _, _, info = env.step(env.to_action(np.array([3.0, 60.0, 40.0])))
        if info["refused"]:
            refused.append(info["refused"])
            assert np.allclose(env.current, before)  # nothing changed
        assert model.distance(dict(zip(NAMES, env.current, strict=True))) <= 0.15
    assert refused and "support" in refused[0]


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("data"), "needs `data` and `outputs`"),
    (lambda r: r.update({"yield": "0.9"}), "given both as an expression and as a model output"),
    (lambda r: r.update({"inputs": ["nope"]}), "unknown parameter(s) nope"),
    (lambda r: r.update({"model": "forest"}), "Input should be"),
])
def test_bad_model_declarations_name_the_field(change, message):
    data = parse_yaml((ROOT / "scenarios" / "glue_dispensing_data.yaml").read_text())[0]
    response = next(s for s in data["stations"] if s["name"] == "dispenser")["response"]
    change(response)
    with pytest.raises(ScenarioError, match="response") as err:
        scenario_from_data(data, str(ROOT / "scenarios" / "glue_dispensing_data.yaml"))
    assert message in str(err.value)


def test_each_replication_runs_at_its_own_draw_from_the_models_uncertainty():
    sampled = load_scenario("glue_dispensing_data")
    at_mean = load_scenario("glue_dispensing_data", ["stations.dispenser.response.sample=false"])
    draws = [Line(sampled, seed=5, replication=r).station("dispenser").yield_ for r in range(6)]
    again = [Line(sampled, seed=5, replication=r).station("dispenser").yield_ for r in range(6)]
    means = {Line(at_mean, seed=5, replication=r).station("dispenser").yield_ for r in range(6)}
    assert draws == again  # seeded: the same replication draws the same process
    assert len(set(draws)) == 6 and len(means) == 1  # a draw per replication; at the mean, one value
    model = next(s for s in sampled.stations if s.name == "dispenser").response._learned
    mean, sd = model.predict(INSIDE)["yield"]
    assert all(abs(d - mean) <= 4 * sd + 1e-12 for d in draws)


def test_random_starts_of_the_parameter_env_stay_within_the_data():
    """Half the parameter box lies outside the recipes; a random start is redrawn until the model
    accepts it (the PPO run on the learned cell crashed on its first reset before)."""
    pytest.importorskip("gymnasium")
    from envs.parameter import ParameterEnv

    env = ParameterEnv(scenario="glue_dispensing_data", random_start=True, episode_steps=2)
    starts = []
    for seed in range(12):
        env.reset(seed=seed)
        model = next(s for s in env.scenario.stations if s.name == "dispenser").response._learned
        starts.append(env.current.copy())
        assert model.distance(dict(zip(NAMES, env.current, strict=True))) <= 0.15
    assert len({tuple(s) for s in starts}) == 12  # random, not today's recipe every time
