"""The safety envelope of a line's equipment: the scenario's optional ``equipment:`` section.

It says how the twin's process parameters map onto the plant's tags (OPC UA NodeIds, data types,
engineering units, resolutions) and which values a gateway may write to them: hard limits (beyond
them a value is refused), a soft band inside them (beyond it an approver must sign off, the tiered
limits of ISA-88 batch practice), up and down rate limits per push and per rolling hour, ramps
(large changes split into steps with a dwell time), permissives read before every step and
interlocks over tags and read-only signals; and per station the energy modes (on, standby, off) a
gateway may command when it follows an energy plan, with the safe mode it leaves the station in.
``studio/gateway/envelope.py`` and ``studio/gateway/modes.py`` enforce it; the twin itself never
reads it, so it is not part of a recommendation's scenario fingerprint.

Permissives and interlocks are safe expressions (:mod:`twins.expressions`, never ``eval``) over
dotted names (``dispenser.temperature_c``): :class:`Condition` maps each dotted name onto an
identifier before the expression engine sees it, and any other name, attribute or call is refused
when the scenario is read. docs/scenario.md documents every field, docs/gateway.md the semantics.
"""
from __future__ import annotations

import io
import keyword
import math
import tokenize
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from twins.equipment_nodes import DispatchNodes, Handshake
from twins.errors import SpecError
from twins.expressions import CONSTANTS, Expression, ExpressionError
from twins.specmodel import SpecModel

if TYPE_CHECKING:
    from twins.response import Parameter
    from twins.spec import Scenario

Path_ = tuple[str | int, ...]


def default_node(name: str) -> str:
    """The NodeId the virtual plant (``twinopt plant``) serves a tag or signal under."""
    return f"ns=2;s={name}"


class Tag(SpecModel):
    """A writable setpoint on the equipment: one process parameter of the twin, with its limits."""

    parameter: str = Field(description="the twin's parameter this tag sets: station.parameter")
    node: str | None = Field(default=None, description="OPC UA NodeId; default ns=2;s=<station>.<parameter>")
    type: Literal["Float", "Double", "Int32"] = Field(default="Double", description="OPC UA data type the PLC uses")
    unit: str | None = Field(default=None, description="engineering unit; default: the parameter's unit")
    resolution: float = Field(gt=0, description="smallest step the equipment takes; written values are rounded to it")
    hard: tuple[float, float] | None = Field(
        default=None, description="[lo, hi] beyond which a value is refused; default: the parameter's bounds")
    soft: tuple[float, float] | None = Field(
        default=None, description="[lo, hi] inside hard; a value between soft and hard needs an approver's sign-off")
    max_up_per_push: float | None = Field(default=None, gt=0, description="largest increase in one push")
    max_down_per_push: float | None = Field(default=None, gt=0, description="largest decrease in one push")
    max_up_per_hour: float | None = Field(default=None, gt=0, description="largest total increase in any rolling hour")
    max_down_per_hour: float | None = Field(default=None, gt=0,
                                            description="largest total decrease in any rolling hour")
    ramp_step: float | None = Field(default=None, gt=0, description="largest change per write step (ramp)")
    dwell_s: float = Field(default=0.0, ge=0, description="wait after each write step, seconds")
    approval: bool = Field(default=False, description="every push of this tag needs an approver's sign-off")

    @property
    def name(self) -> str:
        """The tag's name: its parameter's ``station.parameter``."""
        return self.parameter

    @property
    def node_id(self) -> str:
        return self.node or default_node(self.parameter)

    @model_validator(mode="after")
    def _limits(self) -> Tag:
        for field, pair in (("hard", self.hard), ("soft", self.soft)):
            if pair is not None and not pair[0] < pair[1]:
                raise ValueError(f"{field}: lo ({pair[0]:g}) must be below hi ({pair[1]:g})")
        if self.soft is not None and self.hard is not None and not (
                self.hard[0] <= self.soft[0] and self.soft[1] <= self.hard[1]):
            raise ValueError(f"soft {list(self.soft)} must lie inside hard {list(self.hard)}")
        if self.type == "Int32" and self.resolution != math.floor(self.resolution):
            raise ValueError(f"an Int32 tag needs a whole-number resolution, got {self.resolution:g}")
        if self.ramp_step is not None and self.ramp_step < self.resolution:
            raise ValueError(f"ramp_step ({self.ramp_step:g}) is smaller than the resolution ({self.resolution:g})")
        return self


