"""CP-SAT schedules: proven optima on classic instances, flexible job shops against brute force,
permutation flow shops against enumeration; every schedule passes the independent checker."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizers import cp
from twins.errors import InputError
from twins.jobshop.instances import FlexibleJobShopInstance, FlowShopInstance, load_instance, read_fjs
from twins.jobshop.schedule import Schedule, ScheduledOperation, check_schedule, permutation_schedule


@pytest.mark.parametrize("name, optimum", [("ft06", 55), ("la01", 666)])
def test_cpsat_proves_ft06_and_la01_optimal(name, optimum):
    instance = load_instance(name)
    schedule = cp.solve(instance, time_limit=30, workers=2, seed=0)
    assert check_schedule(instance, schedule) == []
    assert schedule.status == "optimal"
    assert schedule.makespan == optimum == schedule.lower_bound
    assert max(o.end for o in schedule.operations) == schedule.to_json()["makespan"] == optimum


def test_cpsat_under_a_time_limit_reports_a_valid_bound_and_a_feasible_schedule():
    instance = load_instance("ft10")
    schedule = cp.solve(instance, time_limit=1.0, workers=2, seed=1)
    assert check_schedule(instance, schedule) == []
    assert schedule.status in ("optimal", "feasible")
    assert instance.trivial_lower_bound <= schedule.lower_bound <= 930 <= schedule.makespan
    assert schedule.seconds < 5


def test_cpsat_hint_is_accepted_and_never_hurts():
    instance = load_instance("ft06")
    hint = cp.solve(instance, time_limit=0.05, workers=1)
    schedule = cp.solve(instance, time_limit=10, hint=hint)
    assert schedule.status == "optimal" and schedule.makespan == 55
    assert check_schedule(instance, schedule) == []


def _brute_force_fjsp(instance: FlexibleJobShopInstance) -> int:
    """Best semi-active schedule over every machine assignment and every operation sequence
    (every optimum is attained by a semi-active schedule, and each is some sequence decoded)."""
    ops = [(j, k) for j, job in enumerate(instance.jobs) for k in range(len(job))]
    best = None
    for assignment in itertools.product(*(instance.jobs[j][k] for j, k in ops)):
        chosen = dict(zip(ops, assignment, strict=True))
        tokens = [j for j, job in enumerate(instance.jobs) for _ in job]
        for sequence in set(itertools.permutations(tokens)):
            job_ready = [0] * instance.n_jobs
            next_op = [0] * instance.n_jobs
            machine_ready = [0] * instance.n_machines
            for j in sequence:
                m, d = chosen[j, next_op[j]]
                next_op[j] += 1
                job_ready[j] = machine_ready[m] = max(job_ready[j], machine_ready[m]) + d
            best = max(job_ready) if best is None else min(best, max(job_ready))
    return best


@st.composite
def tiny_flexible_job_shops(draw):
    n_machines = draw(st.integers(2, 3))
    n_jobs = draw(st.integers(2, 3))
    n_ops = 2 if n_jobs == 3 else 3
    machines = st.integers(0, n_machines - 1)
    jobs = []
    for _ in range(n_jobs):
        ops = []
        for _ in range(n_ops):
            alt_machines = draw(st.lists(machines, min_size=1, max_size=2, unique=True))
            ops.append(tuple((m, draw(st.integers(1, 9))) for m in alt_machines))
        jobs.append(tuple(ops))
    return FlexibleJobShopInstance("tiny", tuple(jobs), n_machines)


@settings(max_examples=25, deadline=None)
@given(tiny_flexible_job_shops())
def test_flexible_job_shop_cpsat_matches_brute_force(instance):
    schedule = cp.solve(instance, time_limit=10, workers=1)
    assert check_schedule(instance, schedule) == []
    assert schedule.status == "optimal"
    assert schedule.makespan == _brute_force_fjsp(instance)


def test_flexible_job_shop_uses_the_faster_alternative_when_it_pays():
    # one job, two operations, each either slow on machine 0 or fast on machine 1
    instance = FlexibleJobShopInstance("choice", ((((0, 9), (1, 2)), ((1, 3), (0, 7))),), 2)
    schedule = cp.solve(instance, time_limit=5)
    assert [(o.machine, o.end - o.start) for o in sorted(schedule.operations)] == [(1, 2), (1, 3)]
    assert schedule.makespan == 5


def test_cpsat_proves_brandimarte_mk01_optimal_and_bounds_mk02():
    mk01 = load_instance("mk01", fmt="fjs")
    assert (mk01.n_jobs, mk01.n_machines, mk01.n_operations) == (10, 6, 55)
    schedule = cp.solve(mk01, time_limit=30, workers=2, seed=0)
    assert check_schedule(mk01, schedule) == []
    assert schedule.status == "optimal" and schedule.makespan == 40 == mk01.bounds.best_known
    mk02 = load_instance("mk02", fmt="fjs")
    schedule = cp.solve(mk02, time_limit=5, workers=2, seed=0)
    assert check_schedule(mk02, schedule) == []
    assert mk02.bounds.lower_bound <= schedule.lower_bound <= mk02.bounds.best_known <= schedule.makespan


def test_checker_rejects_a_machine_outside_the_alternatives_and_a_wrong_duration():
    instance = FlexibleJobShopInstance("choice", ((((0, 9), (1, 2)),),), 3)
    on_wrong_machine = Schedule("choice", [ScheduledOperation(0, 2, 0, 0, 2)])
    wrong_duration = Schedule("choice", [ScheduledOperation(0, 9, 0, 0, 1)])
    assert any("must be on 0 or 1" in p for p in check_schedule(instance, on_wrong_machine))
    assert any("must last 2" in p for p in check_schedule(instance, wrong_duration))


def test_flow_shop_cpsat_is_the_best_permutation_schedule():
    instance = FlowShopInstance("tiny", ((5, 9, 8), (9, 3, 10), (9, 4, 5), (4, 8, 8), (3, 5, 6), (7, 2, 9)))
    best = min(permutation_schedule(instance, list(p)).makespan for p in itertools.permutations(range(6)))
    schedule = cp.solve(instance, time_limit=10)
    assert schedule.permutation is not None
    assert check_schedule(instance, schedule) == []
    assert schedule.status == "optimal" and schedule.makespan == best == 54


def test_read_fjs_converts_one_based_machines_and_reports_bad_lines(tmp_path):
    good = tmp_path / "mini.fjs"
    good.write_text("2 3 1.5\n2 2 1 4 3 6 1 2 5\n1 1 3 2\n")
    instance = read_fjs(good)
    assert instance.jobs == ((((0, 4), (2, 6)), ((1, 5),)), (((2, 2),),))
    assert cp.solve(instance, time_limit=5).makespan == 9
    bad = tmp_path / "bad.fjs"
    bad.write_text("1 2\n1 1 3 4\n")
    with pytest.raises(InputError, match=r"bad.fjs:2: .*machine 3 not in 1..2"):
        read_fjs(bad)
    bad.write_text("1 2\n2 1 1 4\n")
    with pytest.raises(InputError, match=r"bad.fjs:2: job 0 operation 1"):
        read_fjs(bad)


def test_cpsat_rejects_nonsense_parameters():
    with pytest.raises(InputError, match="time limit"):
        cp.solve(load_instance("ft06"), time_limit=0)
    with pytest.raises(InputError, match="workers"):
        cp.solve(load_instance("ft06"), workers=0)
