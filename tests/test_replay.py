"""Schedules replayed in the twin: a deterministic replay executes exactly the semi-active schedule
of the solver's machine orders (same makespan, same job order on every machine, same start times),
energy and utilization come out of the twin like for any scenario, and variability or breakdowns
stretch the replay without changing any machine's job order."""
from __future__ import annotations

import pytest

from optimizers.recommendation import Recommendation
from optimizers.replay import machine_sequences, recommend_schedule, replay_schedule, schedule_scenario
from optimizers.solvers import solve_instance
from twins.errors import InputError
from twins.jobshop.instances import FlowShopInstance, load_instance
from twins.jobshop.schedule import Schedule, ScheduledOperation, check_schedule


def semi_active(instance, sequences: dict[int, list[int]]) -> dict[tuple[int, int], tuple[float, float]]:
    """Independent reference: earliest start of every operation given each machine's job order
    (longest paths by fixpoint iteration; job precedence and machine order as the only arcs)."""
    jobs = instance.as_job_shop().jobs if isinstance(instance, FlowShopInstance) else instance.jobs
    where = {(j, m): k for j, job in enumerate(jobs) for k, (m, _) in enumerate(job)}
    start = {(j, k): 0.0 for j, job in enumerate(jobs) for k in range(len(job))}
    changed = True
    while changed:
        changed = False
        for j, job in enumerate(jobs):
            for k in range(1, len(job)):
                t = start[(j, k - 1)] + job[k - 1][1]
                if t > start[(j, k)]:
                    start[(j, k)], changed = t, True
        for m, order in sequences.items():
            for a, b in zip(order, order[1:], strict=False):
                ka, kb = where[(a, m)], where[(b, m)]
                t = start[(a, ka)] + jobs[a][ka][1]
                if t > start[(b, kb)]:
                    start[(b, kb)], changed = t, True
    return {key: (s, s + jobs[key[0]][key[1]][1]) for key, s in start.items()}


CASES = [("ft06", "orlib", "cpsat"), ("la01", "orlib", "cpsat"), ("ft06", "orlib", "rule:mwkr"),
         ("ta001", "taillard", "neh"), ("ta003", "taillard", "ig")]


@pytest.mark.parametrize("name, fmt, solver", CASES)
def test_deterministic_replay_reproduces_the_makespan_and_every_job_order(name, fmt, solver):
    instance = load_instance(name, fmt)
    schedule = solve_instance(instance, solver, time_limit=10 if solver == "cpsat" else 0.5, seed=0)
    replay = replay_schedule(instance, schedule)
    realized = replay.realized
    assert check_schedule(instance, realized) == []
    assert machine_sequences(realized) == machine_sequences(schedule)  # every machine, every job
    # the twin starts each operation as early as its job and its machine allow: the semi-active
    # schedule of the solver's orders, whose makespan is the solver's for these schedules
    expected = semi_active(instance, machine_sequences(schedule))
    assert {(o.job, o.op): (o.start, o.end) for o in realized.operations} == expected
    assert replay.makespan == realized.makespan == max(end for _, end in expected.values())
    assert replay.makespan == schedule.makespan  # optimal CP-SAT, rules, NEH and IG: no slack to remove
    assert replay.results.values("throughput")[0] == pytest.approx(instance.n_jobs / schedule.makespan)


def test_replay_reports_energy_and_utilization_like_any_scenario_run():
    instance = load_instance("ft06", "orlib")
    schedule = solve_instance(instance, "cpsat", time_limit=10)
    replay = replay_schedule(instance, schedule, power_kw={"idle": 1.0, "busy": 4.0},
                             extra={"tariff": {"default_price": 0.25}, "co2_kg_per_kwh": 0.4})
    kpis, stations = replay.results.replications[0].kpis, replay.results.replications[0].stations
    busy = {m: 0.0 for m in range(instance.n_machines)}
    for job in instance.jobs:
        for m, d in job:
            busy[m] += d
    T = schedule.makespan  # minutes: kWh = kW · min / 60
    kwh = sum(4.0 * b + 1.0 * (T - b) for b in busy.values()) / 60
    assert kpis["energy_kwh"] == pytest.approx(kwh)
    assert kpis["energy_cost"] == pytest.approx(0.25 * kwh) and kpis["co2_kg"] == pytest.approx(0.4 * kwh)
    assert kpis["energy_kwh_busy"] == pytest.approx(4.0 * sum(busy.values()) / 60)
    for m, b in busy.items():
        assert stations[f"M{m}"]["utilization"] == pytest.approx(b / T)
    # every job enters at 0, so its lead time is its completion in the (semi-active) replay
    done = semi_active(instance, machine_sequences(schedule))
    completion = [max(end for (j, _), (_, end) in done.items() if j == job) for job in range(instance.n_jobs)]
    assert kpis["lead_time"] == pytest.approx(sum(completion) / instance.n_jobs)
    assert kpis["wip"] == pytest.approx(sum(completion) / T)  # Little: every job is in the line until it leaves


