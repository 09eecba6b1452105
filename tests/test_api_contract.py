"""The API's contract checked from outside, against a real ``twinopt serve`` on loopback:

* schemathesis generates requests for every operation of the app's OpenAPI document, sends them
  with an admin and with an engineer key, and checks that no answer is a 5xx, that every status
  code and content type is documented and that every body matches its schema;
* the role matrix: every route × (no key, a bad key, viewer, engineer, approver, admin) gets 401,
  403 or an answer past the permission check, as the route's permission says;
* the rest of the contract the issue asks for: JSON everywhere, CORS off, loopback only, bodies
  capped.

The server runs with small caps (``--max-replications 3 --max-budget 3 --max-horizon-h 72``), so a
job schemathesis manages to submit is a small one.
"""
from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
schemathesis = pytest.importorskip("schemathesis")

from apiserver import ROOT, Server, serve  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import checks  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402

from studio.api import PREFIX  # noqa: E402
from studio.api.app import Settings, create_app  # noqa: E402
from studio.api.client import Client  # noqa: E402
from studio.api.roles import PERMISSIONS, ROLES  # noqa: E402

SMT = (ROOT / "scenarios" / "smt_line.yaml").read_text()
CAPS = ("--max-replications", "3", "--max-budget", "3", "--max-horizon-h", "72")
#: nothing listens on port 1 of loopback (only root could bind it): a push or diff to it fails at once
ENDPOINT = "opc.tcp://127.0.0.1:1"
#: the seeded run job's inputs again: answered from the store (200, cached), nothing runs
CACHED_RUN = {"kind": "run", "scenario": "smt_line", "params": {"replications": 2, "seed": 1}}
NOT_JSON = {(f"{PREFIX}/jobs/{{job_id}}/report", "GET"): "text/html", (f"{PREFIX}/jobs/{{job_id}}/events", "GET"):
            "text/event-stream"}


