"""Shared helpers for the tests: build scenarios from dicts, run the CLI as a user would."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pg import pg_url, postgres  # noqa: F401 - fixtures: a throwaway PostgreSQL (tests/pg.py)

from twins.loader import parse_yaml

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def single_station(interarrival, service, *, servers=1, buffer=None, horizon=40_000.0, warmup=2_000.0,
                   when_full="lost", name="queue") -> dict:
    """A one-station line fed by random arrivals: the M/M/c/K family in scenario form."""
    station = {"name": "server", "machines": servers, "process_time": service}
    if buffer is not None:
        station["buffer"] = buffer
    return {
        "name": name, "time_unit": "min",
        "horizon": {"length": horizon, "warmup": warmup},
        "products": [{"name": "job", "route": ["server"]}],
        "sources": [{"kind": "arrivals", "interarrival": interarrival, "when_full": when_full}],
        "stations": [station],
    }


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``twinopt`` in a subprocess (exactly what a user gets, exit code included)."""
    return subprocess.run([sys.executable, "-m", "studio.cli", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=600)


@pytest.fixture
def smt_data() -> dict:
    return parse_yaml((SCENARIOS / "smt_line.yaml").read_text())[0]


@pytest.fixture
def glue_data() -> dict:
    return parse_yaml((SCENARIOS / "glue_dispensing.yaml").read_text())[0]
