"""``twinopt shadow`` against real virtual plants: quiet on a healthy plant, an alarm naming the
slowed station on a faulty one, Ctrl-C, bad input; and the CUSUM and residual arithmetic."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_cli

pytest.importorskip("asyncua")
from test_plant import plant  # noqa: E402

from studio.gateway.shadow import Cusum, H, K, residual  # noqa: E402

# A flow line whose future the plant state tells completely (one product, a saturated source, no
# shifts, no breakdowns): the twin's windows from the plant state are calibrated (docs/drift.md)
LINE = """
name: drift_line
time_unit: s
horizon: {length: 720000, warmup: 0}
products:
  - {name: bracket, route: [cut, weld, inspect]}
sources:
  - {kind: saturated, name: blanks}
stations:
  - name: cut
    buffer: 0
    process_time: {dist: gamma, mean: 40.0, cv: 0.5}
    energy: {power_kw: {idle: 0.5, busy: 3.0}}
  - name: weld
    machines: 2
    buffer: 4
    process_time: {dist: gamma, mean: 70.0, cv: 0.3}
    energy: {power_kw: {idle: 1.0, busy: 6.0}}
  - name: inspect
    buffer: 4
    process_time: {dist: gamma, mean: 30.0, cv: 0.4}
    scrap: 0.03
    energy: {power_kw: {idle: 0.2, busy: 0.8}}
"""
SPEED = "3600"  # a simulated hour per wall second: a 1 h window takes about a second


@pytest.fixture(scope="module")
def line_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("drift") / "drift_line.yaml"
    path.write_text(LINE)
    return path


def shadow(line_file: Path, url: str, out: Path, *more: str) -> subprocess.CompletedProcess:
    return run_cli("shadow", str(line_file), "--endpoint", url, "--insecure", "--window", "1", "--seed", "3",
                   "--json", str(out), *more)


def test_a_healthy_plant_raises_no_drift_alarm(line_file, tmp_path):
    with plant(str(line_file), "--port", "0", "--speed", SPEED, "--seed", "1", "--insecure") as p:
        got = shadow(line_file, p.url, tmp_path / "drift.json", "--windows", "8")
    assert got.returncode == 0, got.stderr
    doc = json.loads((tmp_path / "drift.json").read_text())
    assert doc["alarm"] is None and "no drift in 8 windows" in got.stdout
    assert len(doc["windows"]) == 8 and (doc["k"], doc["h"]) == (K, H)
    for w in doc["windows"]:
        assert max(w["cusum"].values()) <= H
        assert w["t1"] - w["t0"] >= 3600  # windows of (at least) an hour of the plant's own clock


def test_a_slowed_station_raises_the_alarm_and_is_named(line_file, tmp_path):
    faults = tmp_path / "faults.yaml"
    faults.write_text("slow: {weld: 1.5}\n")  # weld's 2 machines at 105 s: the new bottleneck
    with plant(str(line_file), "--port", "0", "--speed", SPEED, "--seed", "1", "--insecure",
               "--faults", str(faults)) as p:
        got = shadow(line_file, p.url, tmp_path / "drift.json", "--windows", "8", "--stop-on-alarm")
    assert got.returncode == 0, got.stderr
    doc = json.loads((tmp_path / "drift.json").read_text())
    assert doc["alarm"] is not None, got.stdout
    assert doc["alarm"]["station"] == "weld"
    assert doc["alarm"]["window"] <= 6  # measured over 8 plant seeds: the 3rd or 4th window
    assert "DRIFT:" in got.stdout and "twinopt calibrate" in got.stdout
    last = doc["windows"][-1]
    assert last["line"]["good"]["observed"] < last["line"]["good"]["mean"]
    assert max(last["stations"], key=lambda s: last["stations"][s]["busy"]["z"]) == "weld"


def test_ctrl_c_stops_the_shadow_cleanly_and_keeps_the_windows_so_far(line_file, tmp_path):
    out = tmp_path / "drift.json"
    with plant(str(line_file), "--port", "0", "--speed", SPEED, "--insecure") as p:
        proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "shadow", str(line_file), "--endpoint", p.url,
                                 "--insecure", "--window", "0.5", "--json", str(out)],
                                cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("window 1:"), first
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert proc.returncode == 130 and err.strip().splitlines() == ["twinopt: interrupted"], err
    assert len(json.loads(out.read_text())["windows"]) >= 1


@pytest.mark.parametrize("args", [
    ("no_such_scenario", "--endpoint", "opc.tcp://127.0.0.1:1/twinopt/", "--insecure"),
    ("smt_line", "--endpoint", "opc.tcp://127.0.0.1:1/twinopt/", "--insecure", "--timeout", "2"),
    ("smt_line", "--endpoint", "opc.tcp://127.0.0.1:1/twinopt/"),
    ("smt_line", "--endpoint", "opc.tcp://127.0.0.1:1/twinopt/", "--insecure", "--window", "0"),
    ("smt_line", "--endpoint", "opc.tcp://127.0.0.1:1/twinopt/", "--insecure", "--replications", "1"),
], ids=["unknown-scenario", "unreachable", "no-security", "zero-window", "one-replication"])
def test_bad_input_is_one_line_and_exit_2(args):
    got = run_cli("shadow", *args)
    assert got.returncode == 2, got.stderr
    assert len(got.stderr.strip().splitlines()) == 1 and got.stderr.startswith("twinopt: error: ")


def test_the_cusum_is_quiet_on_noise_and_alarms_on_a_sustained_shift():
    rng = np.random.default_rng(5)
    quiet = Cusum()
    alarms = sum(bool(quiet.update({"x": float(z)})) for z in rng.standard_normal(2000))
    assert alarms == 0  # one-sided, k = 0.5, h = 8: a false alarm every ~19 500 windows on average
    shifted = Cusum()
    delay = next(i for i, z in enumerate(rng.standard_normal(50) + 3.0, 1) if shifted.update({"x": float(z)}))
    assert delay <= 6  # ~3.8 on average


def test_a_residual_is_scored_against_the_t_prediction_interval():
    reps = np.array([10.0, 12.0, 11.0, 9.0, 13.0, 10.0, 12.0, 11.0, 9.0, 13.0])
    r = residual(11.0, reps, 0.5)
    assert r.z == pytest.approx(0.0) and r.low < 11.0 < r.high
    assert residual(r.high, reps, 0.5).z == pytest.approx(1.959964, abs=1e-4)  # the interval's edge: 97.5 %
    assert residual(3.0, np.full(10, 3.0), 0.5).z == 0.0  # replications that agree, and so does the plant
    assert abs(residual(4.0, np.full(10, 3.0), 0.5).z) < 3  # one part off: floored spread, not infinite
