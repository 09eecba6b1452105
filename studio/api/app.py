"""The parameter-recommendation API (FastAPI): scenarios, jobs, recommendations with approval and
push through the gateway, keys and the audit trail, under ``/api/v1``. docs/api.md has the contract.

``create_app(Settings(data_dir=…))`` builds the app; ``twinopt serve`` runs it on uvicorn with the
job workers (:mod:`studio.api.queue`).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from studio.api import PREFIX
from studio.api import models as m
from studio.api.audit import SqlAuditLog
from studio.api.auth import Principal, authenticate, create_key
from studio.api.jobs import Limits, ParamError, cache_key, check_horizon, check_params, code_version, parse
from studio.api.jobs import command_argv as _argv
from studio.api.lifecycle import TRANSITIONS, offline_problems
from studio.api.queue import STORED, enqueue, make_huey, reap, requeue_all
from studio.api.store import Store, api_keys, jobs, now_iso, recommendations, scenarios, sqlite_url, storable
from twins.errors import InputError, ScenarioError

log = logging.getLogger("twinopt.api")

ENVS = ("twinopt/Dispatch-v0", "twinopt/DynamicDispatch-v0", "twinopt/Parameter-v0", "twinopt/Energy-v0")


@dataclass
class Settings:
    """What ``twinopt serve`` configures."""

    data_dir: Path = Path("twinopt-data")
    db_url: str | None = None
    limits: Limits = field(default_factory=Limits)
    approval_hours: float = 8.0
    cors_origins: tuple[str, ...] = ()
    #: OPC UA security for pushes (a :class:`studio.gateway.push.PushSecurity`); None: pushing is off
    opc_security: Any = None
    endpoint_allow: tuple[str, ...] = ("opc.tcp://127.0.0.1:", "opc.tcp://localhost:")
    #: factor on the envelope's dwell times (1: as declared; 1/S for a virtual plant at --speed S)
    dwell_scale: float = 1.0
    reaper_every_s: float = 2.0
    stale_s: float = 10.0

    @property
    def url(self) -> str:
        return self.db_url or sqlite_url(self.data_dir)


class Api:
    """The app's state: the store, the queue, the settings."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.data_dir = str(Path(settings.data_dir).resolve())
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        self.store = Store.open(settings.url)
        self.huey = make_huey(self.data_dir)
        self.audit = SqlAuditLog(self.store)
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    def start(self) -> None:
        requeue_all(self.store, self.huey, self.data_dir)
        self._reaper = threading.Thread(target=self._reap_loop, name="twinopt-reaper", daemon=True)
        self._reaper.start()

    def stop(self) -> None:
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
        self.store.dispose()

    def _reap_loop(self) -> None:
        while not self._stop.wait(self.settings.reaper_every_s):
            try:
                reap(self.store, self.huey, self.data_dir, stale_s=self.settings.stale_s)
            except Exception:  # noqa: BLE001 - the reaper must keep going; the next turn retries
                pass

    def record(self, who: Principal, action: str, outcome: str = "ok", *, detail: str | None = None,
               recommendation: tuple[str, int] | None = None) -> None:
        self.audit.append(f"{who.name} ({who.role})", action, outcome, detail=detail, recommendation=recommendation)


# ------------------------------------------------------------------------------------ middleware

