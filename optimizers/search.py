"""Simulation-based parameter search: optuna over a scenario's process parameters, scored in the twin.

Every trial sets the searched setpoints (within their ``[min, max]`` bounds), runs ``R``
replications of the scenario and scores the mean of one line KPI (default ``margin``,
maximized). All trials use the *same* master seed, so replication r of every trial draws the same
random numbers (common random numbers, CRN): two trials differ only through their setpoints, which
makes their comparison far sharper than their individual confidence intervals suggest.

The final choice is noise-aware. The ``top_k`` best distinct trials and the as-is setpoints are
re-simulated with ``final_replications`` *fresh* replications (a different master seed, shared by
all of them, so the comparison stays paired but the winner's curse of the search seeds is gone);
the recommendation is the finalist with the highest lower 95 % confidence bound of its paired
improvement over the as-is setpoints, and its KPIs are those replays.

    result = parameter_search(load_scenario("glue_dispensing"), budget=60, seed=1)
    result.recommendation.payload   # {"dispenser": {"pressure_bar": …, "speed_mm_s": …, …}}

Trial 0 is the as-is operating point (``warm_start``). Samplers: ``tpe`` (optuna's multivariate
TPE), ``cmaes`` (optuna's CMA-ES; with a single parameter optuna falls back to random sampling),
``gp`` (optuna's Gaussian-process Bayesian optimization, logEI), ``random`` (uniform random search,
the baseline) and ``screen`` for many parameters: first a one-at-a-time screening from the as-is
setpoints (:mod:`optimizers.screening`, at most ``d + 1`` evaluations of the budget, plus one per
group of 8 above 40 parameters), then ``gp`` over the parameters it kept — above 40 parameters
within a trust region of ± :data:`LOCAL_BOX` (10 %) of each range around today's setpoints — every
other parameter held at today's value. Local on purpose: on the foaming line's narrow windows the GP and TPE over the
kept parameters' whole ranges found nothing better than today's recipe in 90 trials, CMA-ES from
today's setpoints (σ0 = 5 %) +11 % and the GP in the ±10 % box +16 % in 90 and +19 % in 180
trials; the price is that the search cannot leave the box. The recommendation's
``provenance.extra["screening"]`` records the design, the rule, the effects and what was kept.
Everything is seeded: same arguments ⇒ same trials and the same recommendation, whatever the
number of worker processes. :mod:`optimizers.grid` holds the exhaustive grid search,
:mod:`optimizers.setpoints` the search space and the CRN evaluator both use.

Cost: a trial costs ``R`` replications of the scenario's own horizon. The defaults (R = 5, the
final 6 × 20) keep the glue cell in seconds to minutes: one 8 h shift replication is about 30 ms,
so a trial is about 0.15 s and 60 trials plus the final choice take about 15 s on one core. CRN
is what lets R stay small: trials are compared on the same random numbers. Shortening the
horizon instead would under-sample the 4 h nozzle-clog and 2 h purge cycles and bias the margin.
"""
from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import optuna

from optimizers.model_guided import ModelOptimum, optimize_model
from optimizers.recommendation import Provenance, Recommendation
from optimizers.screening import (
    EVALUATIONS_PER_KEPT,
    KEEP_FRACTION,
    STEP,
    Screening,
    ScreeningPoint,
    most_evaluations,
    screen,
)
from optimizers.sensitivity import local_sensitivity
from optimizers.setpoints import (
    MAX_SEED,
    Dimension,
    Evaluator,
    Setpoints,
    check_objective,
    current_setpoints,
    search_space,
)
from twins.errors import InputError, check_replications, check_seed
from twins.jsonsafe import finite_or_none
from twins.progress import bar as progress_bar
from twins.spec import Scenario
from twins.stats import Comparison, confidence_interval

SAMPLERS = ("tpe", "cmaes", "gp", "random", "screen", "model")
METHOD = {"tpe": "optuna-tpe", "cmaes": "optuna-cmaes", "gp": "optuna-gp", "random": "random-search",
          "screen": "screening+optuna-gp-local", "model": "rough-cut-model+optuna-gp-local"}
