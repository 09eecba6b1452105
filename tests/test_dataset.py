"""Synthetic training data: designs stay within the bounds, Parquet round-trips with its
metadata through pyarrow, CSV holds the same numbers, same seed ⇒ the same bytes."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import SCENARIOS, run_cli

from optimizers.dataset import make_dataset, read_metadata, write_csv, write_parquet
from optimizers.design import design_points
from optimizers.setpoints import search_space
from twins.errors import InputError
from twins.loader import load_scenario
from twins.spec import fingerprint


@pytest.fixture(scope="module")
def glue():
    return load_scenario("glue_dispensing", ["horizon.length=1800"])


@pytest.mark.parametrize("design", ["lhs", "sobol", "grid"])
def test_designs_stay_within_the_bounds(glue, design):
    space = search_space(glue)
    x = design_points(space, design, 64, seed=1)
    lows, highs = np.array([d.low for d in space]), np.array([d.high for d in space])
    assert ((x >= lows) & (x <= highs)).all()
    assert np.array_equal(x, design_points(space, design, 64, seed=1))
    if design == "grid":  # 4 values per parameter, both bounds included
        assert x.shape == (64, 3) and set(x[:, 0]) >= {1.5, 5.0}
    else:
        assert x.shape == (64, 3)
    if design == "lhs":  # a Latin hypercube hits every one of the n strata of each parameter once
        strata = np.floor((x - lows) / (highs - lows) * 64).astype(int)
        assert all(sorted(strata[:, j]) == list(range(64)) for j in range(3))


def test_parquet_round_trip_with_metadata(glue, tmp_path):
    ds = make_dataset(glue, design="lhs", n=6, replications=2, seed=4)
    path = tmp_path / "d.parquet"
    write_parquet(ds, path)
    table = pq.read_table(path)
    assert table.num_rows == 12 == ds.rows
    for name, values in ds.columns.items():
        assert np.array_equal(table.column(name).to_numpy(), values, equal_nan=True), name
    meta = read_metadata(path)
    assert meta["seed"] == 4 and meta["design"] == "lhs" and meta["replications"] == 2
    assert meta["scenario_fingerprint"] == fingerprint(glue)
    assert [p["name"] for p in meta["parameters"]] == [d.key for d in search_space(glue)]
    assert meta["kpis"]["margin"] == "EUR"
    assert table.column("replication").to_pylist() == [0, 1] * 6


def test_common_random_numbers_across_design_points():
    """Replication r of every point draws the same numbers: varying a parameter no response reads
    leaves every replication's KPIs exactly as they were, while replications differ."""
    from twins.loader import parse_yaml, scenario_from_data

    data = parse_yaml((SCENARIOS / "known_optimum.yaml").read_text())[0]
    data["stations"][0]["parameters"].append({"name": "humidity", "unit": "%", "min": 20, "max": 80, "default": 50})
    ds = make_dataset(scenario_from_data(data), design="lhs", n=5, replications=3, seed=2, params=["cell.humidity"])
    margin = ds.columns["margin"].reshape(5, 3)
    assert len(set(ds.columns["cell.humidity"])) == 5
    assert (margin == margin[0]).all()
    assert len(set(margin[0])) == 3


