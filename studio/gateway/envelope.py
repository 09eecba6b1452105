"""The safety envelope's checker: the only way from a Recommendation to values that may be written.

:func:`check` compares a setpoint recommendation with the scenario's envelope (``equipment:``,
:mod:`twins.equipment`), the values read from the equipment and the recent writes (the audit
trail's history) and returns a :class:`Verdict`: every violation with its tag, rule and numbers,
the tags that need an approver's sign-off, and — only when nothing is violated — a
:class:`CheckedPlan`. A plan is sealed by the checker (an HMAC with a key of this process), so it
cannot be made or altered anywhere else; the writer takes nothing but a plan and calls
:func:`recheck` before every step, which refuses a plan that is not authentic.

    verdict = check(rec, current={"dispenser.pressure_bar": 3.0, …}, history=log.history(), scenario=s)
    if verdict.plan is not None:
        plan = verdict.plan.approve("alice") if not verdict.plan.ready else verdict.plan

docs/gateway.md explains the tiers, rates, ramps, permissives, interlocks and approvals.
"""
from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from optimizers.recommendation import Recommendation, fingerprint
from studio.gateway.seal import Sealer
from twins.equipment import Condition, Equipment, Tag, hard_limits, parameter_of
from twins.errors import EnvelopeViolation, InputError
from twins.spec import Scenario

HOUR = dt.timedelta(hours=1)
#: At most this many write steps per push; a ramp that would need more is a violation.
MAX_STEPS = 1000
#: Relative tolerance of every comparison against a limit (float rounding of resolutions).
TOLERANCE = 1e-9
#: Tags at most this many are tried one after the other, in every order, when changing them in
#: lockstep would cross an interlock.
MAX_ORDERED_TAGS = 4

_SEALER = Sealer()  # seals plans made by this process; nothing outside this module sees its key


def within(value: float, limit: float) -> bool:
    """``value ≤ limit`` up to :data:`TOLERANCE` (relative to the limit, at least absolute)."""
    return value <= limit + TOLERANCE * max(1.0, abs(limit))


@dataclass(frozen=True)
class Change:
    """One write to a tag (``old`` → ``new`` at ``time``, UTC-aware), as the audit trail records it:
    the history the rolling hourly rate limits read."""

    tag: str
    time: dt.datetime
    old: float
    new: float
    user: str = ""


@dataclass(frozen=True)
class Violation:
    """A broken rule: ``tag`` (or the tags an interlock or permissive reads, comma-separated),
    ``rule`` (``hard``, ``per_push_up``, ``per_push_down``, ``per_hour_up``, ``per_hour_down``,
    ``ramp``, ``interlock``, ``permissive``, ``live_value``, ``approval``) and the numbers."""

    tag: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.tag}: {self.rule}: {self.message}"


@dataclass(frozen=True)
class Write:
    """One value for one tag: where (``node``), as which OPC UA data type, in engineering units."""

    tag: str
    node: str
    type: str
    value: float

    @property
    def typed_value(self) -> float | int:
        """The value as the PLC's data type takes it (an ``Int32`` as an int)."""
        return int(round(self.value)) if self.type == "Int32" else self.value


@dataclass(frozen=True)
class Step:
    """Writes made together, then ``dwell_s`` seconds of waiting before the next step."""

    writes: tuple[Write, ...]
    dwell_s: float

    @property
    def values(self) -> dict[str, float]:
        return {w.tag: w.value for w in self.writes}


@dataclass(frozen=True)
class PlannedChange:
    """A tag's move in a plan: ``old`` as read when checked, ``target`` rounded to ``resolution``."""

    tag: str
    node: str
    type: str
    unit: str
    resolution: float
    old: float
    target: float


