"""Start ``twinopt serve`` the way a user does (a subprocess on 127.0.0.1, a free port) for the API tests."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"^twinopt serve: (http://127\.0\.0\.1:\d+)/api/v1 ")
KEY = re.compile(r"^\s+(tw_\S+)\s*$")


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str
    data: Path
    admin_key: str | None
    output: list[str] = field(default_factory=list)

    def key(self, role: str, name: str) -> str:
        """A new key made with ``twinopt keys create`` (its last word of its last line)."""
        out = subprocess.run([sys.executable, "-m", "studio.cli", "keys", "create", "--role", role, "--name", name,
                              "--data", str(self.data)], capture_output=True, text=True, timeout=60, check=True)
        return out.stdout.strip().splitlines()[-1].split()[-1]


def launch(argv: list[str], ready: re.Pattern[str], also: re.Pattern[str] | None = None, *, timeout: float = 60,
           new_session: bool = False) -> tuple[subprocess.Popen[str], list[str], re.Match[str] | None,
                                               re.Match[str] | None]:
    """Start ``twinopt ARGV`` and read its output until a line matches ``ready``: ``(process, lines so
    far and to come, the ready match, the last match of ``also``)``; the ready match is None when the
    process ended or ``timeout`` passed first (the caller then stops it)."""
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", *argv], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=new_session,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    found: dict[str, re.Match[str]] = {}
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if also is not None and (m := also.match(line)):
                found["also"] = m
            if m := ready.match(line):
                found["ready"] = m
                seen.set()
        seen.set()

    threading.Thread(target=read, daemon=True).start()
    seen.wait(timeout)
    return proc, lines, found.get("ready"), found.get("also")


def start(data: Path, *args: str, timeout: float = 60) -> Server:
    proc, lines, ready, key = launch(["serve", "--port", "0", "--data", str(data), *args], READY, KEY,
                                     timeout=timeout)
    if ready is None:
        proc.kill()
        proc.wait(10)
        raise AssertionError("twinopt serve did not start:\n" + "".join(lines))
    server = Server(proc, ready.group(1), data, key.group(1) if key else None, lines)
    _wait_healthy(server.url)
    return server


def _wait_healthy(url: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} never became healthy")
        time.sleep(0.1)


def stop(server: Server, *, sig: int = signal.SIGTERM) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(sig)
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)


@contextmanager
def serve(data: Path, *args: str) -> Iterator[Server]:
    server = start(data, *args)
    try:
        yield server
    finally:
        stop(server)
