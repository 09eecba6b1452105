"""Cross-check against an independent simulator: a 3-station tandem line with finite buffers and
blocking after service, simulated in Ciw and in the twin, must agree within confidence intervals
on throughput and mean sojourn (lead) time."""
from __future__ import annotations

import math

import ciw
import numpy as np
from scipy import stats

from twins.loader import scenario_from_data
from twins.stats import confidence_interval, replicate

LAM, MU = (0.9, (1.2, 1.0, 1.1))
CAPACITY = (4, 1, 2)  # waiting places per station (Ciw's queue_capacities have the same meaning)
HORIZON, WARMUP, REPS = 12_000.0, 1_000.0, 12


def twin_results():
    data = {
        "name": "tandem", "time_unit": "min", "horizon": {"length": HORIZON, "warmup": WARMUP},
        "products": [{"name": "job", "route": ["s1", "s2", "s3"]}],
        "sources": [{"kind": "arrivals", "interarrival": {"dist": "exponential", "mean": 1 / LAM},
                     "when_full": "lost"}],
        "stations": [{"name": f"s{i + 1}", "buffer": CAPACITY[i],
                      "process_time": {"dist": "exponential", "mean": 1 / MU[i]}} for i in range(3)],
    }
    res = replicate(scenario_from_data(data), REPS, seed=21, workers=1)
    return res.values("throughput"), res.values("lead_time")


def ciw_run(seed: int) -> tuple[float, float]:
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=LAM), None, None],
        service_distributions=[ciw.dists.Exponential(rate=m) for m in MU],
        number_of_servers=[1, 1, 1],
        queue_capacities=list(CAPACITY),
        routing=[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]],
    )
    ciw.seed(seed)  # Ciw keeps its own global stream; only this test uses it
    sim = ciw.Simulation(network)
    sim.simulate_until_max_time(HORIZON)
    records = sim.get_all_records()
    entered = {r.id_number: r.arrival_date for r in records if r.node == 1}
    done = [r for r in records if r.node == 3 and WARMUP < r.exit_date <= HORIZON]
    sojourn = [r.exit_date - entered[r.id_number] for r in done]
    return len(done) / (HORIZON - WARMUP), float(np.mean(sojourn))


def agree(a, b):
    """Welch's 95 % interval for the difference of the means contains 0."""
    ma, mb = np.mean(a), np.mean(b)
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    hw = stats.t.ppf(0.975, dof) * math.sqrt(va + vb)
    return abs(ma - mb) <= hw, f"{ma:.4f} vs {mb:.4f} (difference CI ± {hw:.4f})"


def test_tandem_line_with_blocking_agrees_with_ciw():
    tp_twin, lt_twin = twin_results()
    tp_ciw, lt_ciw = zip(*(ciw_run(100 + r) for r in range(REPS)), strict=True)
    ok_tp, msg_tp = agree(tp_twin, tp_ciw)
    ok_lt, msg_lt = agree(lt_twin, lt_ciw)
    assert ok_tp, f"throughput twin vs Ciw: {msg_tp}"
    assert ok_lt, f"sojourn time twin vs Ciw: {msg_lt}"
    # and blocking matters here: without it, throughput would be much closer to λ
    assert np.mean(tp_twin) < 0.97 * LAM
    # both CIs are reasonably tight, so the agreement is informative
    assert confidence_interval(lt_twin)[1] < 0.1 * np.mean(lt_twin)
