"""``twinopt optimize`` and ``twinopt recommend``: end to end on tiny budgets, a Recommendation JSON
that round-trips, deterministic output, and bad input as one line on stderr with exit code 2."""
from __future__ import annotations

import json

import pytest
from conftest import SCENARIOS, run_cli

from optimizers.recommendation import Recommendation
from studio.cli import main

KNOWN = str(SCENARIOS / "known_optimum.yaml")
GLUE = str(SCENARIOS / "glue_dispensing.yaml")
TINY = ["--budget", "6", "-n", "2", "--top-k", "2", "--final-replications", "3", "-q"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _stable(text: str) -> dict:
    doc = json.loads(text)
    for key in ("id", "created_at"):
        doc.pop(key)
    doc["provenance"].pop("wall_time_s")
    doc["provenance"]["extra"].pop("seconds_per_evaluation")
    return doc


def test_optimize_writes_a_recommendation_and_charts(tmp_path):
    out, html = tmp_path / "rec.json", tmp_path / "search.html"
    r = run_cli("optimize", KNOWN, "--budget", "8", "-n", "2", "--top-k", "2", "--final-replications", "3",
                "--sampler", "cmaes", "--json", str(out), "--html", str(html))
    assert r.returncode == 0, r.stderr
    assert "recommended" in r.stdout and "cell.speed" in r.stdout  # the summary tables
    rec = Recommendation.from_json(out.read_text())
    assert rec.kind == "setpoints" and rec.provenance.method == "optuna-cmaes"
    sp = rec.payload["cell"]
    assert 0.5 <= sp["speed"] <= 3 and 30 <= sp["temperature_c"] <= 70
    assert {"margin", "throughput", "scrap_rate"} <= set(rec.predicted) and rec.baseline["margin"].half_width > 0
    assert "Optimization history" in html.read_text()


def test_same_seed_same_json_and_chosen_parameters_only(capsys, tmp_path):
    docs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.json"
        code, _, err = _run(capsys, "optimize", GLUE, *TINY, "--seed", "3", "--params", "dispenser.speed_mm_s",
                            "--set", "horizon.length=3900", "--json", str(out))
        assert code == 0, err
        docs.append(_stable(out.read_text()))
    assert docs[0] == docs[1]
    assert docs[0]["payload"] == {"dispenser": {"speed_mm_s": docs[0]["payload"]["dispenser"]["speed_mm_s"]}}


def test_recommend_setpoints_is_optimize(capsys, tmp_path):
    a, b = tmp_path / "opt.json", tmp_path / "rec.json"
    assert _run(capsys, "optimize", KNOWN, *TINY, "--objective", "scrap_rate", "--minimize", "--json", str(a))[0] == 0
    code, _, err = _run(capsys, "recommend", "setpoints", KNOWN, *TINY, "--objective", "scrap_rate", "--minimize",
                        "--out", str(b))
    assert code == 0, err
    assert _stable(a.read_text()) == _stable(b.read_text())
    assert json.loads(b.read_text())["provenance"]["extra"]["direction"] == "minimize"


def test_recommend_schedule_replays_solver_and_fifo_schedules(capsys, tmp_path):
    out = tmp_path / "ft06.json"
    code, stdout, err = _run(capsys, "recommend", "schedule", "ft06", "--solver", "cpsat", "--time-limit", "10",
                             "--busy-kw", "5", "--idle-kw", "1", "--out", str(out))
    assert code == 0, err
    assert "makespan" in stdout
    rec = Recommendation.from_json(out.read_text())
    assert rec.kind == "schedule" and rec.payload["makespan"] == 55 and rec.predicted["makespan"].mean == 55
    assert rec.difference["makespan"].mean < 0 and rec.predicted["energy_kwh"].mean > 0
    assert rec.provenance.extra["baseline"] == "rule:fifo"


def test_recommend_schedule_of_a_flow_shop_with_variability(capsys, tmp_path):
    out = tmp_path / "ta001.json"
    code, _, err = _run(capsys, "recommend", "schedule", "ta001", "--format", "taillard", "--solver", "neh",
                        "--cv", "0.1", "-n", "3", "--out", str(out))
    assert code == 0, err
    rec = Recommendation.from_json(out.read_text())
    assert rec.provenance.replications == 3 and rec.predicted["makespan"].half_width > 0
    assert rec.payload["permutation"] and len(rec.payload["sequences"]) == 5


def test_recommend_energy_writes_a_replayed_energy_plan(capsys, tmp_path):
    out = tmp_path / "e.json"
    code, _, err = _run(capsys, "recommend", "energy", str(SCENARIOS / "smt_reflow_energy.yaml"), "--target", "1500",
                        "-n", "2", "--out", str(out))
    assert code == 0, err
    rec = Recommendation.from_json(out.read_text())
    assert rec.kind == "energy_plan"
    d = rec.difference["energy_cost"]
    assert d.mean < 0 and d.mean + d.half_width < 0  # the plan saves money, significantly


def test_recommend_energy_passes_the_planner_s_input_errors_through_as_one_line(capsys, tmp_path):
    code, out, err = _run(capsys, "recommend", "energy", GLUE, "--station", "nope", "--out", str(tmp_path / "e.json"))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "nope" in err


@pytest.mark.parametrize("argv, message", [
    (["optimize", KNOWN, "--params", "cell.pressure"], "unknown parameter 'cell.pressure'"),
    (["optimize", KNOWN, "--params", "nonsense"], "unknown parameter 'nonsense'"),
    (["optimize", KNOWN, "--budget", "0"], "--budget must be at least 1"),
    (["optimize", KNOWN, "--objective", "happiness"], "unknown KPI 'happiness'"),
    (["optimize", KNOWN, "--replications", "0"], "--replications must be ≥ 1"),
    (["optimize", KNOWN, "--final-replications", "1"], "--final-replications must be ≥ 2"),
    (["optimize", KNOWN, "--seed", "-3"], "seed must be an integer"),
    (["optimize", KNOWN, "--sampler", "annealing"], "invalid choice"),
    (["optimize", KNOWN, "--budget", "many"], "invalid int value"),
    (["optimize", "no/such.yaml"], "cannot read file"),
    (["optimize", KNOWN, "--set", "cell.speed=9"], "outside the bounds"),
    (["recommend", "setpoints", KNOWN, "--budget", "0", "--out", "x.json"], "--budget must be at least 1"),
    (["recommend", "schedule", "ft06"], "--out"),
    (["recommend", "schedule", "nosuch", "--out", "x.json"], "nosuch"),
    (["recommend", "schedule", "ft06", "--solver", "simplex", "--out", "x.json"], "unknown solver 'simplex'"),
    (["recommend", "schedule", "ft06", "--mtbf", "100", "--out", "x.json"], "give both --mtbf and --mttr"),
    (["recommend", "schedule", "ft06", "--cv", "-1", "--out", "x.json"], "--cv must be ≥ 0"),
    (["recommend", "tea", KNOWN, "--out", "x.json"], "invalid choice"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(capsys, tmp_path, argv, message):
    argv = [str(tmp_path / a) if a == "x.json" else a for a in argv]
    try:
        code, _, err = _run(capsys, *argv)
    except SystemExit as exc:  # argparse's own errors
        code, err = exc.code, capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_bad_input_through_the_real_entry_point():
    r = run_cli("optimize", KNOWN, "--budget", "0")
    assert r.returncode == 2 and r.stderr.strip() == "twinopt: error: --budget must be at least 1 trial, got 0"
