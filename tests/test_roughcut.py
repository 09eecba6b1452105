"""The rough-cut (fluid) model of a line and the search that starts from its optimum
(``sampler="model"``): closed-form lines, agreement with the twin where the twin's queueing adds
little, and the glue cell's optimum in the search's second evaluation."""
from __future__ import annotations

import numpy as np
import optuna
import pytest
from conftest import run_cli

from optimizers.model_guided import optimize_model
from optimizers.search import parameter_search
from optimizers.setpoints import search_space, with_setpoints
from twins.errors import InputError
from twins.loader import load_scenario, scenario_from_data
from twins.roughcut import RoughCut
from twins.stats import replicate

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _cell(**station) -> dict:
    return {"name": "cell", "time_unit": "s", "horizon": {"length": 3600, "warmup": 0},
            "products": [{"name": "part", "route": ["m"]}], "sources": [{"kind": "saturated"}],
            "economics": {"margin_per_unit": 2.0, "scrap_cost": 1.0}, "tariff": {"default_price": 0.5},
            "stations": [{"name": "m", "process_time": {"dist": "constant", "value": 10}} | station]}


def test_a_single_machine_in_closed_form():
    sc = scenario_from_data(_cell(scrap=0.1, energy={"power_kw": {"idle": 1.0, "busy": 3.0}}))
    k = {key: float(v) for key, v in RoughCut(sc).kpis().items()}
    # 360 operations in the hour, 10 % scrapped; busy all the time at 3 kW
    assert k["good_units"] == pytest.approx(324) and k["scrapped_units"] == pytest.approx(36)
    assert k["energy_kwh"] == pytest.approx(3.0) and k["energy_cost"] == pytest.approx(1.5)
    assert k["margin"] == pytest.approx(324 * 2 - 36 * 1 - 1.5)
    # and the twin agrees exactly on a deterministic cell (the first part leaves after 10 s)
    twin = replicate(sc, 1, seed=0)
    assert twin.values("good_units")[0] + twin.values("scrapped_units")[0] == pytest.approx(360, abs=1)


def test_breakdowns_planned_stops_and_arrivals_scale_the_capacity():
    time_based = RoughCut(scenario_from_data(_cell(breakdowns=[{"mtbf": 900, "mttr": 100}])))
    assert float(time_based.kpis()["good_units"]) == pytest.approx(360 * 0.9)
    per_operation = RoughCut(scenario_from_data(_cell(breakdowns=[{"mtbf": 100, "mttr": 25, "basis": "operation"}])))
    assert float(per_operation.kpis()["good_units"]) == pytest.approx(360 / 1.25)
    stops = RoughCut(scenario_from_data(_cell(planned_stops=[{"start": 0, "duration": 600, "every": 1800}])))
    assert float(stops.kpis()["good_units"]) == pytest.approx(360 * 2 / 3)
    slow = _cell()
    slow["sources"] = [{"kind": "arrivals", "interarrival": {"dist": "exponential", "mean": 20}}]
    assert float(RoughCut(scenario_from_data(slow)).kpis()["good_units"]) == pytest.approx(180)  # not the capacity
    fast = _cell()
    fast["sources"] = [{"kind": "arrivals", "interarrival": {"dist": "exponential", "mean": 5}}]
    assert float(RoughCut(scenario_from_data(fast)).kpis()["good_units"]) == pytest.approx(360)  # capped


def test_responses_drive_the_model_vectorised():
    cell = _cell(parameters=[{"name": "speed", "min": 0.5, "max": 2.0, "default": 1.0}],
                 response={"cycle_time_factor": "1 / speed", "yield": "1 - 0.2 * (speed - 1) ** 2"})
    model = RoughCut(scenario_from_data(cell))
    speed = np.array([0.5, 1.0, 2.0])
    good = model.kpis({"m": {"speed": speed}})["good_units"]
    assert good.shape == (3,)
    np.testing.assert_allclose(good, 360 * speed * (1 - 0.2 * (speed - 1) ** 2))


