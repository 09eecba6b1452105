"""Crash safety of the API through its real processes: ``twinopt serve`` and its job workers killed
with SIGKILL mid-job, then started again on the same ``--data``. Every accepted job ends
``succeeded`` (run again) or ``failed`` with a reason; none stays ``running``, none is lost; the
stored scenarios, recommendations and the audit trail come through intact.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
if not Path("/proc/self/stat").exists():
    pytest.skip("reads the process tree from /proc (Linux)", allow_module_level=True)

import processes  # noqa: E402
from apiserver import ROOT, Server, start, stop  # noqa: E402

from studio.api.client import Client, Job  # noqa: E402
from studio.api.queue import MAX_ATTEMPTS  # noqa: E402

SMT = (ROOT / "scenarios" / "smt_line.yaml").read_text()
#: a run job of a few seconds in a worker (33 simulated days per replication)
LONG = {"replications": 4, "set": ["horizon.length=2880000"]}
SHORT = {"replications": 1, "set": ["horizon.length=14400"]}
TERMINAL = ("succeeded", "failed", "cancelled")
STALE_S = "3"  # twinopt serve --stale-after: a killed worker's job is re-queued within seconds


@contextmanager
def serving(data: Path, *args: str) -> Iterator[tuple[Server, int]]:
    """``twinopt serve`` and its consumer's pid; both process trees are gone afterwards, even on failure."""
    server = start(data, "--stale-after", STALE_S, *args)
    consumer = None
    try:
        consumer = processes.consumer(server.proc.pid)
        yield server, consumer
    finally:
        stop(server, sig=signal.SIGKILL)
        if consumer is not None:
            processes.kill_group(consumer)


