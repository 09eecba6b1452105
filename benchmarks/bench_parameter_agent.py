"""The shipped glue-dispensing agent against an exhaustive grid, both scored in the twin with CIs.

1. Exhaustive grid over the dispenser's pressure × speed × temperature (15 × 11 × 18 points: the
   rate-limit step of each parameter), each point the mean margin of ``--grid-reps`` replications
   of the 8 h shift under one seed (common random numbers).
2. The shipped policy (``optimizers/rl/policies/glue_dispensing.zip``, trained as its
   ``glue_dispensing.json`` records) runs greedy episodes of ``twinopt/Parameter-v0`` from the
   scenario's default setpoints; its setpoints over the last quarter of the episode (median,
   then median over ``--episodes`` seeds) are the agent's recipe.
3. The grid's best point, the agent's recipe and the default recipe are replayed with
   ``--reps`` fresh replications (another seed, paired): margin mean ± 95 % half width.

Prints the ratio agent / grid-best as its last line; the target is ≥ 0.98 (within 2 %). Also
reports the cost of each: grid evaluations and seconds, and the agent's training steps and
seconds (from the policy's config.json), plus its inference time.

    python benchmarks/bench_parameter_agent.py [--grid-reps 3] [--reps 30] [--episodes 5]

Many parameters (issue 14): ``--scenario foaming_line --policy runs/foam/model.zip --recommendation
foam_rec.json`` skips the grid (208 parameters) and replays today's setpoints, the agent's recipe
and a search's recommendation (``twinopt optimize foaming_line --sampler screen --json …``) instead.
"""
from __future__ import annotations

import argparse
import json
import time
from importlib.resources import files
from pathlib import Path

import numpy as np

import envs  # noqa: F401  (registers twinopt/*)
from envs.parameter import ParameterEnv
from optimizers.grid import grid_search
from optimizers.rl.train import load_model
from optimizers.setpoints import with_setpoints
from twins.loader import load_scenario
from twins.stats import compare

POLICY = Path(str(files("optimizers.rl") / "policies" / "glue_dispensing.zip"))
GRID = {"dispenser.pressure_bar": 15, "dispenser.speed_mm_s": 11, "dispenser.temperature_c": 18}