def _openapi() -> dict[str, Any]:
    """The app's OpenAPI document, from an app over a throw-away store."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp)), start=False)
        try:
            return app.openapi()
        finally:
            app.state.api.store.dispose()


OPENAPI = _openapi()
#: every route of the app as (method, path), read from the document FastAPI builds from the app's routes (app.routes
#: itself holds an included router behind a private wrapper in FastAPI 0.165)
ROUTES = sorted((method.upper(), path) for path, ops in OPENAPI["paths"].items() for method in ops)


# ------------------------------------------------------------------------------------ the server

@dataclass
class World:
    server: Server
    keys: dict[str, str]  # role -> key
    ids: dict[str, str]  # path parameter -> the id of a real object

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    """A server with a stored scenario, a finished run job and a validated recommendation."""
    with serve(tmp_path_factory.mktemp("contract"), "--workers", "1", "--opc-insecure", *CAPS) as server:
        assert server.admin_key is not None
        keys = {"admin": server.admin_key}
        keys.update({role: server.key(role, f"contract {role}") for role in ROLES if role != "admin"})
        with Client(server.url, keys["engineer"]) as eng:
            scenario = eng.upload_scenario(SMT, name="contract_line")
            run = eng.wait(eng.submit(CACHED_RUN["kind"], CACHED_RUN["scenario"], CACHED_RUN["params"]).id,
                           timeout=120, progress=False)
            assert run.status == "succeeded", run.error
            opt = eng.wait(eng.submit("optimize", "glue_dispensing", {"budget": 3, "replications": 2,
                                                                      "final_replications": 2, "top_k": 1,
                                                                      "seed": 1}).id, timeout=300, progress=False)
            assert opt.status == "succeeded" and opt.recommendation_id, opt.error
        yield World(server, keys, {"scenario_id": scenario["id"], "job_id": run.id,
                                   "rec_id": opt.recommendation_id, "state_id": "no-such-state"})


# ------------------------------------------------------------------------------------ schemathesis

schema = schemathesis.openapi.from_dict(OPENAPI, config=SchemathesisConfig.from_dict({
    "seed": 20240917,  # the same requests on every run; change it to explore
    "generation": {"max-examples": 25, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
}))
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


def _with_real_objects(case: Any, world: World) -> None:
    """Point ``case`` at the seeded objects and give it a body that gets past validation, so the
    checks also see the 2xx and 409 answers and not only 404 and 422."""
    for name in case.path_parameters:
        case.path_parameters[name] = world.ids[name]
    if "endpoint" in (case.query or {}):
        case.query["endpoint"] = ENDPOINT
    op = (case.operation.method.upper(), case.operation.path)
    if op == ("POST", f"{PREFIX}/jobs"):
        case.body = dict(CACHED_RUN)
    elif op == ("POST", f"{PREFIX}/scenarios") and case.media_type == "application/json":
        case.body = {"name": "contract_line", "yaml": SMT}
    elif isinstance(case.body, dict) and "endpoint" in case.body:
        case.body["endpoint"] = ENDPOINT


@pytest.mark.parametrize("role", ["admin", "engineer"])
@schema.parametrize()
@schema.given(real=st.booleans())
def test_every_answer_is_documented_and_no_request_makes_a_5xx(case, real, role, world):
    if real:
        _with_real_objects(case, world)
    case.call_and_validate(base_url=world.url, headers={"Authorization": f"Bearer {world.keys[role]}"},
                           checks=CHECKS, timeout=30)


def test_the_server_serves_the_document_schemathesis_reads(world):
    assert httpx.get(world.url + "/openapi.json", timeout=10).json() == OPENAPI


# ------------------------------------------------------------------------------------ role matrix

#: (method, path under /api/v1) -> (the permission it needs, None: no key at all; the request's extras)
MATRIX: dict[tuple[str, str], tuple[str | None, dict[str, Any]]] = {
    ("GET", "/health"): (None, {}),
    ("GET", "/me"): ("read", {}),
    ("GET", "/plant"): ("read", {"params": {"endpoint": ENDPOINT}}),
    ("POST", "/plant/snapshot"): ("write", {"json": {"endpoint": ENDPOINT}}),
    ("GET", "/states/{state_id}"): ("read", {}),
    ("POST", "/scenarios"): ("write", {"json": {"name": "matrix_line", "yaml": SMT}}),
    ("GET", "/scenarios"): ("read", {}),
    ("GET", "/scenarios/{scenario_id}"): ("read", {}),
    ("POST", "/jobs"): ("write", {"json": CACHED_RUN}),
    ("GET", "/jobs"): ("read", {"params": {"limit": 5}}),
    ("GET", "/jobs/{job_id}"): ("read", {}),
    ("DELETE", "/jobs/{job_id}"): ("write", {}),
    ("GET", "/jobs/{job_id}/events"): ("read", {}),
    ("GET", "/jobs/{job_id}/report"): ("read", {}),
    ("GET", "/jobs/{job_id}/figures"): ("read", {}),
    ("GET", "/recommendations"): ("read", {}),
    ("GET", "/recommendations/{rec_id}"): ("read", {}),
    ("GET", "/recommendations/{rec_id}/diff"): ("read", {"params": {"endpoint": ENDPOINT}}),
    ("POST", "/recommendations/{rec_id}/approve"): ("approve", {"json": {"comment": "role matrix"}}),
    ("POST", "/recommendations/{rec_id}/reject"): ("approve", {"json": {}}),
    ("POST", "/recommendations/{rec_id}/push"): ("approve", {"json": {"endpoint": ENDPOINT, "dry_run": True}}),
    ("GET", "/audit"): ("read", {"params": {"limit": 5}}),
    ("GET", "/audit/verify"): ("read", {}),
    ("GET", "/keys"): ("admin", {}),
    ("POST", "/keys"): ("admin", {"json": {"name": "matrix", "role": "viewer"}}),
}
CALLERS = ("no key", "bad key", *ROLES)


def test_every_route_has_a_row_in_the_role_matrix():
    routes = {(method, path.removeprefix(PREFIX)) for method, path in ROUTES}
    assert routes - MATRIX.keys() == set(), "a route without a row in MATRIX: declare the permission it needs"
    assert MATRIX.keys() - routes == set(), "a MATRIX row for a route the app does not have"


def _documented(method: str, path: str) -> set[int]:
    return {int(code) for code in OPENAPI["paths"][PREFIX + path][method.lower()]["responses"]}


@pytest.mark.parametrize("method, path", sorted(MATRIX), ids=lambda v: v)
@pytest.mark.parametrize("caller", CALLERS)
def test_role_matrix(world, method, path, caller):
    permission, extra = MATRIX[method, path]
    headers = {} if caller == "no key" else {
        "Authorization": "Bearer " + ("tw_not-a-key" if caller == "bad key" else world.keys[caller])}
    url = world.url + PREFIX + path.format(**world.ids)
    r = httpx.request(method, url, headers=headers, timeout=30, **extra)
    kind = NOT_JSON.get((PREFIX + path, method)) if r.is_success else None
    assert r.headers["content-type"].split(";")[0] == (kind or "application/json"), r.text
    if permission is None:
        assert r.status_code == 200, r.text
    elif caller in ("no key", "bad key"):
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
    elif caller not in PERMISSIONS[permission]:
        assert r.status_code == 403, r.text
    else:
        assert r.status_code not in (401, 403) and r.status_code < 500, r.text
        assert r.status_code in _documented(method, path), r.text


def test_a_route_for_every_role_answers_2xx(world):
    """The matrix is not satisfied by 404s alone: each role's own reads and writes succeed."""
    for role in ROLES:
        h = {"Authorization": f"Bearer {world.keys[role]}"}
        assert httpx.get(f"{world.url}{PREFIX}/jobs/{world.ids['job_id']}", headers=h).status_code == 200
    eng = {"Authorization": f"Bearer {world.keys['engineer']}"}
    assert httpx.post(f"{world.url}{PREFIX}/jobs", json=CACHED_RUN, headers=eng).status_code == 200
    admin = {"Authorization": f"Bearer {world.keys['admin']}"}
    assert httpx.get(f"{world.url}{PREFIX}/keys", headers=admin).status_code == 200