def test_variability_and_breakdowns_stretch_the_replay_but_keep_every_job_order():
    instance = load_instance("ft06", "orlib")
    schedule = solve_instance(instance, "cpsat", time_limit=10)
    replay = replay_schedule(instance, schedule, replications=4, seed=3, cv=0.3,
                             breakdowns=[{"mtbf": 60, "mttr": 4}])
    spans = replay.makespans
    assert len(set(spans)) == 4 and spans.mean() > schedule.makespan
    assert machine_sequences(replay.realized) == machine_sequences(schedule)
    problems = [p for p in check_schedule(instance, replay.realized) if " lasts " not in p]
    assert problems == []  # precedence and machine capacity hold; only durations vary
    assert replay.results.values("makespan")[0] == replay.realized.makespan
    again = replay_schedule(instance, schedule, replications=4, seed=3, cv=0.3, breakdowns=[{"mtbf": 60, "mttr": 4}])
    assert list(again.makespans) == list(spans)  # same seed ⇒ same replay


def test_two_schedules_draw_the_same_operation_times_under_common_random_numbers():
    instance = load_instance("ft06", "orlib")
    a = replay_schedule(instance, solve_instance(instance, "cpsat", time_limit=10), seed=1, cv=0.25).realized
    b = replay_schedule(instance, solve_instance(instance, "rule:fifo"), seed=1, cv=0.25).realized
    da = {(o.job, o.op): o.end - o.start for o in a.operations}
    db = {(o.job, o.op): o.end - o.start for o in b.operations}
    assert da == pytest.approx(db)


def test_recommend_schedule_compares_with_a_fifo_baseline_replayed_the_same_way():
    instance = load_instance("ft06", "orlib")
    rec = recommend_schedule(instance, "cpsat", time_limit=10, power_kw={"idle": 1, "busy": 5})
    assert rec.kind == "schedule" and rec.scenario == "ft06"
    assert rec.predicted["makespan"].mean == 55 and rec.predicted["makespan"].unit == "min"
    fifo = solve_instance(instance, "rule:fifo").makespan
    assert rec.baseline["makespan"].mean == fifo and rec.difference["makespan"].mean == 55 - fifo
    assert rec.payload["makespan"] == 55 and len(rec.payload["operations"]) == 36
    assert set(rec.payload["sequences"]) == {f"M{m}" for m in range(6)}
    assert rec.provenance.solver_status == "optimal" and rec.provenance.gap == 0
    assert Recommendation.from_json(rec.to_json()) == rec


def test_an_infeasible_or_unreplayable_schedule_is_a_one_line_input_error():
    instance = load_instance("ft06", "orlib")
    schedule = solve_instance(instance, "cpsat", time_limit=10)
    ops = list(schedule.operations)
    o = ops[0]
    ops[0] = ScheduledOperation(o.start, o.end + 1, o.job, o.op, o.machine)
    with pytest.raises(InputError, match="not feasible for ft06"):
        replay_schedule(instance, Schedule("ft06", ops))
    with pytest.raises(InputError, match="cv must be"):
        schedule_scenario(instance, schedule, cv=-0.1)
    with pytest.raises(InputError, match="power_kw"):
        schedule_scenario(instance, schedule, power_kw=[{"idle": 1}])
    with pytest.raises(InputError, match="set by the replay"):
        schedule_scenario(instance, schedule, extra={"stations": []})
    with pytest.raises(InputError, match="replications must be"):
        replay_schedule(instance, schedule, replications=0)
