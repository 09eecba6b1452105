"""Where fanned-out simulations run: local processes, or a Ray cluster — same seed ⇒ same numbers.

Everything that fans out (replications, compared scenarios, search trials, grids, sensitivity
designs, datasets) goes through :func:`fan_out`: a list of independent jobs, one function, results
in the order of the jobs whatever order they finished in. Each job carries its own seeds
(replication r of master seed s draws from ``(s, r, stream)``, :mod:`twins.stats`), so the numbers
do not depend on the executor, on the number of workers or on which worker ran what.

:func:`open_executor` gives the executor for ``--executor local|ray [--ray-address ADDR]``:

* ``local`` — ``None``: callers use their own process pool of ``workers`` processes (1 = in this
  process), as they always did;
* ``ray`` — a :class:`RayExecutor`: every submitted call is a Ray task (``ray.remote``) scheduled
  by Ray on any node with a free CPU, retried by Ray when its worker process or node dies
  (``max_retries``); a task lost beyond its retries fails the run with :class:`ExecutorError`,
  never a shorter set of results. Without an address a private Ray instance with ``workers`` CPUs
  starts on this machine; with one, this process joins that cluster and its CPUs set the
  parallelism. The cluster's nodes must import the same twinopt (installed there, or Ray's
  default: the driver's working directory on the workers' path).
"""
from __future__ import annotations

import logging
import math
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any, TypeVar

from twins.errors import ExecutorError, InputError, MissingDependency

EXECUTORS = ("local", "ray")
#: Ray re-runs a task this many times when its worker process or node dies (not when it raises)
MAX_RETRIES = 3
#: seconds to wait for the cluster's address to answer before calling it unreachable
CONNECT_TIMEOUT_S = 3.0

T = TypeVar("T")
R = TypeVar("R")


def _apply(fn: Callable[[T], R], chunk: Sequence[T]) -> list[R]:
    return [fn(item) for item in chunk]


def fan_out(fn: Callable[[T], R], items: Sequence[T], *, executor: Executor | None = None, workers: int = 1,
            chunksize: int = 1, done: Callable[[int], object] | None = None) -> list[R]:
    """``[fn(item) for item in items]``, fanned out; results in the order of ``items``.

    ``executor`` may be any :class:`concurrent.futures.Executor` (a :class:`RayExecutor`, a process
    pool); without one, ``workers`` processes (1 = in this process, no pickling). Items go out in
    chunks of ``chunksize`` (one task each: fewer, larger tasks when a job takes milliseconds).
    ``done(k)`` is called as ``k`` more items finish (a progress bar). The first failing job's
    exception is raised and the jobs not yet started are cancelled.
    """
    if chunksize < 1:
        raise ValueError(f"chunksize must be ≥ 1, got {chunksize}")
    if executor is None and workers <= 1:
        out = []
        for item in items:
            out.append(fn(item))
            if done:
                done(1)
        return out
    chunks = [items[i:i + chunksize] for i in range(0, len(items), chunksize)]
    results: list[list[R] | None] = [None] * len(chunks)
    own = executor is None
    pool = executor or ProcessPoolExecutor(max_workers=workers)
    futures: dict[Future[list[R]], int] = {}
    try:
        futures = {pool.submit(_apply, fn, chunk): i for i, chunk in enumerate(chunks)}
        for fut in as_completed(futures):
            i = futures[fut]
            got = fut.result()
            if len(got) != len(chunks[i]):  # never a silently shorter set of results
                raise ExecutorError(f"a task returned {len(got)} results for {len(chunks[i])} jobs")
            results[i] = got
            if done:
                done(len(got))
    finally:
        for fut in futures:
            fut.cancel()
        if own:
            pool.shutdown(cancel_futures=True)
    return [r for chunk in results for r in chunk or ()]


def parallelism(executor: Executor | None, workers: int) -> int:
    """How many jobs may run at once (to size chunks): the executor's workers, else ``workers``."""
    n = getattr(executor, "max_workers", None) or getattr(executor, "_max_workers", None)
    return max(1, int(n or workers))


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:  # ModuleNotFoundError, or an import blocked by sys.modules["ray"] = None
        raise MissingDependency("ray", "--executor ray", "ray") from None
    return ray


