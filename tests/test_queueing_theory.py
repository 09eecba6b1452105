"""The twin against closed-form queueing theory: the exact value must lie inside the simulated
95 % confidence interval (fixed seeds, so these are deterministic), and Little's law must hold on
the simulated numbers."""
from __future__ import annotations

import math

import pytest
from conftest import single_station

from twins.loader import scenario_from_data
from twins.stats import replicate

REPS = 20


def exp(mean):
    return {"dist": "exponential", "mean": mean}


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with offered load a = λ/μ."""
    top = a ** c / math.factorial(c) * c / (c - a)
    return top / (sum(a ** n / math.factorial(n) for n in range(c)) + top)


def mmck(lam: float, mu: float, c: int, K: int) -> dict:
    """Stationary M/M/c/K: blocking probability, throughput, L and W."""
    a = lam / mu
    weights = [a ** n / math.factorial(n) if n <= c else a ** n / (math.factorial(c) * c ** (n - c))
               for n in range(K + 1)]
    p = [w / sum(weights) for w in weights]
    L = sum(n * pn for n, pn in enumerate(p))
    lam_eff = lam * (1 - p[K])
    return {"p_block": p[K], "throughput": lam_eff, "L": L, "W": L / lam_eff}


def inside(results, kpi, exact):
    mean, hw = results.ci(kpi)
    assert abs(mean - exact) <= hw, f"{kpi}: exact {exact:.4f} outside {mean:.4f} ± {hw:.4f}"


def test_mm1_lead_time_and_wip_match_theory():
    lam, mu = 0.8, 1.0
    res = replicate(scenario_from_data(single_station(exp(1 / lam), exp(1 / mu))), REPS, seed=11, workers=1)
    inside(res, "lead_time", 1 / (mu - lam))  # W = 1/(μ−λ) = 5
    inside(res, "wip", (lam / mu) / (1 - lam / mu))  # L = ρ/(1−ρ) = 4
    inside(res, "throughput", lam)
    mean, hw = res.ci("utilization", "server")
    assert abs(mean - lam / mu) <= hw


def test_mmc_lead_time_matches_erlang_c():
    lam, mu, c = 2.4, 1.0, 3
    a = lam / mu
    W = erlang_c(c, a) / (c * mu - lam) + 1 / mu
    res = replicate(scenario_from_data(single_station(exp(1 / lam), exp(1 / mu), servers=c)), REPS, seed=12,
                    workers=1)
    inside(res, "lead_time", W)
    inside(res, "wip", lam * W)
    mean, hw = res.ci("waiting_time", "server")
    assert abs(mean - erlang_c(c, a) / (c * mu - lam)) <= hw


def test_mmck_blocking_probability_and_throughput():
    lam, mu, c, K = 2.0, 1.0, 2, 5  # buffer counts waiting places only: K − c = 3
    exact = mmck(lam, mu, c, K)
    res = replicate(scenario_from_data(single_station(exp(1 / lam), exp(1 / mu), servers=c, buffer=K - c)), REPS,
                    seed=13, workers=1)
    inside(res, "lost_fraction", exact["p_block"])
    inside(res, "throughput", exact["throughput"])
    inside(res, "wip", exact["L"])
    inside(res, "lead_time", exact["W"])


def test_mm1_loss_system_with_zero_waiting_places():
    """M/M/1/1 (Erlang B with one server): a buffer of 0 places loses a/(1+a) of arrivals."""
    lam, mu = 1.0, 1.5
    res = replicate(scenario_from_data(single_station(exp(1 / lam), exp(1 / mu), buffer=0)), REPS, seed=14,
                    workers=1)
    a = lam / mu
    inside(res, "lost_fraction", a / (1 + a))
    inside(res, "lead_time", 1 / mu)


@pytest.mark.parametrize("service, second_moment", [
    ({"dist": "constant", "value": 0.8}, 0.64),                        # M/D/1
    ({"dist": "uniform", "low": 0.4, "high": 1.2}, 0.64 + 0.8 ** 2 / 12),  # M/U/1
    ({"dist": "gamma", "mean": 0.8, "cv": 1.5}, 0.64 * (1 + 1.5 ** 2)),    # M/G/1, high variability
])
def test_mg1_lead_time_matches_pollaczek_khinchine(service, second_moment):
    lam, mean_s = 1.0, 0.8
    rho = lam * mean_s
    W = lam * second_moment / (2 * (1 - rho)) + mean_s
    res = replicate(scenario_from_data(single_station(exp(1 / lam), service, horizon=60_000)), REPS, seed=15,
                    workers=1)
    inside(res, "lead_time", W)
    inside(res, "wip", lam * W)


def test_littles_law_holds_on_simulated_numbers():
    """L = λ·W on the simulated numbers of every replication of a blocking line (no scrap)."""
    data = single_station(exp(1.0), exp(1.6), servers=2, buffer=2)
    data["stations"][0]["breakdowns"] = [{"mtbf": 200, "mttr": 10}]
    res = replicate(scenario_from_data(data), 8, seed=16, workers=1)
    for r in res.replications:
        L, lam, W = r.kpis["wip"], r.kpis["throughput"], r.kpis["lead_time"]
        assert L == pytest.approx(lam * W, rel=0.01)