#: ``screen``: half width of the trust region around today's setpoints, a share of each range
LOCAL_BOX = 0.10
#: ``model``: half width of the trust region around the rough-cut model's optimum, a share of each range
MODEL_BOX = 0.05
#: Line KPIs for which more is better; for every other KPI minimizing is the natural direction.
MAXIMIZED_KPIS = ("margin", "throughput", "good_units", "orders_completed")
Direction = Literal["maximize", "minimize"]


@dataclass
class TrialRecord:
    """One search trial: setpoints, objective per replication and their mean (NaN = undefined)."""

    number: int
    setpoints: Setpoints
    values: tuple[float, ...]
    value: float


@dataclass
class Finalist:
    """A finalist re-simulated with fresh replications: its objective and its paired improvement
    over the as-is setpoints (positive = better, whatever the direction), with 95 % half widths."""

    trial: int | None
    setpoints: Setpoints
    mean: float
    half_width: float
    improvement: float
    improvement_half_width: float

    @property
    def lower_bound(self) -> float:
        """Lower 95 % confidence bound of the improvement (the choice criterion)."""
        hw = 0.0 if math.isnan(self.improvement_half_width) else self.improvement_half_width
        return self.improvement - hw


@dataclass
class SearchResult:
    recommendation: Recommendation
    study: optuna.Study
    space: list[Dimension]
    trials: list[TrialRecord]
    finalists: list[Finalist]
    chosen: Finalist
    objective: str
    direction: Direction
    seconds: float
    unit: str = ""
    screening: Screening | None = None  # sampler "screen": what the screening found (space = its kept ones)
    model: ModelOptimum | None = None  # sampler "model": the rough-cut model's optimum

    def best_so_far(self) -> np.ndarray:
        """Best trial value after each evaluation (NaN until the first valid one)."""
        sign = 1.0 if self.direction == "maximize" else -1.0
        best, out = -math.inf, []
        for t in self.trials:
            if not math.isnan(t.value):
                best = max(best, sign * t.value)
            out.append(sign * best if best > -math.inf else math.nan)
        return np.asarray(out)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """A seeded optuna sampler with optuna's defaults: ``tpe`` (multivariate since optuna 5, 10
    random start-up trials), ``cmaes`` (starts at the centre of the box with σ0 = 1/6 of each
    range; a single parameter falls back to random sampling), ``gp`` (Matérn-5/2 Gaussian process,
    log expected improvement, 10 random start-up trials) or ``random``. (``screen`` is a search of its
    own, :func:`parameter_search`.)"""
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise InputError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def _setpoints(space: Sequence[Dimension], params: Mapping[str, float], fixed: Setpoints | None = None) -> Setpoints:
    """The trial's setpoints: ``params`` for ``space``, ``fixed`` for the parameters held still."""
    out: Setpoints = {st: dict(vals) for st, vals in (fixed or {}).items()}
    for d in space:
        out.setdefault(d.station, {})[d.name] = float(params[d.key])
    return out


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size and not np.isnan(values).any() else math.nan


