"""The API on PostgreSQL: ``twinopt keys create --db URL`` and ``twinopt serve --db URL`` against a
real server (tests/pg.py starts one on loopback), the audit chain under concurrent appends, and the
Alembic migrations on an empty and on an older database."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")
httpx = pytest.importorskip("httpx")

from apiserver import ROOT, serve  # noqa: E402
from pg import Postgres  # noqa: E402 - its fixtures postgres and pg_url come through conftest.py

from studio.api.client import ApiError, Client  # noqa: E402

pytestmark = pytest.mark.postgres

SMT = (ROOT / "scenarios" / "smt_line.yaml").read_text()


def keys_create(url: str, role: str, name: str, data) -> str:
    out = subprocess.run([sys.executable, "-m", "studio.cli", "keys", "create", "--role", role, "--name", name,
                          "--db", url, "--data", str(data)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1].split()[-1]


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from studio.api import store

    script = ScriptDirectory(str(ROOT / "studio" / "api" / "migrations"))
    assert store.__file__ is not None
    return str(script.get_current_head())


def test_the_api_on_postgresql_from_keys_to_an_approved_recommendation(pg_url, tmp_path):
    data = tmp_path / "data"
    engineer_key = keys_create(pg_url, "engineer", "erin", data)
    approver_key = keys_create(pg_url, "approver", "carol", data)
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")  # the same database, the driver implied
    with serve(data, "--db", plain, "--workers", "2") as server:
        assert server.admin_key is None  # the database already had keys: no first-start admin key
        assert not (data / "twinopt.db").exists()  # the store is PostgreSQL; only the queue lives in --data
        with Client(server.url, engineer_key) as eng, Client(server.url, approver_key) as appr:
            first = eng.upload_scenario(SMT, name="pg_line")
            second = eng.upload_scenario(SMT.replace("machines: 2", "machines: 3", 1), name="pg_line")
            assert (first["version"], second["version"]) == (1, 2)
            assert first["fingerprint"].startswith("sha256:") and first["fingerprint"] != second["fingerprint"]
            assert eng.scenario(second["id"])["yaml"].count("machines: 3") >= 1

            run = eng.submit("run", "smt_line", {"replications": 2, "seed": 7})
            opt = eng.submit("optimize", "glue_dispensing", {"budget": 3, "replications": 2,
                                                             "final_replications": 2, "top_k": 1, "seed": 1})
            stored = eng.submit("run", second["id"], {"replications": 1, "seed": 2})
            cli = tmp_path / "cli.json"
            subprocess.run([sys.executable, "-m", "studio.cli", "run", "smt_line", "--replications", "2", "--seed",
                            "7", "--json", str(cli), "--quiet"], cwd=ROOT, check=True, timeout=300)
            done = eng.wait(run.id, timeout=120)
            assert done.status == "succeeded", done.error
            assert done.result == json.loads(cli.read_text())
            assert eng.submit("run", "smt_line", {"seed": 7, "replications": 2}).cached
            on_stored = eng.wait(stored.id, timeout=120)
            assert on_stored.status == "succeeded" and on_stored.result["scenario_file"] == "pg_line"

            finished = eng.wait(opt.id, timeout=240)
            assert finished.status == "succeeded", finished.error
            rec = eng.recommendation(finished.recommendation_id)
            assert rec["status"] == "validated" and rec["created_by"] == "erin"
            with pytest.raises(ApiError) as err:
                eng.approve(rec["id"])
            assert err.value.status == 403
            ok = appr.approve(rec["id"], "pg four eyes")
            assert ok["status"] == "approved" and ok["approved_by"] == "carol"
            audit = appr.audit(limit=1000)
            actions = [(e["action"], e["outcome"]) for e in audit]
            assert ("recommendation", "validated -> approved") in actions
            assert sum(a == "scenario.create" for a, _ in actions) == 2
            assert [e["seq"] for e in audit] == list(range(1, len(audit) + 1))
            verdict = appr.audit_verify()
            assert verdict["ok"] and verdict["entries"] == len(audit)
    # a restart on the same database: everything is still there
    with serve(data, "--db", pg_url, "--workers", "1") as server, Client(server.url, approver_key) as appr:
        assert server.admin_key is None
        assert appr.recommendation(rec["id"])["status"] == "approved"
        assert {("pg_line", 1), ("pg_line", 2)} <= {(s["name"], s["version"]) for s in appr.scenarios()}
        assert appr.audit_verify()["ok"]


def test_a_first_start_on_an_empty_postgresql_database_prints_the_admin_key(pg_url, tmp_path):
    with serve(tmp_path, "--db", pg_url, "--workers", "1") as server:
        assert server.admin_key is not None
        with Client(server.url, server.admin_key) as admin:
            made = admin.create_key("dana", "viewer")
            assert made["role"] == "viewer"
            assert admin.audit_verify() == {"ok": True, "entries": 1, "problems": []}
            # uploads of one name at once: each its own version (no transaction sees the others' max)
            with ThreadPoolExecutor(6) as pool:
                got = list(pool.map(lambda i: admin.upload_scenario(SMT, name="raced")["version"], range(6)))
            assert sorted(got) == [1, 2, 3, 4, 5, 6]


def test_text_postgresql_cannot_store_is_a_422_or_404_not_a_500(pg_url, tmp_path):
    """PostgreSQL refuses NUL characters in text (SQLite stores them): the API answers as it does on SQLite."""
    with serve(tmp_path, "--db", pg_url, "--workers", "1") as server, Client(server.url, server.admin_key) as admin:
        h = admin.http.headers
        assert httpx.post(server.url + "/api/v1/keys", json={"name": "nul\u0000name", "role": "viewer"},
                          headers=h).status_code == 422
        assert httpx.post(server.url + "/api/v1/jobs", json={"kind": "run", "scenario": "smt\u0000line"},
                          headers=h).status_code == 422
        for path in ("scenarios", "jobs", "recommendations"):
            assert httpx.get(f"{server.url}/api/v1/{path}/a%00b", headers=h).status_code == 404, path
        r = httpx.post(server.url + "/api/v1/scenarios?name=nul", content=SMT.replace("name:", "name: a\u0000", 1),
                       headers={**h, "Content-Type": "application/yaml"})
        assert r.status_code == 422
        assert admin.audit_verify()["ok"]


def test_concurrent_audit_appends_keep_the_chain(pg_url):
    from studio.api.audit import SqlAuditLog
    from studio.api.store import Store

    store = Store.open(pg_url)
    try:
        log = SqlAuditLog(store)
        threads, per_thread = 8, 15
        start = threading.Barrier(threads)

        def append(i: int) -> list[int]:
            start.wait()
            return [log.append(f"t{i}", "test", "ok", detail=str(k))["seq"] for k in range(per_thread)]

        with ThreadPoolExecutor(threads) as pool:
            seqs = [s for got in pool.map(append, range(threads)) for s in got]
        procs = [subprocess.Popen([sys.executable, "-c", _APPENDER, pg_url, str(p)], cwd=ROOT) for p in range(3)]
        for _ in range(per_thread):
            log.append("main", "test", "ok")
        assert all(p.wait(timeout=60) == 0 for p in procs)
        n = threads * per_thread + 4 * per_thread
        assert sorted(seqs) == list(range(1, threads * per_thread + 1))  # each append got its own seq
        assert log.verify() == []
        entries = log.page(0, 1000)
        assert [e["seq"] for e in entries] == list(range(1, n + 1))
    finally:
        store.dispose()


def test_concurrent_first_appends_to_an_empty_trail_chain_up(pg_url):
    """No head row to lock yet: the first appends race on the table itself."""
    from sqlalchemy import delete

    from studio.api.audit import SqlAuditLog
    from studio.api.store import Store, audit, audit_head

    store = Store.open(pg_url)
    try:
        log = SqlAuditLog(store)
        for _round in range(10):
            with store.write() as conn:
                conn.execute(delete(audit_head))
                conn.execute(delete(audit))
            start = threading.Barrier(8)

            def first(i: int, start: threading.Barrier = start) -> int:
                start.wait()
                return int(log.append(f"t{i}", "test", "ok")["seq"])

            with ThreadPoolExecutor(8) as pool:
                assert sorted(pool.map(first, range(8))) == list(range(1, 9))
            assert log.verify() == []
    finally:
        store.dispose()


_APPENDER = """
import sys
from studio.api.audit import SqlAuditLog
from studio.api.store import Store
store = Store.open(sys.argv[1], migrate=False)
log = SqlAuditLog(store)
for k in range(15):
    log.append("proc" + sys.argv[2], "test", "ok", detail=str(k))
