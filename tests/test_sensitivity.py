"""Sensitivity analysis in the twin: Sobol' indices match the closed form of a cell whose expected
margin is known, a parameter the line ignores gets indices of exactly 0 under common random
numbers, Morris and local slopes agree, and the cost in twin evaluations is N × (d + 2)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SCENARIOS, run_cli

from optimizers.sensitivity import local_sensitivity, morris_screening, sobol_indices
from twins.errors import InputError
from twins.loader import parse_yaml, scenario_from_data


@pytest.fixture(scope="module")
def cell():
    """scenarios/known_optimum.yaml plus a humidity parameter no response expression reads."""
    data = parse_yaml((SCENARIOS / "known_optimum.yaml").read_text())[0]
    data["stations"][0]["parameters"].append({"name": "humidity", "unit": "%", "min": 20, "max": 80, "default": 50})
    return scenario_from_data(data)


def analytic_sobol() -> dict[str, tuple[float, float]]:
    """(S1, ST) of the expected margin 360·g(speed)·h(T) for uniform parameters, by quadrature:
    for a product of independent factors V1 = Var g·(E h)², V2 = (E g)²·Var h, V12 = Var g·Var h."""
    s, t = np.linspace(0.5, 3, 100_001), np.linspace(30, 70, 100_001)
    g, h = 360 * s * (1 - 0.1 * s**2), 1 - ((t - 47) / 25) ** 2
    v = (g**2).mean() * (h**2).mean() - g.mean() ** 2 * h.mean() ** 2
    v1, v2 = g.var() * h.mean() ** 2, g.mean() ** 2 * h.var()
    return {"cell.speed": (v1 / v, 1 - v2 / v), "cell.temperature_c": (v2 / v, 1 - v1 / v)}


@pytest.fixture(scope="module")
def sobol(cell):
    return sobol_indices(cell, kpi="margin", n=128, replications=1, seed=0)


def test_sobol_indices_match_the_closed_form_within_their_confidence_intervals(sobol):
    for name, (s1, st) in analytic_sobol().items():
        ix = sobol.indices[name]
        # the twin's yield is a Bernoulli draw per part: a little noise on top of the bootstrap CI
        assert abs(ix["S1"] - s1) <= ix["S1_conf"] + 0.03, (name, ix, s1)
        assert abs(ix["ST"] - st) <= ix["ST_conf"] + 0.03, (name, ix, st)
        assert ix["ST"] >= ix["S1"] - ix["S1_conf"]
    assert 0.8 <= sobol.extra["sum_S1"] <= 1.1  # almost additive: the interaction share is ~0.04


def test_a_parameter_the_line_ignores_has_zero_indices_under_common_random_numbers(sobol, cell):
    assert sobol.indices["cell.humidity"] == {"S1": 0.0, "S1_conf": 0.0, "ST": 0.0, "ST_conf": 0.0}
    morris = morris_screening(cell, n=8, replications=1, seed=3)
    assert morris.indices["cell.humidity"]["mu_star"] == 0.0
    assert morris.indices["cell.humidity"]["sigma"] == 0.0
    for name in ("cell.speed", "cell.temperature_c"):
        assert morris.indices[name]["mu_star"] > morris.indices[name]["mu_star_conf"] > 0


def test_cost_is_n_times_d_plus_2_design_points(sobol, cell):
    assert (sobol.points, sobol.simulated) == (128 * (3 + 2), 128 * 5)
    doc = sobol.summary()
    assert doc["cost"]["replications_simulated"] == 640 and doc["cost"]["design_points"] == 640
    json.dumps(doc, allow_nan=False)
    morris = morris_screening(cell, n=4, replications=2, params=["cell.speed"], seed=0)
    assert (morris.points, morris.simulated) == (4 * 2, 4 * 2 * 2)


def test_same_seed_same_indices_whatever_the_workers(cell):
    a = sobol_indices(cell, n=8, replications=2, seed=5, workers=1)
    b = sobol_indices(cell, n=8, replications=2, seed=5, workers=2)
    assert a.indices == b.indices


def test_local_slopes_around_the_as_is_point(cell):
    loc = local_sensitivity(cell, {}, kpi="margin", replications=3, seed=0, step=0.05)
    p = loc["parameters"]
    assert p["cell.humidity"]["slope"] == 0.0 and p["cell.humidity"]["slope_half_width"] == 0.0
    # d/ds 360·s·(1 − 0.1 s²)·h(40) at s = 1: 360 · 0.7 · 0.9216 ≈ 232 EUR per unit of speed
    speed = p["cell.speed"]
    assert abs(speed["slope"] - 232.2) <= speed["slope_half_width"] + 25
    assert p["cell.temperature_c"]["slope"] > 0  # 40 °C is below the 47 °C optimum
    assert loc["replications_simulated"] == (2 * 3 + 1) * 3


def test_bad_input_is_an_input_error(cell):
    with pytest.raises(InputError):
        sobol_indices(cell, n=12)  # not a power of 2
    with pytest.raises(InputError):
        sobol_indices(cell, kpi="tardiness", n=8)
    with pytest.raises(InputError):
        morris_screening(cell, n=4, levels=3)


def test_cli_writes_indices_cost_and_chart(tmp_path):
    out, html = tmp_path / "s.json", tmp_path / "s.html"
    proc = run_cli("sensitivity", str(SCENARIOS / "known_optimum.yaml"), "--n", "8", "-r", "1", "--json", str(out),
                   "--html", str(html), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert "cost: 32 design points × 1 replications = 32 twin evaluations" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["method"] == "sobol" and set(doc["indices"]) == {"cell.speed", "cell.temperature_c"}
    assert "plotly" in html.read_text()
    bad = run_cli("sensitivity", "known_optimum", "--n", "10")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_without_the_data_extra_sensitivity_names_it():
    from test_extras import core_only

    proc = core_only("sensitivity", "known_optimum", "--n", "8")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and 'pip install "twinopt[data]"' in proc.stderr


def test_a_recommendation_carries_the_slopes_of_its_objective_around_it(cell):
    import optuna

    from optimizers.recommendation import Recommendation
    from optimizers.search import parameter_search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = parameter_search(cell, budget=12, replications=2, final_replications=4, top_k=2, seed=1)
    rec = Recommendation.from_json(result.recommendation.to_json())
    local = rec.provenance.extra["sensitivity"]
    assert local["kpi"] == "margin" and local["seed"] == rec.provenance.extra["final_seed"]
    assert set(local["parameters"]) == {"cell.speed", "cell.temperature_c", "cell.humidity"}
    at = {k: v["at"] for k, v in local["parameters"].items()}
    assert at == {f"cell.{k}": v for k, v in rec.payload["cell"].items()}
    assert local["parameters"]["cell.humidity"]["slope"] == 0.0
    assert local["replications_simulated"] == (2 * 3 + 1) * 2
    assert "sensitivity" not in parameter_search(cell, budget=2, replications=2, final_replications=2, top_k=1,
                                                 sensitivity_step=None).recommendation.provenance.extra