#: an HTTP/2 client's first bytes: the connection preface and an empty SETTINGS frame
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def check_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """:class:`InputError` unless ``host:port`` (optionally ``ray://host:port``) answers like a Ray
    head within ``timeout`` seconds: it accepts a TCP connection and speaks gRPC (HTTP/2: its first
    frame is SETTINGS). ray.init retries a dead or foreign address for minutes instead."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(f"--ray-address {address!r}: give HOST:PORT of the cluster's head (ray start --head)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as conn:
            conn.sendall(_H2_HELLO)
            frame = b""
            while len(frame) < 9:
                got = conn.recv(9 - len(frame))
                if not got:
                    break
                frame += got
    except TimeoutError:
        frame = b""
    except OSError as err:
        raise InputError(f"--ray-address {address}: no Ray cluster reachable there ({err.strerror or err})") from None
    if len(frame) < 9 or frame[3] != 0x04:
        raise InputError(f"--ray-address {address}: something answers there, but not a Ray cluster's head "
                         f"(no gRPC within {timeout:g} s)")


class RayExecutor(Executor):
    """A :class:`concurrent.futures.Executor` whose calls are Ray tasks (see the module docstring).

    Joins the cluster at ``address`` or starts a private local Ray with ``workers`` CPUs; the
    process's Ray connection is shut down again by :meth:`shutdown` if this executor opened it. A
    process already connected to Ray (``ray.init`` called before) keeps that connection: Ray allows
    one per process. ``max_retries``: how often Ray re-runs a task whose worker or node died.
    """

    def __init__(self, address: str | None = None, workers: int | None = None, max_retries: int = MAX_RETRIES):
        ray = _import_ray()
        if address:
            check_address(address)
        self._ray = ray
        self._max_retries = max_retries
        self._remote: dict[Callable[..., Any], Any] = {}
        self._pending: set[Any] = set()
        self._lock = threading.Lock()
        self._owns = not ray.is_initialized()
        if self._owns:
            kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": workers,
                                                                          "include_dashboard": False}
            try:
                ray.init(**kwargs, log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
            except Exception as err:  # noqa: BLE001 - version mismatch, not a Ray head, …: one line
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                raise InputError(f"cannot start or join {where}: {type(err).__name__}: {err}") from None
        self.max_workers = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self._ray.remote(max_retries=self._max_retries, num_cpus=1)(fn)
        ref = remote.remote(*args, **kwargs)
        with self._lock:
            self._pending.add(ref)
        out: Future[R] = Future()
        out.set_running_or_notify_cancel()
        ref.future().add_done_callback(lambda f: self._settle(ref, f, out))
        return out

    def _settle(self, ref: Any, ray_future: Future[Any], out: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(ref)
        err = ray_future.exception()
        if err is None:
            out.set_result(ray_future.result())
        elif isinstance(err, self._ray.exceptions.RayTaskError):  # the job raised: its own exception
            cause = getattr(err, "cause", None)
            out.set_exception(cause if isinstance(cause, Exception) else err.as_instanceof_cause())
        elif isinstance(err, self._ray.exceptions.RayError):
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            x = self._ray.exceptions
            lost = (x.WorkerCrashedError, x.NodeDiedError, x.ObjectLostError, x.LocalRayletDiedError)
            what = f"was lost after {self._max_retries} retries" if isinstance(err, lost) else "failed in Ray"
            lost_or_failed = ExecutorError(f"a Ray task {what} ({type(err).__name__}: {first})")
            lost_or_failed.__cause__ = err  # Ray's own error, for callers that decide on its type
            out.set_exception(lost_or_failed)
        else:
            out.set_exception(err)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            with self._lock:
                pending = list(self._pending)
            for ref in pending:
                self._ray.cancel(ref, force=True)
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns = False


def check_ray(address: str | None) -> None:
    """Fail fast (:class:`InputError`) when ``--executor ray`` cannot work: ray not installed, or
    no cluster answering at ``address`` — before any simulation, without joining the cluster."""
    _import_ray()
    if address:
        check_address(address)


@contextmanager
def open_executor(kind: str = "local", workers: int | None = None, address: str | None = None
                  ) -> Iterator[Executor | None]:
    """The executor for ``--executor KIND [--workers N] [--ray-address ADDR]``; ``None`` for
    ``local`` (callers then run ``workers`` local processes). Bad options are :class:`InputError`."""
    if kind not in EXECUTORS:
        raise InputError(f"--executor {kind!r}: choose one of {', '.join(EXECUTORS)}")
    if address and kind != "ray":
        raise InputError("--ray-address needs --executor ray")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be ≥ 1, got {workers}")
    if kind == "local":
        yield None
        return
    ex = RayExecutor(address, workers)
    try:
        yield ex
    finally:
        ex.shutdown(cancel_futures=True)


def chunk_size(jobs: int, width: int, most: int = 64) -> int:
    """Chunks of a few-millisecond job list: about 8 per worker, at most ``most`` jobs each."""
    return max(1, min(most, math.ceil(jobs / (8 * max(width, 1)))))