class BodyLimit:
    """413 for a request body above ``limit`` bytes (declared or streamed).

    The body is read here, up to the limit, before the app sees it: an exception raised from
    the app's ``receive`` would reach FastAPI's body parsing, which turns any error into a 400.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: the app hears it as it would have
                first = message
                break
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
            if not message.get("more_body", False):
                first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return first

        await self.app(scope, replay, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body above this server's limit of {limit} bytes"}, status_code=413)


# ------------------------------------------------------------------------------------ auth

bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer tw_…`")


def api(request: Request) -> Api:
    return request.app.state.api


ApiDep = Annotated[Api, Depends(api)]


def caller(state: ApiDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise HTTPException(401, "missing API key (Authorization: Bearer <key>)", {"WWW-Authenticate": "Bearer"})
    who = authenticate(state.store, creds.credentials)
    if who is None:
        raise HTTPException(401, "unknown or revoked API key", {"WWW-Authenticate": "Bearer"})
    return who


def need(permission: str) -> Callable[..., Principal]:
    def check(who: Annotated[Principal, Depends(caller)]) -> Principal:
        if not who.may(permission):
            raise HTTPException(403, f"the {who.role} role may not {permission} (key {who.name!r})")
        return who
    return check


Reader = Annotated[Principal, Depends(need("read"))]
Writer = Annotated[Principal, Depends(need("write"))]
Approver = Annotated[Principal, Depends(need("approve"))]
Admin = Annotated[Principal, Depends(need("admin"))]

ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": m.Problem}, 403: {"model": m.Problem}}
#: a route with parameters: its 422 is the validation handler's {detail: [{loc, line, msg}]} (create_app), not
#: FastAPI's default {detail: [{loc, msg, type}]}, which it documents unless the route names its own 422
CHECKED: dict[int | str, dict[str, Any]] = {**ERRORS, 422: {"model": m.ValidationFailed}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {**CHECKED, 404: {"model": m.Problem}}
CONFLICT: dict[int | str, dict[str, Any]] = {**NOT_FOUND, 409: {"model": m.Problem}}
#: a route with a body: 413 above ``twinopt serve --max-body`` (BodyLimit)
BODY: dict[int | str, dict[str, Any]] = {413: {"model": m.Problem, "description": "the body is above this server's "
                                                                                 "limit (twinopt serve --max-body)"}}
#: a JSON body FastAPI cannot decode (not UTF-8) is its 400, not a 422
JSON_BODY: dict[int | str, dict[str, Any]] = {**BODY, 400: {"model": m.Problem,
                                                            "description": "the body cannot be decoded"}}


def _invalid(items: list[dict[str, Any]]) -> HTTPException:
    return HTTPException(422, items)


def _located(err: InputError, base: tuple[str | int, ...]) -> HTTPException:
    if isinstance(err, ParamError):
        return _invalid([{"loc": list(err.loc), "line": err.line, "msg": err.msg}])
    if isinstance(err, ScenarioError):
        return _invalid([{"loc": [*base, *err.path], "line": err.line, "msg": err.msg}])
    return _invalid([{"loc": list(base), "line": None, "msg": str(err)}])


# ------------------------------------------------------------------------------------ routes

router = APIRouter(prefix=PREFIX)


@router.get("/health", response_model=m.Health, tags=["service"])
def health() -> dict[str, str]:
    return {"status": "ok", "version": code_version()}


@router.get("/me", response_model=m.KeyOut, tags=["service"], responses=ERRORS)
def me(who: Reader) -> dict[str, Any]:
    """Whose key this is: its id, name and role (what a client may show)."""
    return {"id": who.key_id, "name": who.name, "role": who.role}


# -- scenarios ------------------------------------------------------------------------------------

@functools.cache
def _shipped() -> tuple[dict[str, Any], ...]:
    from twins.loader import load_scenario
    from twins.shipped import scenario_names
    from twins.spec import fingerprint

    return tuple({"id": name, "name": name, "version": 0, "fingerprint": fingerprint(load_scenario(name)),
                  "shipped": True, "created_at": None} for name in scenario_names())


def shipped() -> list[dict[str, Any]]:
    """The shipped scenarios, loaded once (a cache filled in place listed them twice when two requests
    raced to fill it)."""
    return list(_shipped())


YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


@router.post("/scenarios", status_code=201, response_model=m.ScenarioOut, tags=["scenarios"],
             responses={**CHECKED, **BODY, 415: {"model": m.Problem}, 409: {"model": m.Problem}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/yaml": {"schema": {"type": "string"}},
                 "application/json": {"schema": m.ScenarioIn.model_json_schema()}}}})
async def upload_scenario(request: Request, state: ApiDep, who: Writer,
                          name: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                                                            description="name for a YAML body (default: "
                                                                        "the scenario's own name)")] = None
                          ) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if ctype in YAML_TYPES:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid([{"loc": ["body"], "line": None, "msg": "the YAML body is not UTF-8"}]) from None
    elif ctype == "application/json":
        try:
            doc = m.ScenarioIn.model_validate_json(body)
        except ValueError as err:
            raise RequestValidationError(getattr(err, "errors", lambda: [])()) from None
        text, name = doc.yaml, doc.name
    else:
        raise HTTPException(415, "send the scenario as application/yaml, or as application/json "
                                 "{\"name\": …, \"yaml\": …}")
    return await run_in_threadpool(_store_scenario, state, who, text, name)


def _store_scenario(state: Api, who: Principal, text: str, name: str | None) -> dict[str, Any]:
    from twins.loader import scenario_from_text
    from twins.spec import fingerprint

    label = f"{name or 'scenario'}.yaml"
    try:
        scenario = scenario_from_text(text, label, allow_files=False)
    except ScenarioError as err:
        raise _located(err, ("body",)) from None
    except InputError as err:
        raise _located(err, ("body",)) from None
    name = name or scenario.name
    if not _valid_name(name):
        raise _invalid([{"loc": ["body", "name"], "line": None, "msg": f"invalid scenario name {name!r}"}])
    if any(s["name"] == name for s in shipped()):
        raise HTTPException(409, f"{name!r} is a shipped scenario's name: upload under another name")
    row = {"id": uuid.uuid4().hex, "name": name, "fingerprint": fingerprint(scenario), "yaml": text,
           "created_at": now_iso(), "created_by": who.key_id}
    for attempt in range(20):
        try:
            with state.store.write() as conn:
                version = conn.execute(select(func.coalesce(func.max(scenarios.c.version), 0))
                                       .where(scenarios.c.name == name)).scalar_one() + 1
                conn.execute(insert(scenarios).values(version=version, **row))
            break
        except IntegrityError:  # PostgreSQL: a concurrent upload took this version first (SQLite serializes)
            if attempt == 19:
                raise
    state.record(who, "scenario.create", detail=f"{name} v{version} ({row['id']})")
    return {**row, "version": version, "shipped": False}


def _valid_name(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name)) and len(name) <= 200


@router.get("/scenarios", response_model=list[m.ScenarioOut], tags=["scenarios"], responses=ERRORS)
def list_scenarios(state: ApiDep, who: Reader) -> list[dict[str, Any]]:
    with state.store.read() as conn:
        rows = conn.execute(select(scenarios.c.id, scenarios.c.name, scenarios.c.version, scenarios.c.fingerprint,
                                   scenarios.c.created_at).order_by(scenarios.c.name, scenarios.c.version)).all()
    return shipped() + [{**r._asdict(), "shipped": False} for r in rows]


@router.get("/scenarios/{scenario_id}", response_model=m.ScenarioDetail, tags=["scenarios"],
            responses=NOT_FOUND)
def get_scenario(scenario_id: str, state: ApiDep, who: Reader) -> dict[str, Any]:
    from twins.shipped import scenario_path

    for s in shipped():
        if s["id"] == scenario_id:
            return {**s, "yaml": scenario_path(scenario_id).read_text()}
    with state.store.read() as conn:
        row = conn.execute(select(scenarios).where(scenarios.c.id == scenario_id)).first() \
            if storable(scenario_id) else None
    if row is None:
        raise HTTPException(404, f"no scenario {scenario_id!r}")
    return {**row._asdict(), "shipped": False}


@dataclass
class Resolved:
    arg: str  # the command's positional argument (a shipped name or stored:<id>)
    label: str
    fingerprint: str
    yaml: str | None = None  # stored scenarios' text


def resolve_scenario(state: Api, ref: str, loc: tuple[str | int, ...]) -> Resolved:
    """A stored scenario (id, or name: its latest version) or a shipped one."""
    with state.store.read() as conn:
        row = None if not storable(ref) else conn.execute(select(scenarios).where(scenarios.c.id == ref)).first() \
            or conn.execute(select(scenarios).where(scenarios.c.name == ref)
                            .order_by(scenarios.c.version.desc()).limit(1)).first()
    if row is not None:
        return Resolved(STORED + row.id, row.name, row.fingerprint, row.yaml)
    for s in shipped():
        if s["id"] == ref:
            return Resolved(ref, ref, s["fingerprint"])
    raise _invalid([{"loc": list(loc), "line": None, "msg": f"no stored or shipped scenario {ref!r}"}])


def _load(res: Resolved, overrides: list[str], loc: tuple[str | int, ...]) -> Any:
    """The scenario with ``overrides`` applied, validated; its errors are a 422 at ``loc``."""
    try:
        return _validated(res.arg, res.label, res.yaml, tuple(overrides))
    except InputError as err:
        raise _located(err, loc) from None


@functools.lru_cache(maxsize=256)
def _validated(arg: str, label: str, yaml: str | None, overrides: tuple[str, ...]) -> Any:
    """Validating a scenario costs a YAML parse and the spec's checks (~0.1 s): shipped and stored
    scenarios never change, so the same (scenario, overrides) is validated once per process. The
    Scenario is only read (fingerprints, horizons, states are checked against it), never changed."""
    from twins.loader import load_scenario, scenario_from_text

    if yaml is not None:
        return scenario_from_text(yaml, f"{label}.yaml", overrides, allow_files=False)
    return load_scenario(arg, overrides)


# -- jobs -----------------------------------------------------------------------------------------

def _job_out(row: Any) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "status": row.status, "progress": row.progress, "scenario": row.scenario,
            "params": json.loads(row.params), "result": None if row.result is None else json.loads(row.result),
            "error": row.error, "recommendation_id": row.recommendation_id, "has_report": bool(row.has_report),
            "attempts": row.attempts, "created_at": row.created_at, "started_at": row.started_at,
            "finished_at": row.finished_at}


@router.post("/jobs", status_code=202, response_model=m.JobCreated, tags=["jobs"],
             responses={**CHECKED, **JSON_BODY, 200: {"model": m.JobCreated,
                                                      "description": "an identical job has finished: its result, "
                                                                     "at once"}})
def submit_job(body: m.JobIn, state: ApiDep, who: Writer) -> Any:
    kind, params = body.kind, dict(body.params)
    positional, fingerprints, label = _job_inputs(state, body)
    try:
        args = parse(_argv(kind, [a if not a.startswith(STORED) else "x.yaml" for a in positional], params))
    except ParamError as err:
        raise _located(err, ()) from None
    except InputError as err:
        raise _invalid([{"loc": ["params"], "line": None, "msg": str(err)}]) from None
    try:
        check_params(kind, args, state.settings.limits)
    except ParamError as err:
        raise _located(err, ()) from None
    _check_scenarios(state, body, args)
    key = cache_key(kind, fingerprints, args)
    if not body.fresh:
        with state.store.read() as conn:
            done = conn.execute(select(jobs.c.id).where(jobs.c.cache_key == key, jobs.c.status == "succeeded")
                                .order_by(jobs.c.finished_at.desc()).limit(1)).first()
        if done is not None:
            return JSONResponse({"id": done.id, "status": "succeeded", "cached": True}, status_code=200)
    job_id = uuid.uuid4().hex
    with state.store.write() as conn:
        conn.execute(insert(jobs).values(
            id=job_id, kind=kind, status="queued", progress=0.0, scenario=label, fingerprint=fingerprints[0],
            params=json.dumps(params, sort_keys=True), argv=json.dumps(positional), cache_key=key, has_report=False,
            created_at=now_iso(), created_by=who.key_id, attempts=0, cancel_requested=False))
    state.record(who, "job.submit", detail=f"{kind} {label} ({job_id})")
    enqueue(state.huey, job_id, state.store.url, state.data_dir)
    return {"id": job_id, "status": "queued", "cached": False}


def _job_inputs(state: Api, body: m.JobIn) -> tuple[list[str], list[str], str]:
    """The command's positional arguments, the inputs' fingerprints and the job's scenario label."""
    kind = body.kind
    if kind == "schedule":
        from twins.jobshop.instances import resolve_instance_path, shipped_instances

        if body.scenario not in shipped_instances():
            raise _invalid([{"loc": ["body", "scenario"], "line": None,
                             "msg": f"no shipped instance {body.scenario!r} (e.g. ft06, ta001)"}])
        text = resolve_instance_path(body.scenario).read_bytes()
        return [body.scenario], [hashlib.sha256(text).hexdigest()], body.scenario
    if kind == "train":
        if body.scenario not in ENVS:
            raise _invalid([{"loc": ["body", "scenario"], "line": None,
                             "msg": f"train jobs take an environment id: {', '.join(ENVS)}"}])
        _check_env_kwargs(body.params)
        return [body.scenario], [hashlib.sha256(body.scenario.encode()).hexdigest()], body.scenario
    a = resolve_scenario(state, body.scenario, ("body", "scenario"))
    if kind != "compare":
        return [a.arg], [a.fingerprint], a.label
    b_ref = body.params.get("b", body.scenario)
    if not isinstance(b_ref, str):
        raise _invalid([{"loc": ["params", "b"], "line": None, "msg": "a scenario id or name"}])
    b = resolve_scenario(state, b_ref, ("params", "b"))
    return [a.arg, b.arg], [a.fingerprint, b.fingerprint], a.label


