"""The checker of mode commands: the only way from an energy plan to a station's on/standby/off.

An energy plan (a Recommendation of kind ``energy_plan``, :func:`optimizers.energy_plan.plan_payload`)
says per station and slot whether the station is ``on``, in ``standby`` or ``off``. The envelope's
``modes`` (:class:`twins.equipment.Modes`) say which modes a gateway may command, the safe mode,
sign-off and rate limits. Three functions check, and only they make what the follower writes:

* :func:`timeline` checks the whole plan offline (kind, fingerprint, slots, every station declared,
  every mode allowed) and returns a sealed :class:`Timeline`; bad input is an :class:`InputError`;
* :func:`check_slot` checks slot *k*'s commands when its time comes, against live values read then
  (the mode in effect, permissives, interlocks in the state after the commands, approvals, the
  minimum dwell and the hourly switch limit over the changes made so far): a :class:`ModeVerdict`
  with every violation, or — only when nothing is violated — sealed :class:`CheckedModes`
  holding the commands that change something (a mode already in effect is not commanded again);
* :func:`safe_modes` the commands that leave the stations in their declared safe modes.

Timelines and checked commands are sealed with an HMAC under a key of this process, as
:class:`~studio.gateway.envelope.CheckedPlan` is: constructing or altering one elsewhere raises
:class:`~twins.errors.EnvelopeViolation`, and the writer (:mod:`studio.gateway.follow`) refuses
anything that is not :func:`authentic`. Times are plant times in the scenario's time unit (the
virtual plant's ``line.sim_time``). docs/gateway.md ("Energy plans") has the semantics.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optimizers.recommendation import Recommendation, fingerprint
from studio.gateway.envelope import Violation
from studio.gateway.seal import Sealer
from twins.calendar import UNITS_PER_HOUR
from twins.equipment import MODE_CODES, MODE_OF_CODE, Condition, Equipment, Modes
from twins.errors import EnvelopeViolation, InputError
from twins.spec import Scenario

#: Relative tolerance of the dwell comparison (float plant clocks).
TOLERANCE = 1e-9

_SEALER = Sealer()  # seals timelines and commands made by this process


class _Sealed:
    """Refuses to exist unless sealed by this module (see :func:`authentic`)."""

    def __post_init__(self) -> None:
        if not authentic(self):
            raise EnvelopeViolation(f"a {type(self).__name__} is made only by studio.gateway.modes and cannot be "
                                    f"altered: no code path commands a mode that did not pass the envelope")


@dataclass(frozen=True)
class ModeChange:
    """A station's mode change ``old`` → ``new`` at plant time ``time`` (the scenario's time unit):
    the history the dwell and hourly limits read."""

    station: str
    time: float
    old: str
    new: str


@dataclass(frozen=True)
class Timeline(_Sealed):
    """An energy plan that passed the offline checks: per station (in ``states``) its mode in each
    slot; slot *k* starts ``k × slot`` after the plan's t = 0. Made only by :func:`timeline`."""

    recommendation_id: str
    recommendation_version: int
    scenario_fingerprint: str
    time_unit: str
    slot: float
    horizon: float
    start_clock: str
    states: tuple[tuple[str, tuple[str, ...]], ...]
    approvals_needed: tuple[str, ...]
    approved_by: tuple[str, ...]
    seal: str = field(repr=False)

    @property
    def stations(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.states)

    @property
    def n_slots(self) -> int:
        return len(self.states[0][1])

    def mode(self, station: str, k: int) -> str:
        return dict(self.states)[station][k]

    @property
    def ready(self) -> bool:
        """No sign-off outstanding: none needed, or an approver signed off."""
        return not self.approvals_needed or bool(self.approved_by)

    def approve(self, user: str) -> Timeline:
        """The timeline with ``user``'s sign-off recorded."""
        if not isinstance(user, str) or not user.strip():
            raise InputError("an approval needs the approver's name")
        return _sealed(Timeline, **{**_content(self), "approved_by": (*self.approved_by, user.strip())})

    def commands(self) -> list[tuple[int, float, str, str]]:
        """``(slot, t, station, mode)`` for slot 0 and every later change (t after the plan's t = 0)."""
        out = []
        for station, seq in self.states:
            for k, mode in enumerate(seq):
                if k == 0 or mode != seq[k - 1]:
                    out.append((k, k * self.slot, station, mode))
        return sorted(out, key=lambda c: (c[0], c[2]))