# ------------------------------------------------------------------------------------ the rest

@pytest.mark.parametrize("method, path", [("GET", "/nowhere"), ("DELETE", "/health"), ("PUT", "/jobs")])
def test_unknown_routes_and_methods_answer_json(world, method, path):
    r = httpx.request(method, world.url + PREFIX + path, headers={"Authorization": f"Bearer {world.keys['admin']}"})
    assert r.status_code in (404, 405) and r.headers["content-type"] == "application/json"
    assert isinstance(r.json()["detail"], str)


def test_cors_is_off_by_default(world):
    origin = {"Origin": "https://evil.example"}
    pre = httpx.options(f"{world.url}{PREFIX}/scenarios", headers={
        **origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
    assert "access-control-allow-origin" not in pre.headers
    got = httpx.get(f"{world.url}{PREFIX}/health", headers=origin)
    assert got.status_code == 200 and "access-control-allow-origin" not in got.headers


def _outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_it_listens_on_loopback_only(world):
    assert world.url.startswith("http://127.0.0.1:")
    address = _outward_address()
    if address is None:
        pytest.skip("no non-loopback address on this machine")
    port = int(world.url.rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection((address, port), timeout=2):
        pass


def test_bodies_above_the_limit_are_413_declared_or_streamed(world):
    h = {"Authorization": f"Bearer {world.keys['engineer']}", "Content-Type": "application/json"}
    big = b'{"kind": "run", "scenario": "' + b"x" * 1_100_000 + b'"}'
    declared = httpx.post(f"{world.url}{PREFIX}/jobs", content=big, headers=h, timeout=30)
    assert declared.status_code == 413 and declared.headers["content-type"] == "application/json"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        for i in range(0, len(big), 64_000):
            yield big[i:i + 64_000]

    streamed = httpx.post(f"{world.url}{PREFIX}/jobs", content=chunks(), headers=h, timeout=30)
    assert streamed.status_code == 413 and streamed.json()["detail"]


def test_a_body_that_is_not_json_without_a_key_is_401(world):
    """FastAPI decodes a JSON body before the route's key check: its refusal is turned into the 401."""
    r = httpx.post(f"{world.url}{PREFIX}/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(f"{world.url}{PREFIX}/jobs", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    r = httpx.post(f"{world.url}{PREFIX}/jobs", content=b"{not json", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {world.keys['engineer']}"})
    assert r.status_code in (400, 422)


def test_audit_entries_served_rehash_to_their_hash_and_chain(world):
    from studio.gateway.audit import GENESIS, entry_hash

    entries = httpx.get(f"{world.url}{PREFIX}/audit", params={"limit": 1000},
                        headers={"Authorization": f"Bearer {world.keys['viewer']}"}).json()
    assert entries and entries[0]["seq"] == 1 and entries[0]["prev"] == GENESIS
    for before, entry in zip(entries, entries[1:], strict=False):
        assert entry["prev"] == before["hash"] and entry["seq"] == before["seq"] + 1
    assert all(entry_hash(e) == e["hash"] for e in entries)
