"""The event log of a line: one row per event, the format plants export and
``twinopt calibrate`` reads (docs/calibration.md).

``Line(scenario, events=[])`` records every event of a replication into the list as an
:data:`Event` tuple; :func:`write_csv` writes such a list in the documented columns. Times are the
simulation's, in the scenario's ``time_unit``; the written ``timestamp`` is in seconds.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from twins.calendar import UNITS_PER_HOUR

#: the columns of an event log, in order
COLUMNS = ("timestamp", "station", "machine", "part", "product", "event")
#: every event an event log may hold (docs/calibration.md says what each one means)
EVENTS = ("arrive", "start", "end", "fail", "repair", "setup_start", "setup_end", "scrap", "rework", "leave")
#: (time, station, machine, part id or -1, product or "", event) — one row of the log
Event = tuple[float, str, str, int, str, str]


def write_csv(events: Iterable[Event], path: str | Path, time_unit: str = "s") -> int:
    """Write ``events`` (times in ``time_unit``) as a CSV event log with ``timestamp`` in seconds,
    rows in time order (stable: events at the same time keep the order they happened in).
    Returns the number of rows written."""
    to_s = 3600.0 / UNITS_PER_HOUR[time_unit]
    rows = sorted(events, key=lambda e: e[0])
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for t, station, machine, part, product, event in rows:
            w.writerow((repr(t * to_s), station, machine, "" if part < 0 else part, product, event))
    return len(rows)

