"""A throwaway Ray cluster for the Ray tests: ``ray start --head`` from this Python's environment on
127.0.0.1 and a free port, with its own temporary folder, stopped at the end even when a test failed.

The cluster's processes run in a session of their own; stopping it ends that process group (SIGTERM,
then SIGKILL) rather than ``ray stop``, which would end every Ray process of the user, other
clusters included. Tests skip when ray is not installed (the ``[ray]`` extra).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RayCluster:
    address: str
    cpus: int
    pgid: int
    temp_dir: Path

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(self.pgid):
                time.sleep(0.2)
            if not _group_alive(self.pgid):
                break
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # zombies keep the group "alive" until reaped; count only processes still running
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def start_cluster(cpus: int = 2) -> RayCluster:
    """``ray start --head`` on 127.0.0.1 with ``cpus`` CPUs; its workers import this checkout."""
    ray_bin = Path(sys.executable).with_name("ray")
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-"))
    port = free_port()
    # the workers import this checkout, and this module (the jobs below) by name
    path = [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path)),
           "RAY_USAGE_STATS_ENABLED": "0",
           # explicit: with a ~/.ray/auth_token (a local ray.init writes one) `ray start` would
           # otherwise turn token authentication on, which a driver given an address does not use
           "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", str(cpus), "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", str(temp_dir),
         # Ray's fixed default ports, free ones instead: another cluster on this machine must not collide
         *(arg for flag in ("--dashboard-port", "--dashboard-agent-listen-port")
           for arg in (flag, str(free_port())))],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    cluster = RayCluster(f"127.0.0.1:{port}", cpus, proc.pid, temp_dir)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        cluster.stop()
        raise
    if proc.returncode != 0:
        cluster.stop()
        raise RuntimeError(f"ray start failed ({proc.returncode}):\n{out}")
    return cluster


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    cluster = start_cluster(2)
    try:
        yield cluster
    finally:
        cluster.stop()


def replication_dying_once(job: tuple[Any, int, int, str]) -> Any:
    """Replication ``r`` of ``(scenario, seed, r, marker_dir)``; replication 1's first attempt kills
    its own worker process (SIGKILL, as the OOM killer or a lost node would) before it finishes."""
    from twins.stats import run_replication

    scenario, seed, r, marker_dir = job
    marker = Path(marker_dir) / f"attempt-{r}"
    if r == 1 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return run_replication(scenario, seed, r)


def replication_always_dying(job: tuple[Any, int, int]) -> Any:
    """Kills its worker process every time: retried by Ray until its retries run out."""
    os.kill(os.getpid(), signal.SIGKILL)
