"""A schedule is a list of timed operations; it can be checked independently of whoever made it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twins.jobshop.instances import FlexibleJobShopInstance, FlowShopInstance, Instance, JobShopInstance


@dataclass(frozen=True, order=True)
class ScheduledOperation:
    """Operation ``op`` (0-based position in job ``job``'s route) on ``machine`` from start to end."""

    start: float
    end: float
    job: int
    op: int
    machine: int

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job, "op": self.op, "machine": self.machine, "start": self.start, "end": self.end}


@dataclass
class Schedule:
    """The output of every scheduler. ``permutation`` is set for permutation flow shops."""

    instance: str
    operations: list[ScheduledOperation]
    solver: str = ""
    lower_bound: float | None = None
    status: str = "feasible"  # optimal | feasible | time_limit | infeasible | heuristic
    seconds: float = 0.0
    permutation: list[int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def makespan(self) -> float:
        return max((o.end for o in self.operations), default=0.0)

    def to_json(self) -> dict[str, Any]:
        """The ``twinopt schedule --json`` document (the command-line contract, docs/architecture.md)."""
        doc: dict[str, Any] = {
            "instance": self.instance,
            "solver": self.solver,
            "makespan": _num(self.makespan),
            "lower_bound": _num(self.lower_bound),
            "status": self.status,
            "seconds": round(self.seconds, 4),
            "operations": [o.to_json() for o in sorted(self.operations, key=lambda o: (o.start, o.machine, o.job))],
        }
        if self.permutation is not None:
            doc["permutation"] = list(self.permutation)
        doc.update(self.extra)
        return doc


def _num(x: float | None) -> int | float | None:
    if x is None:
        return None
    return int(x) if float(x).is_integer() else float(x)


def permutation_schedule(instance: FlowShopInstance, permutation: list[int], **fields: Any) -> Schedule:
    """The semi-active schedule of a permutation flow shop: every job starts on every machine as
    soon as the machine and the job are free (``fields`` go to :class:`Schedule`)."""
    ready = [0] * instance.n_machines  # time each machine becomes free
    ops = []
    for j in permutation:
        t = 0
        for m, d in enumerate(instance.p[j]):
            start = max(t, ready[m])
            t = ready[m] = start + d
            ops.append(ScheduledOperation(start, t, j, m, m))
    return Schedule(instance.name, ops, permutation=list(permutation), **fields)


def semi_active(instance: JobShopInstance, operations: list[ScheduledOperation]) -> list[ScheduledOperation]:
    """The semi-active schedule with the same machine sequences as ``operations`` (each machine
    keeps the order of their start times): every operation starts as soon as its job predecessor
    and its machine predecessor have ended. Repairs solver output that violates constraints by
    numerical tolerance; the makespan is at most that of any feasible schedule with these
    sequences."""
    jobs = instance.jobs
    order: dict[int, list[ScheduledOperation]] = {}
    for o in sorted(operations, key=lambda o: (o.start, o.job, o.op)):
        order.setdefault(o.machine, []).append(o)
    start: dict[tuple[int, int], float] = {}
    changed, rounds = True, 0
    while changed:  # longest paths in the (acyclic) precedence graph, by relaxation
        changed, rounds = False, rounds + 1
        if rounds > len(operations) + 1:
            raise ValueError("machine sequences contradict the jobs' technological order (a cycle)")
        for seq in order.values():
            prev_end = 0.0
            for o in seq:
                key = (o.job, o.op)
                job_ready = start.get((o.job, o.op - 1), 0.0) + jobs[o.job][o.op - 1][1] if o.op else 0.0
                t = max(prev_end, job_ready)
                if start.get(key, -1.0) < t:
                    start[key], changed = t, True
                prev_end = start[key] + jobs[o.job][o.op][1]
    return [ScheduledOperation(start[(o.job, o.op)], start[(o.job, o.op)] + jobs[o.job][o.op][1], o.job, o.op,
                               o.machine) for o in operations]


def check_schedule(instance: Instance, schedule: Schedule, tol: float = 1e-6) -> list[str]:
    """Every violation of the instance's constraints, as readable strings (empty list = feasible).

    Checks: each operation exactly once, on its machine (for a flexible job shop: on one of its
    alternative machines), with that machine's duration; technological order within a job; no two
    operations overlapping on a machine; non-negative starts; for flow shops with a permutation,
    the same job order on every machine.
    """
    if isinstance(instance, FlexibleJobShopInstance):
        return _check_operations(instance.jobs, schedule, tol)
    jobs = instance.as_job_shop().jobs if isinstance(instance, FlowShopInstance) else instance.jobs
    problems = _check_operations(tuple(tuple((op,) for op in job) for job in jobs), schedule, tol)
    if isinstance(instance, FlowShopInstance) and schedule.permutation is not None:
        if sorted(schedule.permutation) != list(range(instance.n_jobs)):
            problems.append("permutation is not a permutation of all jobs")
        else:
            by_machine: dict[int, list[ScheduledOperation]] = {}
            for o in schedule.operations:
                by_machine.setdefault(o.machine, []).append(o)
            for m, ops in sorted(by_machine.items()):
                if [o.job for o in sorted(ops)] != list(schedule.permutation):
                    problems.append(f"machine {m} does not follow the permutation")
    return problems


def _check_operations(jobs: tuple[tuple[tuple[tuple[int, int], ...], ...], ...], schedule: Schedule,
                      tol: float) -> list[str]:
    """The job-shop checks, with ``jobs[j][k]`` the admissible ``(machine, duration)`` pairs."""
    problems: list[str] = []
    seen: dict[tuple[int, int], ScheduledOperation] = {}
    for o in schedule.operations:
        key = (o.job, o.op)
        if not (0 <= o.job < len(jobs) and 0 <= o.op < len(jobs[o.job])):
            problems.append(f"operation {key} does not exist")
            continue
        if key in seen:
            problems.append(f"operation {key} scheduled twice")
            continue
        seen[key] = o
        alternatives = dict(jobs[o.job][o.op])
        if o.machine not in alternatives:
            problems.append(f"operation {key} on machine {o.machine}, must be on "
                            f"{' or '.join(map(str, alternatives))}")
        elif abs((o.end - o.start) - alternatives[o.machine]) > tol:
            problems.append(f"operation {key} lasts {o.end - o.start}, must last {alternatives[o.machine]}")
        if o.start < -tol:
            problems.append(f"operation {key} starts before 0")
    for j, ops in enumerate(jobs):
        for k in range(len(ops)):
            if (j, k) not in seen:
                problems.append(f"operation {(j, k)} missing")
            elif k and (j, k - 1) in seen and seen[(j, k)].start < seen[(j, k - 1)].end - tol:
                problems.append(f"operation {(j, k)} starts before operation {(j, k - 1)} ends")
    by_machine: dict[int, list[ScheduledOperation]] = {}
    for o in seen.values():
        by_machine.setdefault(o.machine, []).append(o)
    for m, on_machine in by_machine.items():
        on_machine.sort()
        for a, b in zip(on_machine, on_machine[1:], strict=False):
            if b.start < a.end - tol:
                problems.append(f"machine {m}: operations {(a.job, a.op)} and {(b.job, b.op)} overlap")
    return problems
