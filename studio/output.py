"""Terminal tables and files the CLI writes."""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from twins.errors import InputError

#: line KPIs shown in the terminal table, in this order
LINE_KPIS = ("throughput", "lead_time", "lead_time_p95", "wip", "lost_fraction", "scrap_rate", "energy_kwh",
             "energy_kwh_per_unit", "energy_cost", "energy_cost_per_unit", "co2_kg", "margin", "tardiness",
             "tardy_fraction")
STATION_KPIS = ("utilization", "setup", "blocked", "starved", "down", "off", "oee", "queue_length", "waiting_time")


def check_writable(path: str | None) -> None:
    """Fail early (before a long run) when an output file cannot be written."""
    if not path:
        return
    parent = Path(path).resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{path}: cannot create directory {parent} ({err.strerror})") from None
    if not os.access(parent, os.W_OK) or (Path(path).exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{path}: not writable")


def write_json(path: str, doc: dict[str, Any]) -> None:
    check_writable(path)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)  # never leave a half-written file behind


def fmt(mean, hw=None, digits: int = 4) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    text = f"{mean:.{digits}g}"
    if hw is not None and not (isinstance(hw, float) and math.isnan(hw)):
        text += f" ± {hw:.2g}"
    return text


def console() -> Console:
    """A console that keeps tables readable when piped (rich would assume 80 columns)."""
    return Console() if sys.stdout.isatty() else Console(width=130)


def print_kpi_table(summary: dict[str, Any], scenario, out: Console | None = None) -> None:
    console = out or globals()["console"]()
    n = summary["replications"]
    t = Table(title=f"{summary['scenario']} — {n} replication{'s' * (n > 1)}, seed {summary['seed']}, 95 % CI",
              title_justify="left")
    t.add_column("line KPI")
    t.add_column("mean ± half width", justify="right")
    t.add_column("unit")
    for k in LINE_KPIS:
        e = summary["kpis"].get(k)
        if e is not None:
            t.add_row(k, fmt(e["mean"], e["half_width"]), e["unit"])
    console.print(t)
    s = Table(title="stations (fractions of planned busy time; off = share of all time)", title_justify="left")
    s.add_column("station")
    short = {"utilization": "util", "queue_length": "queue", "waiting_time": "wait", "starved": "starved"}
    for k in STATION_KPIS:
        s.add_column(short.get(k, k), justify="right")
    for name, kp in summary["stations"].items():
        s.add_row(name, *(fmt(kp[k]["mean"], None, 3) for k in STATION_KPIS))
    console.print(s)