class Signal(SpecModel):
    """A read-only tag (mode, alarm, a measured value) that permissives and interlocks may read."""

    name: str = Field(description="name used in permissives and interlocks, e.g. dispenser.mode_auto")
    node: str | None = Field(default=None, description="OPC UA NodeId; default ns=2;s=<name>")
    type: Literal["Float", "Double", "Int32", "Boolean"] = Field(default="Boolean", description="OPC UA data type")

    @property
    def node_id(self) -> str:
        return self.node or default_node(self.name)


#: The Int32 code of each mode on a station's mode-command and mode nodes (a PLC's enumeration).
MODE_CODES: dict[str, int] = {"off": 0, "standby": 1, "on": 2}
#: The mode of each code (:data:`MODE_CODES` inverted).
MODE_OF_CODE: dict[int, str] = {code: mode for mode, code in MODE_CODES.items()}
ModeName = Literal["on", "standby", "off"]
_ALL_MODES: tuple[ModeName, ...] = ("on", "standby", "off")


def mode_command_node(station: str) -> str:
    """The NodeId the virtual plant serves a station's writable mode command under."""
    return default_node(f"{station}.mode_command")


def mode_node(station: str) -> str:
    """The NodeId the virtual plant serves a station's mode in effect under (read-only)."""
    return default_node(f"{station}.mode")


class Modes(SpecModel):
    """A station's energy modes (on, standby, off) as the equipment takes them: where a gateway
    writes the mode command and reads the mode in effect (Int32: 0 off, 1 standby, 2 on), which
    modes it may command, the safe mode it leaves the station in when it stops, and how often the
    mode may change. The mode in effect is readable in permissives and interlocks as
    ``<station>.mode`` (its Int32 code)."""

    station: str = Field(description="the station the modes belong to")
    node: str | None = Field(default=None,
                             description="writable Int32 mode command; default ns=2;s=<station>.mode_command")
    state_node: str | None = Field(default=None,
                                   description="read-only Int32 mode in effect; default ns=2;s=<station>.mode")
    allowed: list[ModeName] = Field(default_factory=lambda: list(_ALL_MODES), min_length=1,
                                    description="the modes a gateway may command")
    safe_mode: ModeName = Field(default="standby",
                                description="the mode the station is left in when following stops or fails")
    approval: bool = Field(default=False, description="a plan that changes this station's mode needs a sign-off")
    min_dwell_s: float | None = Field(default=None, gt=0,
                                      description="seconds of plant time in a mode before it may change again")
    max_switches_per_hour: int | None = Field(default=None, ge=1,
                                              description="mode changes in any rolling hour of plant time")

    @property
    def name(self) -> str:
        """The name expressions read the mode in effect under: ``<station>.mode``."""
        return f"{self.station}.mode"

    @property
    def node_id(self) -> str:
        return self.node or mode_command_node(self.station)

    @property
    def state_node_id(self) -> str:
        return self.state_node or mode_node(self.station)

    @model_validator(mode="after")
    def _safe_allowed(self) -> Modes:
        if len(set(self.allowed)) != len(self.allowed):
            raise ValueError(f"allowed: a mode is listed twice ({', '.join(self.allowed)})")
        if self.safe_mode not in self.allowed:
            raise ValueError(f"safe_mode {self.safe_mode!r} must be one of the allowed modes "
                             f"({', '.join(self.allowed)})")
        return self


