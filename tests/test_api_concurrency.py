"""Many clients at once against ``twinopt serve`` on loopback: every submission answered without an
error, every job found once and finished, SQLite's lock never reaching a client."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from apiserver import serve  # noqa: E402

from studio.api import PREFIX  # noqa: E402
from studio.api.client import Client  # noqa: E402

CLIENTS = 50
JOBS_PER_CLIENT = 1  # new jobs; each client also submits the shared one again (the cache answers)
POLL_S = 1.0
#: a run job of about a second in a worker (its report included): one replication of 4 simulated hours
TINY = {"replications": 1, "set": ["horizon.length=14400"]}
TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("api"), "--workers", "2") as s:
        yield s


def test_fifty_clients_submit_and_poll_without_errors_lost_or_duplicated_jobs(server):
    with Client(server.url, server.admin_key) as admin:
        key = admin.create_key("many", "engineer")["key"]
        shared = admin.wait(admin.submit("run", "smt_line", {**TINY, "seed": 1}).id, timeout=60)
        assert shared.status == "succeeded", shared.error
    start = threading.Barrier(CLIENTS)
    problems: list[str] = []

    def client(n: int) -> tuple[list[tuple[str, int]], list[str]]:
        """Submit this client's jobs and the shared one, then poll its own until they end."""
        mine: list[tuple[str, int]] = []
        cached: list[str] = []
        with httpx.Client(base_url=server.url + PREFIX, headers={"Authorization": f"Bearer {key}"},
                          timeout=120) as http:

            def call(method: str, path: str, **kw) -> dict:
                r = http.request(method, path, **kw)
                if r.status_code >= 300:
                    problems.append(f"client {n}: {method} {path}: {r.status_code} {r.text[:300]}")
                return r.json()

            start.wait()
            for k in range(JOBS_PER_CLIENT):
                seed = 1000 + n * JOBS_PER_CLIENT + k
                doc = call("POST", "/jobs", json={"kind": "run", "scenario": "smt_line",
                                                  "params": {**TINY, "seed": seed}})
                assert not doc["cached"]
                mine.append((doc["id"], seed))
            again = call("POST", "/jobs", json={"kind": "run", "scenario": "smt_line", "params": {**TINY, "seed": 1}})
            cached.append(again["id"])
            pending = {job_id for job_id, _ in mine}
            while pending:
                time.sleep(POLL_S)
                for job_id in sorted(pending):
                    if call("GET", f"/jobs/{job_id}")["status"] in TERMINAL:
                        pending.discard(job_id)
        return mine, cached

    t0 = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = list(pool.map(client, range(CLIENTS), timeout=240))
    elapsed = time.monotonic() - t0
    assert not problems, "\n".join(problems[:10])
    submitted = [pair for mine, _ in outcomes for pair in mine]
    ids = [job_id for job_id, _ in submitted]
    assert len(ids) == CLIENTS * JOBS_PER_CLIENT and len(set(ids)) == len(ids)  # no duplicated ids
    assert {i for _, cached in outcomes for i in cached} == {shared.id}  # identical inputs: the stored result

    with Client(server.url, key) as c:
        listed = {j.id: j for j in c.jobs(limit=1000)}
    assert set(listed) == set(ids) | {shared.id}  # none lost, none made up
    for job_id, seed in submitted:
        job = listed[job_id]
        assert (job.status, job.params["seed"], job.attempts) == ("succeeded", seed, 1), job
    log = "".join(server.output)
    for bad in ("database is locked", "OperationalError", "Traceback", "internal error"):
        assert bad not in log, log[-3000:]
    print(f"{len(ids)} jobs from {CLIENTS} clients done in {elapsed:.1f} s")


def test_job_options_parsed_in_many_threads_keep_their_own_errors_and_the_process_streams():
    import sys

    from studio.api.jobs import parse
    from twins.errors import InputError

    streams = sys.stdout, sys.stderr
    errors: dict[int, str] = {}

    def submit(n: int) -> None:
        try:
            parse(["run", "smt_line", "--replications", f"x{n}"] if n % 2 else ["run", "smt_line", "--seed", str(n)])
        except InputError as err:
            errors[n] = str(err)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(submit, range(200)))
    assert (sys.stdout, sys.stderr) == streams
    assert sorted(errors) == list(range(1, 200, 2)) and all(f"'x{n}'" in errors[n] for n in errors)


def test_concurrent_first_requests_list_each_shipped_scenario_once():
    from studio.api import app
    from twins.shipped import scenario_names

    app._shipped.cache_clear()  # as in a server that has not answered yet
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: app.shipped(), range(8)))
    assert sorted(s["name"] for s in app.shipped()) == sorted(scenario_names())
