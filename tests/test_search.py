"""Simulation-based parameter search and the exhaustive grid: bounds are never left, the analytic
optimum of scenarios/known_optimum.yaml is found, same seed ⇒ same recommendation, the final
choice is made on confidence intervals of fresh paired replications."""
from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from conftest import SCENARIOS, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizers.grid import grid_search
from optimizers.recommendation import Recommendation
from optimizers.search import SAMPLERS, parameter_search, write_html
from optimizers.setpoints import Evaluator, search_space, with_setpoints
from twins.errors import InputError
from twins.loader import load_scenario, scenario_from_data

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: closed-form optimum of scenarios/known_optimum.yaml (see the comment at its top)
SPEED_STAR, TEMP_STAR = 1 / math.sqrt(0.3), 47.0


@pytest.fixture(scope="module")
def known():
    return load_scenario(SCENARIOS / "known_optimum.yaml")


def _bounded_cell(bounds: list[tuple[float, float]]):
    """A cheap one-machine cell whose parameters have the given bounds (defaults at the midpoint)."""
    params = [{"name": f"p{i}", "min": lo, "max": lo + w, "default": lo + w / 2} for i, (lo, w) in enumerate(bounds)]
    return scenario_from_data({
        "name": "bounded", "time_unit": "s", "horizon": {"length": 60},
        "products": [{"name": "part", "route": ["cell"]}], "sources": [{"kind": "saturated"}],
        "stations": [{"name": "cell", "process_time": {"dist": "exponential", "mean": 2}, "parameters": params}],
    })


def _strip(rec: Recommendation) -> dict:
    """What must not depend on when or how fast a search ran."""
    doc = rec.model_dump(mode="json", exclude={"id", "created_at"})
    doc["provenance"].pop("wall_time_s")
    doc["provenance"]["extra"].pop("seconds_per_evaluation")
    return doc


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bounds=st.lists(st.tuples(st.floats(-1e4, 1e4), st.floats(1e-3, 1e4)), min_size=1, max_size=3),
       sampler=st.sampled_from(SAMPLERS), seed=st.integers(0, 2**31 - 1))
def test_search_never_proposes_a_value_outside_the_bounds(bounds, sampler, seed):
    scenario = _bounded_cell(bounds)
    result = parameter_search(scenario, budget=12, sampler=sampler, objective="throughput", replications=1,
                              seed=seed, top_k=2, final_replications=2)
    limits = {p.name: (p.min, p.max) for p in scenario.station("cell").parameters}
    proposals = [t.setpoints["cell"] for t in result.trials] + [result.recommendation.payload["cell"]]
    assert len(result.trials) == 12
    for sp in proposals:
        # screening searches (and recommends) only the parameters it kept; the others stay as they are
        assert set(sp) <= set(limits) if sampler == "screen" else set(sp) == set(limits)
        for name, v in sp.items():
            assert limits[name][0] <= v <= limits[name][1], (name, v, limits[name])


@pytest.mark.parametrize("sampler, seed", [("tpe", 0), ("cmaes", 1)])
def test_search_finds_the_analytic_optimum_of_the_known_optimum_cell(known, sampler, seed):
    result = parameter_search(known, budget=60, sampler=sampler, replications=3, seed=seed)
    sp = result.recommendation.payload["cell"]
    assert abs(sp["speed"] - SPEED_STAR) < 0.12 and abs(sp["temperature_c"] - TEMP_STAR) < 2.5, sp
    # margin at the optimum: 360 · speed* · 2/3 ≈ 438.2 EUR per hour; as-is ≈ 298.6
    predicted = result.recommendation.predicted["margin"]
    assert abs(predicted.mean - 438.2) < 3 * predicted.half_width + 3
    assert result.recommendation.provenance.extra["significant"]


def test_minimizing_scrap_drives_speed_down_and_temperature_to_its_sweet_spot(known):
    result = parameter_search(known, budget=40, sampler="tpe", objective="scrap_rate", direction="minimize",
                              replications=2, seed=3)
    sp = result.recommendation.payload["cell"]
    # scrap = 1 − yield is smallest at the lowest speed and at 47 °C
    assert sp["speed"] < 0.9 and abs(sp["temperature_c"] - TEMP_STAR) < 5, sp
    assert result.recommendation.difference["scrap_rate"].mean < 0


def test_same_seed_gives_the_same_recommendation_whatever_the_workers():
    glue = load_scenario(SCENARIOS / "glue_dispensing.yaml", ["horizon.length=3900"])
    kw = dict(budget=8, sampler="tpe", replications=2, top_k=2, final_replications=3)
    a = parameter_search(glue, seed=7, **kw).recommendation
    b = parameter_search(glue, seed=7, workers=2, **kw).recommendation
    c = parameter_search(glue, seed=8, **kw).recommendation
    assert _strip(a) == _strip(b)
    assert a.payload != c.payload


