"""The virtual plant: the twin in scaled wall-clock time behind an OPC UA server (asyncua).

``VirtualPlant(scenario, speed=60, security=PlantSecurity.insecure())`` runs one replication of the
scenario (:class:`twins.model.Line`) so that ``speed`` simulated seconds pass per wall second, and
serves it on ``opc.tcp://HOST:PORT/twinopt/`` the way a PLC would:

* a writable setpoint tag per process parameter (:func:`plant_tags`; typed Float, Double, Int32 or
  Boolean). The server enforces the tag's type (BadTypeMismatch) and bounds (BadOutOfRange); an
  accepted write takes effect in the running twin at once (``Line.set_parameters``);
* per station a writable Int32 mode command (0 off, 1 standby, 2 on; BadOutOfRange for any other
  value) that takes effect in the twin at once (``StationRT.command``), and the mode in effect;
* staging nodes and an ``ApplyStaged`` method that applies all staged targets atomically, or none;
* read-only nodes: machine states, buffer levels, good and scrap counters, energy meter, the
  plant state ``twinopt snapshot`` reads (parts per buffer, each machine's state, product and time left),
  the simulated clock, KPIs so far and the setpoints the twin uses;
* a watchdog: while ``gateway.push_active`` is true, ``gateway.heartbeat`` must change every
  ``watchdog_s`` wall seconds, else the plant falls back to its last confirmed setpoints;
* injected faults (:mod:`studio.gateway.faults`) for tests and drills;
* security: either explicitly insecure (no security, anonymous) or Basic256Sha256 Sign and
  SignAndEncrypt with a certificate and username/password users (:mod:`studio.gateway.security`).

docs/plant.md has the node map. At the end of the scenario's horizon the clock stops
(``line.running`` false); the server keeps serving and setpoints can still be written.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from functools import partial
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.server.address_space import AttributeService
from asyncua.server.user_managers import UserManager

from studio.gateway.dispatch import StationDispatch, dispatch_lists
from studio.gateway.faults import Faults
from studio.gateway.security import PLANT_APP_URI, ensure_certificate, hash_password, verify_password
from twins.calendar import UNITS_PER_HOUR
from twins.energy import STATES
from twins.equipment import MODE_CODES, MODE_OF_CODE, mode_command_node, mode_node
from twins.equipment_nodes import DispatchNodes, Handshake
from twins.errors import InputError
from twins.kpi import line_kpis, station_kpis
from twins.model import Line, Snapshot
from twins.spec import fingerprint
from twins.state import state_from_line

log = logging.getLogger("twinopt.plant")

NAMESPACE = "urn:twinopt:plant:tags"
#: PLC data types a tag may have, and their OPC UA variant types
TAG_TYPES = ("Float", "Double", "Int32", "Boolean")
_VARIANT = {"Float": ua.VariantType.Float, "Double": ua.VariantType.Double, "Int32": ua.VariantType.Int32,
            "Boolean": ua.VariantType.Boolean}
#: line KPIs published as ``kpi.<name>`` and station KPIs as ``kpi.<station>.<name>`` (since the start)
LINE_KPIS = ("throughput", "lead_time", "wip", "scrap_rate", "energy_kwh_per_unit", "energy_cost", "co2_kg", "margin")
STATION_KPIS = ("oee", "availability", "performance", "quality", "utilization", "blocked", "starved")
_RUN_BUDGET_S = 0.01  # wall seconds of simulation between two turns of the server
_KPI_EVERY_S = 1.0  # wall seconds between KPI updates (they scan every lead time so far)


@dataclass(frozen=True)
class PlantTag:
    """A writable setpoint tag: ``name`` is ``station.parameter``, ``node`` an ``ns=2`` NodeId string,
    ``type`` one of :data:`TAG_TYPES`, ``low``/``high`` the limits the server enforces (within the
    parameter's own bounds, which always apply)."""

    name: str
    node: str
    type: str = "Double"
    low: float | None = None
    high: float | None = None

    @property
    def station(self) -> str:
        return self.name.rpartition(".")[0]

    @property
    def parameter(self) -> str:
        return self.name.rpartition(".")[2]


def plant_tags(scenario: Any) -> list[PlantTag]:
    """The plant's setpoint tags: the scenario's ``equipment`` tags when it has that section (their
    node, type and ``hard`` limits, default the parameter's bounds), else one Double tag per process
    parameter, ``ns=2;s=<station>.<parameter>``, with the parameter's bounds (also when the section
    declares station modes only)."""
    params = {f"{st.name}.{p.name}": p for st in scenario.stations for p in st.parameters}
    equipment = getattr(scenario, "equipment", None)
    if equipment is None or not equipment.tags:
        return [PlantTag(name, f"ns=2;s={name}", "Double", p.min, p.max) for name, p in params.items()]
    out = []
    for tag in equipment.tags:
        p = params.get(tag.name)
        low, high = tag.hard if tag.hard is not None else ((p.min, p.max) if p is not None else (None, None))
        out.append(PlantTag(tag.name, tag.node_id, tag.type, low, high))
    return out


@dataclass(frozen=True)
class PlantSignal:
    """A read-only signal of the scenario's ``equipment`` section (a mode, an alarm) that permissives
    and interlocks read: ``name``, ``node`` (an ``ns=2`` NodeId string), ``type``."""

    name: str
    node: str
    type: str = "Boolean"


def plant_signals(scenario: Any) -> list[PlantSignal]:
    """The ``equipment`` section's signals (none without one)."""
    equipment = getattr(scenario, "equipment", None)
    if equipment is None:
        return []
    return [PlantSignal(sig.name, sig.node_id, sig.type) for sig in equipment.signals]


@dataclass(frozen=True)
class PlantMode:
    """A station's energy mode as the plant serves it: the writable Int32 mode command at
    ``command_node`` and the read-only mode in effect at ``state_node`` (:data:`MODE_CODES`)."""

    station: str
    command_node: str
    state_node: str

    @property
    def name(self) -> str:
        """The name the faults file's ``reject_writes`` uses: ``<station>.mode_command``."""
        return f"{self.station}.mode_command"


def plant_modes(scenario: Any) -> list[PlantMode]:
    """Every station's mode nodes: those the ``equipment`` section's ``modes`` declare, else
    ``ns=2;s=<station>.mode_command`` and ``ns=2;s=<station>.mode``."""
    equipment = getattr(scenario, "equipment", None)
    out = []
    for st in scenario.stations:
        declared = equipment.station_modes(st.name) if equipment is not None else None
        if declared is not None:
            out.append(PlantMode(st.name, declared.node_id, declared.state_node_id))
        else:
            out.append(PlantMode(st.name, mode_command_node(st.name), mode_node(st.name)))
    return out


@dataclass(frozen=True)
class PlantSecurity:
    """How the plant's server is secured: :meth:`insecure` (no security, anonymous — for tests and
    demos on loopback) or :meth:`with_users` (Basic256Sha256 Sign and SignAndEncrypt, a
    certificate from ``cert_dir``, username/password users as ``name → scrypt hash``)."""

    insecure_: bool
    users: Mapping[str, str] = field(default_factory=dict)
    cert_dir: Path = Path("twinopt-data/pki")

    @classmethod
    def insecure(cls) -> PlantSecurity:
        return cls(True)

    @classmethod
    def with_users(cls, users: Mapping[str, str], cert_dir: str | Path = "twinopt-data/pki") -> PlantSecurity:
        if not users:
            raise InputError("a secure plant needs at least one user")
        return cls(False, dict(users), Path(cert_dir))


def _scaled(draws: Iterator[float], factor: float) -> Iterator[float]:
    for x in draws:
        yield x * factor


def _nid(sid: str) -> ua.NodeId:
    """The NodeId ``ns=2;s=<sid>``."""
    return ua.NodeId(ua.String(sid), ua.Int16(2))


def _bad(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


_GOOD = ua.StatusCode()
_ADMIN = User(role=UserRole.Admin)  # asyncua's default for server-side writes


class _PlantAttributeService(AttributeService):
    """asyncua's attribute service with the plant's writes in front: the address space alone only
    checks variant types, a PLC also checks ranges, answers late, or drops the line."""

    def __init__(self, base: AttributeService, plant: VirtualPlant):
        super().__init__(base._aspace)
        self.plant = plant

    async def write(self, params: ua.WriteParameters, user: User = _ADMIN) -> list[ua.StatusCode]:
        nodes = params.NodesToWrite
        own = [i for i, wv in enumerate(nodes) if wv.NodeId in self.plant._writers]
        if not own:
            return await super().write(params, user)
        if self.plant.faults.write_latency_s:
            await asyncio.sleep(self.plant.faults.write_latency_s)
        results: list[ua.StatusCode | None] = [None] * len(nodes)
        for i in own:
            results[i] = await self.plant._write(nodes[i])
        rest = [i for i in range(len(nodes)) if results[i] is None]
        if rest:
            sub = ua.WriteParameters()
            sub.NodesToWrite = [nodes[i] for i in rest]
            for i, code in zip(rest, await super().write(sub, user), strict=True):
                results[i] = code
        return [r if r is not None else _GOOD for r in results]


class PasswordUserManager(UserManager):
    """A user of the users file with the right password, nobody else (anonymous and
    certificate-only clients are refused)."""

    def __init__(self, users: Mapping[str, str], channel_is_secure: Callable[[], bool]):
        self.users = dict(users)
        self.channel_is_secure = channel_is_secure
        self._dummy = hash_password("twinopt-no-such-user")  # the same work for unknown names

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        # asyncua 2.1 opens a SecurityPolicy#None channel even when no such endpoint is offered, and
        # would take a plaintext password on it: a login counts only on a Basic256Sha256 channel
        if not username or password is None or not self.channel_is_secure():
            return None
        stored = self.users.get(username)
        ok = verify_password(password, stored if stored is not None else self._dummy)
        return User(role=UserRole.User, name=username) if ok and stored is not None else None


@dataclass
class _Var:
    node: ua.NodeId
    vtype: ua.VariantType
    value: Any = None


class VirtualPlant:
    """The twin of ``scenario`` as an OPC UA server in scaled wall-clock time.

    ``speed``: simulated seconds per wall second; ``seed``: the replication's master seed;
    ``faults``: injected faults; ``tags``: the setpoint tags (default :func:`plant_tags`);
    ``port`` 0 picks a free port; ``watchdog_s``: wall seconds without a heartbeat change during a
    push before the plant reverts to its last confirmed setpoints. Use ``async with`` or
    :meth:`start`/:meth:`stop`; :attr:`endpoint` is the URL once started.
    """

    def __init__(self, scenario: Any, *, security: PlantSecurity, speed: float = 60.0, seed: int = 1,
                 faults: Faults | None = None, tags: Sequence[PlantTag] | None = None, host: str = "127.0.0.1",
                 port: int = 0, watchdog_s: float = 5.0, tick_s: float = 0.05,
                 on_event: Callable[[str], None] | None = None, hold: bool = False,
                 releases: Mapping[str, int] | None = None):
        if not (math.isfinite(speed) and speed > 0):
            raise InputError(f"speed must be a positive number of simulated seconds per second, got {speed}")
        if not (math.isfinite(watchdog_s) and watchdog_s > 0):
            raise InputError(f"watchdog must be a positive number of seconds, got {watchdog_s}")
        if not 0 <= port <= 65535:
            raise InputError(f"port must be in 0..65535, got {port}")
        self.scenario, self.security, self.speed, self.seed = scenario, security, float(speed), seed
        self.faults = faults or Faults()
        self.host, self.port, self.watchdog_s, self.tick_s = host, port, float(watchdog_s), tick_s
        self.on_event = on_event or (lambda message: log.warning("%s", message))
        self.line = Line(scenario, seed)
        self._slow_down()
        for product, quantity in (releases or {}).items():  # e.g. every job of a shop at t = 0
            self.line.release(product, quantity)
        #: while True the simulated clock stands still (``line.hold``; ``hold=True`` starts held)
        self.held = bool(hold)
        equipment = getattr(scenario, "equipment", None)
        self.handshake: Handshake = equipment.handshake if equipment is not None else Handshake()
        self.dispatch_nodes: DispatchNodes = equipment.dispatch if equipment is not None else DispatchNodes()
        self.dispatch: dict[str, StationDispatch] = dispatch_lists(self.line)
        self.confirmed_lists = {name: d.remaining for name, d in self.dispatch.items()}
        self.tags = list(tags) if tags is not None else plant_tags(scenario)
        self.signals = plant_signals(scenario)
        self.modes = plant_modes(scenario)
        self._check_tags()
        #: simulated time units per wall second
        self.rate = self.speed * UNITS_PER_HOUR[scenario.time_unit] / 3600.0
        self.server: Server | None = None
        self._vars: dict[str, _Var] = {}
        self._writers: dict[ua.NodeId, Callable[[ua.DataValue], Any]] = {}
        self._tag_vars: dict[str, _Var] = {}
        self._signal_vars: list[tuple[PlantSignal, _Var]] = []
        self._staged: dict[str, Any] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.accepted_writes = 0
        self._dropped = False
        self.push_active = False
        self.heartbeat: int = 0
        self._last_beat = 0.0
        self.watchdog_trips = 0
        self.confirmed = self.setpoints()
        self.lag = 0.0
        self.achieved_speed = 0.0
        self._url: str | None = None
        self._s0: Snapshot | None = None  # the snapshot KPIs are measured from

    # -- tags -------------------------------------------------------------------------------------
    def _check_tags(self) -> None:
        names = [t.name for t in self.tags]
        params = {f"{st.name}.{p.name}": p for st in self.scenario.stations for p in st.parameters}
        for tag in self.tags:
            if names.count(tag.name) > 1:
                raise InputError(f"tag {tag.name}: listed twice")
            if tag.name not in params:
                raise InputError(f"tag {tag.name}: no such station.parameter "
                                 f"(parameters: {', '.join(params) or 'none'})")
            if tag.type not in TAG_TYPES:
                raise InputError(f"tag {tag.name}: type {tag.type!r} is not one of {', '.join(TAG_TYPES)}")
            try:
                node = ua.NodeId.from_string(tag.node)
            except Exception:  # noqa: BLE001 - asyncua raises several types for a malformed NodeId
                raise InputError(f"tag {tag.name}: node {tag.node!r} is not a NodeId "
                                 f"(e.g. ns=2;s=dispenser.pressure_bar)") from None
            if node.NamespaceIndex != 2:
                raise InputError(f"tag {tag.name}: node {tag.node!r}: the virtual plant serves namespace 2 only")
            if tag.low is not None and tag.high is not None and not tag.low < tag.high:
                raise InputError(f"tag {tag.name}: low {tag.low} must be below high {tag.high}")
        writable = [*names, *(f"{st}.dispatch_list" for st in self.dispatch), *(m.name for m in self.modes)]
        unknown = [n for n in self.faults.reject_writes if n not in writable]
        if unknown:
            raise InputError(f"faults: reject_writes: unknown tag {unknown[0]!r} "
                             f"(tags and dispatch lists: {', '.join(writable) or 'none'})")
        hs, dn = self.handshake, self.dispatch_nodes
        for what, where in (("handshake: staging", hs.staging_node("x")), ("handshake: apply_object", hs.apply_object),
                           ("handshake: apply_method", hs.apply_method), ("handshake: heartbeat", hs.heartbeat),
                           ("handshake: push_active", hs.push_active), ("dispatch: node", dn.node_of("x")),
                           ("dispatch: remaining", dn.remaining_of("x"))):
            if ua.NodeId.from_string(where).NamespaceIndex != 2:
                raise InputError(f"{what}: {where!r}: the virtual plant serves namespace 2 only")
        signals = [s.name for s in self.signals]
        unknown = [n for n in self.faults.signals if n not in signals]
        if unknown:
            raise InputError(f"faults: signals: {unknown[0]!r} is not a signal of the equipment section "
                             f"(signals: {', '.join(signals) or 'none'})")
        for sig in self.signals:
            if sig.type not in TAG_TYPES:
                raise InputError(f"signal {sig.name}: type {sig.type!r} is not one of {', '.join(TAG_TYPES)}")
            try:
                ua.NodeId.from_string(sig.node)
            except Exception:  # noqa: BLE001 - asyncua raises several types for a malformed NodeId
                raise InputError(f"signal {sig.name}: node {sig.node!r} is not a NodeId") from None

    def _slow_down(self) -> None:
        """The ``slow`` fault: every process time a slowed station's machines draw is multiplied by
        the factor (the draws themselves, and so the random streams, stay the twin's); the planned
        (ideal) time stays the twin's, so the station's performance drops as a worn one's would."""
        stations = {st.name: st for st in self.line.stations}
        for name, factor in self.faults.slow.items():
            st = stations.get(name)
            if st is None:
                raise InputError(f"faults: slow: unknown station {name!r} (stations: {', '.join(stations)})")
            if not (math.isfinite(factor) and factor > 0):
                raise InputError(f"faults: slow: {name}: the factor must be a positive number, got {factor}")
            for m in st.machines:  # in place: a machine's process binds this list when it starts
                m.proc_samplers[:] = [None if s is None else _scaled(s, factor) for s in m.proc_samplers]

    def signal_value(self, signal: PlantSignal) -> Any:
        """A signal's value now: forced by the faults file, else ``<station>.alarm`` is true while a
        machine of the station is down, ``<station>.mode_auto`` is true, anything else false or 0."""
        forced = self.faults.signals.get(signal.name)
        if forced is not None:
            value: float = float(forced)
        else:
            station, _, what = signal.name.rpartition(".")
            st = next((x for x in self.line.stations if x.name == station), None)
            now = self.line.env.now
            if st is not None and what == "alarm":
                value = float(sum(m.current_state(now) == STATES.index("down") for m in st.machines))
            elif st is not None and what == "mode_auto":
                value = 1.0
            else:
                value = 0.0
        if signal.type == "Boolean":
            return bool(value)
        return int(value) if signal.type == "Int32" else float(value)

    def setpoints(self) -> dict[str, float]:
        """The setpoints the twin uses now, by tag name."""
        return {t.name: self.line.station(t.station).params[t.parameter] for t in self.tags}

    def _typed(self, tag: PlantTag, value: float) -> Any:
        if tag.type == "Boolean":
            return bool(value)
        if tag.type == "Int32":
            return int(round(value))
        return float(value)

    def _check_value(self, tag: PlantTag, value: Any) -> int | None:
        """None when ``value`` may be written to ``tag``, else the Bad status code."""
        v = float(value)
        p = next(p for p in self.line.station(tag.station).spec.parameters if p.name == tag.parameter)
        low = p.min if tag.low is None else max(p.min, tag.low)
        high = p.max if tag.high is None else min(p.max, tag.high)
        if not (math.isfinite(v) and low <= v <= high):
            return ua.StatusCodes.BadOutOfRange
        return None

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """``opc.tcp://HOST:PORT/twinopt/`` (the bound port) once started."""
        if self._url is None:
            raise RuntimeError("the plant is not started")
        return self._url

    async def __aenter__(self) -> VirtualPlant:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Build the address space, bind the server and start the clock."""
        sec = self.security
        users = None if sec.insecure_ else PasswordUserManager(dict(sec.users), self._channel_is_secure)
        server = Server(user_manager=users)
        await server.init()
        server.set_server_name(f"twinopt virtual plant ({self.scenario.name})")
        await server.set_application_uri(PLANT_APP_URI)
        server.set_endpoint(f"opc.tcp://{self.host}:{self.port}/twinopt/")
        if sec.insecure_:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            server.set_identity_tokens([ua.AnonymousIdentityToken])
        else:
            cert, key = await ensure_certificate(sec.cert_dir, "plant", PLANT_APP_URI, server=True)
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                                        ua.SecurityPolicyType.Basic256Sha256_Sign])
            server.set_identity_tokens([ua.UserNameIdentityToken])
        server.iserver.attribute_service = _PlantAttributeService(server.iserver.attribute_service, self)
        self.server = server
        await self._build()
        try:
            await server.start()
        except OSError as err:
            raise InputError(f"cannot listen on {self.host}:{self.port} ({err.strerror or err})") from None
        assert server.bserver is not None
        host, port = server.bserver.hostname, server.bserver.port
        self._url = f"opc.tcp://{host}:{port}/twinopt/"
        server.set_endpoint(self._url)
        for edp in server.iserver.endpoints:  # advertise the bound port, not 0
            edp.EndpointUrl = self._url
            edp.Server.DiscoveryUrls = [self._url]
        await self._publish(kpis=True)
        self._tasks.append(asyncio.create_task(self._clock()))

    async def stop(self) -> None:
        """Stop the clock and the server (closing every client connection)."""
        for task in [*self._tasks, *self._pending]:
            task.cancel()
        for task in [*self._tasks, *self._pending]:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        self._tasks.clear()
        self._pending.clear()
        if self.server is not None:
            await self.server.stop()
            self.server = None

    # -- address space ----------------------------------------------------------------------------
    async def _build(self) -> None:
        assert self.server is not None
        idx = await self.server.register_namespace(NAMESPACE)
        if idx != 2:
            raise RuntimeError(f"the plant's namespace got index {idx}, expected 2")
        objects = self.server.nodes.objects
        plant = await objects.add_object(_nid("plant"), ua.QualifiedName("Plant", 2))
        line_obj = await plant.add_object(_nid("line"), ua.QualifiedName("Line", 2))
        line = self.line
        sc = self.scenario
        await self._ro(line_obj, "line.sim_time", 0.0, ua.VariantType.Double)
        await self._ro(line_obj, "line.scenario", sc.name, ua.VariantType.String)
        await self._ro(line_obj, "line.fingerprint", fingerprint(sc), ua.VariantType.String)
        await self._ro(line_obj, "line.state_time", math.nan, ua.VariantType.Double)
        await self._ro(line_obj, "line.time_unit", sc.time_unit, ua.VariantType.String)
        await self._ro(line_obj, "line.horizon", float(line.horizon), ua.VariantType.Double)
        await self._ro(line_obj, "line.clock", "", ua.VariantType.String)
        await self._ro(line_obj, "line.day", 0, ua.VariantType.Int32)
        await self._ro(line_obj, "line.speed", self.speed, ua.VariantType.Double)
        await self._ro(line_obj, "line.achieved_speed", 0.0, ua.VariantType.Double)
        await self._ro(line_obj, "line.lag", 0.0, ua.VariantType.Double)
        await self._ro(line_obj, "line.running", True, ua.VariantType.Boolean)
        for name in ("arrivals", "lost", "good", "scrap", "wip"):
            await self._ro(line_obj, f"line.{name}", 0, ua.VariantType.Int32)
        await self._ro(line_obj, "line.energy_kwh", 0.0, ua.VariantType.Double)
        await self._ro(line_obj, "line.throughput_per_h", 0.0, ua.VariantType.Double)
        await self._ro(line_obj, "line.last_exit", math.nan, ua.VariantType.Double)
        hold = await self._var(line_obj, _nid("line.hold"), "hold", self.held, ua.VariantType.Boolean, writable=True)
        self._vars["line.hold"] = hold
        self._writers[hold.node] = lambda dv: self._write_hold(hold, dv)
        kpi_obj = await plant.add_object(_nid("kpi"), ua.QualifiedName("KPIs", 2))
        for name in LINE_KPIS:
            await self._ro(kpi_obj, f"kpi.{name}", math.nan, ua.VariantType.Double)
        for st in line.stations:
            st_obj = await plant.add_object(_nid(st.name), ua.QualifiedName(st.name, 2))
            await self._ro(st_obj, f"{st.name}.machines", len(st.machines), ua.VariantType.Int32)
            for state in STATES:
                await self._ro(st_obj, f"{st.name}.state.{state}", 0, ua.VariantType.Int32)
            await self._ro(st_obj, f"{st.name}.buffer_level", 0, ua.VariantType.Int32)
            cap = st.spec.buffer
            await self._ro(st_obj, f"{st.name}.buffer_capacity", -1 if cap is None else int(cap), ua.VariantType.Int32)
            for name in ("operations", "good", "scrap", "reworked"):
                await self._ro(st_obj, f"{st.name}.{name}", 0, ua.VariantType.Int32)
            await self._ro(st_obj, f"{st.name}.energy_kwh", 0.0, ua.VariantType.Double)
            await self._ro(st_obj, f"{st.name}.buffer_parts", "[]", ua.VariantType.String)
            for i in range(len(st.machines)):
                await self._ro(st_obj, f"{st.name}.m{i}.state", "idle", ua.VariantType.String)
                await self._ro(st_obj, f"{st.name}.m{i}.product", "", ua.VariantType.String)
                await self._ro(st_obj, f"{st.name}.m{i}.remaining", math.nan, ua.VariantType.Double)
            for name in STATION_KPIS:
                await self._ro(kpi_obj, f"kpi.{st.name}.{name}", math.nan, ua.VariantType.Double)
            await self._build_dispatch(st_obj, self.dispatch[st.name])
        active = await plant.add_object(_nid("active"), ua.QualifiedName("ActiveSetpoints", 2))
        hs = self.handshake
        staging = await plant.add_object(ua.NodeId.from_string(hs.apply_object), ua.QualifiedName("Staging", 2))
        setpoints = await plant.add_object(_nid("setpoints"), ua.QualifiedName("Setpoints", 2))
        for tag in self.tags:
            vt = _VARIANT[tag.type]
            value = self._typed(tag, line.station(tag.station).params[tag.parameter])
            var = await self._var(setpoints, ua.NodeId.from_string(tag.node), tag.name, value, vt, writable=True)
            self._tag_vars[tag.name] = var
            self._writers[var.node] = partial(self._write_setpoint, tag)
            await self._ro(active, f"active.{tag.name}", float(value), ua.VariantType.Double)
            staged = await self._var(staging, ua.NodeId.from_string(hs.staging_node(tag.name)), tag.name, value, vt,
                                     writable=True)
            self._writers[staged.node] = partial(self._write_staging, tag, staged)
        await staging.add_method(ua.NodeId.from_string(hs.apply_method), ua.QualifiedName("ApplyStaged", 2),
                                 self._apply_staged, [], [ua.VariantType.Int32])
        await self._build_modes(plant)
        if self.signals:
            signals = await plant.add_object(_nid("signals"), ua.QualifiedName("Signals", 2))
            for sig in self.signals:
                node = ua.NodeId.from_string(sig.node)
                if node.to_string() in self._vars:  # one of the plant's own read-only nodes already
                    continue
                var = await self._var(signals, node, sig.name, self.signal_value(sig), _VARIANT[sig.type])
                self._signal_vars.append((sig, var))
        gw = await plant.add_object(_nid("gateway"), ua.QualifiedName("Gateway", 2))
        beat = await self._var(gw, ua.NodeId.from_string(hs.heartbeat), "heartbeat", 0, ua.VariantType.UInt32,
                               writable=True)
        self._writers[beat.node] = lambda dv: self._write_heartbeat(beat, dv)
        active_flag = await self._var(gw, ua.NodeId.from_string(hs.push_active), "push_active", False,
                                      ua.VariantType.Boolean, writable=True)
        self._writers[active_flag.node] = lambda dv: self._write_push_active(active_flag, dv)
        self._vars["gateway.push_active"] = active_flag
        await self._ro(gw, "gateway.watchdog_trips", 0, ua.VariantType.UInt32)
        await self._ro(gw, "gateway.watchdog_s", self.watchdog_s, ua.VariantType.Double)
        # every other node of the plant is read-only: writes get BadNotWritable
        for var in self._vars.values():
            if var.node not in self._writers:
                self._writers[var.node] = lambda dv: _bad(ua.StatusCodes.BadNotWritable)

    async def _build_dispatch(self, parent: Any, d: StationDispatch) -> None:
        """The station's dispatch-list nodes (:mod:`studio.gateway.dispatch`)."""
        strings = ua.VariantType.String
        node = ua.NodeId.from_string(self.dispatch_nodes.node_of(d.name))
        var = await self._var(parent, node, "dispatch_list", list(d.written), strings, writable=True)
        self._writers[var.node] = partial(self._write_dispatch, d, var)
        remaining = await self._var(parent, ua.NodeId.from_string(self.dispatch_nodes.remaining_of(d.name)),
                                    "dispatch_remaining", d.remaining, strings)
        self._vars[f"{d.name}.dispatch_remaining"] = remaining
        await self._ro(parent, f"{d.name}.dispatch_next", d.next, strings)
        await self._ro(parent, f"{d.name}.dispatched", d.dispatched, strings)
        assert self.server is not None
        for array in (var, remaining, self._vars[f"{d.name}.dispatched"]):  # one-dimensional String arrays
            await self.server.iserver.aspace.write_attribute_value(
                array.node, ua.AttributeIds.ValueRank,
                ua.DataValue(ua.Variant(ua.ValueRank.OneDimension, ua.VariantType.Int32)))

    async def _var(self, parent: Any, node: ua.NodeId, browse: str, value: Any, vtype: ua.VariantType, *,
                   writable: bool = False) -> _Var:
        if node in self._writers or any(v.node == node for v in self._vars.values()):
            raise InputError(f"node {node.to_string()} is used twice (a station name clashes with another node)")
        created = await parent.add_variable(node, ua.QualifiedName(browse, 2),
                                            ua.Variant(value, vtype))
        if writable:
            await created.set_writable()
        var = _Var(node, vtype, value)
        self._vars[node.to_string()] = var
        return var

    async def _ro(self, parent: Any, sid: str, value: Any, vtype: ua.VariantType) -> None:
        var = await self._var(parent, _nid(sid), sid.partition(".")[2], value, vtype)
        self._vars[sid] = var

    async def _set(self, var: _Var, value: Any) -> None:
        """Server-side update of a node (no checks, subscriptions notified)."""
        if value == var.value and type(value) is type(var.value):
            return
        var.value = value
        assert self.server is not None
        now = ua.DateTime.now(UTC)
        dv = ua.DataValue(ua.Variant(value, var.vtype), SourceTimestamp=now, ServerTimestamp=now)
        await self.server.iserver.aspace.write_attribute_value(var.node, ua.AttributeIds.Value, dv)

    async def _publish_value(self, sid: str, value: Any) -> None:
        await self._set(self._vars[sid], value)

    # -- writes -----------------------------------------------------------------------------------
    async def _write(self, wv: ua.WriteValue) -> ua.StatusCode:
        if wv.AttributeId != ua.AttributeIds.Value:
            return _bad(ua.StatusCodes.BadNotWritable)
        result = self._writers[wv.NodeId](wv.Value)
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, ua.StatusCode)
        return result

    @staticmethod
    def _value_of(dv: ua.DataValue, vtype: ua.VariantType) -> tuple[Any, int | None]:
        var = dv.Value
        if var is None or var.VariantType != vtype or var.is_array or var.Value is None:
            return None, ua.StatusCodes.BadTypeMismatch
        return var.Value, None

    async def _write_setpoint(self, tag: PlantTag, dv: ua.DataValue) -> ua.StatusCode:
        if tag.name in self.faults.reject_writes:
            return _bad(ua.StatusCodes.BadDeviceFailure)
        value, code = self._value_of(dv, _VARIANT[tag.type])
        if code is None:
            code = self._check_value(tag, value)
        if code is not None:
            return _bad(code)
        await self._take_effect({tag.name: value})
        self._accepted()
        return _GOOD

    def _accepted(self) -> None:
        """Count an accepted write (setpoint, mode command, dispatch list); drop the connection if told to."""
        self.accepted_writes += 1
        k = self.faults.drop_after_writes
        if k is not None and not self._dropped and self.accepted_writes >= k:
            self._dropped = True
            self._drop_connection()

    # -- station modes (on, standby, off) ---------------------------------------------------------
    async def _build_modes(self, plant: Any) -> None:
        """Per station a writable Int32 mode command and the read-only mode in effect."""
        modes = await plant.add_object(_nid("modes"), ua.QualifiedName("Modes", 2))
        for mode in self.modes:
            code = MODE_CODES[self.line.station(mode.station).mode]
            state = await self._var(modes, ua.NodeId.from_string(mode.state_node), f"{mode.station}.mode", code,
                                    ua.VariantType.Int32)
            command = await self._var(modes, ua.NodeId.from_string(mode.command_node), mode.name, code,
                                      ua.VariantType.Int32, writable=True)
            self._writers[command.node] = partial(self._write_mode, mode, command, state)

    async def _write_mode(self, mode: PlantMode, command: _Var, state: _Var, dv: ua.DataValue) -> ua.StatusCode:
        """A mode command takes effect in the twin at once (``StationRT.command``), like a PLC's."""
        if mode.name in self.faults.reject_writes:
            return _bad(ua.StatusCodes.BadDeviceFailure)
        value, code = self._value_of(dv, ua.VariantType.Int32)
        if code is not None:
            return _bad(code)
        if value not in MODE_OF_CODE:
            return _bad(ua.StatusCodes.BadOutOfRange)
        self.line.station(mode.station).command(MODE_OF_CODE[value])
        await self._set(command, value)
        await self._set(state, value)
        self._accepted()
        return _GOOD

    def station_modes(self) -> dict[str, str]:
        """The mode in effect of every station: ``on``, ``standby`` or ``off``."""
        return {st.name: st.mode for st in self.line.stations}

    async def _write_dispatch(self, d: StationDispatch, var: _Var, dv: ua.DataValue) -> ua.StatusCode:
        """A station's dispatch list: a String array of products that visit the station."""
        if f"{d.name}.dispatch_list" in self.faults.reject_writes:
            return _bad(ua.StatusCodes.BadDeviceFailure)
        v = dv.Value
        if v is None or v.VariantType != ua.VariantType.String or not (v.is_array or v.Value is None):
            return _bad(ua.StatusCodes.BadTypeMismatch)
        names = list(v.Value or [])
        if any(not isinstance(n, str) for n in names) or d.problem(names) is not None:
            return _bad(ua.StatusCodes.BadOutOfRange)
        d.write(names)
        await self._set(var, list(names))
        await self._publish_dispatch()
        self._accepted()
        return _GOOD

    def _write_hold(self, var: _Var, dv: ua.DataValue) -> Any:
        value, code = self._value_of(dv, var.vtype)
        if code is not None:
            return _bad(code)
        self.held = bool(value)

        async def done() -> ua.StatusCode:
            await self._set(var, self.held)
            return _GOOD

        return done()

    async def _publish_dispatch(self) -> None:
        for d in self.dispatch.values():
            await self._publish_value(f"{d.name}.dispatch_remaining", d.remaining)
            await self._publish_value(f"{d.name}.dispatch_next", d.next)
            await self._publish_value(f"{d.name}.dispatched", d.dispatched)

    async def _write_staging(self, tag: PlantTag, var: _Var, dv: ua.DataValue) -> ua.StatusCode:
        value, code = self._value_of(dv, _VARIANT[tag.type])
        if code is not None:
            return _bad(code)
        if not math.isfinite(float(value)):
            return _bad(ua.StatusCodes.BadOutOfRange)
        self._staged[tag.name] = value
        await self._set(var, value)
        return _GOOD

    async def _apply_staged(self, parent: ua.NodeId) -> ua.StatusCode | list[ua.Variant]:
        """ApplyStaged(): check every staged target, then apply all of them at once, or none."""
        by_name = {t.name: t for t in self.tags}
        for name, value in self._staged.items():
            if name in self.faults.reject_writes:
                return _bad(ua.StatusCodes.BadDeviceFailure)
            code = self._check_value(by_name[name], value)
            if code is not None:
                return _bad(code)
        values, self._staged = dict(self._staged), {}
        if values:
            await self._take_effect(values)
        return [ua.Variant(len(values), ua.VariantType.Int32)]

    async def _take_effect(self, values: dict[str, Any]) -> None:
        """Apply accepted targets now, or after the stale read-back delay."""
        delay = self.faults.stale_readback_s
        if not delay:
            await self._apply(values)
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            await self._apply(values)

        task = asyncio.create_task(later())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _apply(self, values: Mapping[str, Any]) -> None:
        by_name = {t.name: t for t in self.tags}
        by_station: dict[str, dict[str, float]] = {}
        for name, value in values.items():
            tag = by_name[name]
            by_station.setdefault(tag.station, {})[tag.parameter] = float(value)
        for station, params in by_station.items():
            self.line.set_parameters(station, params)
        for name, value in values.items():
            await self._set(self._tag_vars[name], value)
            await self._publish_value(f"active.{name}", float(value))

    def _current_connection(self) -> Any:
        """The connection (asyncua's OPCUAProtocol) whose request is being served, or None: each
        connection serves its requests in a task of its own."""
        bserver = self.server.bserver if self.server is not None else None
        if bserver is None:
            return None
        current = asyncio.current_task()
        return next((c for c in bserver.clients if getattr(c, "_task", None) is current), None)

    def _channel_is_secure(self) -> bool:
        """Whether the request being served came over a Basic256Sha256 Sign or SignAndEncrypt
        channel (False when that cannot be told: fail closed)."""
        proto = self._current_connection()
        connection = getattr(getattr(proto, "processor", None), "_connection", None)
        policy = getattr(connection, "security_policy", None)
        return (getattr(policy, "URI", None) == SecurityPolicyBasic256Sha256.URI
                and getattr(policy, "Mode", None) in (ua.MessageSecurityMode.Sign,
                                                      ua.MessageSecurityMode.SignAndEncrypt))

    def _drop_connection(self) -> None:
        """Close the connection of the client whose request is being served (after its answer)."""
        assert self.server is not None and self.server.bserver is not None
        proto = self._current_connection()
        mine = [proto] if proto is not None else list(self.server.bserver.clients)
        for proto in mine:
            if proto.transport is not None:
                asyncio.get_running_loop().call_soon(proto.transport.close)
        self.on_event(f"fault: dropped the client connection after {self.accepted_writes} accepted writes")

    def _write_heartbeat(self, var: _Var, dv: ua.DataValue) -> Any:
        value, code = self._value_of(dv, var.vtype)
        if code is not None:
            return _bad(code)
        if value != self.heartbeat:
            self.heartbeat = int(value)
            self._last_beat = asyncio.get_running_loop().time()

        async def done() -> ua.StatusCode:
            await self._set(var, value)
            return _GOOD

        return done()

    def _write_push_active(self, var: _Var, dv: ua.DataValue) -> Any:
        value, code = self._value_of(dv, var.vtype)
        if code is not None:
            return _bad(code)
        active = bool(value)
        if active and not self.push_active:
            self._last_beat = asyncio.get_running_loop().time()
        elif self.push_active and not active:
            self.confirmed = self.setpoints()
            self.confirmed_lists = {name: d.remaining for name, d in self.dispatch.items()}
        self.push_active = active

        async def done() -> ua.StatusCode:
            await self._set(var, active)
            return _GOOD

        return done()

    async def _watchdog(self, now: float) -> None:
        if not self.push_active or now - self._last_beat <= self.watchdog_s:
            return
        for task in list(self._pending):  # writes still in flight must not land after the fallback
            task.cancel()
        self._pending.clear()
        self._staged.clear()
        await self._apply(self.confirmed)
        for name, d in self.dispatch.items():
            if d.remaining != self.confirmed_lists[name]:
                d.write(self.confirmed_lists[name])
                await self._set(self._vars[self.dispatch_nodes.node_of(name)], list(d.written))
        await self._publish_dispatch()
        self.push_active = False
        self.watchdog_trips += 1
        await self._set(self._vars["gateway.push_active"], False)
        await self._publish_value("gateway.watchdog_trips", self.watchdog_trips)
        self.on_event(f"watchdog: no heartbeat for {self.watchdog_s:g} s during a push; "
                      f"setpoints and dispatch lists reverted to the last confirmed ones")

    # -- clock ------------------------------------------------------------------------------------
    async def _clock(self) -> None:
        loop = asyncio.get_running_loop()
        env, horizon = self.line.env, self.line.horizon
        wall0, sim0 = loop.time(), env.now
        last_kpi = wall0
        per_tick = self.rate * self.tick_s  # simulated time per tick at the asked speed
        # SimPy runs without yielding: advance in chunks sized to ~_RUN_BUDGET_S of computing each, so the
        # server keeps answering whatever the speed (the chunk adapts to how fast the twin runs)
        chunk = min(per_tick, 60.0 * UNITS_PER_HOUR[self.scenario.time_unit] / 3600.0)
        finished = False
        while True:
            now = loop.time()
            if self.held:  # the clock stands still: it resumes from here, not catching up
                wall0, sim0 = now, env.now
            target = min(sim0 + (now - wall0) * self.rate, horizon)
            if env.now < target:
                step_end = min(target, env.now + chunk)
                t = time.perf_counter()
                self.line.run(step_end)
                took = time.perf_counter() - t
                if step_end == env.now + 0.0 and step_end < target:  # a full chunk: resize it
                    chunk *= min(max(_RUN_BUDGET_S / max(took, 1e-6), 0.5), 2.0)
            self.lag = max(target - env.now, 0.0)
            elapsed = loop.time() - wall0
            if elapsed > 0:
                self.achieved_speed = (env.now - sim0) / elapsed * 3600.0 / UNITS_PER_HOUR[self.scenario.time_unit]
            await self._watchdog(loop.time())
            kpis = loop.time() - last_kpi >= _KPI_EVERY_S
            if kpis:
                last_kpi = loop.time()
            if env.now >= horizon and not finished:
                finished = True
                kpis = True
                self.on_event(f"the scenario's horizon ({horizon:g} {self.scenario.time_unit}) is reached: "
                              f"the clock stops, the server keeps serving")
            await self._publish(kpis=kpis)
            await asyncio.sleep(self.tick_s if self.lag <= per_tick else 0)

    async def _publish_state(self) -> None:
        """The plant state nodes (``<station>.buffer_parts``, ``<station>.m<i>.state|product|remaining``)
        from :func:`twins.state.state_from_line`, at the simulated instant ``line.state_time``: every tick,
        with ``line.sim_time`` and ``line.wip`` (~0.2 ms for the SMT line), so one Read request of all of
        them sees one instant."""
        state = state_from_line(self.line)
        pub = self._publish_value
        for st in self.line.stations:
            st_state = state.stations.get(st.name)
            await pub(f"{st.name}.buffer_parts", json.dumps(st_state.waiting() if st_state is not None else []))
            machines = st_state.machines if st_state is not None else []
            for i in range(len(st.machines)):
                m = machines[i] if i < len(machines) else None
                await pub(f"{st.name}.m{i}.state", m.state if m is not None else "idle")
                await pub(f"{st.name}.m{i}.product", (m.product or "") if m is not None else "")
                remaining = m.remaining if m is not None and m.remaining is not None else math.nan
                await pub(f"{st.name}.m{i}.remaining", float(remaining))
        await pub("line.state_time", float(self.line.env.now))

    async def _publish(self, *, kpis: bool) -> None:
        line = self.line
        now = line.env.now
        snap = line.snapshot()
        if self._s0 is None:
            self._s0 = snap
        pub = self._publish_value
        uph = UNITS_PER_HOUR[self.scenario.time_unit]
        await pub("line.sim_time", float(now))
        seconds = self.scenario.start_clock * 3600.0 + now * 3600.0 / uph
        day, sod = divmod(int(seconds), 86400)
        await pub("line.clock", f"{sod // 3600:02d}:{sod % 3600 // 60:02d}:{sod % 60:02d}")
        await pub("line.day", day)
        await pub("line.achieved_speed", float(self.achieved_speed))
        await pub("line.lag", float(self.lag))
        await pub("line.running", now < line.horizon)
        await pub("line.arrivals", int(line.arrivals))
        await pub("line.lost", int(line.lost))
        await pub("line.good", int(line.good))
        await pub("line.scrap", int(line.scrapped))
        await pub("line.wip", int(line.wip))
        await pub("line.energy_kwh", float(sum(sum(s["kwh"]) for s in snap["stations"])))
        await pub("line.throughput_per_h", float(line.good / (now / uph)) if now > 0 else 0.0)
        await pub("line.last_exit", float(line.last_exit))
        for st, s in zip(line.stations, snap["stations"], strict=True):
            counts = [0] * len(STATES)
            for m in st.machines:
                counts[m.current_state(now)] += 1
            for state, n in zip(STATES, counts, strict=True):
                await pub(f"{st.name}.state.{state}", n)
            await pub(f"{st.name}.buffer_level", len(st.buffer))
            await pub(f"{st.name}.operations", int(st.ops))
            await pub(f"{st.name}.good", int(st.good))
            await pub(f"{st.name}.scrap", int(st.scrapped))
            await pub(f"{st.name}.reworked", int(st.reworked))
            await pub(f"{st.name}.energy_kwh", float(sum(s["kwh"])))
        await self._publish_state()
        await self._publish_dispatch()
        for sig, var in self._signal_vars:
            await self._set(var, self.signal_value(sig))
        s0 = self._s0
        if kpis and now > s0["t"]:
            lk = line_kpis(line, s0, snap)
            for name in LINE_KPIS:
                await pub(f"kpi.{name}", float(lk[name]))
            for st_name, values in station_kpis(line, s0, snap).items():
                for name in STATION_KPIS:
                    await pub(f"kpi.{st_name}.{name}", float(values[name]))