def test_same_seed_same_bytes_whatever_the_workers(glue, tmp_path):
    a, b, c = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.parquet"
    write_parquet(make_dataset(glue, design="sobol", n=8, seed=7, workers=1), a)
    write_parquet(make_dataset(glue, design="sobol", n=8, seed=7, workers=2), b)
    write_parquet(make_dataset(glue, design="sobol", n=8, seed=8, workers=1), c)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_csv_holds_the_same_numbers(glue, tmp_path):
    ds = make_dataset(glue, design="lhs", n=4, seed=0)
    meta = write_csv(ds, tmp_path / "d.csv")
    with open(tmp_path / "d.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    for name, values in ds.columns.items():
        got = [float(r[name]) if r[name] else math.nan for r in rows]
        assert np.array_equal(np.array(got), values.astype(float), equal_nan=True), name
    assert json.loads(meta.read_text())["scenario_fingerprint"] == fingerprint(glue)


def test_bad_design_is_an_input_error(glue):
    with pytest.raises(InputError):
        design_points(search_space(glue), "halton", 8)
    with pytest.raises(InputError):
        make_dataset(glue, n=0)


def test_cli_writes_parquet_and_refuses_unknown_formats(tmp_path):
    out = tmp_path / "g.parquet"
    proc = run_cli("dataset", str(SCENARIOS / "known_optimum.yaml"), "--design", "grid", "--n", "9", "-r", "2",
                   "--out", str(out), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(out).num_rows == 18
    assert read_metadata(out)["points"] == 9
    bad = run_cli("dataset", "known_optimum", "--out", str(tmp_path / "x.xlsx"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_per_part_rows_match_the_line_kpis(glue, tmp_path):
    """Every unit that left the line after warm-up is one row; the good ones add up to the KPI."""
    ds = make_dataset(glue, design="lhs", n=3, replications=2, seed=1, per_part=True)
    kpis = make_dataset(glue, design="lhs", n=3, replications=2, seed=1)
    point, rep, outcome = ds.columns["point"], ds.columns["replication"], ds.columns["outcome"]
    assert set(outcome) <= {"good", "scrap"} and ds.metadata["per_part"]
    for i in range(3):
        for r in range(2):
            mine = (point == i) & (rep == r)
            k = 2 * i + r
            assert (outcome[mine] == "good").sum() == kpis.columns["good_units"][k]
            assert (outcome[mine] == "scrap").sum() == kpis.columns["scrapped_units"][k]
            assert (ds.columns["dispenser.speed_mm_s"][mine] == kpis.columns["dispenser.speed_mm_s"][k]).all()
    assert (ds.columns["exit_time"] > glue.horizon.warmup).all()
    assert np.allclose(ds.columns["lead_time"], ds.columns["exit_time"] - ds.columns["entry_time"])
    write_parquet(ds, tmp_path / "p.parquet")
    table = pq.read_table(tmp_path / "p.parquet")
    assert table.column("outcome").to_pylist() == list(outcome)
    assert read_metadata(tmp_path / "p.parquet")["rows"] == ds.rows


def test_operations_in_the_twins_own_log_exclude_downtime_inside_them():
    """A constant 25 s dispense with frequent clogs: the time on the machine grows when a clog
    strikes mid-dispense, the processing time stays exactly 25 s."""
    from twins.calibration.calibrate import observe
    from twins.calibration.eventlog import event_log_of
    from twins.model import Line

    sc = load_scenario("glue_dispensing", ["horizon.length=7200", "stations.dispenser.breakdowns.0.mtbf=600",
                                           "stations.dispenser.process_time={dist: constant, value: 25}"])
    events: list = []
    Line(sc, 0, 0, events=events).run(7200)
    ops = [op for by_part in observe(event_log_of(events)).operations.values() for op in by_part
           if op[0] == "dispenser"]
    busy = np.array([op[2] for op in ops])
    on_machine = np.array([op[3] for op in ops])
    assert len(ops) > 100 and np.allclose(busy, 25.0)
    assert (on_machine > 25.0 + 1.0).sum() >= 3  # clogs inside dispenses happened and were taken out


def test_per_part_rows_carry_station_times_and_processing_energy(glue):
    ds = make_dataset(glue, design="lhs", n=3, replications=1, seed=2, per_part=True)
    c = ds.columns
    good = c["outcome"] == "good"
    assert np.all(c["uv_cure.process_time"][good] == 12.0)  # constant 12 s cure
    assert np.isnan(c["uv_cure.process_time"][~good]).all() and (~good).sum() > 0  # scrapped at dispensing
    loader = c["loader.process_time"]
    assert loader.min() >= 5.5 and loader.max() <= 6.5  # uniform(5.5, 6.5)
    total = np.nansum([loader, c["dispenser.process_time"], c["uv_cure.process_time"]], axis=0)
    assert np.all(c["lead_time"] >= total - 1e-9)
    # loader 0.6 kW and cure 1.2 kW busy; what is left is the dispenser's busy power, one per point
    rest = c["process_energy_kwh"] - (0.6 * loader + 1.2 * np.nan_to_num(c["uv_cure.process_time"])) / 3600
    kw = rest / (c["dispenser.process_time"] / 3600)
    for i in range(3):
        mine = kw[c["point"] == i]
        assert mine.min() > 0 and np.allclose(mine, mine[0])
