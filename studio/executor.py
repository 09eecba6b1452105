"""``--executor local|ray [--ray-address ADDR]``: the options every fanning-out command shares
(run, compare, optimize, recommend setpoints, sensitivity, dataset), and the executor they open.

With ``--executor ray`` the simulations are Ray tasks: on a private local Ray with ``--workers``
CPUs, or on the cluster at ``--ray-address`` (``ray start --head`` prints it; its CPUs then set the
parallelism and ``--workers`` is not used). Same seed ⇒ the same numbers as ``--executor local``
(:mod:`twins.executors`). The API's jobs use the server's setting (``twinopt serve --executor``).
"""
from __future__ import annotations

import argparse
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager

from twins.executors import EXECUTORS, open_executor


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="where simulations run: local processes (default) or Ray tasks (the [ray] extra)")
    p.add_argument("--ray-address", dest="ray_address", default=None, metavar="HOST:PORT",
                   help="with --executor ray: join this Ray cluster (default: a local Ray with --workers CPUs)")


@contextmanager
def executor_of(args: argparse.Namespace) -> Iterator[Executor | None]:
    """The executor the command's options ask for (``None``: local processes, ``--workers`` of them)."""
    with open_executor(args.executor, args.workers, args.ray_address) as ex:
        yield ex