@dataclass(frozen=True)
class ModeCommand:
    """One mode command: ``station`` to ``mode`` (Int32 ``code``) at its command ``node``; ``old``
    is the mode read in effect when checked (None when it could not be read)."""

    station: str
    node: str
    mode: str
    code: int
    old: str | None


@dataclass(frozen=True)
class CheckedModes(_Sealed):
    """Mode commands that passed :func:`check_slot` (``slot`` = k) or :func:`safe_modes`
    (``slot`` None); made only by this module (sealed)."""

    recommendation_id: str | None
    recommendation_version: int | None
    slot: int | None
    commands: tuple[ModeCommand, ...]
    plant_time: float
    seal: str = field(repr=False)

    @property
    def safe(self) -> bool:
        """Commands into the stations' safe modes."""
        return self.slot is None


@dataclass(frozen=True)
class ModeVerdict:
    """The checker's answer: violations (none ⇒ ``commands`` is set, possibly with nothing to write)."""

    violations: tuple[Violation, ...]
    commands: CheckedModes | None

    @property
    def ok(self) -> bool:
        return not self.violations


def _content(obj: Any) -> dict[str, Any]:
    return _SEALER.content(obj)


def _sealed(cls: type[Any], **content: Any) -> Any:
    return _SEALER.make(cls, **content)


def authentic(obj: object) -> bool:
    """True when ``obj`` is a Timeline or CheckedModes made by this module in this process and not
    altered since."""
    return _SEALER.authentic(obj, Timeline, CheckedModes)


# ------------------------------------------------------------------------------------ offline

def timeline(recommendation: Recommendation, scenario: Scenario, envelope: Equipment | None = None) -> Timeline:
    """Check an energy plan without any reading: the kind, the fingerprint against ``scenario``,
    the slots (``slot``, ``horizon``, ``time_unit``, ``start_clock``, ``states``), every station
    declared in the envelope's ``modes`` and every mode allowed there. Bad input is an
    :class:`InputError` (the follower exits 2 before connecting)."""
    env = _envelope(scenario, envelope)
    rec = recommendation
    if rec.kind != "energy_plan":
        raise InputError(f"only energy plans are followed (this is a {rec.kind} recommendation): push it "
                         f"without --follow")
    expected = fingerprint(scenario)
    if rec.scenario_fingerprint != expected:
        raise InputError(f"recommendation {rec.id} v{rec.version} was made for another scenario "
                         f"({rec.scenario!r}, fingerprint {rec.scenario_fingerprint[:19]}…) than "
                         f"{scenario.name!r} (fingerprint {expected[:19]}…)")
    p = rec.payload
    slot, horizon = _positive(p, "slot"), _positive(p, "horizon")
    if p.get("time_unit") != scenario.time_unit:
        raise InputError(f"payload.time_unit {p.get('time_unit')!r} is not the scenario's ({scenario.time_unit!r})")
    start_clock = _clock(p.get("start_clock", "00:00"))
    states = p.get("states")
    if not isinstance(states, Mapping) or not states:
        raise InputError("payload.states must map each station to its mode per slot")
    order = p.get("stations") or list(states)
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(map(str, states)):
        raise InputError("payload.stations must list the stations of payload.states")
    out: list[tuple[str, tuple[str, ...]]] = []
    approvals = []
    for station in order:
        spec = env.station_modes(station)
        if spec is None:
            declared = ", ".join(m.station for m in env.modes) or "none"
            raise InputError(f"undeclared station {station!r}: the envelope declares no modes for it "
                             f"(stations with modes: {declared})")
        seq = states[station]
        if not isinstance(seq, list) or not seq:
            raise InputError(f"payload.states[{station!r}] must be a list of modes, one per slot")
        for k, mode in enumerate(seq):
            if mode not in MODE_CODES:
                raise InputError(f"{station}: slot {k}: unknown mode {mode!r} (modes: {', '.join(MODE_CODES)})")
            if mode not in spec.allowed:
                raise InputError(f"{station}: slot {k}: mode {mode!r} is not allowed by the envelope "
                                 f"(allowed: {', '.join(spec.allowed)})")
        if out and len(seq) != len(out[0][1]):
            raise InputError(f"payload.states[{station!r}] has {len(seq)} slots, {out[0][0]!r} {len(out[0][1])}")
        out.append((str(station), tuple(seq)))
        if spec.approval:
            approvals.append(str(station))
    n = len(out[0][1])
    if not ((n - 1) * slot < horizon <= n * slot * (1 + TOLERANCE)):
        raise InputError(f"{n} slots of {slot:g} {scenario.time_unit} do not cover the horizon {horizon:g}")
    return _sealed(Timeline, recommendation_id=rec.id, recommendation_version=rec.version,
                   scenario_fingerprint=rec.scenario_fingerprint, time_unit=scenario.time_unit, slot=slot,
                   horizon=horizon, start_clock=start_clock, states=tuple(out), approvals_needed=tuple(approvals),
                   approved_by=())