def _check_env_kwargs(params: dict[str, Any]) -> None:
    for key in ("env_kwargs", "policy_kwargs", "algo_kwargs"):
        value = params.get(key)
        if value is not None and not isinstance(value, dict):
            raise _invalid([{"loc": ["params", key], "line": None, "msg": "a JSON object"}])
    from twins.shipped import scenario_names

    for k, v in (params.get("env_kwargs") or {}).items():
        if isinstance(v, str) and ("/" in v or "\\" in v or v.endswith((".yaml", ".yml", ".txt", ".zip"))) \
                and v not in scenario_names():
            raise _invalid([{"loc": ["params", "env_kwargs", k], "line": None,
                             "msg": "files on the server cannot be named here: use a shipped scenario name"}])


def _check_scenarios(state: Api, body: m.JobIn, args: Any) -> None:
    """Bad overrides and out-of-bounds setpoints are a 422 now, not a failed job later."""
    kind = body.kind
    if kind in ("schedule", "train"):
        return
    limits = state.settings.limits
    if kind == "compare":
        pairs = [(body.scenario, args.set_a, "set_a"), (body.params.get("b", body.scenario), args.set_b, "set_b")]
        if args.replications is not None and args.replications < 2:
            raise _invalid([{"loc": ["params", "replications"], "line": None, "msg": "at least 2 for a comparison"}])
    else:
        pairs = [(body.scenario, args.overrides, "set")]
    if getattr(args, "from_state", None):
        _check_state(state, body.scenario, str(args.from_state))
    for ref, overrides, key in pairs:
        loc = ("params", key) if overrides else ("body", "scenario")
        sc = _load(resolve_scenario(state, ref, ("body", "scenario")), list(overrides), loc)
        try:
            check_horizon(sc, limits, loc)
        except ParamError as err:
            raise _located(err, ()) from None
        n = getattr(args, "replications", None)
        if n is None and kind in ("run", "compare") and sc.replications > limits.replications:
            raise _invalid([{"loc": ["params", "replications"], "line": None,
                             "msg": f"the scenario's default of {sc.replications} replications is above this "
                                    f"server's cap of {limits.replications}: give params.replications"}])


