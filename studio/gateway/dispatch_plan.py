"""The checker of schedule recommendations: the only way from a schedule to dispatch lists that may
be published (the counterpart of :mod:`studio.gateway.envelope` for setpoints).

:func:`schedule_lists` checks a ``schedule`` recommendation without any reading (bad input is an
:class:`~twins.errors.InputError`): its fingerprint against the scenario when there is one, every
station known, every machine's sequence a permutation of the jobs that visit that machine.
:func:`check_dispatch` then takes the lists read from the equipment and returns a
:class:`CheckedDispatch`: per station the list before (``old``) and the list to publish (``new``),
sealed with an HMAC under a key of this process so that only this module makes one; the writer
(:func:`studio.gateway.publish.publish_schedule`) refuses anything else.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from optimizers.recommendation import Recommendation, fingerprint
from optimizers.replay import product_name, station_name
from studio.gateway.seal import Sealer
from twins.equipment_nodes import DispatchNodes
from twins.errors import EnvelopeViolation, InputError
from twins.spec import Scenario

_SEALER = Sealer()  # seals dispatch plans made by this process; nothing outside this module sees its key


@dataclass(frozen=True)
class ListChange:
    """One station's dispatch list: at ``node``, ``old`` (read when checked) → ``new``."""

    station: str
    node: str
    old: tuple[str, ...]
    new: tuple[str, ...]

    @property
    def name(self) -> str:
        """The name the audit trail records: ``<station>.dispatch_list``."""
        return f"{self.station}.dispatch_list"


@dataclass(frozen=True)
class CheckedDispatch:
    """Dispatch lists that passed :func:`check_dispatch`; made only by the checker (sealed).

    ``changes`` has every station of the schedule (``old == new`` where nothing changes);
    ``approve(user)`` returns the plan signed off; ``ready``: no approval outstanding."""

    recommendation_id: str
    recommendation_version: int
    scenario_fingerprint: str
    changes: tuple[ListChange, ...]
    approval_needed: bool
    approved_by: tuple[str, ...]
    checked_at: dt.datetime
    seal: str = field(repr=False)

    def __post_init__(self) -> None:
        if not authentic_dispatch(self):
            raise EnvelopeViolation("a CheckedDispatch is made only by studio.gateway.dispatch_plan.check_dispatch "
                                    "and cannot be altered")

    @property
    def ready(self) -> bool:
        return not self.approval_needed or bool(self.approved_by)

    @property
    def writes(self) -> tuple[ListChange, ...]:
        """The stations whose list changes."""
        return tuple(c for c in self.changes if c.old != c.new)

    def approve(self, user: str) -> CheckedDispatch:
        if not isinstance(user, str) or not user.strip():
            raise InputError("an approval needs the approver's name")
        return _sealed(**{**_content(self), "approved_by": (*self.approved_by, user.strip())})


def _content(plan: CheckedDispatch) -> dict[str, object]:
    return _SEALER.content(plan)


def _sealed(**content: object) -> CheckedDispatch:
    return _SEALER.make(CheckedDispatch, **content)


def authentic_dispatch(plan: object) -> bool:
    """True when ``plan`` is a CheckedDispatch made by :func:`check_dispatch` in this process, unaltered."""
    return _SEALER.authentic(plan, CheckedDispatch)


def schedule_lists(rec: Recommendation, scenario: Scenario | None) -> dict[str, tuple[str, ...]]:
    """Each station's dispatch list (product names in processing order) of a ``schedule``
    recommendation, checked offline; bad input is an :class:`InputError`."""
    if rec.kind != "schedule":
        raise InputError(f"a {rec.kind.replace('_', ' ')} recommendation has no dispatch lists")
    if scenario is not None and rec.scenario_fingerprint != fingerprint(scenario):
        raise InputError(f"recommendation {rec.id} v{rec.version} was made for another scenario ({rec.scenario!r}, "
                         f"fingerprint {rec.scenario_fingerprint[:19]}…) than {scenario.name!r} "
                         f"(fingerprint {fingerprint(scenario)[:19]}…)")
    payload = rec.payload if isinstance(rec.payload, Mapping) else {}
    sequences, operations = payload.get("sequences"), payload.get("operations")
    if not isinstance(sequences, Mapping) or not isinstance(operations, list):
        raise InputError(f"recommendation {rec.id}: a schedule's payload needs `sequences` and `operations`")
    visiting: dict[str, list[int]] = {}
    for k, op in enumerate(operations):
        if not isinstance(op, Mapping) or not isinstance(op.get("job"), int) or not isinstance(op.get("machine"), int):
            raise InputError(f"payload.operations[{k}]: needs integer `job` and `machine`")
        visiting.setdefault(station_name(op["machine"]), []).append(op["job"])
    out: dict[str, tuple[str, ...]] = {}
    for station, jobs in sequences.items():
        if station not in visiting:
            raise InputError(f"payload.sequences: {station!r} is not a machine of the schedule's operations "
                             f"(machines: {', '.join(sorted(visiting))})")
        if not isinstance(jobs, list) or any(isinstance(j, bool) or not isinstance(j, int) for j in jobs):
            raise InputError(f"payload.sequences[{station!r}]: a list of job indices, got {jobs!r}")
        if sorted(jobs) != sorted(visiting[station]):
            raise InputError(f"payload.sequences[{station!r}] = {jobs} is not a permutation of the jobs that visit "
                             f"{station} ({sorted(visiting[station])})")
        out[station] = tuple(product_name(j) for j in jobs)
    missing = sorted(set(visiting) - set(out))
    if missing:
        raise InputError(f"payload.sequences: no sequence for {', '.join(missing)}")
    if scenario is not None:
        _against(out, scenario)
    return out


def _against(lists: Mapping[str, tuple[str, ...]], scenario: Scenario) -> None:
    stations = {st.name for st in scenario.stations}
    for station, names in lists.items():
        if station not in stations:
            raise InputError(f"station {station!r} is not in scenario {scenario.name!r} "
                             f"(stations: {', '.join(sorted(stations))})")
        visits = sorted(p.name for p in scenario.products if station in p.route)
        if sorted(names) != visits:
            raise InputError(f"the list for {station} ({', '.join(names)}) is not a permutation of the products "
                             f"that visit it in {scenario.name!r} ({', '.join(visits)})")


def check_dispatch(rec: Recommendation, lists: Mapping[str, tuple[str, ...]],
                   current: Mapping[str, tuple[str, ...]], *, nodes: DispatchNodes,
                   now: dt.datetime | None = None) -> CheckedDispatch:
    """The sealed plan publishing ``lists`` (from :func:`schedule_lists`) over ``current`` (each
    station's remaining list, read from the equipment; every station of ``lists`` needed)."""
    missing = sorted(set(lists) - set(current))
    if missing:
        raise InputError(f"no current dispatch list for {', '.join(missing)}")
    changes = tuple(ListChange(st, nodes.node_of(st), tuple(current[st]), tuple(new)) for st, new in lists.items())
    return _sealed(recommendation_id=rec.id, recommendation_version=rec.version,
                   scenario_fingerprint=rec.scenario_fingerprint, changes=changes, approval_needed=nodes.approval,
                   approved_by=(), checked_at=now or dt.datetime.now(dt.UTC))


__all__ = ["CheckedDispatch", "ListChange", "authentic_dispatch", "check_dispatch", "schedule_lists"]