def parameter_search(scenario: Scenario, *, budget: int = 60, sampler: str = "tpe", objective: str = "margin",
                     direction: Direction = "maximize", params: Sequence[str] | None = None,
                     replications: int = 5, seed: int = 0, top_k: int = 5, final_replications: int = 20,
                     workers: int = 1, progress: bool = False, sim_seed: int | None = None,
                     warm_start: bool = True, sensitivity_step: float | None = 0.05, screen_step: float = STEP,
                     screen_keep_fraction: float = KEEP_FRACTION, screen_max_keep: int | None = None,
                     screen_box: float | None | Literal["auto"] = "auto", model_box: float = MODEL_BOX,
                     executor: Executor | None = None) -> SearchResult:
    """Search the scenario's process parameters for the best ``objective``; see the module docstring.

    Args:
        scenario: the line; its current setpoints are the as-is baseline.
        budget: trials (setpoint evaluations), ≥ 1; with ``screen`` the screening's evaluations
            are part of it (a budget above their worst case,
            :func:`optimizers.screening.most_evaluations`).
        sampler: ``tpe``, ``cmaes``, ``gp``, ``random`` or ``screen``.
        objective: a line KPI (``margin`` in money per replication window, ``throughput`` …).
        direction: ``maximize`` or ``minimize`` the objective.
        params: ``station.parameter`` names to search; default all parameters of all stations.
        replications: replications per trial (same seeds for every trial: CRN).
        seed: seed of the sampler, and master seed of the twin unless ``sim_seed`` is given.
        top_k: distinct best trials re-simulated for the final choice.
        final_replications: replications of each finalist and of the baseline (≥ 2, for CIs).
        workers: worker processes for the replications (1 = this process); same numbers either way.
        executor: where the replications run instead (:mod:`twins.executors`, e.g. Ray); same numbers.
        progress: show progress bars.
        sim_seed: master seed of the trial replications (default ``seed``); the final replays use
            ``sim_seed + 1``. Fixing it while varying ``seed`` keeps one objective function for
            several sampler seeds (benchmarks).
        warm_start: trial 0 evaluates the as-is setpoints (one trial of the budget). On a narrow
            good region — the glue cell's bead ridge — it gives the samplers a foothold there, and
            the best trial is never worse than what runs today.
        sensitivity_step: the recommendation's ``provenance.extra["sensitivity"]`` holds the
            objective's slopes around the recommended point, each parameter moved ± this fraction
            of its range (:func:`optimizers.sensitivity.local_sensitivity`, ``replications`` fresh
            replications under the final seed, (2d + 1) × ``replications`` runs); None skips it.
        screen_step, screen_keep_fraction, screen_max_keep: the screening's step (share of each
            range), keep threshold (share of the largest effect) and cap on kept parameters
            (default one per 8 evaluations left after the screening, at least 2); see
            :mod:`optimizers.screening`; ``screen_box``: the trust region's half width around today's
            setpoints (share of each range), None = the kept parameters' whole ranges, ``"auto"``
            (default): :data:`LOCAL_BOX` after a group screening (more than 40 parameters), the
            whole ranges otherwise (the glue cell's optimum lies a third of the speed range away
            from today's setpoints). Only with ``sampler="screen"``.
        model_box: with ``sampler="model"``, the half width (share of each range) of the trust
            region around the rough-cut model's optimum that the GP searches after the twin has
            scored today's setpoints (if ``warm_start``) and the model's optimum.
    """
    sim_seed = seed if sim_seed is None else sim_seed
    space = search_space(scenario, params)
    _check_arguments(budget, sampler, direction, top_k, sensitivity_step, (seed, sim_seed), final_replications,
                     len(space))
    sign = 1.0 if direction == "maximize" else -1.0
    started = time.perf_counter()
    first = "random" if sampler in ("screen", "model") else sampler  # both switch to gp after their own start
    study = optuna.create_study(direction=direction, sampler=make_sampler(first, seed))
    trials: list[TrialRecord] = []
    excluded: set[int] = set()  # screening points that moved a parameter the search holds still
    screening: Screening | None = None
    # before any twin run, so that an objective the model lacks fails at once
    model = optimize_model(scenario, space, objective, direction == "maximize", seed,
                           model_box) if sampler == "model" else None
    fixed: Setpoints = {}  # parameters the search holds at other values than today's (model: at its optimum)
    with Evaluator(scenario, objective, replications, sim_seed, workers, executor) as evaluate:
        bar = progress_bar(total=budget, desc=f"{scenario.name}: {METHOD[sampler]}", unit="trial",
                           disable=None if progress else True)  # None: only on a terminal
        try:
            if sampler == "screen":
                screening = _screen(evaluate, space, trials, excluded, sign, budget, bar, screen_step,
                                    screen_keep_fraction, screen_max_keep, seed)
                box = (LOCAL_BOX if screening.groups else None) if screen_box == "auto" else screen_box
                space = screening.kept if box is None else local_box(screening.kept, box)
                _give_known_points(study, screening, space)
                study.sampler = make_sampler("gp", seed)
            elif model is not None:
                space, fixed = _model_box(space, model, model_box, trials, evaluate, warm_start, bar, budget,
                                          screen_keep_fraction, screen_max_keep)
                study.sampler = make_sampler("gp", seed)
                _tell_known(study, space, trials)
            elif warm_start:
                study.enqueue_trial({d.key: d.current for d in space})
            dists: dict[str, optuna.distributions.BaseDistribution] = {
                d.key: optuna.distributions.FloatDistribution(d.low, d.high) for d in space}
            for _ in range(budget - len(trials)):
                trial = study.ask(dists)
                sp = _setpoints(space, trial.params, fixed)
                values = evaluate(sp)
                value = _mean(values)
                trials.append(TrialRecord(len(trials), sp, tuple(float(v) for v in values), value))
                if math.isnan(value):  # the KPI is undefined here (e.g. per-unit KPI with no output)
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, value)
                bar.update()
                if study.best_trials:
                    bar.set_postfix_str(f"best {objective} {study.best_value:.5g}")
        finally:
            bar.close()
        search_seconds = time.perf_counter() - started
        ranked = sorted((t for t in trials if not math.isnan(t.value) and t.number not in excluded),
                        key=lambda t: (-sign * t.value, t.number))
        if not ranked:
            raise InputError(f"{objective} is undefined (NaN) at every trial; choose another objective")
        distinct: list[TrialRecord] = []
        for t in ranked:
            if all(t.setpoints != u.setpoints for u in distinct):
                distinct.append(t)
            if len(distinct) == top_k:
                break
        finalists, chosen, comparison = _final_choice(evaluate, space, distinct, final_replications,
                                                      sim_seed + 1, sign, progress)
        simulated = evaluate.simulated
        sensitivity = None if sensitivity_step is None else local_sensitivity(
            scenario, chosen.setpoints, kpi=objective, params=[d.key for d in space], step=sensitivity_step,
            replications=replications, seed=sim_seed + 1, executor=evaluate.pool)
    seconds = time.perf_counter() - started
    best = ranked[0]
    provenance = Provenance(
        method=METHOD[sampler], seed=seed, wall_time_s=round(seconds, 3),
        budget={"trials": budget, "replications_per_trial": replications, "top_k": top_k,
                "final_replications": final_replications},
        extra={
            "objective": objective, "direction": direction, "parameters": [d.key for d in space],
            "evaluations": len(trials), "replications_simulated": simulated, "warm_start": warm_start,
            "horizon": scenario.horizon.length, "warmup": scenario.horizon.warmup, "time_unit": scenario.time_unit,
            "seconds_per_evaluation": round(search_seconds / len(trials), 4),
            "sim_seed": sim_seed, "final_seed": sim_seed + 1,
            "choice": "highest lower 95 % bound of the paired improvement over as-is",
            "significant": chosen.lower_bound > 0,
            "best_trial": {"number": best.number, "setpoints": best.setpoints, "value": best.value},
            "chosen_trial": chosen.trial,
            "finalists": [{"trial": f.trial, "setpoints": f.setpoints, "mean": finite_or_none(f.mean),
                           "half_width": finite_or_none(f.half_width), "improvement": finite_or_none(f.improvement),
                           "improvement_half_width": finite_or_none(f.improvement_half_width)} for f in finalists],
        })
    if sensitivity is not None:
        provenance.extra["sensitivity"] = sensitivity
    if screening is not None:
        provenance.extra["screening"] = screening.summary()
    if model is not None:
        provenance.extra["model"] = model.summary() | {"box": model_box}
    rec = Recommendation.from_comparison("setpoints", chosen.setpoints, comparison, provenance, scenario=scenario)
    return SearchResult(rec, study, space, trials, finalists, chosen, objective, direction, seconds,
                        check_objective(scenario, objective), screening, model)