def _check_state(state: Api, scenario_ref: str, state_id: str) -> None:
    """A job's ``from_state`` must be a stored plant state of the job's scenario (as it is)."""
    from studio.api.queue import materialize_state
    from twins.state import load_state

    loc = ("params", "from_state")
    path = materialize_state(state.store, state_id, Path(state.data_dir))
    if path is None:
        raise _invalid([{"loc": list(loc), "line": None,
                         "msg": f"no stored plant state {state_id!r} (POST /plant/snapshot makes one)"}])
    try:
        load_state(path, _load(resolve_scenario(state, scenario_ref, ("body", "scenario")), [], ("body", "scenario")))
    except InputError as err:
        raise _invalid([{"loc": list(loc), "line": None, "msg": str(err).split(": ", 1)[-1]}]) from None


@router.get("/jobs", response_model=list[m.JobOut], tags=["jobs"], responses=CHECKED)
def list_jobs(state: ApiDep, who: Reader, status: m.JobStatus | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    q = select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)
    if status is not None:
        q = q.where(jobs.c.status == status)
    with state.store.read() as conn:
        return [_job_out(r) for r in conn.execute(q).all()]


def _job(state: Api, job_id: str) -> Any:
    with state.store.read() as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first() if storable(job_id) else None
    if row is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return row


