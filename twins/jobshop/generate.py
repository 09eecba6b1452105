"""Random job-shop instances (Taillard 1993 style) for training, tests and benchmarks."""
from __future__ import annotations

import numpy as np

from twins.jobshop.instances import Bounds, JobShopInstance


def random_instance(rng: np.random.Generator, n_jobs: int = 15, n_machines: int = 15,
                    durations: tuple[int, int] = (1, 99), name: str | None = None) -> JobShopInstance:
    """A Taillard-style (1993) random job shop: integer durations uniform on ``durations``
    (inclusive), each job visiting every machine once in a random order. Draws only from ``rng``."""
    lo, hi = durations
    d = rng.integers(lo, hi + 1, size=(n_jobs, n_machines))
    order = np.argsort(rng.random((n_jobs, n_machines)), axis=1)
    jobs = tuple(tuple((int(order[j, k]), int(d[j, k])) for k in range(n_machines)) for j in range(n_jobs))
    return JobShopInstance(name or f"random{n_jobs}x{n_machines}", jobs, n_machines, Bounds())
