"""Calibration from event logs (docs/calibration.md): logs written by the twin's own event trace from a
known scenario are fitted back to that scenario, and bad logs are refused naming the row."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from conftest import run_cli

from twins.calibration.calibrate import calibrate, scenario_data
from twins.calibration.eventlog import read_event_log
from twins.calibration.fit import fit_durations
from twins.errors import InputError
from twins.eventlog import Event, write_csv
from twins.model import Line
from twins.spec import Scenario
from twins.stats import replicate

#: the truth the tests recover: arrivals → a gamma station → two lognormal machines with failures and
#: scrap → a station whose process time differs by product
TRUTH = {
    "name": "truth", "time_unit": "s",
    "horizon": {"length": 120_000.0, "warmup": 5_000.0},
    "products": [{"name": "a", "route": ["cut", "mill", "pack"]}, {"name": "b", "route": ["cut", "mill", "pack"]}],
    "sources": [{"kind": "arrivals", "interarrival": {"dist": "exponential", "mean": 5.0}, "mix": {"a": 2, "b": 1}}],
    "stations": [
        {"name": "cut", "process_time": {"dist": "gamma", "mean": 3.0, "cv": 0.5}},
        {"name": "mill", "machines": 2, "process_time": {"dist": "lognormal", "mean": 7.0, "cv": 0.3},
         "breakdowns": [{"mtbf": 400.0, "mttr": 30.0}], "scrap": 0.05},
        {"name": "pack", "process_time_by_product": {"a": {"dist": "weibull", "shape": 3.0, "scale": 2.0},
                                                      "b": {"dist": "weibull", "shape": 3.0, "scale": 3.0}}},
    ],
}


def event_log(data: dict, tmp_path, seed: int = 1, until: float | None = None) -> tuple[str, list[Event]]:
    sc = Scenario.model_validate(data)
    events: list[Event] = []
    Line(sc, seed, events=events).run(until)
    path = tmp_path / f"log{seed}.csv"
    write_csv(events, path, sc.time_unit)
    return str(path), events


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    path, events = event_log(TRUTH, tmp_path_factory.mktemp("log"))
    return calibrate(read_event_log(path)), events


def test_event_log_pairs_every_start_with_an_end(tmp_path):
    events: list[Event] = []
    line = Line(Scenario.model_validate(TRUTH), 3, events=events)
    line.run(5_000.0)
    kinds = [e[5] for e in events]
    assert kinds.count("leave") == line.good and kinds.count("scrap") == line.scrapped
    assert kinds.count("arrive") == line.arrivals
    assert 0 <= kinds.count("start") - kinds.count("end") <= 4  # at most one operation open per machine
    assert kinds.count("fail") >= kinds.count("repair") > 0


def test_fits_recover_the_true_means_and_families(large):
    cal, _ = large
    st = {s.name: s for s in cal.stations}
    truth = Scenario.model_validate(TRUTH)
    cut, mill = st["cut"].process[""], st["mill"].process[""]
    assert abs(cut.mean / truth.station("cut").nominal_process_time("a") - 1) < 0.05
    assert abs(mill.mean / 7.0 - 1) < 0.05
    assert (cut.family, mill.family) == ("gamma", "lognormal")
    pack = st["pack"]
    assert pack.products_differ and set(pack.process) == {"a", "b"}
    for p in ("a", "b"):
        f = pack.process[p]
        assert f.family == "weibull"
        assert abs(f.mean / truth.station("pack").nominal_process_time(p) - 1) < 0.05
    assert not st["cut"].products_differ and not st["mill"].products_differ
    assert (st["cut"].machines, st["mill"].machines, st["pack"].machines) == (1, 2, 1)
    assert cal.interarrival is not None and cal.interarrival.family == "exponential"
    assert abs(cal.interarrival.mean / 5.0 - 1) < 0.05
    assert abs(cal.mix["a"] - 2 / 3) < 0.02
    assert cal.routes == {"a": ["cut", "mill", "pack"], "b": ["cut", "mill", "pack"]}


def test_breakdowns_and_scrap_recover_the_truth(large):
    cal, _ = large
    mill = next(s for s in cal.stations if s.name == "mill")
    assert mill.ttf is not None and mill.repair is not None
    assert abs(mill.ttf.mean / 400.0 - 1) < 0.1 and abs(mill.repair.mean / 30.0 - 1) < 0.1
    # a machine up at the end of the log gives a censored up time (not one repaired at the last event)
    assert mill.ttf.n_censored >= 1
    k, n, (lo, hi) = mill.scrap
    assert lo <= 0.05 <= hi and n > 10_000
    cut = next(s for s in cal.stations if s.name == "cut")
    assert cut.ttf is None and cut.scrap[0] == 0


def test_censored_repairs_are_kept_not_dropped():
    rng = np.random.default_rng(7)
    repairs = rng.exponential(100.0, 400)
    cut = 80.0  # the log ends 80 s into every repair longer than that
    seen, censored = repairs[repairs <= cut], np.full(int((repairs > cut).sum()), cut)
    fit = fit_durations(seen, censored, ("exponential", "weibull", "gamma", "lognormal"))
    assert abs(fit.mean / 100.0 - 1) < 0.15
    dropped = fit_durations(seen, (), ("exponential",))
    assert dropped.mean < 50.0  # what dropping would have claimed


def test_calibrated_twin_reproduces_held_out_kpis(large):
    cal, _ = large
    calibrated = Scenario.model_validate(scenario_data(cal))
    truth = Scenario.model_validate(TRUTH)
    short = {"horizon": {"length": 30_000.0, "warmup": 3_000.0}}
    a = replicate(truth.model_copy(update=short | {"horizon": truth.horizon.model_copy(update=short["horizon"])}),
                  6, seed=99, workers=1)
    b_sc = calibrated.model_copy(update={"horizon": truth.horizon.model_copy(update=short["horizon"])})
    b = replicate(b_sc, 6, seed=123, workers=1)
    for kpi in ("throughput", "scrap_rate", "lead_time"):
        (ma, ha), (mb, hb) = a.ci(kpi), b.ci(kpi)
        assert abs(ma - mb) <= ha + hb, (kpi, ma, ha, mb, hb)


def test_cli_writes_a_scenario_that_runs(tmp_path):
    small = TRUTH | {"horizon": {"length": 8_000.0, "warmup": 500.0}}
    path, _ = event_log(small, tmp_path)
    out, fit = tmp_path / "cal.yaml", tmp_path / "fit.json"
    r = run_cli("calibrate", path, "--out", str(out), "--json", str(fit))
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(out.read_text())
    assert [s["name"] for s in doc["stations"]] == ["cut", "mill", "pack"]
    run = run_cli("run", str(out), "-n", "2", "-q", "--workers", "1")
    assert run.returncode == 0, run.stderr


def test_a_station_with_too_few_observations_is_reported_not_fitted(tmp_path):
    small = TRUTH | {"horizon": {"length": 1_500.0, "warmup": 100.0}}
    path, _ = event_log(small, tmp_path)
    cal = calibrate(read_event_log(path))
    mill = next(s for s in cal.stations if s.name == "mill")
    assert mill.repair is not None and mill.repair.too_few and mill.repair.family == "empirical"
    assert any("too few repairs" in n for n in mill.notes)


HEADER = "timestamp,station,machine,part,product,event\n"


@pytest.mark.parametrize(("rows", "row"), [
    ("0,cut,cut,1,a,start\n1,cut,cut,1,a,finish\n", 3),  # unknown event
    ("0,cut,cut,1,a,start\n2,cut,cut,1,a,end\n3,cut,cut,2,a,end\n", 4),  # end without start
    ("5,cut,cut,1,a,start\n4,cut,cut,1,a,end\n", 3),  # unsorted timestamps
    ("0,cut,cut,1,a,start\nsoon,cut,cut,1,a,end\n", 3),  # unreadable timestamp
    ("0,cut,cut,1,a,fail\n1,cut,cut,1,a,fail\n", 3),  # a second failure of a down machine
    ("0,cut,cut,1,a,start\n1,cut,,1,a,end\n", 3),  # an end on no machine
    ("0,cut,cut,1,a,start\nnan,cut,cut,1,a,end\n", 3),  # not a time
    ("0,cut,cut,1,a,start\n1,cut,cut,1\n", 3),  # a short row
])
def test_bad_logs_name_the_row(tmp_path, rows, row):
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + rows)
    with pytest.raises(InputError, match=rf"bad\.csv: row {row}:"):
        calibrate(read_event_log(path))


def test_a_bad_log_exits_2_with_one_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "0,cut,cut,1,a,start\n1,cut,cut,1,a,explode\n")
    r = run_cli("calibrate", str(path), "--out", str(tmp_path / "x.yaml"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "row 3" in r.stderr


def test_iso_timestamps_are_read_as_seconds(tmp_path):
    path = tmp_path / "iso.csv"
    path.write_text(HEADER + "2026-01-01T08:00:00,cut,cut,1,a,start\n2026-01-01T08:00:02.5,cut,cut,1,a,end\n")
    log = read_event_log(path)
    assert list(log.t) == [0.0, 2.5]


def test_parquet_logs_read_like_csv(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    path, _ = event_log(TRUTH | {"horizon": {"length": 2_000.0, "warmup": 100.0}}, tmp_path)
    csv_log = read_event_log(path)
    table = pa.table({"timestamp": csv_log.t, "station": csv_log.station, "machine": csv_log.machine,
                      "part": csv_log.part, "product": csv_log.product, "event": csv_log.event})
    pq.write_table(table, tmp_path / "log.parquet")
    pq_log = read_event_log(tmp_path / "log.parquet")
    assert pq_log.event == csv_log.event and np.allclose(pq_log.t, csv_log.t)


SETUPS = {
    "name": "setups", "time_unit": "s",
    "horizon": {"length": 60_000.0, "warmup": 1_000.0},
    "products": [{"name": "a", "route": ["press", "check"]}, {"name": "b", "route": ["press", "check"]}],
    "sources": [{"kind": "arrivals", "interarrival": {"dist": "exponential", "mean": 10.0}}],
    "stations": [
        {"name": "press", "process_time": {"dist": "gamma", "mean": 4.0, "cv": 0.3},
         "setup": {"matrix": {"a": {"b": {"dist": "gamma", "mean": 20.0, "cv": 0.2}},
                              "b": {"a": {"dist": "gamma", "mean": 12.0, "cv": 0.2}}}},
         "dispatch": "same_family"},
        {"name": "check", "process_time": 3.0,
         "rework": {"probability": 0.1, "station": "fix", "return_to": "check"}},
        {"name": "fix", "process_time": {"dist": "exponential", "mean": 5.0}},
    ],
}


def test_setup_matrix_and_rework_are_recovered(tmp_path):
    path, _ = event_log(SETUPS, tmp_path)
    cal = calibrate(read_event_log(path))
    press = next(s for s in cal.stations if s.name == "press")
    assert set(press.setup) == {("a", "b"), ("b", "a")}
    assert abs(press.setup[("a", "b")].mean / 20.0 - 1) < 0.05 and abs(press.setup[("b", "a")].mean / 12.0 - 1) < 0.05
    check = next(s for s in cal.stations if s.name == "check")
    k, n, (lo, hi) = check.rework
    assert lo <= 0.1 <= hi and check.rework_station == "fix"
    assert check.process[""].family == "constant"
    assert cal.routes == {"a": ["press", "check"], "b": ["press", "check"]}
    sc = Scenario.model_validate(scenario_data(cal))  # the rework loop validates
    assert sc.station("check").rework is not None and sc.station("check").rework.station == "fix"
    assert sc.station("press").setup is not None and set(sc.station("press").setup.matrix) == {"a", "b"}


def test_html_report_shows_each_fit_with_density_and_qq(tmp_path):
    path, _ = event_log(SETUPS | {"horizon": {"length": 5_000.0, "warmup": 100.0}}, tmp_path)
    out, html = tmp_path / "c.yaml", tmp_path / "c.html"
    r = run_cli("calibrate", path, "--out", str(out), "--html", str(html), "-q")
    assert r.returncode == 0, r.stderr
    text = html.read_text()
    for what in ("press: process time", "QQ plot", "histogram and fitted density", "95 % CI of the mean",
                 "check: rework fraction", "press: setup a → b"):
        assert what in text, what


def test_a_skeleton_keeps_what_the_log_cannot_tell(tmp_path):
    path, _ = event_log(TRUTH | {"horizon": {"length": 20_000.0, "warmup": 500.0}}, tmp_path)
    skeleton = {**TRUTH, "name": "line", "stations": [
        {"name": "cut", "buffer": 3, "process_time": 1.0,
         "energy": {"power_kw": {"off": 0.0, "idle": 1.0, "setup": 1.0, "busy": 2.0, "down": 0.5}}},
        *TRUTH["stations"][1:]]}
    sk = tmp_path / "skeleton.yaml"
    sk.write_text(yaml.safe_dump(skeleton))
    out = tmp_path / "cal.yaml"
    r = run_cli("calibrate", path, "--skeleton", str(sk), "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(out.read_text())
    cut = doc["stations"][0]
    assert doc["name"] == "line" and cut["buffer"] == 3 and cut["energy"]["power_kw"]["busy"] == 2.0
    assert cut["process_time"]["dist"] == "gamma" and abs(cut["process_time"]["mean"] / 3.0 - 1) < 0.05


def test_parquet_without_its_extra_exits_2_naming_it(tmp_path):
    from test_extras import core_only

    path = tmp_path / "log.parquet"
    path.write_bytes(b"PAR1")
    r = core_only("calibrate", str(path), "--out", str(tmp_path / "x.yaml"))
    assert r.returncode == 2 and "twinopt[data]" in r.stderr, r.stderr


def test_operation_based_failures_count_processing_time_only(tmp_path):
    data = {**TRUTH, "stations": [
        TRUTH["stations"][0],
        {**TRUTH["stations"][1], "breakdowns": [{"mtbf": 300.0, "mttr": 20.0, "basis": "operation"}]},
        TRUTH["stations"][2]]}
    path, _ = event_log(data | {"horizon": {"length": 60_000.0, "warmup": 500.0}}, tmp_path)
    log = read_event_log(path)
    by_op = next(s for s in calibrate(log, basis="operation").stations if s.name == "mill")
    by_time = next(s for s in calibrate(log).stations if s.name == "mill")
    assert by_op.ttf is not None and by_time.ttf is not None
    assert abs(by_op.ttf.mean / 300.0 - 1) < 0.1, by_op.ttf.mean
    assert by_time.ttf.mean > 1.2 * 300.0  # idle time counted (machines ≈ 70 % busy): the wrong clock overstates it
    assert scenario_data(calibrate(log, basis="operation"))["stations"][1]["breakdowns"][0]["basis"] == "operation"


def test_cv_intervals_cover_the_true_variability(large):
    cal, _ = large
    st = {s.name: s for s in cal.stations}
    for name, cv in (("cut", 0.5), ("mill", 0.3)):
        ci = st[name].process[""].cv_ci
        assert ci is not None and ci[0] <= cv <= ci[1], (name, ci)
