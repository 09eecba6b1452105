"""NEH (Nawaz, Enscore & Ham 1983) for the permutation flow shop, with Taillard's (1990)
accelerations written as numpy max-plus recurrences.

Notation: ``p`` is an ``(n_jobs, n_machines)`` integer array of processing times; a permutation
is an array of job indices. Times are in the instance's time unit.

Taillard's accelerations evaluate the insertion of one job into *every* position of a sequence
of k jobs in O(k·m): heads ``e`` (earliest completion of the sequence's i-th job on machine j),
tails ``q`` (time from the start of the i-th job on machine j to the end of the schedule), and
for the inserted job ``f[i, j] = max(f[i, j-1], e[i-1, j]) + p[x, j]``; inserting at i gives the
makespan ``max_j f[i, j] + q[i, j]``. Each recurrence ``a[i] = max(a[i-1], b[i]) + c[i]``
unrolls to ``C[i] + max_{l<=i} (b[l] - C[l-1])`` with C the running sum of c, i.e. one
``cumsum`` and one ``maximum.accumulate``: no Python loop over positions.
"""
from __future__ import annotations

import time

import numpy as np

from twins.jobshop.instances import FlowShopInstance
from twins.jobshop.schedule import Schedule, permutation_schedule


def processing_times(instance: FlowShopInstance) -> np.ndarray:
    """``p[j, m]`` as an int64 array."""
    return np.asarray(instance.p, dtype=np.int64)


def heads(pt: np.ndarray) -> np.ndarray:
    """Completion times ``e[..., i, j]`` of the i-th job of a sequence on machine j.

    Args:
        pt: processing times in sequence order, shape ``(..., k, m)`` (leading axes: a batch of
            sequences of equal length).
    """
    e = np.empty_like(pt)
    previous_machine = np.zeros(pt.shape[:-1], dtype=pt.dtype)
    for j in range(pt.shape[-1]):
        c = np.cumsum(pt[..., j], axis=-1)
        e[..., j] = c + np.maximum.accumulate(previous_machine - c + pt[..., j], axis=-1)
        previous_machine = e[..., j]
    return e


def tails(pt: np.ndarray) -> np.ndarray:
    """``q[..., i, j]``: from the start of the i-th job on machine j to the end of the schedule
    (heads of the reversed flow shop)."""
    return heads(pt[..., ::-1, ::-1])[..., ::-1, ::-1]


def makespan(p: np.ndarray, permutation) -> int:
    """Makespan of ``permutation`` (semi-active timing)."""
    return int(heads(p[np.asarray(permutation)])[-1, -1])


def insertion_makespans(pt: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Makespans of inserting a job before position 0, 1, …, k of a sequence.

    Args:
        pt: the sequence's processing times, shape ``(..., k, m)``.
        px: the inserted job's processing times, shape ``(..., 1, m)`` or ``(m,)``.

    Returns:
        Array of shape ``(..., k + 1)``.
    """
    pad = [(0, 0)] * (pt.ndim - 2)
    e = np.pad(heads(pt), pad + [(1, 0), (0, 0)])  # e[i] = heads of the job before position i
    q = np.pad(tails(pt), pad + [(0, 1), (0, 0)])  # q[i] = tails of the job that ends up after it
    cum = np.cumsum(px, axis=-1)
    f = cum + np.maximum.accumulate(e - cum + px, axis=-1)
    return (f + q).max(axis=-1)


def insert_best(p: np.ndarray, sequence: np.ndarray, job: int) -> tuple[np.ndarray, int]:
    """Insert ``job`` where the makespan is smallest (first such position); returns the new
    sequence and its makespan."""
    costs = insertion_makespans(p[sequence], p[job])
    i = int(np.argmin(costs))
    return np.insert(sequence, i, job), int(costs[i])


def neh_permutation(p: np.ndarray) -> tuple[np.ndarray, int]:
    """NEH: jobs by decreasing total work (ties by index), each inserted at its best position."""
    order = np.argsort(-p.sum(axis=1), kind="stable")
    sequence = order[:1]
    cmax = int(p[order[0]].sum())
    for job in order[1:]:
        sequence, cmax = insert_best(p, sequence, int(job))
    return sequence, cmax


def neh(instance: FlowShopInstance) -> Schedule:
    """The NEH schedule of ``instance`` (see :func:`heuristic_schedule` for bound and status)."""
    started = time.perf_counter()
    sequence, _ = neh_permutation(processing_times(instance))
    return heuristic_schedule(instance, sequence, "neh", time.perf_counter() - started)


def heuristic_schedule(instance: FlowShopInstance, sequence, solver: str, seconds: float) -> Schedule:
    """A permutation found by a heuristic, as a :class:`Schedule` with Taillard's lower bound;
    status ``optimal`` when the makespan meets that bound, else ``heuristic``."""
    schedule = permutation_schedule(instance, [int(j) for j in sequence], solver=solver, seconds=seconds,
                                    lower_bound=instance.trivial_lower_bound)
    schedule.status = "optimal" if schedule.makespan <= instance.trivial_lower_bound else "heuristic"
    return schedule