def agent_setpoints(policy: Path, episodes: int, env_kwargs: dict) -> tuple[dict, float]:
    """The agent's recipe: median setpoints over the last quarter of greedy episodes started from
    today's recipe (median over episodes), and the seconds per episode."""
    model = load_model(policy)
    kwargs = {k: v for k, v in env_kwargs.items() if k != "random_start"}  # start from today's recipe
    kwargs.setdefault("scenario", "glue_dispensing")
    env = ParameterEnv(**kwargs)
    finals = []
    started = time.perf_counter()
    for seed in range(episodes):
        obs, _ = env.reset(seed=1000 + seed)
        for _ in range(env.episode_steps):
            action, _ = model.predict(obs, deterministic=True)
            obs, _, _, _, info = env.step(action)
        last = [h["setpoints"] for h in env.history[-max(1, env.episode_steps // 4):]]
        finals.append(np.median(last, axis=0))
    seconds = time.perf_counter() - started
    med = np.median(np.array(finals), axis=0)
    setpoints: dict[str, dict[str, float]] = {}
    for (station, p), v in zip(env.params, med, strict=True):
        setpoints.setdefault(station, {})[p.name] = float(np.clip(v, p.min, p.max))
    return setpoints, seconds / episodes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid-reps", type=int, default=3)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--policy", default=str(POLICY))
    ap.add_argument("--scenario", default="glue_dispensing", help="foaming_line: no grid, see --recommendation")
    ap.add_argument("--recommendation", default=None, metavar="JSON", help="a search's recommendation to replay")
    args = ap.parse_args()
    if args.scenario != "glue_dispensing":
        many_parameters(args)
        return

    scenario = load_scenario("glue_dispensing")
    grid = grid_search(scenario, GRID, replications=args.grid_reps, seed=0, workers=args.workers, progress=True)
    cfg_path = Path(args.policy).with_suffix(".json")
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    agent, infer_s = agent_setpoints(Path(args.policy), args.episodes, cfg.get("call", {}).get("env_kwargs", {}))

    best = with_setpoints(scenario, grid.best_setpoints)
    mine = with_setpoints(scenario, agent)
    g_vs_a = compare(best, mine, args.reps, seed=12345, workers=args.workers)
    d_vs_a = compare(scenario, mine, args.reps, seed=12345, workers=args.workers)
    mg, hg = g_vs_a.a.ci("margin")
    ma, ha = g_vs_a.b.ci("margin")
    md, hd = d_vs_a.a.ci("margin")
    diff, hdiff, p = g_vs_a.diff("margin")

    def fmt(sp):
        return ", ".join(f"{k}={v:.3g}" for st in sp.values() for k, v in st.items())

    print(f"grid: {' × '.join(str(len(a)) for a in grid.axes)} = {grid.evaluations} points × {args.grid_reps} "
          f"replications, {grid.seconds:.0f} s ({grid.seconds_per_evaluation * 1000:.0f} ms per point)")
    print(f"grid best      : {fmt(grid.best_setpoints)}")
    print(f"agent          : {fmt(agent)}  (greedy, last quarter of {args.episodes} episodes, "
          f"{infer_s * 1000:.0f} ms per episode)")
    if cfg:
        call = cfg.get("call", {})
        print(f"agent training : {call.get('algo')} {call.get('timesteps')} env steps "
              f"(= decision intervals simulated), {cfg.get('wall_seconds')} s: {cfg.get('command')}")
    print(f"replay, {args.reps} paired replications (margin per 8 h shift, EUR, 95 % CI):")
    print(f"  default setpoints : {md:9.1f} ± {hd:.1f}")
    print(f"  grid best         : {mg:9.1f} ± {hg:.1f}")
    print(f"  agent             : {ma:9.1f} ± {ha:.1f}")
    print(f"  agent − grid best : {diff:+9.1f} ± {hdiff:.1f} (paired, p = {p:.3g})")
    print(f"ratio agent/grid: {ma / mg:.4f}")


def many_parameters(args: argparse.Namespace) -> None:
    """The agent against a search's recommendation on a scenario too large for a grid."""
    from optimizers.recommendation import Recommendation

    scenario = load_scenario(args.scenario)
    cfg_path = Path(args.policy).parent / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    kwargs = {**cfg.get("call", {}).get("env_kwargs", {}), "scenario": args.scenario}
    agent, infer_s = agent_setpoints(Path(args.policy), args.episodes, kwargs)
    rows = [("today's setpoints", scenario), ("agent", with_setpoints(scenario, agent))]
    if args.recommendation:
        rec = Recommendation.from_json(Path(args.recommendation).read_text())
        rows.append((f"search ({rec.provenance.method}, {rec.provenance.extra.get('evaluations')} trials)",
                     with_setpoints(scenario, rec.payload)))
    print(f"agent: greedy, last quarter of {args.episodes} episodes, {infer_s * 1000:.0f} ms per episode"
          + (f"; trained by: {cfg.get('command')}" if cfg else ""))
    print(f"replay, {args.reps} paired replications (margin per window, EUR, 95 % CI):")
    values = {}
    for label, sc in rows:
        res = compare(scenario, sc, args.reps, seed=12345, workers=args.workers)
        values[label] = res.b.ci("margin")
        print(f"  {label:<40}: {values[label][0]:9.1f} ± {values[label][1]:.1f}")
    if args.recommendation:
        search = values[rows[-1][0]][0]
        print(f"ratio agent/search: {values['agent'][0] / search:.4f}")


if __name__ == "__main__":
    main()
