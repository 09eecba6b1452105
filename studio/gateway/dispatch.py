"""Dispatch lists on the virtual plant: a schedule published as one list per station.

Each station of the virtual plant serves a writable ``<station>.dispatch_list`` (an OPC UA String
array of product names, in processing order — the form an MES hands a PLC a work queue in) and
read-only ``<station>.dispatch_remaining`` (what the station has not taken yet),
``<station>.dispatch_next`` (the product it waits for; empty when none) and
``<station>.dispatched`` (what it took from the list so far, in order). A write sets the running
twin's fixed-sequence dispatch at once (:meth:`twins.buffer.Buffer.set_sequence`, as ``sequence:``
in a scenario does): the station's machines take only the list's next product, and wait for it
when it is not there yet. An empty list returns the station to its normal dispatch rule.

A write is checked like a PLC would: not a String array ⇒ ``BadTypeMismatch``; an unknown
product, one that does not visit the station, or more than :data:`MAX_ITEMS` items ⇒
``BadOutOfRange`` — and nothing changes. docs/plant.md ("Dispatch lists") has the node map.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: the longest dispatch list a station takes
MAX_ITEMS = 100_000


class StationDispatch:
    """One station's dispatch list in a running :class:`~twins.model.Line`: what was written
    (``written``) and how far the station got through it (from its buffer's sequence)."""

    def __init__(self, station: Any, products: Sequence[Any]):
        self.station = station
        self.name: str = station.name
        #: product name → index, for the products whose route visits this station
        self.visiting = {p.name: p.index for p in products if any(s is station for s in p.route)}
        self.known = {p.name for p in products}
        self._names = {p.index: p.name for p in products}
        seq = station.buffer.sequence
        self.written: list[str] = [self._names[i] for i in seq] if seq is not None else []

    def problem(self, names: Sequence[str]) -> str | None:
        """Why ``names`` cannot be this station's list, or None."""
        if len(names) > MAX_ITEMS:
            return f"{len(names)} items: at most {MAX_ITEMS}"
        for k, name in enumerate(names):
            if name not in self.known:
                return f"item {k}: unknown product {name!r}"
            if name not in self.visiting:
                return f"item {k}: product {name!r} does not visit {self.name}"
        return None

    def write(self, names: Sequence[str]) -> None:
        """Make ``names`` the station's list now (checked with :meth:`problem` first); empty: the
        station's normal dispatch rule."""
        self.written = list(names)
        self.station.buffer.set_sequence([self.visiting[n] for n in names] if names else None)

    @property
    def remaining(self) -> list[str]:
        seq = self.station.buffer.sequence
        return [self._names[i] for i in seq] if seq is not None else []

    @property
    def next(self) -> str:
        seq = self.station.buffer.sequence
        return self._names[seq[0]] if seq else ""

    @property
    def dispatched(self) -> list[str]:
        """The products taken from the list since it was written, in the order the station took them."""
        return self.written[:len(self.written) - len(self.remaining)]


def dispatch_lists(line: Any) -> dict[str, StationDispatch]:
    """Every station's dispatch list in ``line`` (a scenario's ``sequence:`` is the initial one)."""
    return {st.name: StationDispatch(st, line.products) for st in line.stations}


__all__ = ["MAX_ITEMS", "StationDispatch", "dispatch_lists"]