def local_box(space: Sequence[Dimension], half_width: float = LOCAL_BOX) -> list[Dimension]:
    """``space`` narrowed to today's setpoint ± ``half_width`` × its range (within its bounds)."""
    return [dataclasses.replace(d, low=max(d.low, d.current - half_width * (d.high - d.low)),
                                high=min(d.high, d.current + half_width * (d.high - d.low))) for d in space]


def _model_box(space: list[Dimension], model: ModelOptimum, half_width: float, trials: list[TrialRecord],
               evaluate: Evaluator, warm_start: bool, bar, budget: int, keep_fraction: float,
               max_keep: int | None) -> tuple[list[Dimension], Setpoints]:
    """Score today's setpoints (``warm_start``) and the model's optimum in the twin, then return
    what the GP searches — the parameters that move the model's objective in the trust region (the
    model's optimum ± ``half_width`` of each range; the screening's keep rule) — and the others'
    values: the model's optimum."""
    todo = ([current_setpoints(space)] if warm_start else []) + [model.setpoints]
    for sp in todo:
        if len(trials) == budget:
            break
        values = evaluate(sp)
        trials.append(TrialRecord(len(trials), sp, tuple(float(v) for v in values), _mean(values)))
        bar.update()
    cap = max_keep if max_keep is not None else max(2, (budget - len(trials)) // EVALUATIONS_PER_KEPT)
    kept = model.kept(space, keep_fraction, cap)
    centre = [dataclasses.replace(d, current=model.setpoints[d.station][d.name]) for d in kept]
    box = [dataclasses.replace(d, current=orig.current) for d, orig in
           zip(local_box(centre, half_width), kept, strict=True)]
    names = {d.key for d in kept}
    fixed: Setpoints = {}
    for d in space:
        if d.key not in names:
            fixed.setdefault(d.station, {})[d.name] = model.setpoints[d.station][d.name]
    return box, fixed


def _tell_known(study: optuna.Study, space: Sequence[Dimension], trials: Sequence[TrialRecord]) -> None:
    """``trials`` (already scored in the twin) that lie in ``space`` become completed trials of ``study``."""
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        d.key: optuna.distributions.FloatDistribution(d.low, d.high) for d in space}
    for trial in trials:
        params = {d.key: trial.setpoints[d.station][d.name] for d in space}
        if not math.isnan(trial.value) and all(d.low <= params[d.key] <= d.high for d in space):
            study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=trial.value))


