"""A plant's current state read over OPC UA into a :class:`~twins.state.PlantState` (``twinopt snapshot``).

    state = await snapshot("opc.tcp://127.0.0.1:4840/twinopt/", scenario=s,
                           security=PushSecurity.insecure(), timeout=5.0)

Reads, in one Read request, what the virtual plant (docs/plant.md) exposes as a PLC/MES would:
``line.clock`` (time of day), ``line.state_time`` (the simulated instant the state nodes were
captured at) and ``line.sim_time``, ``line.wip``, the setpoints in force (``active.<station>.<parameter>``),
per station ``<station>.buffer_parts`` (JSON list of product names in queue order) and per machine
``<station>.m<i>.state``, ``.product`` and ``.remaining``. The plant publishes all of them in the
same tick; a read that straddles two ticks (``state_time`` ≠ ``sim_time``) is repeated. The state
is checked against the scenario (:func:`twins.state.check_state`) and carries its fingerprint; a
plant that runs another scenario, or another version of it (``line.fingerprint``), is refused.
"""
from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from studio.gateway.push import LINK_ERRORS, Link, PushSecurity, Timing, connect, normalize_endpoint
from twins.errors import EndpointUnreachable, InputError, SpecError
from twins.spec import Scenario, fingerprint
from twins.state import MachineState, PlantState, StationState, check_state

#: reads of the whole state before giving up on one that sees a single instant
_ATTEMPTS = 20


@dataclass(frozen=True)
class PlantSnapshot:
    """A snapshot and the plant's own figures at the same instant: ``sim_time`` (scenario time
    unit) and ``wip`` (``line.wip``)."""

    state: PlantState
    sim_time: float
    wip: int
    #: the values of the ``extra`` nodes :func:`read_snapshot` was asked for, read in the same request
    extra: dict[str, Any] = field(default_factory=dict)


async def _connect(endpoint: str, security: PushSecurity, nodes: dict[str, str], timeout: float) -> Link:
    try:
        return await connect(normalize_endpoint(endpoint), security, nodes, Timing(call_s=timeout))
    except EndpointUnreachable as err:  # push's wording says nothing was written; a snapshot writes nothing
        raise EndpointUnreachable(str(err).removesuffix(": nothing was written")) from None


async def plant_scenario(endpoint: str, *, security: PushSecurity, timeout: float = 5.0) -> str | None:
    """The scenario name the plant serves (``line.scenario``), or None when it does not say."""
    link = await _connect(endpoint, security, {"scenario": "ns=2;s=line.scenario"}, timeout)
    try:
        dvs = await link.call(link.client.read_attributes([link.nodes["scenario"]]))
    except LINK_ERRORS as err:
        raise EndpointUnreachable(f"{endpoint}: reading line.scenario failed ({type(err).__name__} {err})") from None
    finally:
        await link.close()
    value = dvs[0].Value.Value if dvs[0].StatusCode.is_good() and dvs[0].Value is not None else None
    return value if isinstance(value, str) and value else None


def _nodes(scenario: Scenario) -> dict[str, str]:
    names = ["line.clock", "line.sim_time", "line.state_time", "line.wip", "line.scenario", "line.fingerprint"]
    for st in scenario.stations:
        names.append(f"{st.name}.buffer_parts")
        for i in range(st.machines):
            names += [f"{st.name}.m{i}.state", f"{st.name}.m{i}.product", f"{st.name}.m{i}.remaining"]
        names += [f"active.{st.name}.{p.name}" for p in st.parameters]
    return {n: f"ns=2;s={n}" for n in names}


async def read_snapshot(endpoint: str, *, scenario: Scenario, security: PushSecurity,
                        timeout: float = 5.0, extra: Sequence[str] = ()) -> PlantSnapshot:
    """:func:`snapshot` with the plant's ``line.sim_time`` and ``line.wip`` of the same instant, and
    the values of the ``extra`` nodes ``ns=2;s=<name>`` (counters, say) read in the same request."""
    nodes = {**_nodes(scenario), **{n: f"ns=2;s={n}" for n in extra}}
    link = await _connect(endpoint, security, nodes, timeout)
    try:
        names = list(nodes)
        for _ in range(_ATTEMPTS):
            try:
                dvs = await link.call(link.client.read_attributes([link.nodes[n] for n in names]))
            except LINK_ERRORS as err:
                raise EndpointUnreachable(f"{endpoint}: reading the plant state failed "
                                          f"({type(err).__name__} {err})") from None
            values = {n: (dv.Value.Value if dv.StatusCode.is_good() and dv.Value is not None else None)
                      for n, dv in zip(names, dvs, strict=True)}
            if values["line.state_time"] == values["line.sim_time"] and values["line.sim_time"] is not None:
                return replace(_build(values, scenario, endpoint), extra={n: values[n] for n in extra})
            await asyncio.sleep(0.01)
        raise InputError(f"{endpoint}: the plant's state nodes never matched line.sim_time in {_ATTEMPTS} reads "
                         "(does it publish line.state_time?)")
    finally:
        await link.close()


