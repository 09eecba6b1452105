"""Long work in worker processes through huey (its SQLite storage under ``--data``).

The ``jobs`` table is the source of truth; huey only carries job ids to the workers. A worker
*claims* a queued job (one conditional UPDATE: a duplicate or a cancelled job's message is a
no-op), beats ``heartbeat_at`` every second while it runs, and stores the result, the
recommendation and the final status in one transaction — only if its claim still holds. The
API's reaper (:func:`reap`) re-queues a running job whose heartbeat stopped (its worker was
killed) and fails it after :data:`MAX_ATTEMPTS`; at start-up every queued job is enqueued again.
So a job, once accepted, ends ``succeeded``, ``failed`` with a reason or ``cancelled``: none is
lost and none stays ``running``.

The consumer runs as ``python -m studio.api.queue --db URL --data DIR --workers N``, started by
``twinopt serve`` in its own process group; it kills that group when its parent dies.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from huey import SqliteHuey
from sqlalchemy import and_, insert, select, update

from studio.api.store import Store, jobs, now_iso, recommendations
from twins.errors import InputError, NoSolutionFound

log = logging.getLogger("twinopt.api.queue")

MAX_ATTEMPTS = 3
HEARTBEAT_S = 1.0
STALE_S = 10.0

_stores: dict[str, Store] = {}
#: where the jobs' simulations run: ``twinopt serve --executor … --ray-address …`` (a server
#: setting, not a job parameter: a request must not point the server at another cluster)
EXECUTION: dict[str, str | None] = {"executor": "local", "ray_address": None}


def make_huey(data_dir: str | Path) -> SqliteHuey:
    """The queue (SQLite file ``queue.db`` under ``data_dir``) with the job task registered."""
    path = Path(data_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    huey = SqliteHuey("twinopt", filename=str(path / "queue.db"), results=False, utc=True, timeout=60)
    _tasks[id(huey)] = huey.task(name="twinopt.run_job", retries=0)(run_job)
    return huey


_tasks: dict[int, Any] = {}


def enqueue(huey: SqliteHuey, job_id: str, db_url: str, data_dir: str) -> None:
    huey.enqueue(_tasks[id(huey)].s(job_id, db_url, data_dir))


def _store(url: str) -> Store:
    if url not in _stores:
        _stores[url] = Store.open(url, migrate=False)
    return _stores[url]


# ------------------------------------------------------------------------------------ the worker

def run_job(job_id: str, db_url: str, data_dir: str) -> None:
    """Claim the job, run it, store what it made (the huey task)."""
    from studio.api.jobs import JobCancelled, execute

    store = _store(db_url)
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with store.write() as conn:
        claimed = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == "queued")
                               .values(status="running", worker=token, started_at=now_iso(), heartbeat_at=time.time(),
                                       attempts=jobs.c.attempts + 1, progress=0.0, error=None)).rowcount
        if not claimed:
            return
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one()
    mine = and_(jobs.c.id == job_id, jobs.c.worker == token, jobs.c.status == "running")
    beat = _Heartbeat(store, mine)
    beat.start()

    def progress(fraction: float) -> None:
        beat.fraction = max(beat.fraction, min(fraction, 0.99))
        if beat.cancelled.is_set():
            raise JobCancelled()

    folder = Path(data_dir) / "jobs" / job_id
    status, error, outcome, positional = "failed", None, None, []
    try:  # everything after beat.start() in here: an escaping error would leave it beating for a dead job
        positional = [_materialize(store, arg, Path(data_dir)) for arg in json.loads(row.argv)]
        params = json.loads(row.params)
        if params.get("from_state"):
            params["from_state"] = str(materialize_state(store, params["from_state"], Path(data_dir)))
        outcome = execute(row.kind, positional, params, folder, progress,
                          scenario_label=row.scenario, **EXECUTION)
        if isinstance(outcome.result, dict) and "from_state" in outcome.result:
            outcome.result["from_state"] = json.loads(row.params)["from_state"]  # the state's id, not a path
        status = "succeeded"
    except JobCancelled:
        status, error = "cancelled", "cancelled while running"
    except (InputError, NoSolutionFound) as err:
        error = str(err)
    except Exception as err:  # noqa: BLE001 - a failed job carries its reason, the worker goes on
        error = f"internal error: {type(err).__name__}: {' '.join(str(err).split())}"[:2000]
        log.error("job %s failed:\n%s", job_id, traceback.format_exc())
    finally:
        beat.stop()
    if status == "failed" and beat.cancelled.is_set():
        status, error = "cancelled", "cancelled while running"
    values: dict[str, Any] = {"status": status, "error": error, "finished_at": now_iso(), "heartbeat_at": None}
    rec = None
    try:
        if outcome is not None:
            values.update(result=json.dumps(outcome.result, allow_nan=False), has_report=outcome.report,
                          progress=1.0)
            if outcome.recommendation is not None:
                rec = _recommendation_row(outcome.recommendation, row, positional[0])
                values["recommendation_id"] = rec["id"]
    except Exception as err:  # noqa: BLE001 - an unstorable outcome fails the job now, not after the reaper's retries
        log.error("job %s: its outcome cannot be stored:\n%s", job_id, traceback.format_exc())
        rec, values = None, {"status": "failed", "finished_at": now_iso(), "heartbeat_at": None,
                             "error": f"internal error storing the outcome: {type(err).__name__}: {err}"[:2000]}
    with store.write() as conn:
        # a worker whose claim was lost (the reaper re-queued the job) stores nothing, not even its recommendation
        if conn.execute(update(jobs).where(mine).values(**values)).rowcount and rec is not None:
            conn.execute(insert(recommendations).values(**rec))


STORED = "stored:"


def _materialize(store: Store, arg: str, data_dir: Path) -> str:
    """``stored:<id>`` -> the path of that stored scenario's YAML (written once, never changed)."""
    from studio.api.store import scenarios

    if not arg.startswith(STORED):
        return arg
    sid = arg[len(STORED):]
    path = data_dir / "inputs" / f"{sid}.yaml"
    if not path.exists():
        with store.read() as conn:
            text = conn.execute(select(scenarios.c.yaml).where(scenarios.c.id == sid)).scalar_one()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return str(path)