def _envelope(scenario: Scenario, envelope: Equipment | None) -> Equipment:
    env = envelope if envelope is not None else scenario.equipment
    if env is None or not env.modes:
        raise InputError(f"scenario {scenario.name!r} declares no station modes (equipment.modes, or an envelope "
                         f"file): no energy plan can be followed")
    return env


def _positive(payload: Mapping[str, Any], key: str) -> float:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise InputError(f"payload.{key} must be a positive number, got {value!r}")
    return float(value)


def _clock(text: Any) -> str:
    try:
        hh, mm = (int(x) for x in str(text).split(":"))
    except ValueError:
        hh = mm = -1
    if not (0 <= hh < 24 and 0 <= mm < 60):
        raise InputError(f"payload.start_clock must be HH:MM, got {text!r}")
    return f"{hh:02d}:{mm:02d}"


# --------------------------------------------------------------------------------- when the time comes

def check_slot(tl: Timeline, k: int, live: Mapping[str, float], history: Sequence[ModeChange] = (), *,
               envelope: Equipment, now: float) -> ModeVerdict:
    """Check slot ``k``'s commands of ``tl`` now (plant time ``now``) against ``live`` readings
    (``<station>.mode`` codes, signals, tags) and the changes made so far (``history``).

    For every station whose mode in effect differs from the plan's: the mode must be allowed,
    signed off where the envelope asks for it, held at least ``min_dwell_s`` since the station's
    last change and within ``max_switches_per_hour``; then every permissive must be true on the
    live values and every interlock hold in the state after the commands. A reading that is
    missing or not finite forbids the slot (fail safe). A timeline not made by :func:`timeline`
    raises :class:`EnvelopeViolation`."""
    if not authentic(tl):
        raise EnvelopeViolation("refusing a timeline that was not made by the mode checker or was altered")
    if not 0 <= k < tl.n_slots:
        raise InputError(f"slot {k} does not exist: the plan has {tl.n_slots} slots")
    readings = _finite(live)
    seconds_per_unit = 3600.0 / UNITS_PER_HOUR[tl.time_unit]
    violations: list[Violation] = []
    commands: list[ModeCommand] = []
    for station, seq in tl.states:
        spec = envelope.station_modes(station)
        want = seq[k]
        if spec is None:
            violations.append(Violation(f"{station}.mode", "undeclared", "the envelope declares no modes for it"))
            continue
        current = _mode_read(readings, spec)
        if current is None:
            violations.append(Violation(spec.name, "live_value", f"cannot read the mode in effect "
                                                                 f"(got {live.get(spec.name)!r})"))
            continue
        if current == want:
            continue
        violations += _change_violations(spec, tl, current, want, [c for c in history if c.station == station],
                                         now, seconds_per_unit)
        commands.append(ModeCommand(station, spec.node_id, want, MODE_CODES[want], current))
    if commands:
        after = {**readings, **{f"{c.station}.mode": float(c.code) for c in commands}}
        for source in envelope.permissives:
            violations += _condition(Condition(source, envelope.names), readings, "permissive", k)
        for source in envelope.interlocks:
            violations += _condition(Condition(source, envelope.names), after, "interlock", k)
    if violations:
        return ModeVerdict(tuple(violations), None)
    return ModeVerdict((), _sealed(CheckedModes, recommendation_id=tl.recommendation_id,
                                   recommendation_version=tl.recommendation_version, slot=k,
                                   commands=tuple(commands), plant_time=float(now)))