def wait_for(client: Client, job_id: str, predicate, timeout: float, what: str) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = client.job(job_id)
        if predicate(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never became {what}: {job}")
        time.sleep(0.1)


def running_on(data: Path, job_id: str, attempt: int, timeout: float = 60) -> int:
    """The pid of the worker running ``job_id``'s ``attempt``-th attempt (waits for it to start)."""
    deadline = time.monotonic() + timeout
    while True:
        status, attempts, pid = processes.job_worker(data, job_id)
        if status == "running" and attempts == attempt and pid is not None:
            return pid
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {status} after {attempts} attempt(s), not running attempt {attempt}")
        time.sleep(0.05)


def test_jobs_survive_a_killed_worker_and_a_killed_server(tmp_path):
    data = tmp_path / "data"
    with serving(data, "--workers", "2") as (server, consumer):
        admin = Client(server.url, server.admin_key)
        key = admin.create_key("erin", "engineer")["key"]
        engineer = Client(server.url, key)
        stored = [engineer.upload_scenario(SMT, name="line_a"),
                  engineer.upload_scenario(SMT.replace("machines: 2", "machines: 3", 1), name="line_b")]
        opt = engineer.wait(engineer.submit("optimize", "glue_dispensing", {
            "budget": 2, "replications": 1, "final_replications": 2, "top_k": 1, "seed": 1}).id, timeout=60)
        assert opt.status == "succeeded", opt.error
        rec = engineer.recommendation(opt.recommendation_id)

        long_a = engineer.submit("run", "smt_line", {**LONG, "seed": 1}).id
        long_b = engineer.submit("run", stored[1]["id"], {**LONG, "seed": 2}).id
        short = [engineer.submit("run", stored[0]["id"], {**SHORT, "seed": 3}).id,
                 engineer.submit("run", "smt_line", {**SHORT, "seed": 4}).id]
        submitted = [opt.id, long_a, long_b, *short]

        # a worker killed mid-job: huey forks a new one, the reaper re-queues the job, it runs again
        victim = running_on(data, long_a, attempt=1)
        assert victim in processes.children(consumer)
        os.kill(victim, signal.SIGKILL)
        assert not processes.wait_gone([victim], 5)
        running_on(data, long_a, attempt=2)
        # now the server itself, with jobs running: its consumer and every worker must die with it
        assert engineer.job(long_b).status == "running" or engineer.job(long_a).status == "running"
        tree = [consumer, *processes.children(consumer)]
        audit_before = admin.audit(limit=1000)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
        left = processes.wait_gone(tree, 5)
        assert not left, f"orphaned consumer or workers survived the server: {[processes.cmdline(p) for p in left]}"
        for c in (admin, engineer):
            c.close()
    first_log = server.output

    with serving(data, "--workers", "2") as (server, consumer):
        assert server.admin_key is None
        with Client(server.url, key) as again:
            deadline = time.monotonic() + 90
            while not all((j := again.job(i)).done for i in submitted):
                assert time.monotonic() < deadline, f"still not done after a restart: {j}"
                time.sleep(0.3)
            final = {i: again.job(i) for i in submitted}
            assert {j.status for j in final.values()} == {"succeeded"}, final
            assert final[long_a].attempts >= 2
            assert sorted(j.id for j in again.jobs(limit=1000)) == sorted(submitted)  # none lost, none made up
            for s in stored:
                assert again.scenario(s["id"])["yaml"] == (SMT if s["name"] == "line_a" else
                                                          SMT.replace("machines: 2", "machines: 3", 1))
            kept = again.recommendation(rec["id"])
            assert (kept["document"], kept["status"]) == (rec["document"], "validated")
            assert [r["id"] for r in again.recommendations()] == [rec["id"]]
            assert again.audit(limit=1000)[:len(audit_before)] == audit_before
            assert again.audit_verify()["ok"]
    assert not any("database is locked" in line for line in first_log + server.output)


def test_a_job_whose_worker_keeps_dying_fails_with_a_reason_and_the_workers_go_on(tmp_path):
    data = tmp_path / "data"
    with serving(data, "--workers", "1") as (server, consumer):
        admin = Client(server.url, server.admin_key)
        doomed = admin.submit("run", "smt_line", {**LONG, "seed": 5}).id
        for attempt in range(1, MAX_ATTEMPTS + 1):
            victim = running_on(data, doomed, attempt)
            os.kill(victim, signal.SIGKILL)
            assert not processes.wait_gone([victim], 5)
        failed = wait_for(admin, doomed, lambda j: j.done, 30, "done")
        assert failed.status == "failed" and failed.error and failed.attempts == MAX_ATTEMPTS
        # a job that raises in its worker fails with its reason; the same worker runs the next one
        raises = admin.submit("train", "twinopt/Parameter-v0", {"env_kwargs": {"bogus": 1}, "timesteps": 10}).id
        ok = admin.submit("run", "smt_line", {**SHORT, "seed": 6}).id
        bad = wait_for(admin, raises, lambda j: j.done, 60, "done")
        assert bad.status == "failed" and "bogus" in (bad.error or "") and bad.attempts == 1
        assert wait_for(admin, ok, lambda j: j.done, 60, "done").status == "succeeded"
        assert admin.audit_verify()["ok"]
        admin.close()


def test_a_killed_consumer_takes_its_workers_along_and_serve_starts_it_again(tmp_path):
    with serving(tmp_path / "d", "--workers", "2") as (server, _):
        old = processes.consumer(server.proc.pid)
        deadline = time.monotonic() + 30
        while len(workers := processes.children(old)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) >= 2  # the workers (and whatever else the consumer forked)
        os.kill(old, signal.SIGKILL)
        assert processes.wait_gone(workers, 15) == []  # no orphaned worker goes on taking jobs
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            fresh = [p for p in processes.children(server.proc.pid) if "studio.api.queue" in processes.cmdline(p)]
            if fresh and fresh[0] != old:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("serve did not start its job consumer again")
        with Client(server.url, server.key("engineer", "erin")) as c:
            job = c.wait(c.submit("run", "smt_line", {"replications": 1, "set": ["horizon.length=14400"]}).id,
                         timeout=120, progress=False)
            assert job.status == "succeeded", job.error
