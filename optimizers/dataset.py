"""Synthetic training data from the twin: a design over the process parameters, simulated.

One row per design point × replication: the point's index, the replication, the parameters in
force (``station.parameter`` columns, physical units) and every line KPI of that replication.
With ``per_part`` one row per unit that left the line instead (product, entry, exit and lead time,
``good`` or ``scrap``, processing time per station, processing energy): training data for a
quality or cycle-time model.
All points run under one master seed (common random numbers, :mod:`optimizers.design`), so a
model trained on the rows sees the parameters' effect, not seed-to-seed noise between points.

    ds = make_dataset(load_scenario("glue_dispensing"), design="lhs", n=500, seed=0)
    write_parquet(ds, "glue.parquet")   # metadata: seed, design, scenario fingerprint, bounds, units

The file's metadata (key ``twinopt`` in the Parquet schema metadata, a JSON document; for CSV a
``OUT.meta.json`` beside it) holds everything needed to reproduce it: same scenario, design, n,
replications and seed ⇒ byte-identical file contents.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optimizers.design import Evaluated, design_points, evaluate_points
from optimizers.recommendation import library_versions
from optimizers.setpoints import Dimension, search_space
from twins.kpi import units
from twins.spec import Scenario, fingerprint

METADATA_KEY = b"twinopt"
FORMATS = ("parquet", "csv")


@dataclass
class Dataset:
    """Columns (name -> values, all of one length) and the metadata that reproduces them."""

    columns: dict[str, np.ndarray]
    metadata: dict[str, Any]

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def make_dataset(scenario: Scenario, *, design: str = "lhs", n: int = 100, replications: int = 1, seed: int = 0,
                 params: Sequence[str] | None = None, workers: int = 1, executor: Executor | None = None,
                 progress: bool = False, per_part: bool = False) -> Dataset:
    """Simulate a ``design`` of ``n`` points (``lhs``, ``sobol`` or ``grid``) × ``replications``.

    ``seed`` seeds both the design and the twin (master seed of every point). ``params`` are
    ``station.parameter`` names (default all). Parallel over ``workers`` processes or ``executor``;
    the rows do not depend on either. ``per_part``: one row per unit that left the line in the
    observed window instead (:func:`_part_columns`).
    """
    space = search_space(scenario, params)
    points = design_points(space, design, n, seed)
    ev = evaluate_points(scenario, space, points, replications, seed, workers=workers, executor=executor,
                         progress=progress, parts=per_part)
    count = len(points)
    if per_part:
        columns = _part_columns(scenario, space, ev)
    else:
        columns = {
            "point": np.repeat(np.arange(count, dtype=np.int64), replications),
            "replication": np.tile(np.arange(replications, dtype=np.int64), count),
        }
        for j, d in enumerate(space):
            columns[d.key] = np.repeat(points[:, j], replications)
        for name, values in ev.kpis.items():
            columns[name] = values.reshape(-1)
    line_units, _ = units(scenario)
    metadata = {
        "scenario": scenario.name, "scenario_fingerprint": fingerprint(scenario),
        "design": design, "n_requested": n, "points": count, "replications": replications, "seed": seed,
        "common_random_numbers": True, "time_unit": scenario.time_unit,
        "horizon": scenario.horizon.length, "warmup": scenario.horizon.warmup,
        "parameters": [{"name": d.key, "unit": d.unit, "low": d.low, "high": d.high, "default": d.current}
                       for d in space],
        "kpis": {k: line_units.get(k, "") for k in ev.kpis},
        "rows": len(columns["point"]), "per_part": per_part, "replications_simulated": ev.simulated,
        "library_versions": library_versions(("twinopt", "simpy", "numpy", "scipy", "pyarrow")),
    }
    return Dataset(columns, metadata)


def _part_columns(scenario: Scenario, space: Sequence[Dimension], ev: Evaluated) -> dict[str, np.ndarray]:
    """One row per unit that left the line after warm-up: its design point and replication, the
    parameters in force, product, entry and exit time, lead time, outcome (``good`` | ``scrap``),
    its processing time at every station (``<station>.process_time``, downtime inside an operation
    excluded, summed over rework visits, NaN where it did not go), the energy its processing drew
    (``process_energy_kwh``: each station's busy power at the setpoints × that time) and the
    replication's energy per good unit (which also carries idle, setup and standby energy)."""
    assert ev.parts is not None
    stations = [st.name for st in scenario.stations]
    point, rep, product, entry, exit_, outcome, kwh, energy = [], [], [], [], [], [], [], []
    times: dict[str, list[float]] = {name: [] for name in stations}
    per_unit = ev.kpis.get("energy_kwh_per_unit")
    for i, by_rep in enumerate(ev.parts):
        for r, left in enumerate(by_rep):
            for name, t_in, t_out, result, busy, process_kwh in left:
                point.append(i)
                rep.append(r)
                product.append(name)
                entry.append(t_in)
                exit_.append(t_out)
                outcome.append(result)
                for st in stations:
                    times[st].append(busy.get(st, math.nan))
                kwh.append(process_kwh)
                energy.append(math.nan if per_unit is None else per_unit[i, r])
    idx = np.asarray(point, dtype=np.int64)
    columns: dict[str, np.ndarray] = {"point": idx, "replication": np.asarray(rep, dtype=np.int64)}
    for j, d in enumerate(space):
        columns[d.key] = ev.points[idx, j] if len(idx) else np.zeros(0)
    t_in_a, t_out_a = np.asarray(entry, float), np.asarray(exit_, float)
    columns.update({"product": np.asarray(product, dtype=object), "entry_time": t_in_a, "exit_time": t_out_a,
                    "lead_time": t_out_a - t_in_a, "outcome": np.asarray(outcome, dtype=object)})
    columns.update({f"{st}.process_time": np.asarray(times[st], float) for st in stations})
    columns.update({"process_energy_kwh": np.asarray(kwh, float),
                    "replication_energy_kwh_per_unit": np.asarray(energy, float)})
    return columns


def write_parquet(ds: Dataset, path: str | Path) -> None:
    """Write ``ds`` as Parquet (zstd) with its metadata under the schema key ``twinopt``; atomic."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({k: pa.array(v) for k, v in ds.columns.items()})
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(ds.metadata, sort_keys=True).encode()})
    tmp = Path(str(path) + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)


def write_csv(ds: Dataset, path: str | Path) -> Path:
    """Write ``ds`` as CSV (floats in ``repr`` form: exact round trip) and its metadata as
    ``PATH.meta.json``; returns the metadata file's path."""
    names = list(ds.columns)
    cols = [ds.columns[k] for k in names]
    lines = [",".join(names)]
    for i in range(ds.rows):
        lines.append(",".join(_cell(c[i]) for c in cols))
    tmp = Path(str(path) + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    meta = Path(str(path) + ".meta.json")
    meta.write_text(json.dumps(ds.metadata, indent=2, sort_keys=True) + "\n")
    return meta


def _cell(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, float | np.floating) and np.isnan(v):
        return ""
    return repr(v.item() if isinstance(v, np.generic) else v)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``twinopt`` metadata of a Parquet file written by :func:`write_parquet`."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return dict(json.loads(meta[METADATA_KEY]))
