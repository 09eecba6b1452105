"""Following an energy plan: a timed sequence of mode commands, each checked when its time comes.

    result = await follow(rec, endpoint="opc.tcp://127.0.0.1:4840/twinopt/", scenario=s, audit=AuditLog(),
                          security=PushSecurity.insecure(), user="alice")

The plan is checked offline first (:func:`~studio.gateway.modes.timeline`: bad input never
reaches the equipment). Then the follower reads the plant's clock (``line.sim_time``, in the
scenario's time unit; ``line.speed`` says how fast it runs) and at the start of every slot reads
the live values, checks the slot's commands (:func:`~studio.gateway.modes.check_slot`), writes
the ones that change something to the stations' mode-command nodes and reads each back from the
mode node. A refused slot stops the follow (or, with ``on_refusal="skip"``, is left out). A
dropped connection is reconnected with backoff and the current slot checked again. When the
follow stops early — ``stop`` set (Ctrl-C), a refusal, a failure — every station is commanded
into its safe mode (:func:`~studio.gateway.modes.safe_modes`) and read back. Every command, with
its outcome, goes to the audit trail.

:func:`_write_modes` is the only function that writes mode commands; it takes nothing but sealed
:class:`~studio.gateway.modes.CheckedModes`. docs/gateway.md ("Energy plans") has the details.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from asyncua import ua

from optimizers.recommendation import Recommendation
from studio.gateway.audit import AuditLog
from studio.gateway.envelope import Violation
from studio.gateway.modes import CheckedModes, ModeChange, Timeline, authentic, check_slot, safe_modes, timeline
from studio.gateway.push import (
    LINK_ERRORS,
    Link,
    PushSecurity,
    Timing,
    connect,
    default_user,
    normalize_endpoint,
    uncertain_since,
)
from twins.calendar import UNITS_PER_HOUR
from twins.equipment import MODE_CODES, MODE_OF_CODE, Equipment
from twins.errors import EndpointUnreachable, EnvelopeViolation, InputError
from twins.spec import Scenario

#: the virtual plant's clock: simulated time in the scenario's unit, and simulated seconds per wall second
CLOCK, SPEED = "ns=2;s=line.sim_time", "ns=2;s=line.speed"
STARTS = ("now", "clock")
ON_REFUSAL = ("stop", "skip")


@dataclass(frozen=True)
class FollowResult:
    """What a follow did. ``outcome``: ``completed``, ``already followed``, ``stopped``,
    ``refused: <why>``, ``failed: <why>`` or ``uncertain: <stations>`` (not even the safe modes
    could be confirmed); ``safe`` the stations confirmed in their safe modes at the end."""

    outcome: str
    endpoint: str
    timeline: Timeline | None = None
    commands_written: int = 0
    slots_done: int = 0
    detail: str | None = None
    safe: tuple[tuple[str, str], ...] = ()
    uncertain_stations: tuple[str, ...] = ()
    refusals: tuple[Violation, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome in ("completed", "already followed")


class _Failure(Exception):
    """The follow cannot go on (a write refused, a read-back stale, the connection gone for good)."""


async def follow(recommendation: Recommendation, *, endpoint: str, scenario: Scenario, audit: AuditLog,
                 security: PushSecurity, user: str | None = None, envelope: Equipment | None = None,
                 approved_by: str | None = None, start: str = "now", on_refusal: str = "stop",
                 timing: Timing | None = None, reconnect_s: float = 30.0, poll_s: float = 0.5,
                 stop: asyncio.Event | None = None) -> FollowResult:
    """Follow the energy plan ``recommendation`` at ``endpoint`` until its horizon ends or ``stop`` is set.

    Args:
        start: ``now`` — the plan's t = 0 is the plant time when following starts; ``clock`` —
            t = 0 is the latest instant the plant's time of day was the plan's ``start_clock``
            (joining a running plan at its current slot), or the next one once that plan is over.
        on_refusal: ``stop`` (safe modes, then stop) or ``skip`` (leave the slot out, go on).
        reconnect_s: how long a dropped connection may stay down before the follow fails.
        poll_s: longest wait between two readings of the plant's clock.
        stop: set it (Ctrl-C) to stop: the stations go to their safe modes.

    Bad input (another scenario's plan, an undeclared station, a mode not allowed, an
    unreachable endpoint, a node the server lacks) raises :class:`InputError` before anything is
    written; everything else is a :class:`FollowResult`, recorded in ``audit``."""
    timing = timing or Timing()
    user = user or default_user()
    ep = normalize_endpoint(endpoint)
    env = envelope if envelope is not None else scenario.equipment
    tl = timeline(recommendation, scenario, env)  # bad input never reaches the equipment
    assert env is not None
    if start not in STARTS:
        raise InputError(f"start must be one of {', '.join(STARTS)}, got {start!r}")
    if on_refusal not in ON_REFUSAL:
        raise InputError(f"on_refusal must be one of {', '.join(ON_REFUSAL)}, got {on_refusal!r}")
    if not (math.isfinite(reconnect_s) and reconnect_s > 0 and math.isfinite(poll_s) and poll_s > 0):
        raise InputError("reconnect_s and poll_s must be positive numbers of seconds")
    if approved_by is not None:
        if approved_by.strip() == user:
            raise InputError(f"the approver must be someone else than the user following ({user}): four eyes")
        tl = tl.approve(approved_by)
    key = (tl.recommendation_id, tl.recommendation_version)
    blocked = uncertain_since(audit, ep)
    if blocked is not None:
        why = f"{ep} is blocked since the uncertain push at {blocked}: run `twinopt push --reconcile` first"
        audit.append(user, "follow", "refused", recommendation=key, endpoint=ep, detail=why)
        return FollowResult(f"refused: {why}", ep, tl, detail=why)
    if already_followed(audit, ep, key):
        audit.append(user, "follow", "already followed", recommendation=key, endpoint=ep,
                     detail="completed before: nothing written")
        return FollowResult("already followed", ep, tl, detail="completed before: nothing written")
    if not tl.ready:
        why = f"needs approval: {', '.join(tl.approvals_needed)} (--approved-by NAME, someone else than {user})"
        audit.append(user, "follow", "refused", recommendation=key, endpoint=ep, detail=why)
        return FollowResult(f"refused: {why}", ep, tl, detail=why)
    follower = _Follower(tl, env, scenario, endpoint=endpoint, ep=ep, security=security, audit=audit, user=user,
                         start=start, on_refusal=on_refusal, timing=timing, reconnect_s=reconnect_s, poll_s=poll_s,
                         stop=stop or asyncio.Event())
    return await follower.run()


def already_followed(audit: AuditLog, endpoint: str, rec_key: tuple[str, int]) -> bool:
    """Whether this plan id and version was followed to its end at ``endpoint``."""
    want = {"id": rec_key[0], "version": rec_key[1]}
    return any(e.get("action") == "follow" and e.get("outcome") == "completed" and e.get("endpoint") == endpoint
               and e.get("recommendation") == want for e in audit.entries())


class _Follower:
    """One follow: the session, the plan's clock, the changes made so far."""

    def __init__(self, tl: Timeline, env: Equipment, scenario: Scenario, *, endpoint: str, ep: str,
                 security: PushSecurity, audit: AuditLog, user: str, start: str, on_refusal: str, timing: Timing,
                 reconnect_s: float, poll_s: float, stop: asyncio.Event):
        self.tl, self.env, self.scenario = tl, env, scenario
        self.endpoint, self.ep, self.security, self.audit, self.user = endpoint, ep, security, audit, user
        self.start, self.on_refusal, self.timing = start, on_refusal, timing
        self.reconnect_s, self.poll_s, self.stop = reconnect_s, poll_s, stop
        self.key = (tl.recommendation_id, tl.recommendation_version)
        self.units_per_s = UNITS_PER_HOUR[tl.time_unit] / 3600.0  # plant time units per plant second
        self.readable = list(env.names)
        self.nodes = {n: env.node_of(n) for n in self.readable}
        for station in tl.stations:
            spec = env.station_modes(station)
            assert spec is not None  # the timeline checked it
            self.nodes[_command(station)] = spec.node_id
        self.link: Link | None = None
        self.wall_clock = False  # the server has no line.sim_time: plant time is wall time
        self.rate = self.units_per_s  # plant time units per wall second
        self.history: list[ModeChange] = []
        self.in_flight: CheckedModes | None = None
        self.written = 0
        self.slots_done = 0

    # -- the session ------------------------------------------------------------------------------
    async def _open(self) -> None:
        link = await connect(self.endpoint, self.security, self.nodes, self.timing)
        try:
            await self._types(link)
        except BaseException:
            await link.close()
            raise
        self.link = link

    async def _types(self, link: Link) -> None:
        modes = [f"{s}.mode" for s in self.tl.stations] + [_command(s) for s in self.tl.stations]
        types = await link.read_types([*self.readable, *(m for m in modes if m not in self.readable)])
        wrong = [n for n in modes if types[n] != ua.VariantType.Int32]
        if wrong:
            raise InputError(f"{wrong[0]}: the server's node is {types[wrong[0]].name}, a mode node is Int32 "
                             f"(0 off, 1 standby, 2 on)")
        link.nodes["clock"], link.nodes["speed"] = link.client.get_node(CLOCK), link.client.get_node(SPEED)
        try:
            await link.read_types(["clock", "speed"])
        except InputError:
            self.wall_clock = True
            return
        speed = (await link.read(["speed"]))["speed"]
        self.rate = self.units_per_s * (speed if math.isfinite(speed) and speed > 0 else 1.0)

    async def _now(self) -> float:
        """Plant time in the scenario's unit: the plant's clock, or wall time without one."""
        if self.wall_clock:
            return dt.datetime.now(dt.UTC).timestamp() * self.units_per_s
        assert self.link is not None
        value = (await self.link.read(["clock"]))["clock"]
        if not math.isfinite(value):
            raise ua.UaError("the plant's clock (line.sim_time) did not read")
        return value

    def _time_of_day_s(self, now: float) -> float:
        if self.wall_clock:
            local = dt.datetime.now().astimezone()
            return local.hour * 3600.0 + local.minute * 60.0 + local.second + local.microsecond / 1e6
        return (self.scenario.start_clock * 3600.0 + now / self.units_per_s) % 86400.0

    def _t0(self, now: float) -> float:
        if self.start == "now":
            return now
        hh, mm = (int(x) for x in self.tl.start_clock.split(":"))
        since_s = (self._time_of_day_s(now) - (hh * 3600.0 + mm * 60.0)) % 86400.0
        last = now - since_s * self.units_per_s
        return last if now - last < self.tl.horizon else last + 86400.0 * self.units_per_s

    # -- the follow -------------------------------------------------------------------------------
    async def run(self) -> FollowResult:
        await self._open()  # unreachable, or a node missing: bad input, nothing written
        tl = self.tl
        outcome, detail = "completed", None
        refusals: tuple[Violation, ...] = ()
        try:
            now = await self._now()
            t0 = self._t0(now)
            self.audit.append(self.user, "follow", "started", recommendation=self.key, endpoint=self.ep,
                              detail=f"{tl.n_slots} slots of {tl.slot:g} {tl.time_unit}, plan t = 0 at plant time "
                                     f"{t0:g} (--start {self.start})")
            outcome, detail, refusals = await self._follow(t0)
        except _Failure as err:
            outcome, detail = "failed", str(err)
        if outcome == "completed":
            self.audit.append(self.user, "follow", "completed", recommendation=self.key, endpoint=self.ep,
                              detail=f"{self.written} commands written, {self.slots_done} slots")
            await self._close()
            return FollowResult("completed", self.ep, tl, self.written, self.slots_done)
        safe, unsure, why = await self._leave_safe(outcome)
        await self._close()
        shown = ", ".join(f"{s} {m}" for s, m in safe)
        if unsure:
            final = f"uncertain: {', '.join(unsure)}"
            text = f"{outcome}: {detail}; safe modes not confirmed ({why})"
        else:
            final = "stopped" if outcome == "stopped" else f"{outcome}: {detail}"
            text = f"{detail + '; ' if detail else ''}stations left in their safe modes: {shown}"
        self.audit.append(self.user, "follow", final.split(":")[0] if not unsure else final,
                          recommendation=self.key, endpoint=self.ep, detail=text)
        return FollowResult(final, self.ep, tl, self.written, self.slots_done, text, tuple(safe), tuple(unsure),
                            refusals)

    async def _follow(self, t0: float) -> tuple[str, str | None, tuple[Violation, ...]]:
        tl, loop = self.tl, asyncio.get_running_loop()
        last, recheck = -1, False
        refused: tuple[Violation, ...] = ()
        while True:
            if self.stop.is_set():
                return "stopped", "interrupted", refused
            try:
                now = await self._now()
                if now >= t0 + tl.horizon * (1 - 1e-12):
                    return "completed", None, refused
                k = math.floor((now - t0) / tl.slot) if now >= t0 else -1
                if k >= 0 and (k > last or recheck):
                    recheck = False
                    problems = await self._slot(k, now)
                    last = k
                    if problems:
                        refused = problems
                        if self.on_refusal == "stop":
                            return "refused", f"slot {k}: " + "; ".join(map(str, problems)), problems
                wait = (min(t0 + (k + 1) * tl.slot, t0 + tl.horizon) - now) / self.rate
                await self._sleep(min(max(wait, 0.005), self.poll_s))
            except LINK_ERRORS as err:
                await self._reconnect(err, loop.time() + self.reconnect_s)
                recheck = True

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _slot(self, k: int, now: float) -> tuple[Violation, ...]:
        assert self.link is not None
        live = await self.link.read(self.readable)
        verdict = check_slot(self.tl, k, live, self.history, envelope=self.env, now=now)
        what = f"slot {k} of {self.tl.n_slots} at plant time {now:g}"
        if verdict.commands is None:
            changes = [(f"{s}.mode", _code(live.get(f"{s}.mode")), MODE_CODES[self.tl.mode(s, k)])
                       for s in self.tl.stations if _code(live.get(f"{s}.mode")) != MODE_CODES[self.tl.mode(s, k)]]
            self.audit.append(self.user, "command", "refused", recommendation=self.key, endpoint=self.ep,
                              changes=changes, detail=f"{what}: " + "; ".join(map(str, verdict.violations)))
            return verdict.violations
        if verdict.commands.commands:
            await self._write(verdict.commands, what)
        self.slots_done += 1
        return ()

    async def _write(self, checked: CheckedModes, what: str) -> None:
        """Write checked commands, read them back; audit; _Failure when refused or stale."""
        assert self.link is not None
        self.in_flight = checked
        refused = await _write_modes(self.link, checked)
        changes = [(f"{c.station}.mode", _code_of(c.old), c.code) for c in checked.commands]
        moves = ", ".join(f"{c.station} {c.old or '?'} → {c.mode}" for c in checked.commands)
        if refused:
            self.in_flight = None
            self.audit.append(self.user, "command", "failed", recommendation=self.key, endpoint=self.ep,
                              changes=changes, detail=f"{what}: {moves}: refused: {refused}")
            raise _Failure(f"{what}: the equipment refused the mode command ({refused})")
        stale = await self._read_back({f"{c.station}.mode": c.code for c in checked.commands})
        self.audit.append(self.user, "command", "uncertain" if stale else "confirmed", recommendation=self.key,
                          endpoint=self.ep, changes=changes,
                          detail=f"{what}: {moves}" + (f": read-back {stale}" if stale else ""))
        self.in_flight = None
        if stale:
            raise _Failure(f"{what}: read-back {stale} after {self.timing.readback_s:g} s")
        self._done(checked)

    def _done(self, checked: CheckedModes) -> None:
        for c in checked.commands:
            self.history.append(ModeChange(c.station, checked.plant_time, c.old or "?", c.mode))
            self.written += 1

    async def _read_back(self, want: dict[str, int]) -> str | None:
        assert self.link is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timing.readback_s
        while True:
            got = await self.link.read(list(want))
            off = {n: got[n] for n in want if got[n] != want[n]}
            if not off or loop.time() >= deadline:
                return None if not off else ", ".join(f"{n} reads {_name(v)} ≠ {MODE_OF_CODE[want[n]]}"
                                                      for n, v in off.items())
            await asyncio.sleep(0.05)

    async def _reconnect(self, err: BaseException, deadline: float) -> None:
        """A new session within ``deadline``, the in-flight commands resolved; else _Failure."""
        loop = asyncio.get_running_loop()
        why = f"{type(err).__name__} {err}".strip()
        await self._close()
        delay = 0.2
        while loop.time() < deadline and not self.stop.is_set():
            try:
                await self._open()
            except (EndpointUnreachable, *LINK_ERRORS):
                await self._sleep(min(delay, max(deadline - loop.time(), 0.0)))
                delay = min(delay * 2, 5.0)
                continue
            try:
                await self._resolve_in_flight()
            except LINK_ERRORS:
                await self._close()
                continue
            self.audit.append(self.user, "reconnect", "reconnected", endpoint=self.ep, recommendation=self.key,
                              detail=f"after {why}: the current slot is checked again")
            return
        if self.stop.is_set():
            return
        raise _Failure(f"the connection failed ({why}) and did not come back within {self.reconnect_s:g} s")

    async def _resolve_in_flight(self) -> None:
        """Commands whose answer or read-back was lost: in effect now (confirmed) or not (failed)."""
        checked, self.in_flight = self.in_flight, None
        if checked is None:
            return
        assert self.link is not None
        got = await self.link.read([f"{c.station}.mode" for c in checked.commands])
        landed = all(got[f"{c.station}.mode"] == c.code for c in checked.commands)
        changes = [(f"{c.station}.mode", _code_of(c.old), c.code) for c in checked.commands]
        self.audit.append(self.user, "command", "confirmed" if landed else "failed", recommendation=self.key,
                          endpoint=self.ep, changes=changes,
                          detail="read back after a reconnect" if landed else "not in effect after a reconnect")
        if landed:
            self._done(checked)

    async def _leave_safe(self, reason: str) -> tuple[list[tuple[str, str]], list[str], str]:
        """Command every station of the plan into its safe mode and read it back, reconnecting if
        needed, until the rollback deadline: (confirmed, not confirmed, last problem)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timing.rollback_s
        stations = list(self.tl.stations)
        safe = {s: spec.safe_mode for s in stations if (spec := self.env.station_modes(s)) is not None}
        problem = ""
        while loop.time() < deadline:
            try:
                if self.link is None:
                    await self._open()
                    await self._resolve_in_flight()
                assert self.link is not None
                live = await self.link.read(self.readable)
                now = await self._now()
                verdict = safe_modes(self.env, stations, live, now=now)
                if verdict.commands is None:
                    problem = "; ".join(map(str, verdict.violations))
                    self.audit.append(self.user, "command", "refused", recommendation=self.key, endpoint=self.ep,
                                      detail=f"safe modes ({reason}): {problem}")
                    return [], stations, problem
                if verdict.commands.commands:
                    await self._write(verdict.commands, f"safe modes ({reason})")
                return list(safe.items()), [], ""
            except _Failure as err:
                problem = str(err)
                await asyncio.sleep(0.2)
            except (EndpointUnreachable, *LINK_ERRORS) as err:
                problem = f"{type(err).__name__} {err}".strip()
                await self._close()
                await asyncio.sleep(0.2)
        return [], stations, problem or "deadline reached"

    async def _close(self) -> None:
        if self.link is not None:
            await self.link.close()
            self.link = None


# ------------------------------------------------------------------------- the only writer of modes

async def _write_modes(link: Link, checked: CheckedModes) -> str:
    """Write ``checked``'s mode commands as Int32 in one call; the refused ones with their status
    ('' when all were accepted). Refuses (:class:`EnvelopeViolation`) anything not sealed by the
    mode checker before it touches the equipment."""
    if not authentic(checked):
        raise EnvelopeViolation("refusing mode commands that were not made by the mode checker or were altered")
    if not checked.commands:
        return ""
    nodes = [link.nodes[_command(c.station)].nodeid for c in checked.commands]
    dvs = [ua.DataValue(ua.Variant(c.code, ua.VariantType.Int32)) for c in checked.commands]
    codes = await link.call(link.client.uaclient.write_attributes(nodes, dvs, ua.AttributeIds.Value))
    return ", ".join(f"{c.station}: {code.name}" for c, code in zip(checked.commands, codes, strict=True)
                     if not code.is_good())


def _command(station: str) -> str:
    return f"{station}.mode_command"


def _code(value: float | None) -> int | None:
    if value is None or not math.isfinite(value) or int(value) not in MODE_OF_CODE:
        return None
    return int(value)


def _code_of(mode: str | None) -> int | None:
    return MODE_CODES.get(mode) if mode is not None else None


def _name(code: float) -> str:
    return MODE_OF_CODE.get(int(code), repr(code)) if math.isfinite(code) else "nothing"


def run_until_interrupted(make: Callable[[asyncio.Event], Awaitable[FollowResult]]) -> FollowResult:
    """Run a follow from synchronous code (the CLI): SIGINT and SIGTERM set its ``stop`` event, so
    Ctrl-C leaves the stations in their safe modes instead of raising KeyboardInterrupt."""
    async def main() -> FollowResult:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
        try:
            return await make(stop)
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
    return asyncio.run(main())


__all__ = ["FollowResult", "already_followed", "follow", "run_until_interrupted"]