def _give_known_points(study: optuna.Study, screening: Screening, space: Sequence[Dimension]) -> None:
    """Screening points the search would have proposed itself (they moved kept parameters only,
    within ``space``) become completed trials of ``study``: the GP starts from them."""
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        d.key: optuna.distributions.FloatDistribution(d.low, d.high) for d in space}
    kept = {d.key for d in space}
    for p in screening.points:
        if not set(p.moved) <= kept or math.isnan(p.value):
            continue
        params = {d.key: p.setpoints[d.station][d.name] for d in space}
        if all(d.low <= params[d.key] <= d.high for d in space):
            study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=p.value))


def _check_arguments(budget: int, sampler: str, direction: str, top_k: int, sensitivity_step: float | None,
                     seeds: Sequence[int], final_replications: int, dimensions: int) -> None:
    """:class:`InputError` for the first argument of :func:`parameter_search` that cannot work."""
    if budget < 1:
        raise InputError(f"budget must be at least 1 trial, got {budget}")
    if sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if sampler == "screen" and budget < most_evaluations(dimensions) + 1:
        most = most_evaluations(dimensions)
        raise InputError(f"screening {dimensions} parameters costs up to {most} evaluations before the search: "
                         f"give a budget of at least {most + 1}, got {budget}")
    if direction not in ("maximize", "minimize"):
        raise InputError(f"direction must be maximize or minimize, got {direction!r}")
    if top_k < 1:
        raise InputError(f"top_k must be ≥ 1, got {top_k}")
    if sensitivity_step is not None and not 0 < sensitivity_step <= 0.5:
        raise InputError(f"sensitivity step must be in (0, 0.5] of a parameter's range, got {sensitivity_step}")
    for s in seeds:
        check_seed(s, MAX_SEED)
    check_replications(final_replications, 2, "final replications")


def _screen(evaluate: Evaluator, space: list[Dimension], trials: list[TrialRecord],
            excluded: set[int], sign: float, budget: int, bar, step: float, keep_fraction: float,
            max_keep: int | None, seed: int) -> Screening:
    """Run the screening (its evaluations appended to ``trials``); the records of points in the kept
    parameters' subspace (the as-is point, single moves of a kept one) are projected onto the
    kept parameters, the others are excluded from the final choice."""
    def record(p: ScreeningPoint) -> None:
        trials.append(TrialRecord(len(trials), p.setpoints, p.values, p.value))
        bar.update()

    result = screen(evaluate, space, sign=sign, step=step, keep_fraction=keep_fraction, max_keep=max_keep,
                    budget=budget, seed=seed, on_point=record)
    kept = {d.key for d in result.kept}
    for i, p in enumerate(result.points):
        t = trials[-len(result.points) + i]
        if not set(p.moved) <= kept:
            excluded.add(t.number)
            continue
        t.setpoints = {st: {k: v for k, v in vals.items() if f"{st}.{k}" in kept}
                       for st, vals in p.setpoints.items()}
        t.setpoints = {st: vals for st, vals in t.setpoints.items() if vals}
    return result


