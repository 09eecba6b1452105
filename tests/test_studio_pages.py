"""The Optimize and Approvals pages' pieces without a browser: the job options they send, the
recommendation card's Gantt and plan clock, who sees which button."""
from __future__ import annotations

import pytest

pytest.importorskip("dash")

from studio.api.jobs import SPECS, options_argv  # noqa: E402
from studio.api.roles import PERMISSIONS, ROLES, may  # noqa: E402
from studio.web import optimize, recommendation  # noqa: E402

VALUES = {"seed": 0, "objective": "margin", "minimize": True, "sampler": "tpe", "budget": 40, "reps": 3, "topk": 3,
          "final": 6, "solver": "cpsat", "cv": 0.1, "station": " reflow ", "target": 1500, "time_limit": 20,
          "replay_reps": 5}


@pytest.mark.parametrize("kind", list(optimize.KINDS))
def test_every_job_the_optimize_page_sends_uses_only_options_the_api_accepts(kind):
    params = optimize.params(kind, VALUES)
    assert set(params) <= SPECS[kind].options
    argv = options_argv(kind, params)
    assert "--seed" in argv
    if kind == "optimize":
        assert "--minimize" in argv and argv[argv.index("--budget") + 1] == "40"
    if kind == "energy":
        assert params["station"] == "reflow" and params["target"] == 1500.0


def test_an_energy_plan_without_a_station_or_target_leaves_them_to_the_planner():
    params = optimize.params("energy", {**VALUES, "station": "", "target": None})
    assert "station" not in params and "target" not in params


def test_plan_commands_are_shown_at_their_time_of_day():
    plan = {"start_clock": "06:00", "time_unit": "min"}
    assert [recommendation.clock(plan, t) for t in (0, 90, 18 * 60, 24 * 60 + 30)] == [
        "06:00", "07:30", "00:00 (day 2)", "06:30 (day 2)"]


def test_a_schedule_recommendation_draws_one_bar_per_operation_on_its_machine():
    payload = {"instance": "tiny", "operations": [
        {"job": 0, "op": 0, "machine": 0, "start": 0, "end": 3},
        {"job": 0, "op": 1, "machine": 1, "start": 3, "end": 5},
        {"job": 1, "op": 0, "machine": 1, "start": 0, "end": 2}]}
    fig = recommendation.gantt(payload)
    bars = {trace.name: list(zip(trace.y, trace.base, trace.x, strict=True)) for trace in fig.data}
    assert bars == {"job 0": [("M0", 0, 3), ("M1", 3, 2)], "job 1": [("M1", 0, 2)]}


def test_the_kpi_table_marks_a_difference_whose_ci_excludes_zero_and_leaves_out_empty_kpis():
    doc = {"baseline": {"throughput": {"mean": 1.0, "half_width": 0.1, "unit": "units/h"},
                        "energy_kwh": {"mean": 0.0, "half_width": 0.0, "unit": "kWh"}},
           "predicted": {"throughput": {"mean": 1.5, "half_width": 0.1, "unit": "units/h"},
                         "energy_kwh": {"mean": 0.0, "half_width": 0.0, "unit": "kWh"}},
           "difference": {"throughput": {"mean": 0.5, "half_width": 0.2, "unit": "units/h"},
                          "energy_kwh": {"mean": 0.0, "half_width": 0.0, "unit": "kWh"}}}
    rows = recommendation.kpi_table(doc).children[1].children
    assert len(rows) == 1
    cell = rows[0].children[3].children
    assert cell.className == "significant" and cell.children == "+0.5 ± 0.2 *"


def test_only_approvers_and_admins_may_approve_and_only_engineers_and_admins_run_jobs():
    assert [r for r in ROLES if may(r, "approve")] == ["approver", "admin"]
    assert [r for r in ROLES if may(r, "write")] == ["engineer", "admin"]
    assert not any(may(None, p) for p in PERMISSIONS)