@router.get("/jobs/{job_id}", response_model=m.JobOut, tags=["jobs"], responses=NOT_FOUND)
def get_job(job_id: str, state: ApiDep, who: Reader) -> dict[str, Any]:
    return _job_out(_job(state, job_id))


@router.delete("/jobs/{job_id}", response_model=m.JobOut, tags=["jobs"], responses=NOT_FOUND)
def cancel_job(job_id: str, state: ApiDep, who: Writer) -> dict[str, Any]:
    _job(state, job_id)
    with state.store.write() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == "queued")
                     .values(status="cancelled", finished_at=now_iso(), error="cancelled before it started",
                             cancel_requested=True))
        conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == "running")
                     .values(cancel_requested=True))
    state.record(who, "job.cancel", detail=job_id)
    return _job_out(_job(state, job_id))


TERMINAL = ("succeeded", "failed", "cancelled")


#: one server-sent event (OpenAPI 3.1 reads a text/event-stream ``schema`` per event too; ``itemSchema`` says so)
SSE_EVENT = {"type": "object", "required": ["event", "data"], "properties": {
    "event": {"type": "string", "enum": ["progress", "end"]},
    "data": {"type": "string", "contentMediaType": "application/json"}}}


# response_class=Response: a 200 that is not JSON documents only its own content type, and the errors stay JSON
@router.get("/jobs/{job_id}/events", tags=["jobs"], response_class=Response, responses={**NOT_FOUND, 200: {
    "content": {"text/event-stream": {"itemSchema": SSE_EVENT}},
    "description": "server-sent events: `progress` with {status, progress} on every change, then `end` with the job "
                   "(its result left out)"}})
async def job_events(job_id: str, state: ApiDep, who: Reader) -> StreamingResponse:
    await run_in_threadpool(_job, state, job_id)

    async def stream() -> AsyncIterator[str]:
        last = None
        while True:
            row = await run_in_threadpool(_job, state, job_id)
            now = {"status": row.status, "progress": round(row.progress, 4)}
            if now != last:
                yield f"event: progress\ndata: {json.dumps(now)}\n\n"
                last = now
            if row.status in TERMINAL:
                yield f"event: end\ndata: {json.dumps(_job_out(row) | {'result': None})}\n\n"
                return
            await asyncio.sleep(0.5)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _output(state: Api, job_id: str, name: str) -> Path:
    row = _job(state, job_id)
    path = Path(state.data_dir) / "jobs" / job_id / name
    if row.status != "succeeded" or not path.exists():
        raise HTTPException(404, f"job {job_id} has no {name.split('.')[0]}"
                                 + ("" if row.status == "succeeded" else f" (it is {row.status})"))
    return path


@router.get("/jobs/{job_id}/report", response_class=Response, tags=["jobs"], responses={**NOT_FOUND, 200: {
    "content": {"text/html": {"schema": {"type": "string"}}}, "description": "the job's HTML report"}})
def job_report(job_id: str, state: ApiDep, who: Reader) -> HTMLResponse:
    return HTMLResponse(_output(state, job_id, "report.html").read_text())


@router.get("/jobs/{job_id}/figures", tags=["jobs"], responses=NOT_FOUND,
            response_model=list[dict[str, Any]])
def job_figures(job_id: str, state: ApiDep, who: Reader) -> Any:
    return json.loads(_output(state, job_id, "figures.json").read_text())


# -- recommendations ------------------------------------------------------------------------------

def _names(state: Api, key_ids: set[str]) -> dict[str, str]:
    with state.store.read() as conn:
        return {r.id: r.name for r in conn.execute(select(api_keys.c.id, api_keys.c.name)
                                                    .where(api_keys.c.id.in_(key_ids))).all()}


def _rec_out(state: Api, row: Any) -> dict[str, Any]:
    names = _names(state, {k for k in (row.created_by, row.approved_by) if k})
    return {"id": row.id, "version": row.version, "kind": row.kind, "scenario": row.scenario, "status": row.status,
            "job_id": row.job_id, "problems": json.loads(row.problems or "[]"), "created_at": row.created_at,
            "created_by": names.get(row.created_by), "approved_by": names.get(row.approved_by),
            "approved_at": row.approved_at, "expires_at": row.expires_at, "updated_at": row.updated_at,
            "last_push": None if row.last_push is None else json.loads(row.last_push),
            "document": json.loads(row.document)}


def _rec(state: Api, rec_id: str) -> Any:
    with state.store.read() as conn:
        row = conn.execute(select(recommendations).where(recommendations.c.id == rec_id)).first() \
            if storable(rec_id) else None
    if row is None:
        raise HTTPException(404, f"no recommendation {rec_id!r}")
    return row


@router.get("/recommendations", response_model=list[m.RecommendationOut], tags=["recommendations"],
            responses=CHECKED)
