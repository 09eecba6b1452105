"""The push: a checked plan written to equipment over OPC UA (asyncua), as a transaction.

    result = await push(rec, endpoint="opc.tcp://127.0.0.1:4840/twinopt/", scenario=s,
                        user="alice", security=PushSecurity.insecure(), audit=AuditLog())

Read the current values → :func:`~studio.gateway.envelope.check` → (dry run: stop) → for every
step: read live values and signals, :func:`~studio.gateway.envelope.recheck`, write the step
(typed Variants, one batched call, or staged and applied by ``staging.ApplyStaged``), read back
until every value matches within half its resolution → done. If a write, a read-back or the
connection fails, every tag already changed is written back to its previous value and read back
again: ``rolled back``, or ``uncertain: <tags>`` when even that cannot be confirmed, after which
the endpoint is blocked until :func:`reconcile`. Every step goes to the audit trail.

:func:`execute` is the only function that writes setpoints; it takes nothing but a sealed, ready
:class:`~studio.gateway.envelope.CheckedPlan`. docs/gateway.md ("Push") has the details.
"""
from __future__ import annotations

import asyncio
import contextlib
import getpass
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from optimizers.recommendation import Recommendation
from studio.gateway.audit import AuditLog
from studio.gateway.envelope import CheckedPlan, Violation, authentic, check, recheck, validate
from studio.gateway.security import ensure_certificate
from twins.equipment import Equipment
from twins.equipment_nodes import Handshake
from twins.errors import EndpointUnreachable, EnvelopeViolation, InputError
from twins.spec import Scenario

#: the gateway's application URI (in its client certificate)
GATEWAY_APP_URI = "urn:twinopt:gateway"
#: the virtual plant's node conventions, the defaults of an envelope's ``handshake:``
PUSH_ACTIVE, HEARTBEAT = Handshake().push_active, Handshake().heartbeat
STAGING_OBJECT, APPLY_STAGED = Handshake().apply_object, Handshake().apply_method
VARIANTS = {"Float": ua.VariantType.Float, "Double": ua.VariantType.Double, "Int32": ua.VariantType.Int32,
            "Boolean": ua.VariantType.Boolean}
#: failures of the link to the equipment (a dropped connection, a request timing out, a Bad answer)
LINK_ERRORS = (ConnectionError, OSError, TimeoutError, asyncio.TimeoutError, ua.UaError)


def staging_node(tag: str) -> str:
    """Where a tag's target is staged by default (the virtual plant's convention)."""
    return Handshake().staging_node(tag)


@dataclass(frozen=True)
class PushSecurity:
    """How the gateway connects: :meth:`insecure` (explicitly: no security, anonymous) or
    :meth:`with_password` (Basic256Sha256, ``SignAndEncrypt`` or ``Sign``, a client certificate
    in ``cert_dir`` generated when absent, username and password)."""

    insecure_: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cert_dir: Path = Path("twinopt-data/pki")
    mode: str = "SignAndEncrypt"

    @classmethod
    def insecure(cls) -> PushSecurity:
        return cls(True)

    @classmethod
    def with_password(cls, username: str, password: str, cert_dir: str | Path = "twinopt-data/pki",
                      mode: str = "SignAndEncrypt") -> PushSecurity:
        if not username or not password:
            raise InputError("a secure push needs a username and a password")
        if mode not in ("Sign", "SignAndEncrypt"):
            raise InputError(f"security mode must be Sign or SignAndEncrypt, got {mode!r}")
        return cls(False, username, password, Path(cert_dir), mode)