@dataclass(frozen=True)
class CheckedPlan:
    """Writes that passed :func:`check`, in ``steps``; made only by the checker (sealed).

    Constructing one anywhere else, or altering one (``dataclasses.replace``), raises
    :class:`~twins.errors.EnvelopeViolation`. ``approve(user)`` returns the plan signed off;
    ``ready`` is True when no approval is outstanding."""

    recommendation_id: str
    recommendation_version: int
    scenario_fingerprint: str
    changes: tuple[PlannedChange, ...]
    steps: tuple[Step, ...]
    names: tuple[str, ...]
    permissives: tuple[str, ...]
    interlocks: tuple[str, ...]
    approvals_needed: tuple[str, ...]
    approved_by: tuple[str, ...]
    checked_at: dt.datetime
    seal: str = field(repr=False)

    def __post_init__(self) -> None:
        if not authentic(self):
            raise EnvelopeViolation("a CheckedPlan is made only by studio.gateway.envelope.check and cannot be "
                                    "altered: no code path writes a value that did not pass the envelope")

    @property
    def ready(self) -> bool:
        """No approval outstanding: none was needed, or an approver signed off."""
        return not self.approvals_needed or bool(self.approved_by)

    def approve(self, user: str) -> CheckedPlan:
        """The plan with ``user``'s sign-off recorded."""
        if not isinstance(user, str) or not user.strip():
            raise InputError("an approval needs the approver's name")
        return _sealed(**{**_content(self), "approved_by": (*self.approved_by, user.strip())})

    def state_before(self, step_index: int) -> dict[str, float]:
        """The value of every planned tag before step ``step_index`` (0: as read when checked)."""
        state = {c.tag: c.old for c in self.changes}
        for step in self.steps[:step_index]:
            state.update(step.values)
        return state

    def state_after(self, step_index: int) -> dict[str, float]:
        return self.state_before(step_index + 1)


@dataclass(frozen=True)
class Verdict:
    """The checker's answer: violations (none ⇒ ``plan`` is set), tags needing sign-off, the plan."""

    violations: tuple[Violation, ...]
    approvals_needed: tuple[str, ...]
    plan: CheckedPlan | None

    @property
    def ok(self) -> bool:
        return not self.violations


def _content(plan: CheckedPlan) -> dict[str, object]:
    return _SEALER.content(plan)


def _sealed(**content: object) -> CheckedPlan:
    return _SEALER.make(CheckedPlan, **content)


def authentic(plan: object) -> bool:
    """True when ``plan`` is a CheckedPlan made by :func:`check` in this process and not altered
    since (an unpickled or mutated plan is not)."""
    return _SEALER.authentic(plan, CheckedPlan)


# ------------------------------------------------------------------------------------ the checker

def check(recommendation: Recommendation, current: Mapping[str, float], history: Sequence[Change] = (), *,
          scenario: Scenario, envelope: Equipment | None = None, now: dt.datetime | None = None) -> Verdict:
    """Check a setpoint recommendation against the envelope.

    Args:
        recommendation: kind ``setpoints``, payload ``{station: {parameter: value}}``, for ``scenario``.
        current: values read from the equipment, tag name → value (engineering units); every tag
            the recommendation sets and every tag an interlock reads, plus signals if known.
        history: recent writes (:meth:`AuditLog.history`), for the rolling hourly limits.
        scenario: the scenario the recommendation was made for (its fingerprint must match).
        envelope: a separate envelope (:func:`twins.loader.load_envelope`); default ``scenario.equipment``.
        now: the check's time (UTC-aware); default now.

    Bad input (another scenario's recommendation, an unknown tag, a missing or non-finite reading,
    a kind that cannot be pushed) is an :class:`InputError`; a recommendation outside the envelope
    gets a Verdict listing every violation and no plan.
    """
    env = envelope if envelope is not None else scenario.equipment
    if env is None:
        raise InputError(f"scenario {scenario.name!r} declares no equipment envelope (an `equipment:` section "
                         f"or an envelope file): nothing can be pushed")
    now = dt.datetime.now(dt.UTC) if now is None else now
    if now.tzinfo is None:
        raise InputError("the check's time must be timezone-aware (UTC)")
    targets = _targets(recommendation, scenario, env)
    interlocks = env.interlock_conditions()
    needed = set(targets) | {n for c in interlocks for n in c.used if env.tag(n) is not None}
    state = _readings(current, env, needed)
    recent = _recent(history, now)

    violations: list[Violation] = []
    changes: list[PlannedChange] = []
    paths: dict[str, list[float]] = {}
    for name, (tag, value) in targets.items():
        old, target = state[name], snap(value, tag.resolution)
        violations += _tag_violations(tag, old, target, recent.get(name, ()), scenario)
        unit = tag.unit if tag.unit is not None else parameter_of(tag, scenario).unit
        changes.append(PlannedChange(name, tag.node_id, tag.type, unit, tag.resolution, old, target))
        if not violations:
            path, ramp_violation = _path(tag, old, target, scenario)
            violations += ramp_violation
            paths[name] = path
    if violations:
        return Verdict(tuple(violations), (), None)

    tags = {n: targets[n][0] for n in paths}
    approvals = tuple(n for n, path in paths.items() if path and _needs_approval(tags[n], path))
    schedule, crossed = _schedule(paths, state, interlocks)
    if crossed:
        return Verdict(tuple(crossed), approvals, None)
    steps = tuple(Step(tuple(Write(n, tags[n].node_id, tags[n].type, v) for n, v in values.items()),
                       max(tags[n].dwell_s for n in values)) for values in schedule)
    plan = _sealed(recommendation_id=recommendation.id, recommendation_version=recommendation.version,
                   scenario_fingerprint=recommendation.scenario_fingerprint, changes=tuple(changes), steps=steps,
                   names=env.names, permissives=tuple(env.permissives), interlocks=tuple(env.interlocks),
                   approvals_needed=approvals, approved_by=(), checked_at=now)
    return Verdict((), approvals, plan)


