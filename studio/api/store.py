"""The API's store: SQLAlchemy 2 over SQLite (WAL, the embedded default, under ``--data``) or any
database URL (PostgreSQL), its schema evolved by Alembic migrations (``studio/api/migrations``).

Tables: ``api_keys`` (hashed keys and roles), ``scenarios`` (uploaded YAML, versioned by name),
``jobs`` (the queue's source of truth: status, progress, result, the worker's heartbeat),
``recommendations`` (the Recommendation JSON and its lifecycle), ``states`` (plant states read
for what-ifs from now; migration 0002), ``audit`` and ``audit_head``
(the gateway's hash-chained audit trail, :class:`studio.api.audit.SqlAuditLog`).

SQLite is opened in WAL mode with a busy timeout, and every writing transaction starts with
``BEGIN IMMEDIATE``: a writer waits for the lock up front instead of failing half-way with
"database is locked" when another writer committed since its first read.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.exc import ArgumentError

from twins.errors import InputError

metadata = MetaData()

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("revoked_at", String(40)),
)

scenarios = Table(
    "scenarios", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("fingerprint", String(80), nullable=False),  # "sha256:" + 64 hex digits
    Column("yaml", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(32)),
    UniqueConstraint("name", "version", name="uq_scenario_name_version"),
)

jobs = Table(
    "jobs", metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("progress", Float, nullable=False, default=0.0),
    Column("scenario", String(200), nullable=False),
    Column("fingerprint", String(80)),
    Column("params", Text, nullable=False),
    Column("argv", Text, nullable=False),
    Column("cache_key", String(64), nullable=False, index=True),
    Column("result", Text),
    Column("error", Text),
    Column("has_report", Boolean, nullable=False, default=False),
    Column("recommendation_id", String(32)),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(32)),
    Column("started_at", String(40)),
    Column("finished_at", String(40)),
    Column("heartbeat_at", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("worker", String(300)),  # host:pid:nonce
    Column("cancel_requested", Boolean, nullable=False, default=False),
)

recommendations = Table(
    "recommendations", metadata,
    Column("id", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("scenario", String(200), nullable=False),
    Column("job_id", String(32)),
    Column("document", Text, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("problems", Text),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(32)),
    Column("approved_by", String(32)),
    Column("approved_at", String(40)),
    Column("expires_at", String(40)),
    Column("updated_at", String(40), nullable=False),
    Column("last_push", Text),
)

states = Table(
    "states", metadata,
    Column("id", String(32), primary_key=True),
    Column("scenario", String(200), nullable=False),
    Column("endpoint", String(500), nullable=False),
    Column("document", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(32)),
)

audit = Table(
    "audit", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("entry", Text, nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def storable(text: str) -> bool:
    """Whether every database can hold ``text``: PostgreSQL refuses the NUL character, SQLite does not.
    A key that is not storable was never stored, so looking it up finds nothing (instead of an error)."""
    return "\x00" not in text


def sqlite_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'twinopt.db'}"


class Store:
    """Engines over one database: ``write()`` and ``read()`` give a connection inside a transaction
    (committed at the end of the block, rolled back on an exception)."""

    def __init__(self, url: str):
        self.url = url
        self.sqlite = url.startswith("sqlite")
        #: SQLite's writers in this process take turns here: waiting in SQLite's busy handler (sleeps of
        #: up to 100 ms between tries) let a writer among many lose again and again (p99 of 2 s for 40
        #: threads' audit appends, against 0.4 s in turns), up to the busy timeout's "database is locked"
        self._write_turn: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if self.sqlite:
            self.writer = _sqlite_engine(url, immediate=True)
            self.reader = _sqlite_engine(url, immediate=False)
            self._write_turn = threading.RLock()
        else:
            try:
                self.writer = self.reader = create_engine(_with_driver(url), pool_pre_ping=True, pool_size=10,
                                                          max_overflow=20)
            except (ArgumentError, ImportError) as err:  # not a URL, or its driver is not installed
                hint = " (pip install 'twinopt[postgres]')" if url.startswith("postgres") else ""
                raise InputError(f"cannot open the database {url.split('@')[-1]}: {type(err).__name__}: "
                                 f"{' '.join(str(err).split())[:300]}{hint}") from None

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Open the database at ``url``, bringing its schema up to date (Alembic ``upgrade head``)."""
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        store = cls(url)
        if migrate:
            upgrade(store.writer)
        return store

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        with self._write_turn, self.writer.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self.reader.begin() as conn:
            yield conn

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg 3 (the ``[postgres]`` extra) with any SQLAlchemy 2.x: 2.0 would
    pick psycopg2, 2.1 picks psycopg."""
    return "postgresql+psycopg://" + url[len("postgresql://"):] if url.startswith("postgresql://") else url


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, pool_size=8,
                           max_overflow=32, pool_timeout=60)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver's own BEGIN off: ours below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


#: Alembic's ``context`` is one module-level proxy: two migrations in one process must not overlap
_migrating = threading.Lock()
#: the key of the PostgreSQL advisory lock that serializes migrations across processes
_MIGRATION_LOCK = 0x7477696E6F7074  # "twinopt"


def upgrade(engine: Engine) -> None:
    """Apply every Alembic migration the database lacks.

    On PostgreSQL the migration first takes a transaction-scoped advisory lock: a second server (or
    ``twinopt keys create``) opening the same empty database waits, then finds it at head, instead
    of racing it to ``CREATE TABLE``. SQLite's ``BEGIN IMMEDIATE`` serializes them already."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    try:
        with _migrating, engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except Exception as err:  # noqa: BLE001 - any driver's error: one line naming the database
        msg = " ".join(str(err).split())[:300]
        raise InputError(f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
                         f"{type(err).__name__}: {msg}") from None
