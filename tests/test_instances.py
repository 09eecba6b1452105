"""The shipped benchmark instances are the published ones: checked against facts from outside
scenarios/instances — optima from the literature that CP-SAT reproduces on the small instances,
and the public originals in the shared instance collection (``../shared/instances`` beside the
checkout, as in CI): same sizes, same operations, same processing-time totals, same bounds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from optimizers import cp
from twins.jobshop.instances import FORMATS, load_instance, shipped_instances
from twins.jobshop.schedule import check_schedule
from twins.shipped import instance_dir

ROOT = Path(__file__).resolve().parent.parent
ORIGINALS = ROOT.parent / "shared" / "instances"
SHIPPED = [(fmt, name) for fmt in FORMATS for name in shipped_instances(fmt)]

#: Optimal makespans as published: Fisher & Thompson (1963) ft06; Lawrence (1984) la01–la15 as
#: proved by Applegate & Cook (1991); Taillard (1993) ta001; Brandimarte (1993) mk01 (optimum from
#: the FJSP literature, e.g. Behnke & Geiger 2012). Small enough for CP-SAT to prove in seconds.
PUBLISHED_OPTIMA = [("orlib", "ft06", 55), ("orlib", "la01", 666), ("orlib", "la02", 655),
                    ("orlib", "la05", 593), ("orlib", "la06", 926), ("orlib", "la11", 1222),
                    ("taillard", "ta001", 1278), ("fjs", "mk01", 40)]

needs_originals = pytest.mark.skipif(
    not ORIGINALS.is_dir(), reason=f"the public originals are not at {ORIGINALS} (shared/ beside the checkout)")


def test_every_format_ships_instances():
    assert {fmt for fmt, _ in SHIPPED} == set(FORMATS)
    assert len(SHIPPED) >= 45


@pytest.mark.parametrize("fmt, name, optimum", PUBLISHED_OPTIMA, ids=[n for _, n, _ in PUBLISHED_OPTIMA])
def test_cpsat_reproduces_the_published_optimum(fmt, name, optimum):
    instance = load_instance(name, fmt)
    schedule = cp.solve(instance, time_limit=60, workers=2, seed=0)
    assert check_schedule(instance, schedule) == []
    assert schedule.status == "optimal" and schedule.makespan == optimum
    assert instance.bounds.best_known == optimum


def _original_operations(fmt: str, name: str) -> tuple[int, int, list[list[tuple[int, int]]]]:
    """(n_jobs, n_machines, per job its (machine, time) pairs) read straight from the original
    file, without twinopt's reader. Taillard's flow-shop layout has one line per machine."""
    text = (ORIGINALS / FORMATS[fmt] / f"{name}.txt").read_text()
    rows = [[int(x) for x in line.split()] for line in text.splitlines() if line.strip()]
    (n, m), body = rows[0][:2], rows[1:]
    if fmt == "taillard":
        assert len(body) == m and all(len(r) == n for r in body)
        return n, m, [[(k, body[k][j]) for k in range(m)] for j in range(n)]
    assert len(body) == n
    return n, m, [list(zip(r[0::2], r[1::2], strict=True)) for r in body]


def _shipped_operations(fmt: str, name: str) -> tuple[int, int, list[list[tuple[int, int]]]]:
    instance = load_instance(name, fmt)
    if fmt == "taillard":
        instance = instance.as_job_shop()
    jobs = [[(instance.machine(j, o), instance.duration(j, o)) for o in range(len(instance.jobs[j]))]
            for j in range(instance.n_jobs)]
    return instance.n_jobs, instance.n_machines, jobs


WITH_ORIGINAL = [(fmt, name) for fmt, name in SHIPPED if fmt in ("orlib", "taillard")]


@needs_originals
@pytest.mark.parametrize("fmt, name", WITH_ORIGINAL, ids=[n for _, n in WITH_ORIGINAL])
def test_shipped_instance_is_the_public_original(fmt, name):
    n, m, original = _original_operations(fmt, name)
    n2, m2, shipped = _shipped_operations(fmt, name)
    assert (n2, m2) == (n, m)
    assert sum(t for job in shipped for _, t in job) == sum(t for job in original for _, t in job)
    assert [len(job) for job in shipped] == [len(job) for job in original]
    assert shipped == original


@needs_originals
@pytest.mark.parametrize("fmt", ["orlib", "taillard"])
def test_shipped_bounds_are_the_originals_bounds(fmt):
    shipped = json.loads((instance_dir() / FORMATS[fmt] / "bounds.json").read_text())
    original = json.loads((ORIGINALS / FORMATS[fmt] / "bounds.json").read_text())
    assert set(shipped) == set(shipped_instances(fmt))
    for name, entry in shipped.items():
        assert entry == original[name], name
        instance = load_instance(name, fmt)
        assert (instance.n_jobs, instance.n_machines) == (entry["n_jobs"], entry["n_machines"])
        assert instance.bounds.best_known == (entry["optimum"] or entry["upper_bound"])
        assert instance.trivial_lower_bound <= entry["lower_bound"] <= instance.bounds.best_known


def test_brandimarte_instances_have_the_published_sizes():
    """No original of the fjs set is in the shared collection: the sizes Brandimarte (1993)
    published (mk01: 10 jobs × 6 machines, 55 operations; mk02: 10 × 6, 58) stand in for it."""
    for name, ops in (("mk01", 55), ("mk02", 58)):
        instance = load_instance(name, "fjs")
        assert (instance.n_jobs, instance.n_machines, instance.n_operations) == (10, 6, ops)
    mk02 = load_instance("mk02", "fjs").bounds
    assert (mk02.lower_bound, mk02.upper_bound, mk02.optimum) == (24, 26, None)  # Brandimarte's bound, best known