def _final_choice(evaluate: Evaluator, space: Sequence[Dimension], candidates: Sequence[TrialRecord],
                  replications: int, seed: int, sign: float, progress: bool
                  ) -> tuple[list[Finalist], Finalist, Comparison]:
    """Re-simulate the baseline and the candidates with fresh, shared seeds; pick the highest
    lower confidence bound of the paired improvement."""
    base_sp = current_setpoints(space)
    bar = progress_bar(total=len(candidates) + 1, desc="final choice", unit="candidate",
                       disable=None if progress else True, leave=False)
    try:
        base = evaluate.results(base_sp, replications, seed)
        bar.update()
        xb = base.values(evaluate.objective)
        finalists, runs = [], []
        for t in candidates:
            res = evaluate.results(t.setpoints, replications, seed)
            x = res.values(evaluate.objective)
            mean, hw = confidence_interval(x)
            imp, imp_hw = confidence_interval(sign * (x - xb))
            finalists.append(Finalist(t.number, t.setpoints, mean, hw, imp, imp_hw))
            runs.append(res)
            bar.update()
    finally:
        bar.close()
    valid = [i for i, f in enumerate(finalists) if not math.isnan(f.improvement)]
    if not valid:
        raise InputError(f"{evaluate.objective} is undefined (NaN) in the final replays; choose another objective")
    i = max(valid, key=lambda i: (finalists[i].lower_bound, -i))
    return finalists, finalists[i], Comparison(base, runs[i])


# -- charts -------------------------------------------------------------------------------------
def figures(result: SearchResult) -> list:
    """Plotly figures: optimization history, parameter importance (PED-ANOVA), the final choice."""
    import plotly.graph_objects as go

    label = f"{result.objective} ({result.unit})" if result.unit else result.objective
    n = [t.number for t in result.trials]
    history = go.Figure()
    history.add_scatter(x=n, y=[t.value for t in result.trials], mode="markers", name="trial (mean of replications)",
                        marker=dict(size=6, color="#7f7f7f"))
    history.add_scatter(x=n, y=result.best_so_far(), mode="lines", name="best so far", line=dict(color="#1f77b4"))
    if result.chosen.trial is not None:
        t = next(t for t in result.trials if t.number == result.chosen.trial)
        history.add_scatter(x=[t.number], y=[t.value], mode="markers", name="recommended",
                            marker=dict(size=13, symbol="star", color="#d62728"))
    history.update_layout(title=f"Optimization history — {result.recommendation.provenance.method}, "
                                f"{result.direction} {result.objective}",
                          xaxis_title="trial", yaxis_title=label, legend_orientation="h")

    importance = go.Figure()
    completed = len(result.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if completed >= 2:
        # PED-ANOVA compares the top 10 % of trials with all of them; with fewer than two trials those
        # are the same set and optuna only warns and returns equal importances, which say nothing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(
                result.study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
        names = list(imp)[::-1]
        importance.add_bar(x=[imp[k] for k in names], y=names, orientation="h", marker_color="#2ca02c")
        title = "Parameter importance (PED-ANOVA: how much each parameter sets the top 10 % of trials apart)"
    else:
        title = f"Parameter importance: not available (needs 2 completed trials, got {completed})"
    importance.update_layout(title=title, xaxis=dict(title="importance", tickformat=".0%"),
                             height=220 + 40 * len(result.space))

    final = go.Figure()
    labels = [f"trial {f.trial}" for f in result.finalists]
    final.add_bar(x=labels, y=[f.improvement for f in result.finalists],
                  error_y=dict(type="data", array=[0 if math.isnan(f.improvement_half_width) else
                                                   f.improvement_half_width for f in result.finalists]),
                  marker_color=["#d62728" if f is result.chosen else "#9edae5" for f in result.finalists])
    final.update_layout(title="Final choice: paired improvement over the as-is setpoints (fresh replications, "
                              "95 % CI; red = recommended, highest lower bound)",
                        yaxis_title=f"improvement in {label}")
    return [history, importance, final]


def write_html(result: SearchResult, path: str) -> None:
    """One self-contained HTML page with :func:`figures` (plotly.js inlined once)."""
    from pathlib import Path

    figs = figures(result)
    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
    rec = result.recommendation
    title = f"{rec.scenario}: parameter search ({rec.provenance.method})"
    Path(path).write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
                          f"<body style='font-family:sans-serif'><h2>{title}</h2>{''.join(parts)}</body></html>\n")