store.dispose()
"""


def test_migrations_bring_an_empty_database_to_head_and_reopening_is_a_no_op(pg_url):
    import sqlalchemy as sa

    from studio.api.auth import create_key
    from studio.api.store import Store

    store = Store.open(pg_url)
    try:
        with store.read() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
            tables = set(sa.inspect(conn).get_table_names())
        assert {"api_keys", "scenarios", "jobs", "recommendations", "audit", "audit_head"} <= tables
        principal, _ = create_key(store, "viewer", "kept")
    finally:
        store.dispose()
    again = Store.open(pg_url)
    try:
        with again.read() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [(head_revision(),)]
            assert conn.execute(sa.text("SELECT name FROM api_keys WHERE id = :i"), {"i": principal.key_id}
                                ).scalar_one() == "kept"
    finally:
        again.dispose()


def test_servers_opening_one_empty_database_at_once_all_find_it_at_head(pg_url):
    """Processes race to migrate (PostgreSQL's advisory lock), threads too (Alembic's one context)."""
    import time

    import sqlalchemy as sa

    from studio.api.store import Store

    start = time.time() + 3  # after every process has imported
    procs = [subprocess.Popen([sys.executable, "-c", _OPENER, pg_url, str(start)], cwd=ROOT, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]

    def open_and_close(_: int) -> None:
        time.sleep(max(0.0, start - time.time()))
        Store.open(pg_url).dispose()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(open_and_close, range(2)))
    for p in procs:
        assert p.wait(timeout=60) == 0, p.communicate()[1]
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [(head_revision(),)]
    engine.dispose()


_OPENER = """
import sys, time
from studio.api.store import Store
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
Store.open(sys.argv[1]).dispose()
"""


def test_the_migrations_make_exactly_the_store_s_tables(pg_url):
    """Column types matter on PostgreSQL (a VARCHAR(64) refuses 71 characters): no drift between
    studio/api/store.py and the migrations."""
    import sqlalchemy as sa
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from studio.api.store import Store, metadata

    Store.open(pg_url).dispose()
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert diff == []


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_an_older_schema_is_upgraded_with_its_data(dialect, request, tmp_path):
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from studio.api.store import Store, sqlite_url

    url = request.getfixturevalue("pg_url") if dialect == "postgresql" else sqlite_url(tmp_path)
    engine = sa.create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "studio" / "api" / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(sa.text("INSERT INTO scenarios (id, name, version, fingerprint, yaml, created_at) "
                             "VALUES ('s1', 'old', 1, 'abc', 'name: old', '2026-01-01')"))
    engine.dispose()
    store = Store.open(url)
    try:
        with store.write() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
            assert conn.execute(sa.text("SELECT name, yaml FROM scenarios")).all() == [("old", "name: old")]
            conn.execute(sa.text("INSERT INTO scenarios (id, name, version, fingerprint, yaml, created_at) "
                                 "VALUES ('s2', 'new', 1, :f, 'name: new', '2026-01-02')"), {"f": "sha256:" + "0" * 64})
    finally:
        store.dispose()


def test_an_unreachable_database_is_one_line_and_exit_2(postgres: Postgres, tmp_path):
    url = postgres.url("no_such_database").replace("twinopt@", "twinopt:secret@")
    out = subprocess.run([sys.executable, "-m", "studio.cli", "keys", "create", "--role", "viewer", "--name", "x",
                          "--db", url, "--data", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "no_such_database" in out.stderr and "secret" not in out.stderr