def list_recommendations(state: ApiDep, who: Reader, status: m.RecStatus | None = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    q = select(recommendations).order_by(recommendations.c.created_at.desc()).limit(limit)
    if status is not None:
        q = q.where(recommendations.c.status == status)
    with state.store.read() as conn:
        rows = conn.execute(q).all()
    return [_rec_out(state, r) for r in rows]


@router.get("/recommendations/{rec_id}", response_model=m.RecommendationOut, tags=["recommendations"],
            responses=NOT_FOUND)
def get_recommendation(rec_id: str, state: ApiDep, who: Reader) -> dict[str, Any]:
    return _rec_out(state, _rec(state, rec_id))


def _move(state: Api, who: Principal, row: Any, to: str, *, detail: str | None = None,
          **values: Any) -> dict[str, Any]:
    """Move ``row`` to status ``to`` if it is still where it was read (compare and set)."""
    if to not in TRANSITIONS[row.status]:
        raise HTTPException(409, f"recommendation {row.id} is {row.status}: it cannot become {to}")
    with state.store.write() as conn:
        moved = conn.execute(update(recommendations).where(and_(recommendations.c.id == row.id,
                                                                recommendations.c.status == row.status,
                                                                recommendations.c.updated_at == row.updated_at))
                             .values(status=to, updated_at=now_iso(), **values)).rowcount
    if not moved:
        raise HTTPException(409, f"recommendation {row.id} changed meanwhile: read it again")
    state.record(who, "recommendation", f"{row.status} -> {to}", detail=detail, recommendation=(row.id, row.version))
    return _rec_out(state, _rec(state, row.id))


def _scenario_arg(state: Api, row: Any) -> str:
    """The path or name of the scenario a recommendation's job ran on."""
    from studio.api.queue import _materialize

    job = _job(state, row.job_id) if row.job_id else None
    arg = json.loads(job.argv)[0] if job is not None else row.scenario
    return _materialize(state.store, arg, Path(state.data_dir))


@router.post("/recommendations/{rec_id}/approve", response_model=m.RecommendationOut, tags=["recommendations"],
             responses={**CONFLICT, **JSON_BODY})
def approve(rec_id: str, state: ApiDep, who: Approver, body: m.Decision | None = None) -> dict[str, Any]:
    from optimizers.recommendation import Recommendation

    row = _rec(state, rec_id)
    if row.created_by == who.key_id:
        raise HTTPException(403, "four eyes: a recommendation cannot be approved with the key that created it")
    if row.status == "approved" and row.expires_at and row.expires_at > now_iso():
        raise HTTPException(409, f"recommendation {rec_id} is approved until {row.expires_at}")
    problems = offline_problems(Recommendation.from_json(row.document), _scenario_arg(state, row))
    if problems:
        raise HTTPException(409, "the envelope refuses it: " + "; ".join(problems))
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=state.settings.approval_hours)
    if row.status == "approved":  # its approval expired: approve it again
        return _reapprove(state, who, row, expires, body)
    return _move(state, who, row, "approved", detail=body.comment if body else None, approved_by=who.key_id,
                 approved_at=now_iso(), expires_at=expires.isoformat(timespec="microseconds"))


def _reapprove(state: Api, who: Principal, row: Any, expires: dt.datetime, body: m.Decision | None) -> dict[str, Any]:
    with state.store.write() as conn:
        conn.execute(update(recommendations).where(recommendations.c.id == row.id,
                                                   recommendations.c.updated_at == row.updated_at)
                     .values(approved_by=who.key_id, approved_at=now_iso(), updated_at=now_iso(),
                             expires_at=expires.isoformat(timespec="microseconds")))
    state.record(who, "recommendation", "approved again (the approval had expired)",
                 detail=body.comment if body else None, recommendation=(row.id, row.version))
    return _rec_out(state, _rec(state, row.id))


@router.post("/recommendations/{rec_id}/reject", response_model=m.RecommendationOut, tags=["recommendations"],
             responses={**CONFLICT, **JSON_BODY})
def reject(rec_id: str, state: ApiDep, who: Approver, body: m.Decision | None = None) -> dict[str, Any]:
    return _move(state, who, _rec(state, rec_id), "rejected", detail=body.comment if body else None)


def _check_endpoint(state: Api, endpoint: str) -> None:
    if state.settings.opc_security is None:
        raise HTTPException(409, "this server has no OPC UA security configured for pushing (twinopt serve "
                                 "--opc-insecure, or --opc-username U --opc-password-env VAR)")
    if not any(endpoint.startswith(prefix) for prefix in state.settings.endpoint_allow):
        raise _invalid([{"loc": ["body", "endpoint"], "line": None,
                         "msg": f"endpoint not allowed on this server (allowed: "
                                f"{', '.join(state.settings.endpoint_allow)}; twinopt serve --endpoint-allow)"}])


@router.post("/recommendations/{rec_id}/push", response_model=m.PushOut, tags=["recommendations"],
             responses={**CONFLICT, **JSON_BODY})
async def push_recommendation(rec_id: str, body: m.PushIn, state: ApiDep, who: Approver) -> dict[str, Any]:
    row = await run_in_threadpool(_rec, state, rec_id)
    _check_endpoint(state, body.endpoint)
    if row.status != "approved" and not (body.dry_run and row.status == "validated"):
        raise HTTPException(409, f"recommendation {rec_id} is {row.status}: only an approved one can be pushed"
                                 + (" (a validated one can be dry-run)" if not body.dry_run else ""))
    if row.status == "approved" and (row.expires_at or "") <= now_iso():
        raise HTTPException(409, f"the approval of recommendation {rec_id} expired at {row.expires_at}: "
                                 f"approve it again")
    approver = (await run_in_threadpool(_names, state, {row.approved_by})).get(row.approved_by) \
        if row.approved_by else None
    scenario_arg = await run_in_threadpool(_scenario_arg, state, row)
    result = await run_in_threadpool(_run_push, state, who, row, body, scenario_arg, approver)
    return result


