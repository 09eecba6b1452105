"""Reading event logs (CSV, or Parquet with the ``data`` extra) into arrays, with one-line errors
naming the file and the row (docs/calibration.md describes the format; :mod:`twins.eventlog` writes it).

Rows are numbered as a spreadsheet shows them: the header is row 1, the first event row 2.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from twins.errors import InputError
from twins.eventlog import COLUMNS, EVENTS, Event

#: events that must name a machine; events that must name a part
NEEDS_MACHINE = frozenset({"start", "end", "fail", "repair", "setup_start", "setup_end"})
NEEDS_PART = frozenset({"arrive", "start", "end", "scrap", "rework", "leave"})


@dataclass
class EventLog:
    """An event log as parallel columns; ``row[i]`` is the file row of event ``i``."""

    file: str
    t: npt.NDArray[np.float64]  # seconds since the start (ISO 8601 logs: since their first event)
    station: list[str]
    machine: list[str]
    part: list[str]
    product: list[str]
    event: list[str]
    row: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.event)

    def where(self, i: int) -> str:
        return f"{self.file}: row {int(self.row[i])}"


def _timestamp(text: str, where: str) -> tuple[float, bool]:
    """(seconds, whether it was ISO 8601)."""
    try:
        v = float(text)
    except ValueError:
        try:
            return datetime.fromisoformat(text).timestamp(), True
        except ValueError:
            raise InputError(f"{where}: timestamp {text!r} is neither seconds nor ISO 8601") from None
    if not math.isfinite(v):
        raise InputError(f"{where}: timestamp {text!r} is not finite")
    return v, False


def _timestamps(texts: list[str], file: str) -> tuple[npt.NDArray[np.float64], bool]:
    """Seconds (as numbers) or ISO 8601 date-times → (float seconds, whether any was ISO)."""
    try:
        t = np.array(texts, dtype=np.float64)
    except ValueError:  # ISO date-times, or something unreadable: row by row
        t = np.empty(len(texts))
        iso = False
        for i, text in enumerate(texts):
            t[i], is_iso = _timestamp(text, f"{file}: row {i + 2}")
            iso = iso or is_iso
        return t, iso
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{file}: row {i + 2}: timestamp {texts[i]!r} is not finite")
    return t, False


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    if path.suffix.lower() in (".parquet", ".pq"):
        from twins.extras import requires

        with requires("data", "reading Parquet event logs"):
            import pyarrow.parquet as pq
        table = pq.read_table(path)
        cols = [str(c) for c in table.column_names]
        data = [[("" if v is None else (v.isoformat() if isinstance(v, datetime) else str(v))) for v in col]
                for col in (table.column(c).to_pylist() for c in cols)]
        return cols, [list(r) for r in zip(*data, strict=True)]
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: the file is empty")
        return [h.strip() for h in header], list(reader)


def read_event_log(path: str | Path) -> EventLog:
    """Read and check an event log. Bad input — a missing column, an unknown event, a missing
    station/machine/part, an unreadable or decreasing timestamp — is an :class:`InputError` naming
    the row."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such file")
    try:
        header, rows = _rows(p)
    except (OSError, ValueError, csv.Error) as err:  # ValueError: UnicodeDecodeError, pyarrow.ArrowInvalid
        raise InputError(f"{path}: cannot read the event log: {err}") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InputError(f"{path}: row 1: missing column(s) {', '.join(missing)} (need {', '.join(COLUMNS)})")
    idx = [header.index(c) for c in COLUMNS]
    file = p.name
    n = len(rows)
    if n == 0:
        raise InputError(f"{file}: no events")
    if min(map(len, rows)) < len(header):
        i = next(i for i, r in enumerate(rows) if len(r) < len(header))
        raise InputError(f"{file}: row {i + 2}: {len(rows[i])} fields, the header has {len(header)}")
    # column by column (a 1 M-row log is read in seconds); an error is looked up to name its first row
    ts, station, machine, part, product, event = ([r[j].strip() for r in rows] for j in idx)
    unknown = set(event) - set(EVENTS)
    if unknown:
        i = next(i for i, e in enumerate(event) if e in unknown)
        raise InputError(f"{file}: row {i + 2}: unknown event {event[i]!r} (events: {', '.join(EVENTS)})")
    t, iso = _timestamps(ts, file)
    bad = np.flatnonzero(np.diff(t) < 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise InputError(f"{file}: row {i + 2}: timestamp {ts[i]} is earlier than the row before: rows must be "
                         "in time order")
    code = {e: k for k, e in enumerate(EVENTS)}
    ev = np.fromiter((code[e] for e in event), np.int64, n)
    for column, what, needs in ((station, "station", [e for e in EVENTS if e != "leave"]),
                                (machine, "machine", sorted(NEEDS_MACHINE)), (part, "part", sorted(NEEDS_PART)),
                                (product, "product", ["arrive", "start", "setup_start"])):
        empty = np.fromiter((not v for v in column), np.bool_, n)
        missing_here = np.flatnonzero(empty & np.isin(ev, [code[e] for e in needs]))
        if missing_here.size:
            i = int(missing_here[0])
            raise InputError(f"{file}: row {i + 2}: {event[i]!r} needs a {what}")
    if iso:  # clock times: the log starts with its first event; seconds are since the start already
        t -= t[0]
    elif t[0] < 0:
        raise InputError(f"{file}: row 2: timestamps are seconds since the start: {t[0]:g} is negative")
    return EventLog(file, t, station, machine, part, product, event, np.arange(2, n + 2, dtype=np.int64))


def event_log_of(events: Sequence[Event], file: str = "the twin's event log") -> EventLog:
    """A line's own event log (``Line(..., events=[])``, in time order) as an :class:`EventLog`,
    times kept in the scenario's unit; ``row`` numbers the events from 1."""
    n = len(events)
    return EventLog(file, np.fromiter((e[0] for e in events), np.float64, n), [e[1] for e in events],
                    [e[2] for e in events], ["" if e[3] < 0 else str(e[3]) for e in events],
                    [e[4] for e in events], [e[5] for e in events], np.arange(1, n + 1, dtype=np.int64))