def test_a_fixed_simulation_seed_keeps_one_objective_across_sampler_seeds(known):
    kw = dict(budget=4, sampler="random", replications=2, top_k=1, final_replications=2, sim_seed=9)
    a, b = parameter_search(known, seed=1, **kw), parameter_search(known, seed=2, **kw)
    assert a.trials[0].setpoints == b.trials[0].setpoints == {"cell": {"speed": 1.0, "temperature_c": 40.0}}
    assert a.trials[0].values == b.trials[0].values  # trial 0 (as-is) scores the same: one objective
    assert a.trials[1].setpoints != b.trials[1].setpoints
    assert a.recommendation.provenance.extra["sim_seed"] == 9 and a.recommendation.provenance.extra["final_seed"] == 10
    # the as-is baseline is replayed on the same fresh seeds in both runs
    assert a.recommendation.baseline == b.recommendation.baseline


def test_the_search_starts_at_the_as_is_setpoints_unless_told_not_to(known):
    kw = dict(budget=3, sampler="tpe", replications=1, top_k=1, final_replications=2, seed=0)
    warm, cold = parameter_search(known, **kw), parameter_search(known, warm_start=False, **kw)
    assert warm.trials[0].setpoints == {"cell": {"speed": 1.0, "temperature_c": 40.0}}
    assert cold.trials[0].setpoints != warm.trials[0].setpoints
    assert warm.recommendation.provenance.extra["warm_start"] and not cold.recommendation.provenance.extra["warm_start"]


def test_recommendation_json_round_trips_exactly(known):
    rec = parameter_search(known, budget=6, replications=2, top_k=2, final_replications=3, seed=2).recommendation
    text = rec.to_json()
    back = Recommendation.from_json(text)
    assert back == rec and back.to_json() == text
    assert rec.kind == "setpoints" and set(rec.payload) == {"cell"}
    assert rec.provenance.method == "optuna-tpe" and rec.provenance.seed == 2
    assert rec.provenance.budget == {"trials": 6, "replications_per_trial": 2, "top_k": 2, "final_replications": 3}


def test_the_final_choice_is_the_highest_lower_confidence_bound_on_fresh_paired_replications(known):
    result = parameter_search(known, budget=20, sampler="random", replications=2, top_k=4, final_replications=6,
                              seed=5)
    rec = result.recommendation
    assert len(result.finalists) == 4
    assert result.chosen.lower_bound == max(f.lower_bound for f in result.finalists)
    assert rec.payload == result.chosen.setpoints
    # the recommendation's KPIs are the finalists' replays: fresh seed, final replication count
    assert rec.provenance.replications == 6 and rec.provenance.extra["final_seed"] == 6
    assert rec.predicted["margin"].mean == pytest.approx(result.chosen.mean)
    assert rec.difference["margin"].mean == pytest.approx(result.chosen.improvement)
    # finalists are the best distinct trials by their search-seed mean
    best = sorted((t.value for t in result.trials), reverse=True)[:4]
    assert sorted((next(t.value for t in result.trials if t.number == f.trial) for f in result.finalists),
                  reverse=True) == best


def test_search_space_and_setpoints_check_names_and_bounds(known):
    glue = load_scenario(SCENARIOS / "glue_dispensing.yaml")
    assert [d.key for d in search_space(glue)] == ["dispenser.pressure_bar", "dispenser.speed_mm_s",
                                                   "dispenser.temperature_c"]
    assert [d.key for d in search_space(glue, ["dispenser.speed_mm_s"])] == ["dispenser.speed_mm_s"]
    with pytest.raises(InputError, match="unknown parameter 'dispenser.nope'"):
        search_space(glue, ["dispenser.nope"])
    with pytest.raises(InputError, match="outside the bounds"):
        with_setpoints(known, {"cell": {"speed": 3.5}})
    moved = with_setpoints(known, {"cell": {"speed": 2.0}})
    assert moved.station("cell").parameters[0].setpoint == 2.0 and known.station("cell").parameters[0].setpoint == 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"budget": 0}, "budget must be at least 1"),
    ({"objective": "happiness"}, "unknown KPI 'happiness'"),
    ({"objective": "tardiness"}, "unknown KPI 'tardiness'"),  # no orders in this scenario
    ({"params": ["cell.pressure"]}, "unknown parameter 'cell.pressure'"),
    ({"final_replications": 1}, "final replications must be ≥ 2"),
    ({"sampler": "annealing"}, "unknown sampler"),
    ({"seed": -1}, "seed must be an integer in 0..4294967294"),
    ({"seed": 2**32}, "seed must be an integer in 0..4294967294"),
    ({"sampler": "screen", "budget": 3}, "screening 2 parameters costs up to 3 evaluations"),
])
def test_search_rejects_bad_input_with_one_line(known, kwargs, message):
    with pytest.raises(InputError, match=message) as err:
        parameter_search(known, **{"budget": 2, **kwargs})
    assert "\n" not in str(err.value)


