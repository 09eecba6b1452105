"""A throwaway PostgreSQL for the ``postgres``-marked tests: Debian's server binaries
(``/usr/lib/postgresql/<version>/bin``), ``initdb`` into a temporary folder, ``pg_ctl start`` on
127.0.0.1 and a free port (its socket in that folder, never the system's), ``pg_ctl stop -m
immediate`` and the folder removed at the end, even when a test failed.

``initdb`` refuses to run as root: as root the cluster belongs to the ``postgres`` system user (the
Debian package creates it) and its commands run through ``runuser``. The system service is never
started or touched.

Without the server binaries the tests skip, naming the package, unless ``TWINOPT_REQUIRE_POSTGRES``
is set (``.ci/run`` sets it, after installing them): then they fail, so CI never passes by skipping.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "twinopt"  # the cluster's superuser, trusted on loopback only


def server_bindir() -> Path | None:
    """The newest installed PostgreSQL's server binaries (None: not installed)."""
    found = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        version = Path(initdb).parent.parent.name
        if version.replace(".", "").isdigit() and os.access(Path(initdb).with_name("pg_ctl"), os.X_OK):
            found.append((float(version), Path(initdb).parent))
    if found:
        return max(found)[1]
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path and shutil.which("pg_ctl") else None


@dataclass
class Postgres:
    bindir: Path
    port: int
    version: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _unavailable(reason: str) -> None:
    if os.environ.get("TWINOPT_REQUIRE_POSTGRES"):
        pytest.fail(f"TWINOPT_REQUIRE_POSTGRES is set but {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(argv: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *argv] if owner else argv


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server for the session (per xdist worker); tests make their own databases."""
    pytest.importorskip("psycopg", reason="the [postgres] extra (psycopg) is not installed")
    bindir = server_bindir()
    if bindir is None:
        _unavailable("the PostgreSQL server binaries are not installed (apt-get install postgresql)")
    assert bindir is not None
    owner = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user for initdb to run as")
        owner = "postgres"
    root = Path(tempfile.mkdtemp(prefix="twinopt-pg-"))
    if owner:
        shutil.chown(root, owner)
    data, log = root / "data", root / "server.log"
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}

    def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_as_owner([str(bindir / argv[0]), *argv[1:]], owner), env=env, cwd=root, text=True,
                              capture_output=True, timeout=timeout)

    started = False
    try:
        out = run("initdb", "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync", timeout=120)
        if out.returncode:
            raise RuntimeError(f"initdb failed:\n{out.stdout}\n{out.stderr}")
        for _attempt in range(3):  # another process may take the free port before the server binds it
            port = _free_port()
            options = (f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
                       f"-c full_page_writes=off -c max_connections=200")
            out = run("pg_ctl", "start", "-w", "-t", "60", "-D", str(data), "-l", str(log), "-o", options)
            if out.returncode == 0:
                started = True
                break
        if not started:
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed:\n{out.stdout}\n{out.stderr}\n{tail}")
        version = run("postgres", "--version").stdout.strip().split()[-1]
        yield Postgres(bindir, port, version)
    finally:
        if started:
            run("pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w", "-t", "30")
            time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    """The URL of a new, empty database on the session's server."""
    return postgres.create_database()