class Equipment(SpecModel):
    """The safety envelope: tags, station modes, signals, permissives and interlocks."""

    tags: list[Tag] = Field(default_factory=list, description="writable setpoints")
    modes: list[Modes] = Field(default_factory=list, description="stations whose energy mode a gateway may command")
    signals: list[Signal] = Field(default_factory=list, description="read-only tags for permissives and interlocks")
    permissives: list[str] = Field(
        default_factory=list, description="safe expressions that must all be true before every write step")
    interlocks: list[str] = Field(
        default_factory=list, description="safe expressions that must hold in every state a push passes through")
    handshake: Handshake = Field(default_factory=Handshake,
                                 description="nodes of the push handshake (staging, apply method, watchdog)")
    dispatch: DispatchNodes = Field(default_factory=DispatchNodes,
                                    description="where schedules are published as per-station dispatch lists")

    @model_validator(mode="after")
    def _something(self) -> Equipment:
        if not self.tags and not self.modes:
            raise ValueError("an equipment section declares at least one tag or one station's modes")
        return self

    def tag(self, name: str) -> Tag | None:
        return next((t for t in self.tags if t.name == name), None)

    def station_modes(self, station: str) -> Modes | None:
        return next((m for m in self.modes if m.station == station), None)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name an expression may read: the tags', the signals', then the modes' (``<station>.mode``)."""
        return (*(t.name for t in self.tags), *(s.name for s in self.signals), *(m.name for m in self.modes))

    def node_of(self, name: str) -> str:
        """The NodeId a tag, signal or mode (``<station>.mode``: the mode in effect) is read at."""
        tag = self.tag(name)
        if tag is not None:
            return tag.node_id
        sig = next((s for s in self.signals if s.name == name), None)
        if sig is not None:
            return sig.node_id
        mode = next((m for m in self.modes if m.name == name), None)
        if mode is None:
            raise KeyError(name)
        return mode.state_node_id

    def permissive_conditions(self) -> tuple[Condition, ...]:
        return tuple(Condition(src, self.names) for src in self.permissives)

    def interlock_conditions(self) -> tuple[Condition, ...]:
        return tuple(Condition(src, self.names) for src in self.interlocks)


def _identifier(name: str) -> str:
    return "_" + name.replace(".", "__")


class Condition:
    """A safe boolean expression over dotted tag and signal names.

    ``Condition("a.x <= 250 or b.y >= 0.8", ["a.x", "b.y"])({"a.x": 240, "b.y": 0.5})`` is True.
    Dotted names are joined token by token (``a . x`` → one name) and renamed to identifiers, so
    the expression engine checks the rest; an unknown name is refused here with its dotted spelling.
    A result that is not a finite number (a NaN reading) counts as false: fail safe.
    """

    __slots__ = ("source", "names", "_expression", "_ids")

    def __init__(self, source: str, names: Iterable[str]):
        self.source = str(source)
        self.names = frozenset(names)
        self._ids = {n: _identifier(n) for n in self.names}
        if len(set(self._ids.values())) != len(self._ids):
            raise ExpressionError("two names differ only in '.' versus '__'")
        text, used = self._rename(self.source)
        self._expression = Expression(text, [self._ids[n] for n in used])

    @property
    def used(self) -> frozenset[str]:
        """The tag and signal names the expression reads."""
        back = {v: k for k, v in self._ids.items()}
        return frozenset(back[i] for i in self._expression.names)

    def _rename(self, source: str) -> tuple[str, set[str]]:
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(source.strip()).readline))
        except (tokenize.TokenError, SyntaxError, IndentationError) as err:
            raise ExpressionError(f"not a valid expression: {source!r} ({err})") from None
        out: list[str] = []
        used: set[str] = set()
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string):
                j, parts = i, [tok.string]
                while (j + 2 < len(tokens) and tokens[j + 1].string == "." and tokens[j + 2].type == tokenize.NAME):
                    parts.append(tokens[j + 2].string)
                    j += 2
                name = ".".join(parts)
                is_call = j + 1 < len(tokens) and tokens[j + 1].string == "("
                if name in self.names:
                    out.append(self._ids[name])
                    used.add(name)
                elif len(parts) == 1 and (is_call or name in CONSTANTS):
                    out.append(name)  # a function or constant: the expression engine checks it
                else:
                    known = ", ".join(sorted(self.names)) or "none"
                    raise ExpressionError(f"unknown name {name!r} in {source!r} (tags and signals: {known})")
                i = j + 1
            else:
                if tok.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT,
                                    tokenize.DEDENT):
                    out.append(tok.string)
                i += 1
        return " ".join(out), used

    def __call__(self, values: Mapping[str, float]) -> bool:
        """True when the condition holds for ``values`` (a value for every name in :attr:`used`)."""
        result = float(self._expression({self._ids[n]: float(values[n]) for n in self.used}))
        return math.isfinite(result) and result != 0.0

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