def materialize_state(store: Store, state_id: str, data_dir: Path) -> Path | None:
    """The file of a stored plant state (written once, never changed); None when there is none."""
    from studio.api.store import states

    path = data_dir / "inputs" / f"state-{state_id}.json"
    if not path.exists():
        with store.read() as conn:
            text = conn.execute(select(states.c.document).where(states.c.id == state_id)).scalar()
        if text is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def _recommendation_row(text: str, job: Any, scenario_arg: str) -> dict[str, Any]:
    """The ``recommendations`` row of a job's Recommendation JSON (checked offline by the envelope)."""
    from optimizers.recommendation import Recommendation
    from studio.api.lifecycle import offline_problems

    rec = Recommendation.from_json(text)
    problems = offline_problems(rec, scenario_arg)
    now = now_iso()
    return {"id": rec.id, "version": rec.version, "kind": rec.kind, "scenario": job.scenario, "job_id": job.id,
            "document": text, "status": "draft" if problems else "validated", "problems": json.dumps(problems),
            "created_at": now, "created_by": job.created_by, "updated_at": now}


class _Heartbeat(threading.Thread):
    """Beats the job's heartbeat and progress every second; notices a cancellation."""

    def __init__(self, store: Store, mine: Any):
        super().__init__(daemon=True)
        self.store, self.mine = store, mine
        self.fraction = 0.0
        self.cancelled = threading.Event()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(HEARTBEAT_S):
            try:
                with self.store.write() as conn:
                    conn.execute(update(jobs).where(self.mine).values(heartbeat_at=time.time(),
                                                                      progress=round(self.fraction, 4)))
                    cancel = conn.execute(select(jobs.c.cancel_requested).where(self.mine)).scalar()
                if cancel:
                    self.cancelled.set()
            except Exception:  # noqa: BLE001 - a missed beat is retried; the reaper tolerates a few
                log.warning("heartbeat failed", exc_info=True)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


# ------------------------------------------------------------------------------------ the API side

def reap(store: Store, huey: SqliteHuey, data_dir: str, *, stale_s: float = STALE_S) -> list[str]:
    """Re-queue running jobs whose worker stopped beating (or fail them after MAX_ATTEMPTS)."""
    cutoff = time.time() - stale_s
    requeued = []
    with store.write() as conn:
        rows = conn.execute(select(jobs.c.id, jobs.c.attempts, jobs.c.cancel_requested)
                            .where(jobs.c.status == "running", jobs.c.heartbeat_at < cutoff)).all()
        for row in rows:
            where = and_(jobs.c.id == row.id, jobs.c.status == "running", jobs.c.heartbeat_at < cutoff)
            if row.cancel_requested:
                conn.execute(update(jobs).where(where).values(status="cancelled", error="cancelled (worker lost)",
                                                              finished_at=now_iso(), heartbeat_at=None))
            elif row.attempts >= MAX_ATTEMPTS:
                conn.execute(update(jobs).where(where).values(
                    status="failed", finished_at=now_iso(), heartbeat_at=None,
                    error=f"the worker running this job stopped {row.attempts} times (killed or crashed)"))
            else:
                conn.execute(update(jobs).where(where).values(status="queued", worker=None, heartbeat_at=None,
                                                              progress=0.0))
                requeued.append(row.id)
    for job_id in requeued:
        enqueue(huey, job_id, store.url, data_dir)
    return requeued


def requeue_all(store: Store, huey: SqliteHuey, data_dir: str) -> int:
    """At start-up: enqueue every queued job again (a duplicate message is a no-op for the worker)."""
    with store.read() as conn:
        ids = [r.id for r in conn.execute(select(jobs.c.id).where(jobs.c.status == "queued")
                                          .order_by(jobs.c.created_at)).all()]
    for job_id in ids:
        enqueue(huey, job_id, store.url, data_dir)
    return len(ids)


# ------------------------------------------------------------------------------------ the consumer

def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:  # the server died (even by kill -9): take the workers down too
            os.killpg(os.getpgid(0), signal.SIGKILL)


def _exit_when_orphaned(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def main(argv: list[str] | None = None) -> int:
    from huey.consumer import Consumer

    p = argparse.ArgumentParser(prog="twinopt-worker")
    p.add_argument("--db", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--parent", type=int, default=None)
    p.add_argument("--executor", choices=("local", "ray"), default="local")
    p.add_argument("--ray-address", dest="ray_address", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    if args.parent:
        threading.Thread(target=_watch_parent, args=(args.parent,), daemon=True).start()
    from studio.api import queue  # not __main__: task names must match the API's

    # the module run_job reads (this file runs as __main__); inherited by the forked workers
    queue.EXECUTION.update(executor=args.executor, ray_address=args.ray_address)

    huey = queue.make_huey(args.data)

    @huey.on_startup()
    def _die_with_the_consumer() -> None:  # in each worker process: an orphan stops taking jobs
        consumer = os.getppid()
        threading.Thread(target=_exit_when_orphaned, args=(consumer,), daemon=True).start()

    consumer = Consumer(huey, workers=args.workers, worker_type="process", periodic=False, initial_delay=0.05,
                        backoff=1.2, max_delay=0.5, check_worker_health=True, health_check_interval=1)
    consumer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