def validate(recommendation: Recommendation, scenario: Scenario, envelope: Equipment | None = None) -> tuple[Tag, ...]:
    """The envelope tags ``recommendation`` sets, checked without any reading: the kind can be
    pushed, the fingerprint matches ``scenario``, every tag is declared, every value finite. A
    writer calls it before connecting, so bad input never reaches the equipment."""
    env = envelope if envelope is not None else scenario.equipment
    if env is None:
        raise InputError(f"scenario {scenario.name!r} declares no equipment envelope (an `equipment:` section "
                         f"or an envelope file): nothing can be pushed")
    return tuple(tag for tag, _ in _targets(recommendation, scenario, env).values())


def _targets(rec: Recommendation, scenario: Scenario, env: Equipment) -> dict[str, tuple[Tag, float]]:
    """Tag name → (tag, recommended value); InputError for what cannot be checked at all."""
    if rec.kind == "energy_plan":
        raise InputError("an energy plan runs as a timed sequence of mode commands: follow it with "
                         "`twinopt push PLAN --follow` (studio.gateway.follow)")
    if rec.kind == "schedule":
        raise InputError("a schedule is published as dispatch lists (studio.gateway.publish.publish_schedule, "
                         "twinopt push), not checked as setpoints")
    if rec.kind != "setpoints":
        raise InputError(f"pushing {rec.kind.replace('_', ' ')}s is not implemented yet: only setpoint "
                         f"recommendations can be checked against the envelope")
    expected = fingerprint(scenario)
    if rec.scenario_fingerprint != expected:
        raise InputError(f"recommendation {rec.id} v{rec.version} was made for another scenario "
                         f"({rec.scenario!r}, fingerprint {rec.scenario_fingerprint[:19]}…) than "
                         f"{scenario.name!r} (fingerprint {expected[:19]}…)")
    out: dict[str, tuple[Tag, float]] = {}
    for station, params in rec.payload.items():
        if not isinstance(params, Mapping):
            raise InputError(f"payload[{station!r}] must map parameter names to values")
        for param, value in params.items():
            name = f"{station}.{param}"
            tag = env.tag(name)
            if tag is None:
                raise InputError(f"unknown tag {name!r}: the envelope has no tag for it "
                                 f"(tags: {', '.join(t.name for t in env.tags)})")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InputError(f"{name}: the recommended value must be a finite number, got {value!r}")
            out[name] = (tag, float(value))
    return out


def _readings(current: Mapping[str, float], env: Equipment, needed: Iterable[str]) -> dict[str, float]:
    known = set(env.names)
    state: dict[str, float] = {}
    for name, value in current.items():
        if name not in known:
            raise InputError(f"unknown tag {name!r} in the current values (tags and signals: {', '.join(env.names)})")
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, str) or not math.isfinite(number):
            raise InputError(f"{name}: the current value must be a finite number, got {value!r}")
        state[name] = number
    missing = sorted(set(needed) - set(state))
    if missing:
        raise InputError(f"no current value for {', '.join(missing)}: read every tag the push sets or an "
                         f"interlock reads")
    return state


def _recent(history: Sequence[Change], now: dt.datetime) -> dict[str, list[Change]]:
    """The changes of the rolling hour before ``now`` (later ones too: a clock ahead counts), by tag."""
    out: dict[str, list[Change]] = {}
    for c in history:
        if c.time.tzinfo is None:
            raise InputError(f"history: the time of a change of {c.tag!r} must be timezone-aware")
        if c.time > now - HOUR:
            out.setdefault(c.tag, []).append(c)
    return out


