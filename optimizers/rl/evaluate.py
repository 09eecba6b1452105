"""Compare a saved policy with the env's baselines over the same episode seeds.

``evaluate("runs/x/model.zip", "twinopt/Dispatch-v0", episodes=20, seed=0)`` runs the policy
(deterministic; masked when the env has ``action_masks()``) and every baseline of
:mod:`optimizers.rl.baselines` on episodes seeded ``seed, seed+1, …``, and summarises each metric
(the episode return and the scalar numbers of the last ``info``, e.g. ``makespan``) as mean and
Student-t 95 % confidence half-width; ``paired`` holds the policy-minus-baseline mean difference
with its own t interval (same seeds, so the paired interval is the sharper one).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from optimizers.rl.baselines import baselines_for, run_episode
from optimizers.rl.train import load_model, make_env
from twins.errors import InputError

POLICY = "policy"


def mean_ci(values: list[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """(mean, half-width) of the Student-t confidence interval; half-width 0 for one value."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), 0.0
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(half)


@dataclass
class Evaluation:
    """Per-episode metrics of each contender (``"policy"`` and the baselines) and summaries."""

    env_id: str
    seeds: list[int]
    episodes: dict[str, list[dict[str, float]]]
    summary: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    paired: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    def table(self, metric: str = "return") -> str:
        """A plain-text table: contender, mean ± half-width (and the paired difference)."""
        lines = [f"{'contender':<12} {metric + ' (mean ± 95% CI)':>28} {'policy - contender':>24}"]
        for name, s in self.summary.items():
            m, h = s[metric]
            diff = self.paired.get(name, {}).get(metric)
            d = f"{diff[0]:+.4g} ± {diff[1]:.3g}" if diff else ""
            lines.append(f"{name:<12} {m:>18.4g} ± {h:<8.3g} {d:>24}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"env_id": self.env_id, "seeds": self.seeds,
                "summary": {n: {k: {"mean": m, "half_width": h} for k, (m, h) in s.items()}
                            for n, s in self.summary.items()},
                "paired": {n: {k: {"mean": m, "half_width": h} for k, (m, h) in s.items()}
                           for n, s in self.paired.items()},
                "episodes": self.episodes}


def policy_act(model, env):
    """``act(obs, info)`` of a saved model: deterministic, masked when the env provides masks."""
    from sb3_contrib import MaskablePPO

    masked = isinstance(model, MaskablePPO) and hasattr(env.unwrapped, "action_masks")

    def act(obs, info):
        if masked:
            return model.predict(obs, deterministic=True, action_masks=env.unwrapped.action_masks())[0]
        return model.predict(obs, deterministic=True)[0]
    return act


def evaluate(model_path: str | Path, env_id: str | None = None, episodes: int = 10, seed: int = 0,
             baselines: list[str] | None = None, env_kwargs: dict[str, Any] | None = None) -> Evaluation:
    """Evaluate a saved model against baselines on ``episodes`` common seeds.

    ``env_id`` and ``env_kwargs`` default to those the model was trained with; ``baselines``
    (names) defaults to all baselines registered for the env.
    """
    if episodes <= 0:
        raise InputError("number of episodes must be positive")
    model = load_model(model_path)
    cfg = getattr(model, "twinopt_config", {}) or {}
    env_id = env_id or cfg.get("env_id")
    if env_id is None:
        raise InputError(f"{model_path}: the model does not record its env; pass --env")
    if env_kwargs is None:
        env_kwargs = cfg.get("env_kwargs", {}) if cfg.get("env_id") == env_id else {}
    env = make_env(env_id, env_kwargs)
    if env.observation_space.shape != model.observation_space.shape:
        raise InputError(f"{model_path}: the model observes {model.observation_space.shape}, "
                         f"{env_id} gives {env.observation_space.shape}")
    available = baselines_for(env_id)
    chosen = list(available) if baselines is None else baselines
    unknown = [b for b in chosen if b not in available]
    if unknown:
        raise InputError(f"unknown baseline {unknown[0]!r} for {env_id}; choose from {', '.join(available)}")
    seeds = list(range(seed, seed + episodes))
    act = policy_act(model, env)
    results = {POLICY: [run_episode(env, s, act) for s in seeds]}
    for name in chosen:
        results[name] = [available[name](env, s) for s in seeds]
    env.close()
    ev = Evaluation(env_id, seeds, results)
    metrics = [k for k in results[POLICY][0] if all(k in r for rs in results.values() for r in rs)]
    for name, rows in results.items():
        ev.summary[name] = {k: mean_ci([r[k] for r in rows]) for k in metrics}
        if name != POLICY:
            ev.paired[name] = {k: mean_ci([p[k] - r[k] for p, r in zip(results[POLICY], rows, strict=True)])
                               for k in metrics}
    return ev


def comparison_figure(ev: Evaluation, metrics: list[str] | None = None):
    """Plotly bar chart: one panel per metric, mean with 95 % CI error bars per contender."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(ev.summary)
    metrics = metrics or [m for m in ("return", "makespan") if m in ev.summary[POLICY]] or ["return"]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    for i, metric in enumerate(metrics, start=1):
        means = [ev.summary[n][metric][0] for n in names]
        halves = [ev.summary[n][metric][1] for n in names]
        colors = ["#d62728" if n == POLICY else "#1f77b4" for n in names]
        fig.add_trace(go.Bar(x=names, y=means, error_y={"type": "data", "array": halves}, marker_color=colors,
                             showlegend=False, name=metric), row=1, col=i)
    fig.update_layout(title=f"{ev.env_id}: policy vs baselines over {len(ev.seeds)} common seeds (95 % CI)")
    return fig