def test_grid_search_scores_every_point_and_finds_the_grid_optimum(known):
    grid = grid_search(known, {"cell.speed": 11, "cell.temperature_c": 9}, replications=2, seed=0)
    assert grid.values.shape == (11, 9) and grid.evaluations == 99
    assert np.allclose(grid.axes[0], np.linspace(0.5, 3.0, 11)) and np.allclose(grid.axes[1], np.linspace(30, 70, 9))
    # on this grid the analytic optimum is at speed 1.75, 45 °C (434.3 EUR expected)
    assert grid.best_setpoints == {"cell": {"speed": 1.75, "temperature_c": 45.0}}
    # binomial noise of the good count: sd ≈ 11.6 parts per replication, 8.2 for the mean of 2
    assert abs(grid.best_value - 434.3) < 3 * 8.2
    assert grid.best_value == np.nanmax(grid.values) and grid.seconds_per_evaluation > 0


def test_a_grid_point_scores_exactly_like_a_search_trial_at_the_same_setpoints(known):
    # one objective, one set of seeds (CRN): grid and search values are directly comparable
    grid = grid_search(known, 3, replications=2, seed=4, params=["cell.speed"])
    with Evaluator(known, "margin", replications=2, seed=4) as evaluate:
        for speed, value in zip(grid.axes[0], grid.values, strict=True):
            assert evaluate({"cell": {"speed": float(speed)}}).mean() == value
    assert list(grid.axes[0]) == [0.5, 1.75, 3.0]


def test_html_report_has_history_importance_and_final_choice(known, tmp_path):
    result = parameter_search(known, budget=15, replications=1, top_k=3, final_replications=3, seed=1)
    out = tmp_path / "search.html"
    write_html(result, str(out))
    text = out.read_text()
    for title in ("Optimization history", "Parameter importance (PED-ANOVA", "Final choice"):
        assert title in text
    assert len(result.best_so_far()) == 15 and np.all(np.diff(result.best_so_far()) >= 0)


def test_importance_is_not_drawn_from_a_single_trial(known):
    from optimizers.search import figures

    result = parameter_search(known, budget=1, replications=1, top_k=1, final_replications=2, seed=1)
    title = figures(result)[1].layout.title.text
    assert title == "Parameter importance: not available (needs 2 completed trials, got 1)"
    result = parameter_search(known, budget=2, replications=1, top_k=1, final_replications=2, seed=1)
    assert figures(result)[1].layout.title.text.startswith("Parameter importance (PED-ANOVA")


def test_screening_counts_in_the_budget_and_is_recorded_in_the_provenance():
    glue = load_scenario("glue_dispensing")
    result = parameter_search(glue, budget=16, sampler="screen", replications=1, seed=0, top_k=2,
                              final_replications=2, sensitivity_step=None, screen_max_keep=2)
    prov = result.recommendation.provenance
    screening = prov.extra["screening"]
    assert len(result.trials) == 16 and prov.method == "screening+optuna-gp-local"
    assert screening["evaluations"] == 4 and len(screening["effects"]) == 3
    assert len(screening["kept"]) == 2 and [d.key for d in result.space] == screening["kept"]
    # the two largest effects were kept; the search moved only them, the third stays at today's value
    ranked = sorted(screening["effects"], key=lambda k: -abs(screening["effects"][k]))
    assert set(screening["kept"]) == set(ranked[:2])
    held = ranked[2].split(".")[1]
    assert all(held not in t.setpoints["dispenser"] for t in result.trials[4:])
    assert held not in result.recommendation.payload["dispenser"]
    # the GP already knows the screening points in the kept subspace (as-is + two single moves; no
    # trust region below 40 parameters)
    assert len(result.study.trials) == 3 + 12


def test_optimize_cli_screens_with_the_screen_sampler(tmp_path):
    out = tmp_path / "rec.json"
    r = run_cli("optimize", "glue_dispensing", "--sampler", "screen", "--budget", "8", "-n", "1",
                "--final-replications", "2", "--top-k", "1", "-q", "--json", str(out))
    assert r.returncode == 0, r.stderr
    rec = Recommendation.from_json(out.read_text())
    assert rec.provenance.method == "screening+optuna-gp-local"
    assert rec.provenance.extra["screening"]["evaluations"] == 4
    r = run_cli("optimize", "glue_dispensing", "--sampler", "screen", "--budget", "4", "-q")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "budget of at least 5" in r.stderr
