"""Publish a schedule recommendation as per-station dispatch lists over OPC UA, as a transaction.

    result = await publish_schedule(rec, endpoint="opc.tcp://127.0.0.1:4840/twinopt/", scenario=shop,
                                    audit=AuditLog(), security=PushSecurity.insecure())

Offline checks (:func:`~studio.gateway.dispatch_plan.schedule_lists`) → blocked or already
published? → connect → read the plant's ``line.fingerprint`` (where it has one) and every
station's dispatch list → :func:`~studio.gateway.dispatch_plan.check_dispatch` (a sealed plan) →
(dry run: stop) → write every changed list in one batched call → read back until every list
equals its target → verified. A refused write, a stale read-back or a failed connection writes
every list the publish may have changed back to what it was (reconnecting when needed) and reads
it back: ``rolled back``, or ``uncertain: <lists>`` — the endpoint is then blocked until
``twinopt push --reconcile``. Every step goes to the audit trail; docs/gateway.md ("Publishing a
schedule") has the details.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asyncua import ua

from optimizers.recommendation import Recommendation
from studio.gateway.audit import AuditLog
from studio.gateway.dispatch_plan import CheckedDispatch, authentic_dispatch, check_dispatch, schedule_lists
from studio.gateway.push import (
    LINK_ERRORS,
    Link,
    PushSecurity,
    Timing,
    connect,
    default_user,
    gate,
    normalize_endpoint,
)
from twins.equipment_nodes import DispatchNodes, Handshake
from twins.errors import EndpointUnreachable, EnvelopeViolation, InputError
from twins.spec import Scenario

#: where the virtual plant names the scenario it runs (a PLC without it is checked offline only)
FINGERPRINT_NODE = "ns=2;s=line.fingerprint"

Lists = dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class PublishResult:
    """What a publish did: ``outcome`` as for setpoint pushes (``verified``, ``dry-run``,
    ``already pushed``, ``rolled back``, ``uncertain: <lists>``, ``refused: <why>``)."""

    outcome: str
    endpoint: str
    plan: CheckedDispatch | None = None
    detail: str | None = None
    steps_done: int = 0
    uncertain_tags: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome in ("verified", "dry-run", "already pushed")


async def publish_schedule(recommendation: Recommendation, *, endpoint: str, scenario: Scenario | None,
                           audit: AuditLog, security: PushSecurity, user: str | None = None,
                           nodes: DispatchNodes | None = None, handshake: Handshake | None = None,
                           dry_run: bool = False, approved_by: str | None = None,
                           timing: Timing | None = None) -> PublishResult:
    """Publish ``recommendation``'s per-machine job orders as dispatch lists at ``endpoint``.

    ``scenario``: the shop the recommendation is for, when known (its fingerprint is checked before
    connecting); the plant's ``line.fingerprint`` is checked too, and at least one of the two must
    confirm the scenario. ``nodes``/``handshake``: where the lists and the watchdog are (default:
    the scenario's ``equipment:`` or the virtual plant's names). Bad input is an :class:`InputError`
    before anything is written."""
    timing = timing or Timing()
    user = user or default_user()
    ep = normalize_endpoint(endpoint)
    equipment = scenario.equipment if scenario is not None else None
    nodes = nodes or (equipment.dispatch if equipment is not None else DispatchNodes())
    handshake = handshake or (equipment.handshake if equipment is not None else Handshake())
    lists = schedule_lists(recommendation, scenario)  # bad input never reaches the equipment
    rec_key = (recommendation.id, recommendation.version)
    gated = gate(audit, user, ep, rec_key, approved_by, dry_run)
    if gated is not None:
        return PublishResult(gated[0], ep, detail=gated[1])
    link = await connect(endpoint, security, {}, timing, handshake)
    try:
        await _check_fingerprint(link, recommendation, scenario is not None, ep)
        current = await read_lists(link, nodes, list(lists), ep)
        plan = check_dispatch(recommendation, lists, current, nodes=nodes)
        if not plan.ready and approved_by:
            plan = plan.approve(approved_by)
        if dry_run:
            return PublishResult("dry-run", ep, plan, detail=None if plan.ready else "needs approval")
        if not plan.ready:
            return _refused(audit, user, ep, rec_key, f"needs approval: dispatch lists (--approved-by NAME, someone "
                                                      f"else than {user})", dry_run, plan)
        if not plan.writes:
            audit.append(user, "push", "verified", recommendation=rec_key, endpoint=ep,
                         detail="every dispatch list already as published: nothing written")
            return PublishResult("verified", ep, plan, detail="nothing to write")
        return await execute_dispatch(plan, link, security=security, audit=audit, user=user, endpoint=ep,
                                      timing=timing, nodes=nodes)
    except LINK_ERRORS as err:  # before any write: the endpoint failed while reading
        raise EndpointUnreachable(f"{ep} failed before anything was written ({type(err).__name__} {err})") from None
    finally:
        await link.close()


async def _check_fingerprint(link: Link, rec: Recommendation, checked_offline: bool, ep: str) -> None:
    dvs = await link.call(link.client.read_attributes([link.client.get_node(FINGERPRINT_NODE)]))
    value = dvs[0].Value.Value if dvs[0].StatusCode.is_good() and dvs[0].Value is not None else None
    if isinstance(value, str) and value:
        if value != rec.scenario_fingerprint:
            raise InputError(f"recommendation {rec.id} v{rec.version} was made for another scenario "
                             f"({rec.scenario!r}, fingerprint {rec.scenario_fingerprint[:19]}…) than the one {ep} "
                             f"runs (fingerprint {value[:19]}…): nothing was written")
    elif not checked_offline:
        raise InputError(f"cannot confirm the scenario of recommendation {rec.id}: {ep} has no line.fingerprint and "
                         f"no scenario was given (--scenario): nothing was written")


def _list_of(dv: Any) -> tuple[str, ...] | None:
    if not dv.StatusCode.is_good() or dv.Value is None:
        return None
    value = dv.Value.Value
    if value is None and dv.Value.VariantType == ua.VariantType.String:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


async def read_lists(link: Link, nodes: DispatchNodes, stations: Sequence[str], ep: str,
                     *, remaining: bool = True) -> Lists:
    """Each station's dispatch list as the equipment serves it (``remaining``: what the station has
    not taken yet — the list a rollback restores — else the list as written)."""
    wanted = [nodes.remaining_of(st) if remaining else nodes.node_of(st) for st in stations]
    written = [nodes.node_of(st) for st in stations]
    dvs = await link.call(link.client.read_attributes([link.client.get_node(n) for n in [*wanted, *written]]))
    out: Lists = {}
    for k, st in enumerate(stations):
        got, node = _list_of(dvs[k]), _list_of(dvs[len(stations) + k])
        if node is None:
            raise InputError(f"{ep} has no dispatch list for {st} (a String array at {written[k]}): nothing was "
                             f"written")
        if got is None:
            raise InputError(f"{ep}: cannot read the dispatch list of {st} ({wanted[k]}): nothing was written")
        out[st] = got
    return out


async def _write_lists(link: Link, lists: Mapping[str, tuple[str, ...]], nodes: DispatchNodes) -> dict[str, str]:
    """Write lists in one call; the stations whose write was refused, with the status. Private:
    lists reach the equipment only through :func:`execute_dispatch` (a sealed plan) and its rollback."""
    stations = list(lists)
    ids = [ua.NodeId.from_string(nodes.node_of(st)) for st in stations]
    dvs = [ua.DataValue(ua.Variant(list(lists[st]), ua.VariantType.String)) for st in stations]
    codes = await link.call(link.client.uaclient.write_attributes(ids, dvs, ua.AttributeIds.Value))
    return {st: code.name for st, code in zip(stations, codes, strict=True) if not code.is_good()}


async def _read_back(link: Link, lists: Mapping[str, tuple[str, ...]], nodes: DispatchNodes,
                     hold_s: float, timeout_s: float) -> str | None:
    """None once every list reads back as written (and keeps doing so for ``hold_s``); else what differs."""
    loop = asyncio.get_running_loop()
    deadline, since = loop.time() + timeout_s, None
    while True:
        got = await read_lists(link, nodes, list(lists), "", remaining=False)
        off = [st for st in lists if got[st] != tuple(lists[st])]
        if not off:
            since = loop.time() if since is None else since
            if loop.time() - since >= hold_s:
                return None
        else:
            since = None
        if loop.time() >= deadline:
            return ", ".join(f"{st} reads {list(got[st])}" for st in off) or "did not hold"
        await asyncio.sleep(0.05)


async def execute_dispatch(plan: CheckedDispatch, link: Link, *, security: PushSecurity, audit: AuditLog, user: str,
                           endpoint: str, timing: Timing, nodes: DispatchNodes) -> PublishResult:
    """Write ``plan``'s changed lists over ``link`` and read them back; roll back on any failure.
    The only function that publishes dispatch lists: it refuses
    (:class:`~twins.errors.EnvelopeViolation`) anything but a sealed, unaltered, ready plan."""
    if not authentic_dispatch(plan):
        raise EnvelopeViolation("refusing to publish dispatch lists that were not made by the checker or were altered")
    if not plan.ready:
        raise EnvelopeViolation("refusing to publish dispatch lists that need approval")
    rec_key = (plan.recommendation_id, plan.recommendation_version)
    targets = {c.station: c.new for c in plan.writes}
    previous = {c.station: c.old for c in plan.writes}
    moves = [(c.name, list(c.old), list(c.new)) for c in plan.writes]
    changed: set[str] = set()
    in_flight = False
    try:
        await link.start_watchdog()
        changed = set(targets)
        in_flight = True
        refused = await _write_lists(link, targets, nodes)
        if refused:
            in_flight = False
            changed -= set(refused)  # a refused write changed nothing
            why = ", ".join(f"{st}: {code}" for st, code in refused.items())
            audit.append(user, "write", "failed", recommendation=rec_key, endpoint=endpoint, changes=moves,
                         detail=f"refused: {why}")
            failure = f"the equipment refused the dispatch list ({why})"
        else:
            stale = await _read_back(link, targets, nodes, 0.0, timing.readback_s)
            audit.append(user, "write", "uncertain" if stale else "confirmed", recommendation=rec_key,
                         endpoint=endpoint, changes=moves,
                         detail=f"{len(targets)} dispatch lists" + (f": read-back {stale}" if stale else ""))
            if stale is None:
                await link.stop_watchdog(confirm=True)
                audit.append(user, "push", "verified", recommendation=rec_key, endpoint=endpoint, changes=moves,
                             detail=f"{len(targets)} dispatch lists published"
                                    + (f"; approved by {', '.join(plan.approved_by)}" if plan.approved_by else ""))
                return PublishResult("verified", endpoint, plan, steps_done=1)
            failure = f"read-back {stale} after {timing.readback_s:g} s"
    except LINK_ERRORS as err:
        failure = f"the connection failed while publishing ({type(err).__name__} {err})"
    return await _rollback(plan, link, {st: previous[st] for st in changed}, failure, in_flight, nodes=nodes,
                           security=security, audit=audit, user=user, endpoint=endpoint, timing=timing)


async def _rollback(plan: CheckedDispatch, link: Link, previous: Mapping[str, tuple[str, ...]], failure: str,
                    in_flight: bool, *, nodes: DispatchNodes, security: PushSecurity, audit: AuditLog, user: str,
                    endpoint: str, timing: Timing) -> PublishResult:
    """Write every list the publish may have changed back to what it was, read back (holding
    ``settle_s`` when a write may be in flight) until ``rollback_s``."""
    rec_key = (plan.recommendation_id, plan.recommendation_version)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timing.rollback_s
    current, last_error, confirmed = link, "", not previous
    while previous and loop.time() < deadline:
        try:
            if current is not link or not current.has_watchdog:
                with contextlib.suppress(*LINK_ERRORS):
                    await current.start_watchdog()
            refused = await _write_lists(current, previous, nodes)
            if refused:
                last_error = "rollback write refused (" + ", ".join(f"{s}: {c}" for s, c in refused.items()) + ")"
                await asyncio.sleep(0.2)
                continue
            hold = timing.settle_s if in_flight else 0.0
            if await _read_back(current, previous, nodes, hold, max(deadline - loop.time(), 0.1)) is None:
                confirmed = True
                break
            last_error = "the previous lists did not read back"
        except LINK_ERRORS as err:
            last_error = f"{type(err).__name__} {err}"
            with contextlib.suppress(*LINK_ERRORS, InputError):
                if current is not link:
                    await current.close()
                current = await asyncio.wait_for(connect(endpoint, security, {}, timing, link.handshake),
                                                 max(deadline - loop.time(), 0.1))
                in_flight = True
                continue
            await asyncio.sleep(0.2)
    moves = [(f"{st}.dispatch_list", None, list(old)) for st, old in previous.items()]
    try:
        await current.stop_watchdog(confirm=confirmed)
    except LINK_ERRORS:
        pass
    finally:
        if current is not link:
            await current.close()
    if confirmed:
        if previous:
            audit.append(user, "rollback", "confirmed", recommendation=rec_key, endpoint=endpoint, changes=moves,
                         detail=failure)
        audit.append(user, "push", "rolled back", recommendation=rec_key, endpoint=endpoint, detail=failure)
        return PublishResult("rolled back", endpoint, plan, detail=failure)
    unsure = tuple(f"{st}.dispatch_list" for st in sorted(previous))
    audit.append(user, "rollback", "uncertain", recommendation=rec_key, endpoint=endpoint, changes=moves,
                 detail=f"{failure}; rollback: {last_error or 'deadline reached'}")
    outcome = f"uncertain: {', '.join(unsure)}"
    audit.append(user, "push", outcome, recommendation=rec_key, endpoint=endpoint,
                 detail=f"{failure}; rollback not confirmed ({last_error or 'deadline reached'})")
    return PublishResult(outcome, endpoint, plan, detail=f"{failure}; rollback not confirmed: {last_error}",
                         uncertain_tags=unsure)


def _refused(audit: AuditLog, user: str, ep: str, rec_key: tuple[str, int], why: str, dry_run: bool,
             plan: CheckedDispatch | None = None) -> PublishResult:
    if not dry_run:
        audit.append(user, "push", "refused", recommendation=rec_key, endpoint=ep, detail=why)
    return PublishResult(f"refused: {why}", ep, plan, detail=why)


async def reconcile_dispatch(*, endpoint: str, scenario: Scenario, audit: AuditLog, security: PushSecurity,
                             user: str | None = None, timing: Timing | None = None) -> Lists:
    """Read every station's dispatch list at ``endpoint``, record them as the reconciled state and
    lift the block an uncertain publish left."""
    timing = timing or Timing()
    ep = normalize_endpoint(endpoint)
    equipment = scenario.equipment
    nodes = equipment.dispatch if equipment is not None else DispatchNodes()
    link = await connect(endpoint, security, {}, timing, equipment.handshake if equipment is not None else None)
    try:
        lists = await read_lists(link, nodes, [st.name for st in scenario.stations], ep)
    except LINK_ERRORS as err:
        raise EndpointUnreachable(f"{ep} failed while reading ({type(err).__name__} {err})") from None
    finally:
        await link.close()
    audit.append(user or default_user(), "reconcile", "reconciled", endpoint=ep,
                 changes=[(f"{st}.dispatch_list", None, list(v)) for st, v in lists.items()],
                 detail="dispatch lists read; pushes to this endpoint are allowed again")
    return lists


__all__ = ["FINGERPRINT_NODE", "PublishResult", "execute_dispatch", "publish_schedule", "read_lists",
           "reconcile_dispatch"]
