"""Dispatching rules for the job shop: small functions registered by name, run through the same
engines as ``twinopt/Dispatch-v0`` and ``twinopt/DynamicDispatch-v0`` (any
:class:`twins.jobshop.dispatching.DispatchEngine`), so a rule takes exactly the decisions the
environment exposes to an agent.

A rule maps the engine state and the candidate rows (ascending indices: jobs, or slots of waiting
parts) to one *key* per candidate; the candidate with the smallest key is dispatched, ties going
to the lowest index.

========  =====================================================================================
fifo      first in first out: the job that became ready for its next operation earliest
spt/lpt   shortest / longest processing time of the next operation
mwkr      most work remaining (next operation included)
lwkr      least work remaining
mor/lor   most / least operations remaining
edd       earliest due date (the engine's ``due``). A static instance has none of its own; its
          engine gives job j the TWK due date ``DUE_DATE_FACTOR * total work of job j`` (Baker
          1984, all jobs released at 0), so EDD orders jobs by total work there.
mdd       modified due date (Baker & Bertrand 1982): ``max(due, now + remaining work)`` — EDD
          while a job can still finish in time, least remaining work among the late ones
slack     minimum slack: ``due − now − remaining work``
cr        critical ratio: ``(due − now) / remaining work``, smallest first; jobs already past
          their due date come before all others, the latest first
atc       apparent tardiness cost (Vepsalainen & Morton 1987): the largest
          ``exp(−max(0, slack) / (k · p̄)) / p`` with ``slack = due − now − remaining work``,
          ``p`` the next operation's duration, ``p̄`` the candidates' mean ``p`` and look-ahead
          ``k = ATC_K`` (2): SPT among jobs that are late or nearly so, slack order otherwise
random    uniform among the candidates, from a seeded ``numpy.random.Generator``
========  =====================================================================================

``now`` is the engine's decision time (:attr:`twins.jobshop.dispatching.DispatchEngine.now`).
Jobs without a due date (``due = inf``) come after all others under mdd, slack, cr and atc.

``schedule_with_rule(instance, "mwkr")`` builds a complete schedule. Rules run in the
``non_delay`` candidate mode by default (the classic setting for priority rules: a freed machine
never idles while a job waits for it); ``mode="active"`` uses Giffler-Thompson conflict sets.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from twins.errors import InputError
from twins.jobshop.dispatching import DispatchEngine
from twins.jobshop.engine import DUE_DATE_FACTOR, JobShopEngine
from twins.jobshop.instances import JobShopInstance
from twins.jobshop.schedule import Schedule, ScheduledOperation

#: key function: (engine, candidate job indices, rng) -> keys (smallest is dispatched)
Rule = Callable[[DispatchEngine, np.ndarray, np.random.Generator], np.ndarray]
RULES: dict[str, Rule] = {}
DESCRIPTIONS: dict[str, str] = {}
DEFAULT_MODE = "non_delay"


def register(name: str, description: str) -> Callable[[Rule], Rule]:
    """Decorator adding a rule to :data:`RULES` under ``name``."""
    def add(fn: Rule) -> Rule:
        RULES[name], DESCRIPTIONS[name] = fn, description
        return fn
    return add


@register("fifo", "first in first out (earliest job ready time)")
def fifo(engine: DispatchEngine, cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return engine.job_ready[cand]


@register("spt", "shortest processing time")
def spt(engine: DispatchEngine, cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return engine.op_duration[cand]


@register("lpt", "longest processing time")
def lpt(engine: DispatchEngine, cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return -engine.op_duration[cand]


@register("mwkr", "most work remaining")
def mwkr(engine: DispatchEngine, cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return -engine.remaining_work[cand]


@register("lwkr", "least work remaining")
def lwkr(engine: DispatchEngine, cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return engine.remaining_work[cand]


@register("mor", "most operations remaining")
def mor(engine: DispatchEngine, cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return -engine.remaining_ops[cand]


@register("lor", "least operations remaining")
def lor(engine: DispatchEngine, cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return engine.remaining_ops[cand]


@register("edd", f"earliest due date (static instances: due = {DUE_DATE_FACTOR} x total work)")
def edd(engine: DispatchEngine, cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return engine.due[cand]


@register("mdd", "modified due date max(due, now + remaining work)")
def mdd(engine: DispatchEngine, cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.maximum(engine.due[cand], engine.now + engine.remaining_work[cand])


@register("slack", "minimum slack due - now - remaining work")
def slack(engine: DispatchEngine, cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return engine.due[cand] - engine.now - engine.remaining_work[cand]


@register("cr", "critical ratio (due - now) / remaining work; late jobs first")
def critical_ratio(engine: DispatchEngine, cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    left = engine.due[cand] - engine.now
    work = np.maximum(engine.remaining_work[cand], 1e-9)
    with np.errstate(invalid="ignore"):
        return np.where(left > 0, left / work, left - _LATE)


#: ATC look-ahead k: slack is measured in units of k × the candidates' mean operation time
ATC_K = 2.0
_LATE = 1e12  # key offset putting late jobs before all others under cr


@register("atc", f"apparent tardiness cost (look-ahead k = {ATC_K:g})")
def atc(engine: DispatchEngine, cand: np.ndarray, rng: np.random.Generator, k: float = ATC_K) -> np.ndarray:
    # key = -log(priority) = log p + max(0, slack) / (k p̄): the same order, without underflow
    p = np.maximum(engine.op_duration[cand], 1e-9)
    p_bar = max(float(p.mean()), 1e-9)
    slack_ = np.maximum(engine.due[cand] - engine.now - engine.remaining_work[cand], 0.0)
    return np.log(p) + slack_ / (k * p_bar)


@register("random", "uniformly random candidate")
def random_choice(engine: DispatchEngine, cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.random(len(cand))


def get_rule(name: str) -> Rule:
    """The rule registered as ``name`` (case-insensitive); :class:`InputError` otherwise."""
    rule = RULES.get(name.lower())
    if rule is None:
        raise InputError(f"unknown dispatching rule {name!r}; choose one of {', '.join(RULES)}")
    return rule


def choose(rule: Rule, engine: DispatchEngine, rng: np.random.Generator) -> int:
    """The row (job or slot) ``rule`` dispatches in the engine's current state."""
    cand = engine.candidates
    if len(cand) == 1:
        return int(cand[0])
    return int(cand[np.argmin(rule(engine, cand, rng))])


def schedule_with_rule(instance: JobShopInstance, name: str, mode: str = DEFAULT_MODE,
                       seed: int = 0) -> Schedule:
    """A complete schedule of ``instance`` dispatched by rule ``name`` (see :data:`RULES`).

    ``seed`` only matters for ``random``. Raises :class:`InputError` for an unknown rule.
    """
    rule = get_rule(name)
    started = time.perf_counter()
    engine = JobShopEngine(instance, mode)
    rng = np.random.default_rng(seed)
    while not engine.done:
        engine.dispatch(choose(rule, engine, rng))
    ops = [ScheduledOperation(*row) for row in engine.schedule_rows()]
    return Schedule(instance.name, ops, solver=f"rule:{name.lower()}", lower_bound=instance.trivial_lower_bound,
                    status="heuristic", seconds=time.perf_counter() - started)
