"""The command-line contract (docs/architecture.md, README): `twinopt run`, `schema`, `compare`."""
from __future__ import annotations

import json

from conftest import SCENARIOS, run_cli

LINE_KPIS = {"throughput", "lead_time", "wip", "lost_fraction", "energy_kwh", "energy_kwh_per_unit", "energy_cost",
             "co2_kg", "scrap_rate"}
STATION_KPIS = {"utilization", "blocked", "starved", "availability", "performance", "quality", "oee",
                "queue_length", "waiting_time"}


def test_run_writes_the_json_contract_and_an_html_report(tmp_path):
    out, html = tmp_path / "smt.json", tmp_path / "smt.html"
    r = run_cli("run", str(SCENARIOS / "smt_line.yaml"), "--replications", "3", "--seed", "4", "--workers", "2",
                "--json", str(out), "--html", str(html))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["scenario"] == "smt_line" and doc["replications"] == 3 and doc["seed"] == 4
    assert LINE_KPIS <= set(doc["kpis"])
    for entry in doc["kpis"].values():
        assert set(entry) == {"mean", "half_width", "unit"}
    assert set(doc["stations"]) == {"printer", "pnp", "reflow", "aoi", "rework"}
    for kpis in doc["stations"].values():
        assert STATION_KPIS <= set(kpis)
    assert doc["kpis"]["throughput"]["unit"] == "units/s"
    assert 0 < doc["kpis"]["throughput"]["mean"] and doc["kpis"]["throughput"]["half_width"] > 0
    text = html.read_text()
    for title in ("Where machine time goes", "OEE", "WIP in the line", "Energy by machine state",
                  "time-of-use tariff"):
        assert title in text
    assert "throughput" in r.stdout  # the KPI table


def test_same_seed_gives_identical_json_whatever_the_workers(tmp_path):
    outs = []
    for workers, seed in ((1, 5), (2, 5), (2, 6)):
        out = tmp_path / f"g{workers}{seed}.json"
        r = run_cli("run", str(SCENARIOS / "glue_dispensing.yaml"), "-n", "3", "--seed", str(seed), "--workers",
                    str(workers), "-q", "--json", str(out))
        assert r.returncode == 0, r.stderr
        outs.append(out.read_text())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


def test_set_overrides_change_the_run(tmp_path):
    base, fast = tmp_path / "a.json", tmp_path / "b.json"
    common = ["run", str(SCENARIOS / "glue_dispensing.yaml"), "-n", "2", "-q", "--seed", "1"]
    assert run_cli(*common, "--json", str(base)).returncode == 0
    r = run_cli(*common, "--json", str(fast), "--set", "dispenser.speed_mm_s=45", "--set",
                "dispenser.pressure_bar=4.4", "--set", "horizon.length=20000")
    assert r.returncode == 0, r.stderr
    a, b = json.loads(base.read_text()), json.loads(fast.read_text())
    # faster dispensing → shorter cycle → more output per second
    assert b["kpis"]["throughput"]["mean"] > 1.2 * a["kpis"]["throughput"]["mean"]


def test_schema_is_a_json_schema_of_the_scenario_format():
    r = run_cli("schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert schema["title"] == "Scenario"
    assert {"products", "sources", "stations", "horizon"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_compare_reports_paired_differences(tmp_path):
    out = tmp_path / "cmp.json"
    path = str(SCENARIOS / "glue_dispensing.yaml")
    r = run_cli("compare", path, path, "-n", "4", "--set-b", "dispenser.speed_mm_s=20", "--json", str(out), "-q")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    tp = doc["kpis"]["throughput"]
    assert tp["diff"] < 0 and tp["diff"] + tp["half_width"] < 0  # slower robot, less output: significant
    assert tp["p_value"] < 0.05