def _change_violations(spec: Modes, tl: Timeline, current: str, want: str, mine: Sequence[ModeChange], now: float,
                       seconds_per_unit: float) -> list[Violation]:
    out = []
    if want not in spec.allowed:
        out.append(Violation(spec.name, "allowed", f"{want!r} is not allowed (allowed: {', '.join(spec.allowed)})"))
    if spec.approval and not tl.approved_by:
        out.append(Violation(spec.name, "approval", f"{current} → {want} needs an approver's sign-off"))
    if spec.min_dwell_s is not None and mine:
        held = (now - mine[-1].time) * seconds_per_unit
        if held < spec.min_dwell_s * (1 - TOLERANCE):
            out.append(Violation(spec.name, "min_dwell", f"{current} → {want} after {held:g} s in {current}, "
                                                         f"less than {spec.min_dwell_s:g} s"))
    if spec.max_switches_per_hour is not None:
        hour = 3600.0 / seconds_per_unit
        done = sum(1 for c in mine if c.time > now - hour)
        if done + 1 > spec.max_switches_per_hour:
            out.append(Violation(spec.name, "switches_per_hour", f"{current} → {want} would be change {done + 1} "
                                                                 f"in an hour, more than "
                                                                 f"{spec.max_switches_per_hour}"))
    return out


def safe_modes(envelope: Equipment, stations: Iterable[str], live: Mapping[str, float], *,
               now: float) -> ModeVerdict:
    """Commands that take ``stations`` to their declared safe modes (those already in it are
    left alone; a station whose mode cannot be read is commanded all the same). The safe mode is
    the declared way out, so no permissive, sign-off, dwell or hourly limit holds it back; an
    interlock that is false in the state after it does (one that cannot be evaluated does not)."""
    readings = _finite(live)
    commands = []
    for station in stations:
        spec = envelope.station_modes(station)
        if spec is None:
            raise InputError(f"undeclared station {station!r}: the envelope declares no modes for it")
        current = _mode_read(readings, spec)
        if current != spec.safe_mode:
            commands.append(ModeCommand(station, spec.node_id, spec.safe_mode, MODE_CODES[spec.safe_mode], current))
    after = {**readings, **{f"{c.station}.mode": float(c.code) for c in commands}}
    violations: list[Violation] = []
    for source in envelope.interlocks if commands else ():
        cond = Condition(source, envelope.names)
        if cond.used <= after.keys():
            violations += _condition(cond, after, "interlock", None)
    if violations:
        return ModeVerdict(tuple(violations), None)
    return ModeVerdict((), _sealed(CheckedModes, recommendation_id=None, recommendation_version=None, slot=None,
                                   commands=tuple(commands), plant_time=float(now)))


def _finite(live: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for name, value in live.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[name] = number
    return out


def _mode_read(readings: Mapping[str, float], spec: Modes) -> str | None:
    code = readings.get(spec.name)
    if code is None or code != math.floor(code):
        return None
    return MODE_OF_CODE.get(int(code))


def _condition(cond: Condition, state: Mapping[str, float], rule: str, k: int | None) -> list[Violation]:
    names = ", ".join(sorted(cond.used))
    when = f"slot {k}" if k is not None else "the safe modes"
    missing = sorted(n for n in cond.used if n not in state)
    if missing:
        return [Violation(names, rule, f"{cond.source!r} cannot be evaluated for {when}: no value for "
                                       f"{', '.join(missing)}")]
    if cond(state):
        return []
    numbers = ", ".join(f"{n} = {state[n]:g}" for n in sorted(cond.used))
    return [Violation(names, rule, f"{cond.source!r} is false {'before' if rule == 'permissive' else 'after'} "
                                   f"the commands of {when} ({numbers})")]


__all__ = ["CheckedModes", "ModeChange", "ModeCommand", "ModeVerdict", "Timeline", "authentic", "check_slot",
           "safe_modes", "timeline"]