def test_glue_cell_model_is_close_to_the_twin():
    glue = load_scenario("glue_dispensing")
    model = RoughCut(glue)
    for setpoints in ({}, {"dispenser": {"pressure_bar": 4.0, "speed_mm_s": 47.0, "temperature_c": 45.0}}):
        est = model.kpis(setpoints)
        twin = replicate(with_setpoints(glue, setpoints), 5, seed=0)
        for kpi in ("margin", "good_units", "energy_kwh"):
            assert float(est[kpi]) == pytest.approx(twin.values(kpi).mean(), rel=0.03), (setpoints, kpi)


def test_model_refuses_what_it_cannot_estimate():
    ext = _cell()
    ext["sources"] = [{"kind": "external"}]
    with pytest.raises(InputError, match="rough-cut model needs arrivals, orders or a saturated source"):
        RoughCut(scenario_from_data(ext))
    glue = load_scenario("glue_dispensing")
    with pytest.raises(InputError, match="sampler 'model' estimates .*not 'lead_time'"):
        optimize_model(glue, search_space(glue), "lead_time")


def test_model_sampler_reaches_the_glue_optimum_in_its_second_evaluation():
    glue = load_scenario("glue_dispensing")
    run = dict(budget=6, sampler="model", replications=5, seed=0, sim_seed=0, top_k=2, final_replications=2,
               sensitivity_step=None)
    result = parameter_search(glue, **run)
    values = [t.value for t in result.trials]
    # trial 0 is today's recipe (4310 EUR); trial 1 the model's optimum, within 1 % of the best of an
    # exhaustive 16^3 grid (5731.5 EUR, benchmarks/bench_search.py)
    assert values[0] == pytest.approx(4310.3, abs=0.1)
    assert values[1] >= 0.99 * 5731.5
    extra = result.recommendation.provenance.extra
    assert result.recommendation.provenance.method == "rough-cut-model+optuna-gp-local"
    assert extra["model"]["setpoints"] == result.trials[1].setpoints
    for d in result.space:  # the GP stays in the trust region around the model's optimum
        centre = extra["model"]["setpoints"][d.station][d.name]
        full = next(p for p in glue.station(d.station).parameters if p.name == d.name)
        assert d.high - d.low <= 0.1 * (full.max - full.min) + 1e-9 and d.low <= centre <= d.high
    assert [t.setpoints for t in parameter_search(glue, **run).trials] == [t.setpoints for t in result.trials]


def test_model_sampler_holds_the_minor_parameters_at_the_model_optimum():
    foam = load_scenario("foaming_line")
    result = parameter_search(foam, budget=4, sampler="model", replications=1, seed=0, top_k=1,
                              final_replications=2, sensitivity_step=None)
    kept = {d.key for d in result.space}
    model = result.model
    assert model is not None and len(kept) == 2  # one per 8 trials left, at least 2
    assert kept <= {k for k, v in sorted(model.effects.items(), key=lambda kv: -kv[1])[:2]}
    last = result.trials[-1].setpoints
    assert sum(len(v) for v in last.values()) == 208  # every parameter set, the minor ones at the model's optimum
    held = [(s, p, v) for s, vals in model.setpoints.items() for p, v in vals.items() if f"{s}.{p}" not in kept]
    assert len(held) == 206 and all(last[s][p] == v for s, p, v in held)


def test_cli_model_sampler_and_its_one_line_error(tmp_path):
    out = tmp_path / "rec.json"
    ok = run_cli("optimize", "glue_dispensing", "--sampler", "model", "--budget", "4", "--top-k", "1",
                 "--final-replications", "2", "-n", "2", "--json", str(out), "-q")
    assert ok.returncode == 0, ok.stderr
    assert '"rough-cut-model+optuna-gp-local"' in out.read_text()
    bad = run_cli("optimize", "glue_dispensing", "--sampler", "model", "--objective", "lead_time", "--minimize")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "sampler 'model' estimates" in bad.stderr
