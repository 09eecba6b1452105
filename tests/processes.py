"""The process tree of a running ``twinopt serve``, read from /proc (Linux), for the crash tests.

``twinopt serve`` starts its job consumer (``python -m studio.api.queue … --parent <serve pid>``)
in a session of its own; the consumer forks its worker processes, so they are its children and
share its process group.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

PROC = Path("/proc")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as dead)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    out = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid and stat[0] not in ("Z", "X"):
                out.append(int(entry.name))
    return sorted(out)


def cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def consumer(server_pid: int, timeout: float = 30) -> int:
    """The job consumer ``twinopt serve`` (pid ``server_pid``) started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in children(server_pid) if "studio.api.queue" in cmdline(p)]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"twinopt serve (pid {server_pid}) started no job consumer")


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """The pids still alive after ``timeout`` seconds (empty when all died in time)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (the consumer's session), if any is left."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def job_worker(data: Path, job_id: str) -> tuple[str, int, int | None]:
    """(status, attempts, pid of the worker holding the claim) of a job, read from the store itself."""
    with contextlib.closing(sqlite3.connect(f"file:{data / 'twinopt.db'}?mode=ro", uri=True, timeout=30)) as conn:
        status, attempts, worker = conn.execute("SELECT status, attempts, worker FROM jobs WHERE id = ?",
                                                (job_id,)).fetchone()
    return status, attempts, None if not worker else int(worker.split(":")[1])
