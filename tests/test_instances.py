"""Every shipped benchmark instance loads, has its published bounds, and those bounds agree with
the instance itself (dimensions, a valid trivial lower bound)."""
from __future__ import annotations

import json

import pytest

from twins.jobshop.instances import FORMATS, load_instance, shipped_instances
from twins.shipped import instance_dir

SHIPPED = [(fmt, name) for fmt in FORMATS for name in shipped_instances(fmt)]


def test_every_format_ships_instances():
    assert {fmt for fmt, _ in SHIPPED} == set(FORMATS)
    assert len(SHIPPED) >= 45


@pytest.mark.parametrize("fmt, name", SHIPPED, ids=[n for _, n in SHIPPED])
def test_shipped_instance_matches_its_bounds_entry(fmt, name):
    entry = json.loads((instance_dir() / FORMATS[fmt] / "bounds.json").read_text())[name]
    instance = load_instance(name, fmt)
    assert (instance.n_jobs, instance.n_machines) == (entry["n_jobs"], entry["n_machines"])
    best = instance.bounds.best_known
    assert best == (entry["optimum"] or entry["upper_bound"])
    assert instance.trivial_lower_bound <= entry["lower_bound"] <= best
    if entry["optimum"] is not None:
        assert entry["optimum"] == entry["upper_bound"]  # (lower_bound may be the original paper's)
