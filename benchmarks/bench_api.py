"""The recommendation API's speeds on loopback: ``twinopt serve`` started as a user starts it (a
subprocess on 127.0.0.1, a free port, ``--workers 2``), driven by ``--clients`` concurrent httpx
clients (threads in this process, one connection each).

1. Latency of ``GET /recommendations/{id}`` (a key check, two reads, the document) under
   ``--clients`` concurrent clients, p50 and p99, next to ``GET /health`` under the same load
   (same server, same clients, no key and no database: the reference, so the client side's own
   cost cancels in the ratio), and next to the same reads made in this process on the store.
   The recommendation is made first by an optimize job on glue_dispensing (budget 2).
2. Latency of ``POST /jobs`` (validation, the scenario loaded with its overrides, the cache lookup,
   the insert, the audit entry, the enqueue) for tiny run jobs with distinct seeds under the same
   load, p50 and p99, and its ratio to ``GET /health``. The workers run the queued jobs meanwhile;
   what is still queued afterwards is cancelled.
3. Jobs per minute for short run jobs (smt_line, 1 replication of 4 simulated hours, its report
   included) on 2 workers: ``--jobs`` submitted at once, from the first one's creation to the last
   one's end (the jobs' own timestamps). The reference is the worker's own function
   (``studio.api.jobs.execute``) running such jobs back to back in this process while the server
   idles: the ratio is the two workers' gain net of the queue, the store and the heartbeats (at
   most 2 on 2 free cores).

    PYTHONPATH=. python benchmarks/bench_api.py [--clients 50] [--requests 20] [--posts 5] [--jobs 20]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from studio.api import PREFIX
from studio.api.client import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' way to start a server
from apiserver import Server, start, stop  # noqa: E402

TINY = {"replications": 1, "set": ["horizon.length=14400"]}


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def under_load(server: Server, key: str, clients: int, requests: int,
               request: Callable[[httpx.Client, int, int], httpx.Response]) -> list[float]:
    """Each of ``clients`` threads sends ``requests`` requests back to back (all start together);
    the latencies of all of them, in seconds. Any answer but 2xx stops the benchmark."""
    barrier = threading.Barrier(clients)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []

    def run(n: int) -> None:
        with httpx.Client(base_url=server.url + PREFIX, headers={"Authorization": f"Bearer {key}"},
                          timeout=120) as http:
            http.get("/health")  # the connection is open before the clock starts
            barrier.wait()
            for k in range(requests):
                t = time.perf_counter()
                r = request(http, n, k)
                latencies[n].append(time.perf_counter() - t)
                if r.status_code >= 300:
                    errors.append(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return [x for xs in latencies for x in xs]


def _line(what: str, xs: list[float], ref: list[float] | None = None) -> str:
    text = f"  {what}: p50 {_pct(xs, 0.5) * 1e3:.1f} ms, p99 {_pct(xs, 0.99) * 1e3:.1f} ms"
    if ref is not None:
        text += f" (x{_pct(xs, 0.5) / _pct(ref, 0.5):.1f} / x{_pct(xs, 0.99) / _pct(ref, 0.99):.1f} GET /health)"
    return text


def in_process_reads(data: Path, rec_id: str, key: str, n: int = 2000) -> list[float]:
    """The reads a GET /recommendations/{id} makes (the key, the row, its people's names), on the store
    in this process."""
    from sqlalchemy import select

    from studio.api.auth import authenticate
    from studio.api.store import Store, api_keys, recommendations, sqlite_url

    store = Store.open(sqlite_url(data), migrate=False)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        authenticate(store, key)
        with store.read() as conn:
            row = conn.execute(select(recommendations).where(recommendations.c.id == rec_id)).one()
        with store.read() as conn:
            conn.execute(select(api_keys.c.id, api_keys.c.name).where(api_keys.c.id.in_({row.created_by}))).all()
        times.append(time.perf_counter() - t)
    store.dispose()
    return times


def jobs_per_minute(server: Server, key: str, jobs: int, seed0: int) -> float:
    """``jobs`` submitted at once; from the first one's creation to the last one's end (the server's clocks)."""
    with Client(server.url, key) as c:
        ids = {c.submit("run", "smt_line", {**TINY, "seed": seed0 + k}).id for k in range(jobs)}
        while True:  # one light request per poll: the workers share the cores with the server
            mine = [j for j in c.jobs(limit=1000) if j.id in ids]
            if all(j.done for j in mine):
                break
            time.sleep(0.5)
    bad = [j for j in mine if j.status != "succeeded"]
    if bad:
        raise SystemExit(f"{len(bad)} jobs did not succeed, e.g. {bad[0]}")
    first = min(dt.datetime.fromisoformat(j.created_at) for j in mine)
    last = max(dt.datetime.fromisoformat(j.finished_at or "") for j in mine)
    return jobs / (last - first).total_seconds() * 60


def serial_jobs_per_minute(jobs: int, seed0: int) -> float:
    from studio.api.jobs import execute

    with tempfile.TemporaryDirectory() as tmp:
        execute("run", ["smt_line"], {**TINY, "seed": seed0 - 1}, Path(tmp) / "warm", lambda f: None)
        t = time.perf_counter()
        for k in range(jobs):
            execute("run", ["smt_line"], {**TINY, "seed": seed0 + k}, Path(tmp) / str(k), lambda f: None)
        return jobs / (time.perf_counter() - t) * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="GET requests per client and measurement")
    parser.add_argument("--posts", type=int, default=5, help="POST /jobs requests per client")
    parser.add_argument("--jobs", type=int, default=20, help="short run jobs for the jobs-per-minute figure")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        server = start(data, "--workers", "2")
        try:
            with Client(server.url, server.admin_key) as admin:
                key = admin.create_key("bench", "engineer")["key"]
            with Client(server.url, key) as c:
                job = c.wait(c.submit("optimize", "glue_dispensing", {
                    "budget": 2, "replications": 1, "final_replications": 2, "top_k": 1, "seed": 1}).id, timeout=300)
                assert job.status == "succeeded" and job.recommendation_id, job
            rec = job.recommendation_id

            print(f"== 1. GET /recommendations/{{id}}, {args.clients} concurrent clients x {args.requests} requests")
            health = under_load(server, key, args.clients, args.requests, lambda h, n, k: h.get("/health"))
            recs = under_load(server, key, args.clients, args.requests,
                              lambda h, n, k: h.get(f"/recommendations/{rec}"))
            local = in_process_reads(data, rec, key)
            print(_line("GET /health (reference)", health))
            print(_line("GET /recommendations/{id}", recs, health))
            print(f"  the same reads in this process on the store: p50 {_pct(local, 0.5) * 1e3:.2f} ms "
                  f"(x{_pct(recs, 0.5) / _pct(local, 0.5):.0f} over HTTP under load)")

            print(f"== 2. POST /jobs (tiny run jobs, distinct seeds), {args.clients} concurrent clients x "
                  f"{args.posts} requests")
            health = under_load(server, key, args.clients, args.posts, lambda h, n, k: h.get("/health"))
            posts = under_load(server, key, args.clients, args.posts, lambda h, n, k: h.post("/jobs", json={
                "kind": "run", "scenario": "smt_line", "params": {**TINY, "seed": 10_000 + n * args.posts + k}}))
            print(_line("GET /health (reference)", health))
            print(_line("POST /jobs", posts, health))
            with Client(server.url, key) as c:
                queued = c.jobs(status="queued", limit=1000)
                for j in queued:
                    c.cancel(j.id)
                while c.jobs(status="running"):
                    time.sleep(0.2)
            print(f"  ({len(queued)} of the {args.clients * args.posts} submitted jobs were still queued: "
                  f"cancelled)")

            print(f"== 3. jobs per minute, {args.jobs} short run jobs (smt_line, 1 replication of 4 h, report "
                  f"included) on 2 workers")
            serial = serial_jobs_per_minute(min(args.jobs, 10), 200_000)  # meanwhile the server is idle
            served = jobs_per_minute(server, key, args.jobs, 100_000)
        finally:
            stop(server)
        print(f"  served: {served:.0f} jobs/min; the worker's function back to back in this process: "
              f"{serial:.0f} jobs/min (x{served / serial:.2f})")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