@dataclass(frozen=True)
class Timing:
    """Every wait of a push, in wall seconds.

    ``call_s``: each request and the connection; ``readback_s``: how long a written value may take
    to read back before the step counts as failed (a stale read-back); ``settle_s``: after a
    failure that may leave a write in flight (a stale read-back, a dropped connection), how long
    the previous values must hold before the rollback counts as confirmed; ``rollback_s``: the
    rollback's deadline (reconnections included); ``heartbeat_s``: heartbeat period while
    pushing; ``dwell_scale``: factor on every step's ``dwell_s`` (1: as the envelope says; a
    virtual plant at ``--speed S`` runs process time S times faster, so ``1/S`` matches it)."""

    call_s: float = 5.0
    readback_s: float = 2.0
    settle_s: float = 3.0
    rollback_s: float = 30.0
    heartbeat_s: float = 1.0
    dwell_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("call_s", "readback_s", "rollback_s", "heartbeat_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value <= 3600):
                raise InputError(f"{name} must be in (0, 3600] seconds, got {value}")
        for name in ("settle_s", "dwell_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 3600):
                raise InputError(f"{name} must be in [0, 3600], got {value}")


@dataclass(frozen=True)
class PushResult:
    """What a push did. ``outcome``: ``verified``, ``dry-run``, ``already pushed``, ``rolled back``,
    ``uncertain: <tags>`` or ``refused: <why>``; ``plan`` the checked plan (None when refused by
    the envelope); ``violations`` why it was refused; ``steps_done`` steps written and verified."""

    outcome: str
    endpoint: str
    plan: CheckedPlan | None = None
    violations: tuple[Violation, ...] = ()
    detail: str | None = None
    steps_done: int = 0
    uncertain_tags: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome in ("verified", "dry-run", "already pushed")


def normalize_endpoint(endpoint: str) -> str:
    """The endpoint as the audit trail keys it (no trailing slash)."""
    if not isinstance(endpoint, str) or not endpoint.startswith("opc.tcp://") or len(endpoint) <= len("opc.tcp://"):
        raise InputError(f"the endpoint must be an OPC UA URL opc.tcp://HOST:PORT[/PATH], got {endpoint!r}")
    return endpoint.rstrip("/")


def default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


# ------------------------------------------------------------------------------ the link to equipment

class Link:
    """One session with the equipment: typed, batched reads and writes of named nodes; the
    handshake's nodes (staging, apply method, watchdog) where ``handshake`` says."""

    def __init__(self, client: Client, nodes: Mapping[str, str], timing: Timing, handshake: Handshake | None = None):
        self.client, self.timing = client, timing
        self.handshake = handshake if handshake is not None else Handshake()
        self.nodes = {name: client.get_node(node) for name, node in nodes.items()}
        self.types: dict[str, ua.VariantType] = {}
        self._beat: asyncio.Task[None] | None = None
        self.has_watchdog = False

    async def call(self, coro: Awaitable[Any]) -> Any:
        return await asyncio.wait_for(coro, self.timing.call_s)

    async def read_types(self, names: Sequence[str]) -> dict[str, ua.VariantType]:
        """Each node's DataType as a VariantType, read once; unknown nodes are an InputError."""
        wanted = [n for n in names if n not in self.types]
        if wanted:
            nodes = [self.nodes[n] for n in wanted]
            dvs = await self.call(self.client.read_attributes(nodes, ua.AttributeIds.DataType))
            unknown = [n for n, dv in zip(wanted, dvs, strict=True) if not dv.StatusCode.is_good()]
            if unknown:
                raise InputError(f"the server has no node for {', '.join(unknown)} "
                                 f"({', '.join(self.nodes[n].nodeid.to_string() for n in unknown)})")
            by_id = {ua.ObjectIds.Float: ua.VariantType.Float, ua.ObjectIds.Double: ua.VariantType.Double,
                     ua.ObjectIds.Int32: ua.VariantType.Int32, ua.ObjectIds.Boolean: ua.VariantType.Boolean,
                     ua.ObjectIds.UInt32: ua.VariantType.UInt32}
            for n, dv in zip(wanted, dvs, strict=True):
                nid = dv.Value.Value
                vtype = by_id.get(nid.Identifier) if nid.NamespaceIndex == 0 else None
                if vtype is None:
                    raise InputError(f"{n}: the server's data type {dv.Value.Value.to_string()} is not one a tag "
                                     f"may have (Float, Double, Int32, Boolean)")
                self.types[n] = vtype
        return {n: self.types[n] for n in names}

    async def read(self, names: Sequence[str]) -> dict[str, float]:
        """Values of ``names`` as floats (Booleans 0/1), in one call; a Bad or missing value is NaN."""
        if not names:
            return {}
        dvs = await self.call(self.client.read_attributes([self.nodes[n] for n in names]))
        out = {}
        for n, dv in zip(names, dvs, strict=True):
            value = dv.Value.Value if dv.StatusCode.is_good() and dv.Value is not None else None
            out[n] = float(value) if isinstance(value, bool | int | float) else math.nan
        return out

    async def _write(self, values: Mapping[str, float]) -> dict[str, str]:
        """Write typed values (no timestamps) in one call; the names whose write was refused, with
        the status. A node's type is the one the server declares. Private on purpose: setpoints
        reach it only through :func:`execute` (a sealed plan), its rollback and the watchdog."""
        names = list(values)
        dvs = [ua.DataValue(ua.Variant(_typed(values[n], self.types[n]), self.types[n])) for n in names]
        codes = await self.call(self.client.uaclient.write_attributes([self.nodes[n].nodeid for n in names], dvs,
                                                                     ua.AttributeIds.Value))
        return {n: code.name for n, code in zip(names, codes, strict=True) if not code.is_good()}

    async def apply_staged(self) -> str | None:
        """Call ``staging.ApplyStaged``: None when applied, else the status name (nothing applied)."""
        try:
            hs = self.handshake
            await self.call(self.client.get_node(hs.apply_object).call_method(ua.NodeId.from_string(hs.apply_method)))
        except ua.UaStatusCodeError as err:
            return ua.StatusCode(err.code).name
        return None

    async def start_watchdog(self) -> None:
        """Set ``gateway.push_active`` and beat ``gateway.heartbeat`` when the server has them."""
        probe = {"push_active": self.handshake.push_active, "heartbeat": self.handshake.heartbeat}
        for name, node in probe.items():
            self.nodes.setdefault(name, self.client.get_node(node))
        dvs = await self.call(self.client.read_attributes([self.nodes[n] for n in probe]))
        self.has_watchdog = all(dv.StatusCode.is_good() for dv in dvs)
        if not self.has_watchdog:
            return
        beat = int(dvs[1].Value.Value or 0)
        self.types.update(push_active=ua.VariantType.Boolean, heartbeat=ua.VariantType.UInt32)
        await self._check(await self._write({"heartbeat": float((beat + 1) % 2**32)}))
        await self._check(await self._write({"push_active": 1.0}))
        self._beat = asyncio.create_task(self._heartbeat(beat + 1))

    async def _heartbeat(self, beat: int) -> None:
        with contextlib.suppress(*LINK_ERRORS):
            while True:
                await asyncio.sleep(self.timing.heartbeat_s)
                beat = (beat + 1) % 2**32
                await self._write({"heartbeat": float(beat)})

    async def stop_watchdog(self, *, confirm: bool) -> None:
        """Stop beating; ``confirm``: clear ``push_active`` (the plant confirms the setpoints now in
        force). Without it the heartbeat just stops and the plant's watchdog falls back."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        if confirm and self.has_watchdog:
            await self._check(await self._write({"push_active": 0.0}))

    @staticmethod
    async def _check(refused: Mapping[str, str]) -> None:
        if refused:
            name, code = next(iter(refused.items()))
            raise ua.UaError(f"{name}: {code}")

    async def close(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        with contextlib.suppress(*LINK_ERRORS, RuntimeError):
            await asyncio.wait_for(self.client.disconnect(), self.timing.call_s)


def _typed(value: float, vtype: ua.VariantType) -> Any:
    if vtype == ua.VariantType.Boolean:
        return bool(value)
    if vtype in (ua.VariantType.Int32, ua.VariantType.UInt32):
        return int(round(value))
    return float(value)


async def connect(endpoint: str, security: PushSecurity, nodes: Mapping[str, str], timing: Timing,
                  handshake: Handshake | None = None) -> Link:
    """A session with ``endpoint``; an unreachable endpoint or a refused login is an
    :class:`~twins.errors.EndpointUnreachable` (nothing was written)."""
    client = Client(endpoint, timeout=timing.call_s)
    if not security.insecure_:
        cert, key = await ensure_certificate(security.cert_dir, "gateway", GATEWAY_APP_URI, server=False)
        client.application_uri = GATEWAY_APP_URI
        mode = getattr(ua.MessageSecurityMode, security.mode)
        await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key), mode=mode)
        client.set_user(security.username or "")
        client.set_password(security.password or "")
    try:
        await asyncio.wait_for(client.connect(), timing.call_s)
    except (*LINK_ERRORS, RuntimeError) as err:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 1.0)
        why = " ".join(f"{type(err).__name__} {err}".split())[:200]
        raise EndpointUnreachable(f"cannot connect to {endpoint} ({why}): nothing was written") from None
    return Link(client, nodes, timing, handshake)


# ---------------------------------------------------------------------------------------- the push

async def push(recommendation: Recommendation, *, endpoint: str, scenario: Scenario, audit: AuditLog,
               security: PushSecurity, user: str | None = None, envelope: Equipment | None = None,
               dry_run: bool = False, staging: bool = False, approved_by: str | None = None,
               timing: Timing | None = None) -> PushResult:
    """Check ``recommendation`` against the envelope with live values and write it to ``endpoint``.

    Bad input (another scenario's recommendation, unknown tags, a kind that cannot be pushed, an
    unreachable endpoint, a node the server lacks) raises :class:`~twins.errors.InputError` before
    anything is written. Everything else is a :class:`PushResult`, recorded in ``audit``."""
    timing = timing or Timing()
    user = user or default_user()
    ep = normalize_endpoint(endpoint)
    env = envelope if envelope is not None else scenario.equipment
    validate(recommendation, scenario, env)  # bad input never reaches the equipment
    assert env is not None
    rec_key = (recommendation.id, recommendation.version)
    gated = gate(audit, user, ep, rec_key, approved_by, dry_run)
    if gated is not None:
        return PushResult(gated[0], ep, detail=gated[1])

    tags = {t.name: t for t in env.tags}
    names = list(env.names)
    link = await connect(endpoint, security, {n: _node_of(env, n) for n in names}, timing, env.handshake)
    try:
        known = await _read_state(link, env, staging, ep)
        verdict = check(recommendation, known, audit.history(tags=list(tags)), scenario=scenario, envelope=env)
        if verdict.plan is None:
            why = "; ".join(map(str, verdict.violations))
            return _refused(audit, user, ep, rec_key, f"outside the envelope: {why}", dry_run, verdict.violations)
        plan = verdict.plan
        if not plan.ready and approved_by:
            plan = plan.approve(approved_by)
        if dry_run:
            return PushResult("dry-run", ep, plan, detail=None if plan.ready else
                              f"needs approval: {', '.join(plan.approvals_needed)}")
        if not plan.ready:
            return _refused(audit, user, ep, rec_key, f"needs approval: {', '.join(plan.approvals_needed)} "
                                                      f"(--approved-by NAME, someone else than {user})", dry_run,
                            plan=plan)
        if not plan.steps:
            audit.append(user, "push", "verified", recommendation=rec_key, endpoint=ep,
                         detail="every tag already at its target: nothing written")
            return PushResult("verified", ep, plan, detail="nothing to write")
        reconnect = _reconnector(endpoint, security, link, timing)
        return await execute(plan, link, reconnect=reconnect, audit=audit, user=user, endpoint=ep, staging=staging,
                             timing=timing)
    except LINK_ERRORS as err:  # before any write: the endpoint failed while reading
        raise EndpointUnreachable(f"{ep} failed before anything was written ({type(err).__name__} {err})") from None
    finally:
        await link.close()


async def _read_state(link: Link, env: Equipment, staging: bool, ep: str) -> dict[str, float]:
    """Check every node's data type against the envelope (and the staging nodes exist when asked
    for), then read every tag and signal: the finite values, each tag's required."""
    names = list(env.names)
    types = await link.read_types(names)
    for tag in env.tags:
        if types[tag.name].name != tag.type:
            raise InputError(f"{tag.name}: the envelope says {tag.type} but the server's node is "
                             f"{types[tag.name].name}: fix the envelope")
    if staging:
        for tag in env.tags:
            link.nodes[f"staging:{tag.name}"] = link.client.get_node(link.handshake.staging_node(tag.name))
        await link.read_types([f"staging:{t.name}" for t in env.tags])
    current = await link.read(names)
    missing = [t.name for t in env.tags if not math.isfinite(current[t.name])]
    if missing:
        raise InputError(f"cannot read {', '.join(missing)} from {ep}: nothing was written")
    return {n: v for n, v in current.items() if math.isfinite(v)}


def _node_of(env: Equipment, name: str) -> str:
    return env.node_of(name)


def _reconnector(endpoint: str, security: PushSecurity, link: Link, timing: Timing) -> Callable[[], Awaitable[Link]]:
    async def again() -> Link:
        fresh = await connect(endpoint, security, {}, timing, link.handshake)
        fresh.nodes.update({n: fresh.client.get_node(node.nodeid) for n, node in link.nodes.items()})
        fresh.types.update(link.types)
        return fresh
    return again


def _refused(audit: AuditLog, user: str, ep: str, rec_key: tuple[str, int], why: str, dry_run: bool,
             violations: tuple[Violation, ...] = (), plan: CheckedPlan | None = None) -> PushResult:
    if not dry_run:
        audit.append(user, "push", "refused", recommendation=rec_key, endpoint=ep, detail=why)
    return PushResult(f"refused: {why}", ep, plan, violations, detail=why)


def gate(audit: AuditLog, user: str, ep: str, rec_key: tuple[str, int], approved_by: str | None,
         dry_run: bool) -> tuple[str, str] | None:
    """What every writer checks before it connects: four eyes (an approver who pushes is bad
    input), an endpoint blocked by an uncertain push (refused), the same recommendation verified at
    ``ep`` before (nothing to write). None: go on; else ``(outcome, detail)``, audited unless a dry run."""
    if approved_by is not None and approved_by.strip() == user:
        raise InputError(f"the approver must be someone else than the user pushing ({user}): four eyes")
    blocked = uncertain_since(audit, ep)
    if blocked is not None:
        why = (f"{ep} is blocked since the uncertain push at {blocked}: run `twinopt push --reconcile --endpoint "
               f"{ep}` first")
        if not dry_run:
            audit.append(user, "push", "refused", recommendation=rec_key, endpoint=ep, detail=why)
        return f"refused: {why}", why
    if already_pushed(audit, ep, rec_key):
        if not dry_run:
            audit.append(user, "push", "already pushed", recommendation=rec_key, endpoint=ep,
                         detail="verified before: nothing written")
        return "already pushed", "verified before: nothing written"
    return None


def uncertain_since(audit: AuditLog, endpoint: str) -> str | None:
    """The time of the push that left ``endpoint`` uncertain, when no reconcile followed; else None."""
    last = None
    for entry in audit.entries():
        if entry.get("endpoint") == endpoint and entry.get("action") in ("push", "follow", "reconcile"):
            if entry["action"] == "reconcile":
                last = None
            elif str(entry.get("outcome", "")).startswith("uncertain"):
                last = str(entry.get("time"))
    return last


def already_pushed(audit: AuditLog, endpoint: str, rec_key: tuple[str, int]) -> bool:
    """Whether this recommendation id and version was pushed to ``endpoint`` and verified."""
    want = {"id": rec_key[0], "version": rec_key[1]}
    return any(e.get("action") == "push" and e.get("outcome") == "verified" and e.get("endpoint") == endpoint
               and e.get("recommendation") == want for e in audit.entries())


# ------------------------------------------------------------------------- the only writer of setpoints

async def execute(plan: CheckedPlan, link: Link, *, reconnect: Callable[[], Awaitable[Link]], audit: AuditLog,
                  user: str, endpoint: str, staging: bool = False, timing: Timing | None = None) -> PushResult:
    """Write ``plan``'s steps over ``link``, each after a :func:`recheck` with live values and
    signals and followed by a read-back; roll back on any failure. The only function that writes
    setpoints: it refuses (:class:`~twins.errors.EnvelopeViolation`) anything but a sealed,
    unaltered, ready plan before it touches the equipment."""
    if not authentic(plan):
        raise EnvelopeViolation("refusing to write a plan that was not made by the envelope checker or was altered")
    if not plan.ready:
        raise EnvelopeViolation(f"refusing to write a plan that needs approval ({', '.join(plan.approvals_needed)})")
    timing = timing or Timing()
    rec_key = (plan.recommendation_id, plan.recommendation_version)
    resolution = {c.tag: c.resolution for c in plan.changes}
    tags = [c.tag for c in plan.changes]
    readable = [n for n in plan.names if n in link.nodes]
    previous = plan.state_before(0)
    changed: dict[str, float] = {}  # tags a write may have moved → value before the push
    failure: str | None = None
    in_flight = False  # a write may still land (stale read-back, lost answer): the rollback must settle
    done = 0
    try:
        await link.start_watchdog()
        for k, step in enumerate(plan.steps):
            live = await link.read(readable)
            problems = recheck(plan, k, {n: v for n, v in live.items() if math.isfinite(v)})
            if problems:
                failure = "; ".join(map(str, problems))
                if k == 0:
                    await link.stop_watchdog(confirm=True)
                    return _refused(audit, user, endpoint, rec_key, failure, False, problems, plan)
                break
            first = [w.tag for w in step.writes if w.tag not in changed]
            for tag in first:
                changed[tag] = previous[tag]
            in_flight = True
            refused = await _write_step(link, step.values, staging)
            if refused:
                in_flight = False
                for tag in first:  # a refused write changed nothing (ApplyStaged: none of the step)
                    if tag in refused or "ApplyStaged" in refused:
                        del changed[tag]
                audit.append(user, "write", "failed", recommendation=rec_key, endpoint=endpoint,
                             changes=_moves(plan, k), detail=f"step {k + 1}: refused: {_codes(refused)}")
                failure = f"step {k + 1}: the equipment refused the write ({_codes(refused)})"
                break
            stale = await _read_back(link, step.values, resolution, timing.readback_s)
            outcome = "uncertain" if stale else "confirmed"
            audit.append(user, "write", outcome, recommendation=rec_key, endpoint=endpoint, changes=_moves(plan, k),
                         detail=f"step {k + 1} of {len(plan.steps)}" + (f": read-back {stale}" if stale else ""))
            if stale:
                failure = f"step {k + 1}: read-back {stale} after {timing.readback_s:g} s"
                break
            in_flight = False
            done += 1
            if k + 1 < len(plan.steps) and step.dwell_s * timing.dwell_scale > 0:
                await asyncio.sleep(step.dwell_s * timing.dwell_scale)
        if failure is None:
            await link.stop_watchdog(confirm=True)
            audit.append(user, "push", "verified", recommendation=rec_key, endpoint=endpoint,
                         changes=[(c.tag, c.old, c.target) for c in plan.changes],
                         detail=f"{done} step{'s' * (done != 1)}" + _approvers(plan))
            return PushResult("verified", endpoint, plan, steps_done=done)
    except LINK_ERRORS as err:
        failure = f"the connection failed after {done} verified step{'s' * (done != 1)} ({type(err).__name__} {err})"
        in_flight = True
    return await _rollback(plan, link, changed, failure, in_flight, done, reconnect=reconnect, audit=audit,
                           user=user, endpoint=endpoint, staging=staging, timing=timing, tags=tags)


async def _write_step(link: Link, values: Mapping[str, float], staging: bool) -> dict[str, str]:
    if not staging:
        return await link._write(values)
    refused = await link._write({f"staging:{n}": v for n, v in values.items()})
    if refused:
        return {n.removeprefix("staging:"): code for n, code in refused.items()}
    code = await link.apply_staged()
    return {} if code is None else {"ApplyStaged": code}


async def _read_back(link: Link, values: Mapping[str, float], resolution: Mapping[str, float],
                     timeout_s: float) -> str | None:
    """None once every value reads back within half its resolution; else what still differs
    after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        got = await link.read(list(values))
        off = {n: got[n] for n in values if not _matches(got[n], values[n], resolution[n])}
        if not off or loop.time() >= deadline:
            return None if not off else ", ".join(f"{n} reads {v:g} ≠ {values[n]:g}" for n, v in off.items())
        await asyncio.sleep(min(0.05, max(deadline - loop.time(), 0)))


def _matches(got: float, want: float, resolution: float) -> bool:
    return math.isfinite(got) and abs(got - want) <= resolution / 2


async def _rollback(plan: CheckedPlan, link: Link, changed: Mapping[str, float], failure: str, in_flight: bool,
                    done: int, *, reconnect: Callable[[], Awaitable[Link]], audit: AuditLog, user: str,
                    endpoint: str, staging: bool, timing: Timing, tags: Sequence[str]) -> PushResult:
    """Write every changed tag back to its value before the push, read back (holding ``settle_s``
    when a write may be in flight) until ``rollback_s``: ``rolled back`` or ``uncertain: tags``."""
    rec_key = (plan.recommendation_id, plan.recommendation_version)
    resolution = {c.tag: c.resolution for c in plan.changes}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timing.rollback_s
    confirmed: set[str] = set()
    current, last_error = link, ""
    while changed and loop.time() < deadline:
        try:
            if current is not link or not current.has_watchdog:
                with contextlib.suppress(*LINK_ERRORS):
                    await current.start_watchdog()
            refused = await _write_step(current, changed, staging)
            if refused:
                last_error = f"rollback write refused ({_codes(refused)})"
                await asyncio.sleep(0.2)
                continue
            if await _settled(current, changed, resolution, timing.settle_s if in_flight else 0.0, deadline):
                confirmed = set(changed)
                break
            last_error = "the previous values did not read back"
        except LINK_ERRORS as err:
            last_error = f"{type(err).__name__} {err}"
            with contextlib.suppress(*LINK_ERRORS, InputError):
                if current is not link:
                    await current.close()
                current = await asyncio.wait_for(reconnect(), max(deadline - loop.time(), 0.1))
                in_flight = True
                continue
            await asyncio.sleep(0.2)
    unsure = tuple(sorted(set(changed) - confirmed))
    moves = [(t, None, v) for t, v in changed.items()]
    try:
        await current.stop_watchdog(confirm=not unsure)  # uncertain: stop beating, the plant's watchdog falls back
    except LINK_ERRORS:
        pass
    finally:
        if current is not link:
            await current.close()
    if not unsure:
        audit.append(user, "rollback", "confirmed", recommendation=rec_key, endpoint=endpoint, changes=moves,
                     detail=failure)
        audit.append(user, "push", "rolled back", recommendation=rec_key, endpoint=endpoint, detail=failure)
        return PushResult("rolled back", endpoint, plan, detail=failure, steps_done=done)
    audit.append(user, "rollback", "uncertain", recommendation=rec_key, endpoint=endpoint, changes=moves,
                 detail=f"{failure}; rollback: {last_error or 'deadline reached'}")
    outcome = f"uncertain: {', '.join(unsure)}"
    audit.append(user, "push", outcome, recommendation=rec_key, endpoint=endpoint,
                 detail=f"{failure}; rollback not confirmed ({last_error or 'deadline reached'})")
    return PushResult(outcome, endpoint, plan, detail=f"{failure}; rollback not confirmed: {last_error}",
                      steps_done=done, uncertain_tags=unsure)


async def _settled(link: Link, values: Mapping[str, float], resolution: Mapping[str, float], hold_s: float,
                   deadline: float) -> bool:
    """Whether every value reads back and keeps reading back for ``hold_s`` (before ``deadline``)."""
    loop = asyncio.get_running_loop()
    since = None
    while loop.time() < deadline:
        got = await link.read(list(values))
        if all(_matches(got[n], values[n], resolution[n]) for n in values):
            since = loop.time() if since is None else since
            if loop.time() - since >= hold_s:
                return True
        else:
            since = None
        await asyncio.sleep(0.05)
    return False


def _moves(plan: CheckedPlan, k: int) -> list[tuple[str, float | None, float | None]]:
    before = plan.state_before(k)
    return [(w.tag, before[w.tag], w.value) for w in plan.steps[k].writes]


def _codes(refused: Mapping[str, str]) -> str:
    return ", ".join(f"{n}: {code}" for n, code in refused.items())


def _approvers(plan: CheckedPlan) -> str:
    return f"; approved by {', '.join(plan.approved_by)}" if plan.approved_by else ""


# ------------------------------------------------------------------------------------ reconcile

async def reconcile(*, endpoint: str, scenario: Scenario, audit: AuditLog, security: PushSecurity,
                    user: str | None = None, envelope: Equipment | None = None,
                    timing: Timing | None = None) -> dict[str, float]:
    """Read every tag and signal of the envelope at ``endpoint``, record them in the audit trail as
    the reconciled state and lift the block an uncertain push left. Returns the values read."""
    timing = timing or Timing()
    ep = normalize_endpoint(endpoint)
    env = envelope if envelope is not None else scenario.equipment
    if env is None:
        raise InputError(f"scenario {scenario.name!r} declares no equipment envelope: nothing to reconcile")
    names = list(env.names)
    link = await connect(endpoint, security, {n: _node_of(env, n) for n in names}, timing)
    try:
        await link.read_types(names)
        values = await link.read(names)
    except LINK_ERRORS as err:
        raise EndpointUnreachable(f"{ep} failed while reading ({type(err).__name__} {err})") from None
    finally:
        await link.close()
    missing = [n for n in env.names if env.tag(n) is not None and not math.isfinite(values[n])]
    if missing:
        raise InputError(f"cannot read {', '.join(missing)} from {ep}: not reconciled")
    audit.append(user or default_user(), "reconcile", "reconciled", endpoint=ep,
                 changes=[(n, None, values[n]) for n in names if math.isfinite(values[n])],
                 detail="live values read; pushes to this endpoint are allowed again")
    return values


def run(coro: Awaitable[Any]) -> Any:
    """Run a push or reconcile from synchronous code (the CLI)."""
    async def main() -> Any:
        return await coro
    return asyncio.run(main())


__all__ = ["GATEWAY_APP_URI", "Link", "PushResult", "PushSecurity", "Timing", "already_pushed", "connect",
           "execute", "normalize_endpoint", "push", "reconcile", "run", "uncertain_since"]