def _run_push(state: Api, who: Principal, row: Any, body: m.PushIn, scenario_arg: str,
              approver: str | None) -> dict[str, Any]:
    from optimizers.recommendation import Recommendation
    from studio.gateway.push import Timing, push
    from twins.loader import load_scenario

    rec = Recommendation.from_json(row.document)
    # the approval signs off the envelope's soft band only for someone else (four eyes): the approver
    # may push themselves what needs no sign-off, the gateway refuses what does
    approver = approver if approver != who.name else None
    if rec.kind == "energy_plan":
        return _follow(state, who, row, rec, body, scenario_arg, approver)
    try:
        if rec.kind == "schedule":
            res, changes = _publish(state, who, rec, body, approver)
        else:
            res = asyncio.run(push(rec, endpoint=body.endpoint, scenario=load_scenario(scenario_arg),
                                   audit=state.audit, security=state.settings.opc_security, user=who.name,
                                   dry_run=body.dry_run, staging=body.staging, approved_by=approver,
                                   timing=Timing(dwell_scale=state.settings.dwell_scale)))
            changes = [{"tag": c.tag, "old": c.old, "target": c.target}
                       for c in (res.plan.changes if res.plan else ())]
    except InputError as err:
        raise HTTPException(409, str(err)) from None
    return _pushed(state, who, row, body, res.outcome, res.endpoint, res.detail, changes)


def _publish(state: Api, who: Principal, rec: Any, body: m.PushIn, approver: str | None) -> tuple[Any, list[Any]]:
    """A schedule: its per-station dispatch lists, published through the gateway."""
    from studio.gateway.publish import publish_schedule
    from studio.shop import recommendation_scenario

    res = asyncio.run(publish_schedule(rec, endpoint=body.endpoint, scenario=recommendation_scenario(rec),
                                       audit=state.audit, security=state.settings.opc_security, user=who.name,
                                       dry_run=body.dry_run, approved_by=approver))
    changes = [{"tag": f"{c.station}.dispatch_list", "old": list(c.old), "target": list(c.new)}
               for c in (res.plan.changes if res.plan else ()) if c.old != c.new]
    return res, changes


def _follow(state: Api, who: Principal, row: Any, rec: Any, body: m.PushIn, scenario_arg: str,
            approver: str | None) -> dict[str, Any]:
    """An energy plan: its timeline (dry run); following it at the plant is not offered by the API."""
    from studio.gateway.modes import timeline
    from twins.loader import load_scenario

    try:
        plan = timeline(rec, load_scenario(scenario_arg))
    except InputError as err:
        raise HTTPException(409, str(err)) from None
    if not body.dry_run:
        raise HTTPException(409, "an energy plan runs for its whole horizon as timed mode commands: follow it with "
                                 "`twinopt push PLAN --follow` (the API offers its dry run)")
    changes = [{"tag": f"{station}.mode", "old": None, "target": list(modes)} for station, modes in plan.states]
    return _pushed(state, who, row, body, "dry-run", body.endpoint, f"{len(plan.states[0][1])} slots of "
                   f"{plan.slot:g} {plan.time_unit}", changes)


def _pushed(state: Api, who: Principal, row: Any, body: m.PushIn, outcome: str, endpoint: str, detail: str | None,
            changes: list[Any]) -> dict[str, Any]:
    """Record a push's outcome on the recommendation: its status and its last push."""
    report = {"outcome": outcome, "endpoint": endpoint, "detail": detail, "changes": changes,
              "dry_run": body.dry_run, "by": who.name, "at": now_iso()}
    status = row.status
    if not body.dry_run and outcome in ("verified", "already pushed"):
        status = "verified"
    elif not body.dry_run and outcome == "rolled back":
        status = "rolled_back"
    elif not body.dry_run and outcome.startswith("uncertain"):
        status = "pushed"
    if status != row.status:
        if status in ("verified", "rolled_back") and row.status == "approved":
            _move(state, who, row, "pushed", detail=outcome, last_push=json.dumps(report))
            row = _rec(state, row.id)
        _move(state, who, row, status, detail=outcome, last_push=json.dumps(report))
    elif not body.dry_run:
        with state.store.write() as conn:
            conn.execute(update(recommendations).where(recommendations.c.id == row.id)
                         .values(last_push=json.dumps(report), updated_at=now_iso()))
    return {"outcome": outcome, "endpoint": endpoint, "detail": detail, "status": status, "changes": changes}


@router.get("/recommendations/{rec_id}/diff", response_model=m.Diff, tags=["recommendations"],
            responses=CONFLICT)
async def diff(rec_id: str, state: ApiDep, who: Reader,
               endpoint: Annotated[str, Query(max_length=500, pattern=r"^opc\.tcp://")]) -> dict[str, Any]:
    row = await run_in_threadpool(_rec, state, rec_id)
    _check_endpoint(state, endpoint)
    scenario_arg = await run_in_threadpool(_scenario_arg, state, row)
    return await run_in_threadpool(_diff, state, row, endpoint, scenario_arg)


