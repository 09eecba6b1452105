"""The API's view of a plant over OPC UA: live values (``GET /plant``) and snapshots stored for
what-ifs from now (``POST /plant/snapshot``; a run or compare job's ``from_state`` names one)."""
from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import insert, select

from studio.api import PREFIX
from studio.api.app import (
    CONFLICT,
    JSON_BODY,
    NOT_FOUND,
    Api,
    ApiDep,
    Reader,
    Writer,
    _check_endpoint,
    _invalid,
    shipped,
)
from studio.api.store import now_iso, scenarios, states
from twins.errors import InputError

router = APIRouter(prefix=PREFIX, tags=["plant"])
COUNTERS = ("line.good", "line.scrap", "line.arrivals", "line.throughput_per_h", "line.energy_kwh", "line.running",
            "line.speed", "line.achieved_speed")


class PlantIn(BaseModel):
    endpoint: str = Field(min_length=1, max_length=500, pattern=r"^opc\.tcp://")


class StationLive(BaseModel):
    buffer: int
    machines: list[str]


class PlantLive(BaseModel):
    endpoint: str
    scenario: str
    time_of_day: str | None
    sim_time: float
    wip: int
    setpoints: dict[str, dict[str, float]]
    stations: dict[str, StationLive]
    counters: dict[str, float | bool | None]


class StateOut(BaseModel):
    id: str
    scenario: str
    endpoint: str
    time_of_day: str | None = None
    wip: int
    created_at: str
    state: dict[str, Any] | None = None


def plant_scenario(state: Api, endpoint: str) -> Any:
    """The scenario the plant at ``endpoint`` serves, as this API knows it (shipped or stored)."""
    from studio.gateway.snapshot import plant_scenario as served
    from twins.loader import load_scenario, scenario_from_text

    name = asyncio.run(served(endpoint, security=state.settings.opc_security))
    if name is None:
        raise HTTPException(409, f"{endpoint} does not say which scenario it runs (line.scenario)")
    if any(s["name"] == name for s in shipped()):
        return load_scenario(name)
    with state.store.read() as conn:
        row = conn.execute(select(scenarios.c.yaml).where(scenarios.c.name == name)
                           .order_by(scenarios.c.version.desc()).limit(1)).first()
    if row is None:
        raise HTTPException(409, f"the plant runs scenario {name!r}, which this API does not know: upload it")
    return scenario_from_text(row.yaml, f"{name}.yaml", allow_files=False)


def _read(state: Api, endpoint: str) -> tuple[Any, Any, dict[str, Any]]:
    from studio.gateway.snapshot import read_snapshot, read_values

    _check_endpoint(state, endpoint)
    try:
        scenario = plant_scenario(state, endpoint)
        snap = asyncio.run(read_snapshot(endpoint, scenario=scenario, security=state.settings.opc_security))
        counters = asyncio.run(read_values(endpoint, list(COUNTERS), security=state.settings.opc_security))
    except InputError as err:
        raise HTTPException(409, str(err)) from None
    return scenario, snap, counters


@router.get("/plant", response_model=PlantLive, responses=CONFLICT)
def live(state: ApiDep, who: Reader,
         endpoint: Annotated[str, Query(max_length=500, pattern=r"^opc\.tcp://")]) -> dict[str, Any]:
    """The plant now: clock, setpoints in force, machine states, buffers and counters."""
    scenario, snap, counters = _read(state, endpoint)
    st = snap.state
    stations = {}
    for spec in scenario.stations:
        s = st.stations.get(spec.name)
        machines = [m.state for m in s.machines] if s is not None else []
        machines += ["idle"] * (spec.machines - len(machines))
        stations[spec.name] = {"buffer": len(s.waiting()) if s is not None else 0, "machines": machines}
    doc = json.loads(st.model_dump_json())
    return {"endpoint": endpoint, "scenario": scenario.name, "time_of_day": doc.get("time_of_day"),
            "sim_time": snap.sim_time, "wip": snap.wip, "setpoints": st.setpoints, "stations": stations,
            "counters": {k.removeprefix("line."): v for k, v in counters.items()}}


@router.post("/plant/snapshot", status_code=201, response_model=StateOut, responses={**CONFLICT, **JSON_BODY})
def take_snapshot(body: PlantIn, state: ApiDep, who: Writer) -> dict[str, Any]:
    """Read the plant's state and keep it: a run or compare job with ``from_state: <id>`` starts from it."""
    scenario, snap, _ = _read(state, body.endpoint)
    row = {"id": uuid.uuid4().hex, "scenario": scenario.name, "endpoint": body.endpoint,
           "document": snap.state.model_dump_json(), "created_at": now_iso(), "created_by": who.key_id}
    with state.store.write() as conn:
        conn.execute(insert(states).values(**row))
    state.record(who, "plant.snapshot", detail=f"{scenario.name} at {body.endpoint} ({row['id']})")
    return _state_out(row, snap.wip)


def _state_out(row: dict[str, Any], wip: int | None = None, full: bool = False) -> dict[str, Any]:
    doc = json.loads(row["document"])
    n = wip if wip is not None else sum(
        len(s.get("buffer") or []) if isinstance(s.get("buffer"), list) else sum((s.get("buffer") or {}).values())
        for s in doc.get("stations", {}).values())
    return {"id": row["id"], "scenario": row["scenario"], "endpoint": row["endpoint"],
            "time_of_day": doc.get("time_of_day"), "wip": n, "created_at": row["created_at"],
            "state": doc if full else None}


@router.get("/states/{state_id}", response_model=StateOut, responses=NOT_FOUND)
def get_state(state_id: str, state: ApiDep, who: Reader) -> dict[str, Any]:
    with state.store.read() as conn:
        row = conn.execute(select(states).where(states.c.id == state_id)).first()
    if row is None:
        raise HTTPException(404, f"no plant state {state_id!r}")
    return _state_out(row._asdict(), full=True)


def state_document(state: Api, state_id: str, loc: tuple[str | int, ...]) -> tuple[str, str]:
    """(scenario name, state JSON) of a stored state; 422 at ``loc`` when there is none."""
    with state.store.read() as conn:
        row = conn.execute(select(states.c.scenario, states.c.document).where(states.c.id == state_id)).first()
    if row is None:
        raise _invalid([{"loc": list(loc), "line": None, "msg": f"no stored plant state {state_id!r} "
                                                                 f"(POST /plant/snapshot makes one)"}])
    return row.scenario, row.document