async def read_values(endpoint: str, names: list[str], *, security: PushSecurity,
                      timeout: float = 5.0) -> dict[str, Any]:
    """The values of the plant's nodes ``ns=2;s=<name>`` (None where a node is missing or bad)."""
    link = await _connect(endpoint, security, {n: f"ns=2;s={n}" for n in names}, timeout)
    try:
        dvs = await link.call(link.client.read_attributes([link.nodes[n] for n in names]))
    except LINK_ERRORS as err:
        raise EndpointUnreachable(f"{endpoint}: reading failed ({type(err).__name__} {err})") from None
    finally:
        await link.close()
    return {n: (dv.Value.Value if dv.StatusCode.is_good() and dv.Value is not None else None)
            for n, dv in zip(names, dvs, strict=True)}


async def snapshot(endpoint: str, *, scenario: Scenario, security: PushSecurity, timeout: float = 5.0) -> PlantState:
    """The plant's state now, as a :class:`PlantState` of ``scenario`` (checked, with its fingerprint)."""
    return (await read_snapshot(endpoint, scenario=scenario, security=security, timeout=timeout)).state


def _build(values: dict[str, Any], scenario: Scenario, endpoint: str) -> PlantSnapshot:
    missing = [n for n in ("line.clock", "line.wip") if values[n] is None]
    if missing:
        raise InputError(f"{endpoint}: the plant has no node {missing[0]}")
    served, fp = values["line.scenario"], values["line.fingerprint"]
    if served is not None and served != scenario.name:
        raise InputError(f"{endpoint} runs scenario {served!r}, not {scenario.name!r}")
    if fp is not None and fp != fingerprint(scenario):
        raise InputError(f"{endpoint} runs another version of {scenario.name!r} (fingerprint {fp[:19]}…, "
                         f"the scenario's {fingerprint(scenario)[:19]}…)")
    hh, mm, ss = (int(x) for x in str(values["line.clock"]).split(":"))
    clock = round((hh + mm / 60 + ss / 3600) * 60) / 60 % 24.0
    setpoints: dict[str, dict[str, float]] = {}
    stations: dict[str, StationState] = {}
    for st in scenario.stations:
        for p in st.parameters:
            v = values[f"active.{st.name}.{p.name}"]
            if isinstance(v, int | float) and math.isfinite(v):
                setpoints.setdefault(st.name, {})[p.name] = float(v)
        raw = values[f"{st.name}.buffer_parts"]
        if raw is None:
            raise InputError(f"{endpoint}: the plant has no node {st.name}.buffer_parts")
        try:
            buffer = json.loads(raw)
        except ValueError:
            raise InputError(f"{endpoint}: {st.name}.buffer_parts is not a JSON list: {raw[:80]!r}") from None
        if not (isinstance(buffer, list) and all(isinstance(b, str) for b in buffer)):
            raise InputError(f"{endpoint}: {st.name}.buffer_parts is not a list of product names: {raw[:80]!r}")
        machines = [_machine(values, f"{st.name}.m{i}", endpoint) for i in range(st.machines)]
        while machines and machines[-1].state == "idle":
            machines.pop()
        if buffer or machines:
            stations[st.name] = StationState(buffer=buffer, machines=machines)
    try:
        state = PlantState(scenario=scenario.name, fingerprint=fingerprint(scenario), time_of_day=clock,
                           setpoints=setpoints, stations=stations)
        check_state(state, scenario)
    except SpecError as err:
        raise InputError(f"{endpoint}: the plant's state is not one of {scenario.name!r}: {err}") from None
    except ValueError as err:  # pydantic: a machine state or time the format does not know
        first = " ".join(str(err).split())[:200]
        raise InputError(f"{endpoint}: the plant's state is not a valid plant state: {first}") from None
    return PlantSnapshot(state, float(values["line.sim_time"]), int(values["line.wip"]))


def _machine(values: dict[str, Any], prefix: str, endpoint: str) -> MachineState:
    state = values[f"{prefix}.state"]
    if state is None:
        raise InputError(f"{endpoint}: the plant has no node {prefix}.state")
    product = values[f"{prefix}.product"] or None
    remaining = values[f"{prefix}.remaining"]
    timed = isinstance(remaining, int | float) and math.isfinite(remaining) and remaining >= 0
    return MachineState.model_validate({"state": state, "product": product,
                                        "remaining": float(remaining) if timed and state in ("busy", "setup", "down")
                                        else None})


__all__ = ["PlantSnapshot", "plant_scenario", "read_snapshot", "snapshot"]