def _diff(state: Api, row: Any, endpoint: str, scenario_arg: str) -> dict[str, Any]:
    from optimizers.recommendation import Recommendation
    from studio.gateway.envelope import validate
    from studio.gateway.push import Timing, connect
    from twins.equipment import parameter_of
    from twins.loader import load_scenario

    rec = Recommendation.from_json(row.document)
    try:
        scenario = load_scenario(scenario_arg)
        tags = validate(rec, scenario)
    except InputError as err:
        raise HTTPException(409, str(err)) from None

    async def read() -> dict[str, float]:
        link = await connect(endpoint, state.settings.opc_security, {t.name: t.node_id for t in tags}, Timing())
        try:
            return await link.read([t.name for t in tags])
        finally:
            await link.close()

    try:
        current = asyncio.run(read())
    except InputError as err:
        raise HTTPException(409, str(err)) from None
    out = []
    for tag in tags:
        station, param = tag.name.split(".", 1)
        target = float(rec.payload[station][param])
        now = current.get(tag.name)
        unit = tag.unit if tag.unit is not None else parameter_of(tag, scenario).unit
        out.append({"tag": tag.name, "current": now, "target": target,
                    "delta": None if now is None else target - now, "unit": unit})
    return {"recommendation": rec.id, "endpoint": endpoint, "tags": out}


# -- audit and keys -------------------------------------------------------------------------------

@router.get("/audit", response_model=list[m.AuditEntry], tags=["audit"], responses=CHECKED)
def audit_entries(state: ApiDep, who: Reader, offset: Annotated[int, Query(ge=0)] = 0,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return state.audit.page(offset, limit)


@router.get("/audit/verify", response_model=m.AuditVerify, tags=["audit"], responses=ERRORS)
def audit_verify(state: ApiDep, who: Reader) -> dict[str, Any]:
    problems = state.audit.verify()
    with state.store.read() as conn:
        from studio.api.store import audit

        n = conn.execute(select(func.count()).select_from(audit)).scalar_one()
    return {"ok": not problems, "entries": n, "problems": problems}


@router.post("/keys", status_code=201, response_model=m.KeyOut, tags=["keys"],
             responses={**CHECKED, **JSON_BODY})
def make_key(body: m.KeyIn, state: ApiDep, who: Admin) -> dict[str, Any]:
    try:
        principal, secret = create_key(state.store, body.role, body.name)
    except InputError as err:
        raise _invalid([{"loc": ["body", "name"], "line": None, "msg": str(err)}]) from None
    state.record(who, "key.create", detail=f"{principal.name} ({principal.role}, {principal.key_id})")
    return {"id": principal.key_id, "name": principal.name, "role": principal.role, "created_at": now_iso(),
            "key": secret}


@router.get("/keys", response_model=list[m.KeyOut], tags=["keys"], responses=ERRORS)
def list_keys(state: ApiDep, who: Admin) -> list[dict[str, Any]]:
    with state.store.read() as conn:
        rows = conn.execute(select(api_keys.c.id, api_keys.c.name, api_keys.c.role, api_keys.c.created_at)
                            .where(api_keys.c.revoked_at.is_(None)).order_by(api_keys.c.created_at)).all()
    return [r._asdict() for r in rows]


# ------------------------------------------------------------------------------------ the app

def create_app(settings: Settings | None = None, *, start: bool = True) -> FastAPI:
    """The API over ``settings`` (its store opened and migrated now; the reaper started with the app)."""
    settings = settings or Settings()
    state = Api(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start:
            state.start()
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(title="twinopt", version=code_version(), lifespan=lifespan,
                  description="Parameter-recommendation API of twinopt: scenarios, simulation and optimization "
                              "jobs, recommendations with approval and a push to equipment through the safety "
                              "envelope, and the hash-chained audit trail. Authenticate with "
                              "`Authorization: Bearer <key>`.")
    app.state.api = state
    from studio.api.plant import router as plant_router

    app.include_router(router)
    app.include_router(plant_router)

    def _unauthenticated(request: Request) -> JSONResponse | None:
        """401 for a request without a valid key, whose body FastAPI refused before the route's key check."""
        if request.url.path == PREFIX + "/health":
            return None
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and secret.strip() and authenticate(state.store, secret.strip()) is not None:
            return None
        return JSONResponse({"detail": "missing API key (Authorization: Bearer <key>)" if not secret.strip() else
                             "unknown or revoked API key"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        denied = await run_in_threadpool(_unauthenticated, request)
        if denied is not None:
            return denied
        items = [{"loc": list(e.get("loc", ())), "line": None, "msg": str(e.get("msg", "invalid"))}
                 for e in exc.errors()]
        return JSONResponse({"detail": items or [{"loc": ["body"], "line": None, "msg": "invalid request"}]},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a JSON body FastAPI could not decode, before the key was checked
            denied = await run_in_threadpool(_unauthenticated, request)
            if denied is not None:
                return denied
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:  # JSON even for a bug
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, limit=settings.limits.body_bytes)
    return app