def snap(value: float, resolution: float) -> float:
    """``value`` rounded to the nearest multiple of ``resolution``, without float noise (2.9, not
    2.9000000000000004). A value too large for the grid to matter is returned as is."""
    q = value / resolution
    if not abs(q) < 2.0**52:
        return value
    return round(round(q) * resolution, _decimals(resolution))


def _decimals(resolution: float) -> int:
    exponent = Decimal(repr(resolution)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _tag_violations(tag: Tag, old: float, target: float, recent: Iterable[Change],
                    scenario: Scenario) -> list[Violation]:
    """Hard limits and per-push and per-hour up and down rate limits of one tag's move."""
    lo, hi = hard_limits(tag, scenario)
    out: list[Violation] = []
    if not (within(lo, target) and within(target, hi)):
        out.append(Violation(tag.name, "hard", f"target {target:g} is outside the hard limits [{lo:g}, {hi:g}]"))
    up, down = max(target - old, 0.0), max(old - target, 0.0)
    for rule, move, limit in (("per_push_up", up, tag.max_up_per_push), ("per_push_down", down, tag.max_down_per_push)):
        if limit is not None and not within(move, limit):
            sign = "+" if rule.endswith("up") else "−"
            out.append(Violation(tag.name, rule, f"{old:g} → {target:g} is {sign}{move:g}, more than "
                                                 f"{limit:g} per push"))
    recent = list(recent)
    done_up = sum(max(c.new - c.old, 0.0) for c in recent)
    done_down = sum(max(c.old - c.new, 0.0) for c in recent)
    for rule, move, done, limit in (("per_hour_up", up, done_up, tag.max_up_per_hour),
                                    ("per_hour_down", down, done_down, tag.max_down_per_hour)):
        if limit is not None and move > 0 and not within(done + move, limit):
            sign = "+" if rule.endswith("up") else "−"
            out.append(Violation(tag.name, rule, f"{sign}{move:g} after {sign}{done:g} in the last hour is "
                                                 f"{sign}{done + move:g}, more than {limit:g} per hour"))
    return out


def _path(tag: Tag, old: float, target: float, scenario: Scenario) -> tuple[list[float], list[Violation]]:
    """The values written to take ``tag`` from ``old`` to ``target``: steps no larger than
    ``ramp_step``, on the resolution grid, every one within the hard limits."""
    if target == old:
        return [], []
    ramp = tag.ramp_step
    if ramp is None or within(abs(target - old), ramp):
        return [target], []
    grid = math.floor(ramp / tag.resolution * (1 + TOLERANCE)) * tag.resolution
    if abs(target - old) / grid > MAX_STEPS:
        return [], [Violation(tag.name, "ramp", f"{old:g} → {target:g} in steps of {ramp:g} needs more than "
                                                f"{MAX_STEPS} steps")]
    sign = 1.0 if target > old else -1.0
    path, v = [], old
    while True:
        reach = v + sign * ramp
        if sign * (target - reach) <= 0:
            path.append(target)
            break
        # the grid value nearest the reach on the near side, so no step exceeds ramp_step
        q = reach / tag.resolution
        k = math.floor(q + TOLERANCE) if sign > 0 else math.ceil(q - TOLERANCE)
        v = round(k * tag.resolution, _decimals(tag.resolution))
        path.append(v)
        if len(path) > MAX_STEPS:  # cannot happen with ramp_step ≥ resolution; a guard all the same
            return [], [Violation(tag.name, "ramp", f"{old:g} → {target:g} needs more than {MAX_STEPS} steps")]
    lo, hi = hard_limits(tag, scenario)
    outside = [x for x in path if not (within(lo, x) and within(x, hi))]
    if outside:
        return [], [Violation(tag.name, "hard", f"ramping from the current {old:g} would write {outside[0]:g}, "
                                                f"outside the hard limits [{lo:g}, {hi:g}]")]
    return path, []


def _needs_approval(tag: Tag, path: Sequence[float]) -> bool:
    if tag.approval:
        return True
    if tag.soft is None:
        return False
    lo, hi = tag.soft
    return any(not (within(lo, x) and within(x, hi)) for x in path)


def _lockstep(paths: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """Step k writes every tag's k-th value (tags with shorter paths have arrived)."""
    n = max((len(p) for p in paths.values()), default=0)
    return [{t: p[k] for t, p in paths.items() if k < len(p)} for k in range(n)]


def _one_after_another(paths: Mapping[str, Sequence[float]], order: Sequence[str]) -> list[dict[str, float]]:
    return [{t: v} for t in order for v in paths[t]]


def _crossings(schedule: Sequence[Mapping[str, float]], start: Mapping[str, float],
               interlocks: Sequence[Condition]) -> list[Violation]:
    """Interlocks that fail in a state the schedule passes through (current values for tags not
    in the push). An interlock reading a signal without a value is left to :func:`recheck`."""
    state = dict(start)
    out: list[Violation] = []
    failed: set[str] = set()
    for k, values in enumerate(schedule):
        state.update(values)
        for cond in interlocks:
            if cond.source in failed or not cond.used <= state.keys() or cond(state):
                continue
            failed.add(cond.source)
            numbers = ", ".join(f"{n} = {state[n]:g}" for n in sorted(cond.used))
            out.append(Violation(", ".join(sorted(cond.used)), "interlock",
                                 f"{cond.source!r} fails after step {k + 1} of {len(schedule)} ({numbers})"))
    return out


def _schedule(paths: Mapping[str, Sequence[float]], start: Mapping[str, float],
              interlocks: Sequence[Condition]) -> tuple[list[dict[str, float]], list[Violation]]:
    """Write steps that keep every interlock: all tags in lockstep, else (for a few tags) one tag
    after another in the first order that works; the lockstep's crossings when none does."""
    moving = [t for t, p in paths.items() if p]
    lockstep = _lockstep({t: paths[t] for t in moving})
    crossed = _crossings(lockstep, start, interlocks)
    if not crossed:
        return lockstep, []
    if 2 <= len(moving) <= MAX_ORDERED_TAGS:
        for order in itertools.permutations(moving):
            schedule = _one_after_another(paths, order)
            if len(schedule) <= MAX_STEPS and not _crossings(schedule, start, interlocks):
                return schedule, []
    return [], crossed


# ------------------------------------------------------------------------------- before each step

def recheck(plan: CheckedPlan, step_index: int, live_values: Mapping[str, float],
            signals: Mapping[str, float] | None = None) -> tuple[Violation, ...]:
    """What forbids writing step ``step_index`` of ``plan`` now (empty: go ahead).

    Every planned tag must still read its value before this step (within its resolution), the
    plan must be approved where needed, every permissive true and every interlock hold in the
    state after the step (live values for tags not in the plan). A reading that is missing or
    not finite forbids the step (fail safe). A plan not made by :func:`check` raises
    :class:`~twins.errors.EnvelopeViolation`."""
    if not authentic(plan):
        raise EnvelopeViolation("refusing a plan that was not made by the envelope checker or was altered")
    if not 0 <= step_index < len(plan.steps):
        raise InputError(f"step {step_index} does not exist: the plan has {len(plan.steps)} steps")
    readings = {**live_values, **(signals or {})}
    out: list[Violation] = []
    if not plan.ready:
        out.append(Violation(", ".join(plan.approvals_needed), "approval", "needs an approver's sign-off"))
    expected = plan.state_before(step_index)
    for c in plan.changes:
        live = readings.get(c.tag)
        if live is None or not math.isfinite(float(live)):
            out.append(Violation(c.tag, "live_value", f"cannot read the live value (got {live!r})"))
        elif not within(abs(float(live) - expected[c.tag]), c.resolution):
            out.append(Violation(c.tag, "live_value", f"reads {float(live):g}, expected {expected[c.tag]:g} "
                                                      f"± {c.resolution:g}: changed since the plan was checked"))
    after = {**readings, **plan.state_after(step_index)}
    for rule, sources, state in (("permissive", plan.permissives, readings), ("interlock", plan.interlocks, after)):
        for source in sources:
            out += _condition_violation(rule, Condition(source, plan.names), state, step_index)
    return tuple(out)


def _condition_violation(rule: str, cond: Condition, state: Mapping[str, float], step_index: int) -> list[Violation]:
    tags = ", ".join(sorted(cond.used))
    missing = sorted(n for n in cond.used if n not in state or not math.isfinite(float(state[n])))
    if missing:
        return [Violation(tags, rule, f"{cond.source!r} cannot be evaluated before step {step_index + 1}: "
                                      f"no value for {', '.join(missing)}")]
    if cond(state):
        return []
    numbers = ", ".join(f"{n} = {float(state[n]):g}" for n in sorted(cond.used))
    when = "before" if rule == "permissive" else "after"
    return [Violation(tags, rule, f"{cond.source!r} is false {when} step {step_index + 1} ({numbers})")]