def check_equipment(eq: Equipment | None, scenario: Scenario, prefix: Path_ = ("equipment",)) -> None:
    """Cross-references of an envelope with its scenario (tags name existing parameters, limits
    within the parameter's bounds, unique names and NodeIds, safe expressions over known names);
    :class:`SpecError` with the field path, below ``prefix``. No envelope: nothing to check."""
    if eq is None:
        return
    bounds = {f"{st.name}.{p.name}": (p.min, p.max) for st in scenario.stations for p in st.parameters}
    seen: dict[str, Path_] = {}
    nodes: dict[str, Path_] = {}
    for i, tag in enumerate(eq.tags):
        here = (*prefix, "tags", i)
        if tag.parameter not in bounds:
            raise SpecError((*here, "parameter"), f"unknown parameter {tag.parameter!r} (station.parameter; "
                                                  f"parameters: {', '.join(bounds) or 'none'})")
        lo, hi = bounds[tag.parameter]
        for field in ("hard", "soft"):
            pair = getattr(tag, field)
            if pair is not None and not (lo <= pair[0] and pair[1] <= hi):
                raise SpecError((*here, field), f"{list(pair)} must lie within the parameter's bounds [{lo:g}, {hi:g}]")
        _once(seen, tag.name, (*here, "parameter"), "tag")
        _once(nodes, tag.node_id, (*here, "node"), "NodeId")
    stations = [st.name for st in scenario.stations]
    for i, modes in enumerate(eq.modes):
        here = (*prefix, "modes", i)
        if modes.station not in stations:
            raise SpecError((*here, "station"), f"unknown station {modes.station!r} (stations: {', '.join(stations)})")
        _once(seen, modes.name, (*here, "station"), "station's modes")
        _once(nodes, modes.node_id, (*here, "node"), "NodeId")
        _once(nodes, modes.state_node_id, (*here, "state_node"), "NodeId")
    for i, sig in enumerate(eq.signals):
        _once(seen, sig.name, (*prefix, "signals", i, "name"), "tag or signal name")
        _once(nodes, sig.node_id, (*prefix, "signals", i, "node"), "NodeId")
    for field in ("permissives", "interlocks"):
        for k, source in enumerate(getattr(eq, field)):
            try:
                Condition(source, eq.names)
            except ExpressionError as err:
                raise SpecError((*prefix, field, k), str(err)) from None


def _once(seen: dict[str, Path_], name: str, path: Path_, what: str) -> None:
    if name in seen:
        raise SpecError(path, f"duplicate {what} {name!r}")
    seen[name] = path


def parameter_of(tag: Tag, scenario: Scenario) -> Parameter:
    """The twin's parameter behind ``tag`` (the tag was checked against the scenario)."""
    return next(p for st in scenario.stations for p in st.parameters if f"{st.name}.{p.name}" == tag.parameter)


def hard_limits(tag: Tag, scenario: Scenario) -> tuple[float, float]:
    """The tag's hard limits: its own, else its parameter's bounds."""
    if tag.hard is not None:
        return tag.hard
    p = parameter_of(tag, scenario)
    return (p.min, p.max)
