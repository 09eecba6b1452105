"""Regret of setpoints recommended on learned process models, against the process that made the data.

The "plant" is glue_dispensing.yaml's own response expressions; scenarios/glue_recipes.csv holds
300 noisy recipe lots of it (benchmarks/make_glue_recipes.py). For each process model — the
quadratic least-squares surface (twinopt's older `fit: quadratic`) and the learned `gp`, `gbm`
and `mlp_ensemble` — a TPE search recommends setpoints on the model's twin; those setpoints are
then run in the *true* twin and compared with the true optimum (the best of a longer TPE run on
the true twin, checked against its replay). Regret = true optimum's margin − the recommendation's
true margin, both replayed with the same replications and seed (common random numbers). One
simulated hour per replication after the warm-up keeps it quick.

With ``--agent runs/X/model.zip`` (a PPO agent trained on ``twinopt/Parameter-v0`` over the
learned glue cell, e.g. as runs/X/config.json records) the agent's recipe — median setpoints over
the last quarter of greedy episodes from today's recipe — is replayed in the true twin the same way.

    python benchmarks/bench_process_models.py [--budget 40] [--reference-budget 120] [--seeds 3]
                                              [--agent runs/glue_data_ppo/model.zip] [--models gp,gbm]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import optuna

from optimizers.search import parameter_search
from optimizers.setpoints import Evaluator
from twins.errors import ScenarioError
from twins.loader import load_scenario, parse_yaml, scenario_from_data
from twins.shipped import scenario_path

HORIZON = ["horizon.length=3900"]  # 5 min warm-up + 1 simulated hour
OUTPUTS = {"cycle_time_factor": "ct_factor", "yield": "yield", "power_kw": "power_kw"}


def model_scenario(kind: str):
    path = scenario_path("glue_dispensing_data")
    data = parse_yaml(path.read_text())[0]
    st = next(s for s in data["stations"] if s["name"] == "dispenser")
    if kind == "quadratic":
        st["response"] = {k: {"fit": "quadratic", "data": "glue_recipes.csv", "target": col}
                          for k, col in OUTPUTS.items()}
    else:
        st["response"]["model"] = kind
    data["horizon"]["length"] = 3900
    return scenario_from_data(data, str(path))


def true_margin(truth, setpoints, replications: int, seed: int) -> float:
    with Evaluator(truth, "margin", replications, seed) as ev:
        return float(ev({"dispenser": setpoints}).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--reference-budget", type=int, default=120)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--replications", type=int, default=3)
    ap.add_argument("--models", default="quadratic,gp,gbm,mlp_ensemble", help="process models to compare")
    ap.add_argument("--agent", default=None, metavar="MODEL", help="also replay this Parameter-v0 agent's recipe")
    ap.add_argument("--episodes", type=int, default=5, help="the agent's greedy episodes")
    opts = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    truth = load_scenario("glue_dispensing", HORIZON)
    t0 = time.perf_counter()
    ref = parameter_search(truth, budget=opts.reference_budget, replications=opts.replications, seed=99, top_k=3,
                           final_replications=6)
    best_sp = ref.recommendation.payload["dispenser"]
    reps, seed = 10, 12345
    optimum = true_margin(truth, best_sp, reps, seed)
    print(f"true optimum (TPE, {opts.reference_budget} trials on the true twin, {time.perf_counter() - t0:.0f} s): "
          f"margin {optimum:.1f} at " + ", ".join(f"{k}={v:.3g}" for k, v in best_sp.items()))
    print(f"each model: TPE with {opts.budget} trials x {opts.replications} replications on the model's twin, "
          f"{opts.seeds} seeds; its recommendation replayed in the true twin ({reps} replications, CRN)")
    for kind in opts.models.split(","):
        t = time.perf_counter()
        try:
            sc = model_scenario(kind)
        except ScenarioError as err:  # the twin refuses a model that leaves a response's valid range
            print(f"  {kind:13s} not usable: {err.msg}")
            continue
        fit_s = time.perf_counter() - t
        regrets, infeasible = [], 0
        for s in range(opts.seeds):
            res = parameter_search(sc, budget=opts.budget, replications=opts.replications, seed=s, top_k=3,
                                   final_replications=4)
            infeasible += sum(t.value != t.value for t in res.trials)  # NaN: refused outside the data
            regrets.append(optimum - true_margin(truth, res.recommendation.payload["dispenser"], reps, seed))
        print(f"  {kind:13s} regret mean {statistics.mean(regrets):7.1f} (each: "
              f"{', '.join(f'{r:.1f}' for r in regrets)}) = {statistics.mean(regrets) / optimum:.1%} of the optimum; "
              f"fit {fit_s:.1f} s; {infeasible} of {opts.seeds * opts.budget} trials refused outside the data")
    if opts.agent:
        replay_agent(Path(opts.agent), opts.episodes, truth, optimum, reps, seed)


def replay_agent(policy: Path, episodes: int, truth, optimum: float, reps: int, seed: int) -> None:
    """The trained agent's recipe on the true twin: regret like the searches' above."""
    from bench_parameter_agent import agent_setpoints

    config = policy.parent / "config.json"
    call = json.loads(config.read_text()).get("call", {}) if config.exists() else {}
    agent, per_episode = agent_setpoints(policy, episodes, call.get("env_kwargs", {}))
    regret = optimum - true_margin(truth, agent["dispenser"], reps, seed)
    trained = (f"{call.get('algo')} {call.get('timesteps')} env steps" if call else "training unknown")
    print(f"  PPO agent     regret {regret:7.1f} = {regret / optimum:.1%} of the optimum at "
          + ", ".join(f"{k}={v:.3g}" for k, v in agent["dispenser"].items())
          + f" ({trained}; {episodes} greedy episodes, {per_episode:.1f} s each)")


if __name__ == "__main__":
    main()
