"""``twinopt push`` against real virtual plants (``twinopt plant … --port 0``) on loopback: what the
server accepted is recorded on the server side by a subscription to its nodes."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, run_cli

pytest.importorskip("asyncua")
from asyncua import Client, ua  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_plant import plant  # noqa: E402

from optimizers.recommendation import Provenance, Recommendation, fingerprint  # noqa: E402
from studio.gateway import AuditLog, check  # noqa: E402
from studio.gateway.envelope import within  # noqa: E402
from studio.gateway.push import PushSecurity, Timing, connect, execute, push, reconcile  # noqa: E402
from twins.equipment import Condition, hard_limits  # noqa: E402
from twins.errors import EnvelopeViolation, InputError  # noqa: E402
from twins.loader import load_scenario  # noqa: E402

GLUE = load_scenario("glue_dispensing")
ENV = GLUE.equipment
TAGS = ("dispenser.pressure_bar", "dispenser.speed_mm_s", "dispenser.temperature_c")
DEFAULTS = {"dispenser.pressure_bar": 3.0, "dispenser.speed_mm_s": 30.0, "dispenser.temperature_c": 40.0}
INSECURE = PushSecurity.insecure()
FAST = Timing(call_s=5, readback_s=0.5, settle_s=0.5, rollback_s=10, heartbeat_s=0.5, dwell_scale=0.0)


def rec(payload: dict[str, float], **update: Any) -> Recommendation:
    """A setpoint recommendation for the glue cell: ``{"dispenser.pressure_bar": 3.4, …}``."""
    by_station: dict[str, dict[str, float]] = {}
    for name, value in payload.items():
        station, _, param = name.rpartition(".")
        by_station.setdefault(station, {})[param] = value
    base = Recommendation(kind="setpoints", scenario=GLUE.name, scenario_fingerprint=fingerprint(GLUE),
                          payload=by_station, provenance=Provenance(method="test"))
    return base.model_copy(update=update)


def run(coro: Any, timeout: float = 120) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


class Recorder:
    """Every value the server accepted for the glue tags, in order (a data-change subscription with
    a deep queue, so no intermediate value is lost)."""

    def __init__(self) -> None:
        self.values: list[tuple[str, float]] = []
        self.stamped: list[tuple[dt.datetime, str, float]] = []
        self.names = {f"ns=2;s={t}": t for t in TAGS}

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        name = self.names[node.nodeid.to_string()]
        self.values.append((name, float(val)))
        self.stamped.append((data.monitored_item.Value.SourceTimestamp, name, float(val)))

    def clear(self) -> None:
        self.values.clear()
        self.stamped.clear()

    def states(self, start: dict[str, float]) -> list[dict[str, float]]:
        """The server's states in the order it took the values (their source timestamps), one per
        write request: values within half a millisecond of each other came in one batch."""
        state, out, last = dict(start), [], None
        for when, name, value in sorted(self.stamped, key=lambda x: x[0]):
            if last is not None and (when - last).total_seconds() > 0.0005:
                out.append(dict(state))
            state[name] = value
            last = when
        return [*out, state] if last is not None else out

    async def __aenter__(self) -> Recorder:
        return self

    async def start(self, client: Client) -> None:
        self.sub = await client.create_subscription(10, self)
        await self.sub.subscribe_data_change([client.get_node(n) for n in self.names], queuesize=1000)
        await asyncio.sleep(0.3)
        self.clear()  # the initial values

    async def settled(self) -> list[tuple[str, float]]:
        await asyncio.sleep(0.3)
        return list(self.values)


def by_tag(seen: list[tuple[str, float]]) -> dict[str, list[float]]:
    """The values the server accepted, per tag in order (a publish groups notifications by node)."""
    out: dict[str, list[float]] = {}
    for tag, value in seen:
        out.setdefault(tag, []).append(value)
    return out


async def setpoints(url: str, values: dict[str, float] | None = None) -> dict[str, float]:
    """Write ``values`` directly (the test's own hand on the plant), then read every tag."""
    async with Client(url, timeout=5) as c:
        if values:
            for name, value in values.items():
                await c.get_node(f"ns=2;s={name}").write_value(ua.DataValue(ua.Variant(value, ua.VariantType.Double)))
        return {t: float(await c.get_node(f"ns=2;s={t}").read_value()) for t in TAGS}


def faults_file(tmp: Path, text: str) -> Path:
    path = tmp / "faults.yaml"
    path.write_text("signals: {dispenser.alarm: false}\n" + text)  # no random nozzle-clog alarm stops a push
    return path


@pytest.fixture(scope="module")
def glue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    faults = faults_file(tmp_path_factory.mktemp("faults"), "")
    with plant("glue_dispensing", "--port", "0", "--speed", "600", "--insecure", "--faults", str(faults)) as p:
        yield p


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.jsonl")


def test_a_push_writes_the_ramp_typed_and_reads_every_step_back(glue, log):
    async def go() -> None:
        await setpoints(glue.url, DEFAULTS)
        async with Client(glue.url, timeout=5) as c:
            rec_ = Recorder()
            await rec_.start(c)
            r = rec({"dispenser.pressure_bar": 3.4, "dispenser.speed_mm_s": 38})
            result = await push(r, endpoint=glue.url, scenario=GLUE, audit=log, security=INSECURE, user="alice",
                                timing=FAST)
            assert result.outcome == "verified" and result.steps_done == 2
            seen = await rec_.settled()
        assert by_tag(seen) == {"dispenser.pressure_bar": [3.25, 3.4], "dispenser.speed_mm_s": [35.0, 38.0]}
        assert (await setpoints(glue.url))["dispenser.pressure_bar"] == 3.4
    run(go())
    actions = [(e["action"], e["outcome"]) for e in log.entries()]
    assert actions == [("write", "confirmed"), ("write", "confirmed"), ("push", "verified")]
    assert {c.tag for c in log.history()} == {"dispenser.pressure_bar", "dispenser.speed_mm_s"}
    done = run_cli("audit", "verify", "--log", str(log.path))
    assert done.returncode == 0 and done.stdout.startswith("ok: 3 entries")


def test_dry_run_writes_nothing_and_a_second_push_of_the_same_recommendation_writes_nothing(glue, log):
    async def go() -> None:
        await setpoints(glue.url, DEFAULTS)
        r = rec({"dispenser.speed_mm_s": 33})
        async with Client(glue.url, timeout=5) as c:
            rec_ = Recorder()
            await rec_.start(c)
            dry = await push(r, endpoint=glue.url, scenario=GLUE, audit=log, security=INSECURE, dry_run=True,
                             timing=FAST)
            assert dry.outcome == "dry-run" and [s.values for s in dry.plan.steps] == [{"dispenser.speed_mm_s": 33.0}]
            assert await rec_.settled() == [] and not log.exists()
            assert (await push(r, endpoint=glue.url, scenario=GLUE, audit=log, security=INSECURE,
                               timing=FAST)).outcome == "verified"
            assert await rec_.settled() == [("dispenser.speed_mm_s", 33.0)]
            await setpoints(glue.url, {"dispenser.speed_mm_s": 30.0})
            await asyncio.sleep(0.2)
            rec_.clear()
            again = await push(r, endpoint=glue.url + "/", scenario=GLUE, audit=log, security=INSECURE, timing=FAST)
            assert again.outcome == "already pushed"
            assert await rec_.settled() == []
            v2 = await push(r.model_copy(update={"version": 2}), endpoint=glue.url, scenario=GLUE, audit=log,
                            security=INSECURE, timing=FAST)
            assert v2.outcome == "verified"  # a new version is a new push
    run(go())


def test_the_soft_band_needs_an_approver_who_is_not_the_user(glue, log):
    async def go() -> None:
        await setpoints(glue.url, DEFAULTS)
        r = rec({"dispenser.pressure_bar": 4.2})
        refused = await push(r, endpoint=glue.url, scenario=GLUE, audit=log, security=INSECURE, user="alice",
                             timing=FAST)
        assert refused.outcome.startswith("refused: needs approval: dispenser.pressure_bar")
        assert (await setpoints(glue.url))["dispenser.pressure_bar"] == 3.0
        with pytest.raises(InputError):
            await push(r, endpoint=glue.url, scenario=GLUE, audit=log, security=INSECURE, user="alice",
                       approved_by="alice", timing=FAST)
        ok = await push(r, endpoint=glue.url, scenario=GLUE, audit=log, security=INSECURE, user="alice",
                        approved_by="carol", timing=FAST)
        assert ok.outcome == "verified" and ok.plan.approved_by == ("carol",)
        assert (await setpoints(glue.url))["dispenser.pressure_bar"] == 4.2
    run(go())
    assert "approved by carol" in log.entries()[-1]["detail"]


def test_the_staging_handshake_applies_each_step_atomically(glue, log):
    async def go() -> None:
        await setpoints(glue.url, DEFAULTS)
        async with Client(glue.url, timeout=5) as c:
            rec_ = Recorder()
            await rec_.start(c)
            r = rec({"dispenser.pressure_bar": 3.5, "dispenser.speed_mm_s": 40})
            result = await push(r, endpoint=glue.url, scenario=GLUE, audit=log, security=INSECURE, staging=True,
                                timing=FAST)
            assert result.outcome == "verified" and result.steps_done == 2
            seen = await rec_.settled()
        assert by_tag(seen) == {"dispenser.pressure_bar": [3.25, 3.5], "dispenser.speed_mm_s": [35.0, 40.0]}
    run(go())


def test_an_unsealed_or_altered_plan_is_refused_before_any_write(glue, log):
    async def go() -> None:
        await setpoints(glue.url, DEFAULTS)
        plan = check(rec({"dispenser.speed_mm_s": 35}), {**DEFAULTS, "dispenser.mode_auto": 1.0,
                                                         "dispenser.alarm": 0.0}, scenario=GLUE).plan
        step = plan.steps[0]
        forged = dataclasses.replace(step, writes=(dataclasses.replace(step.writes[0], value=60.0),))
        object.__setattr__(plan, "steps", (forged,))  # altered in place after sealing
        fake = type("Plan", (), {"steps": (forged,), "ready": True})()
        async with Client(glue.url, timeout=5) as c:
            rec_ = Recorder()
            await rec_.start(c)
            link = await connect(glue.url, INSECURE, {t: f"ns=2;s={t}" for t in TAGS}, FAST)
            try:
                for bad in (plan, fake):
                    with pytest.raises(EnvelopeViolation):
                        await execute(bad, link, reconnect=lambda: None, audit=log, user="mallory",  # type: ignore
                                      endpoint=glue.url)
            finally:
                await link.close()
            assert await rec_.settled() == []
        assert not log.exists()
    run(go())


# ----------------------------------------------------------------------------------- property test

def _tag_strategy(name: str) -> st.SearchStrategy[float]:
    p = next(p for s in GLUE.stations for p in s.parameters if f"{s.name}.{p.name}" == name)
    return st.floats(p.min, p.max, allow_nan=False)


def _inside(name: str) -> st.SearchStrategy[float]:
    lo, hi = hard_limits(ENV.tag(name), GLUE)
    res = ENV.tag(name).resolution
    return st.integers(math.ceil(lo / res), math.floor(hi / res)).map(lambda k: round(k * res, 4))


@st.composite
def scenarios_(draw: Any) -> tuple[dict[str, float], dict[str, float], list[tuple[str, float, float, int]], bool]:
    """(current values, recommendation, history (tag, old, new, minutes ago), approved)."""
    current = {t: draw(_inside(t)) for t in TAGS}
    chosen = draw(st.lists(st.sampled_from(TAGS), min_size=1, max_size=3, unique=True))
    target = {t: draw(_tag_strategy(t)) for t in chosen}
    history = draw(st.lists(st.tuples(st.sampled_from(TAGS), st.floats(0, 10), st.floats(0, 10),
                                      st.integers(0, 120)), max_size=4))
    return current, target, history, draw(st.booleans())


@pytest.fixture(scope="module")
def loop_and_watch(glue: Any) -> Iterator[tuple[asyncio.AbstractEventLoop, Recorder]]:
    loop = asyncio.new_event_loop()
    client = Client(glue.url, timeout=5)
    loop.run_until_complete(client.connect())
    recorder = Recorder()
    loop.run_until_complete(recorder.start(client))
    yield loop, recorder
    loop.run_until_complete(client.disconnect())
    loop.close()


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=scenarios_())
def test_nothing_outside_the_envelope_the_rates_or_an_interlock_ever_reaches_the_server(glue, loop_and_watch,
                                                                                       tmp_path_factory, case):
    loop, watch = loop_and_watch
    current, target, history, approved = case
    log = AuditLog(tmp_path_factory.mktemp("prop") / "audit.jsonl")
    now = dt.datetime.now(dt.UTC)
    for tag, old, new, minutes in history:
        log.append("earlier", "write", "confirmed", changes=[(tag, old, new)],
                   time=now - dt.timedelta(minutes=minutes))
    loop.run_until_complete(setpoints(glue.url, current))
    loop.run_until_complete(asyncio.sleep(0.15))
    watch.clear()
    result = loop.run_until_complete(push(rec(target), endpoint=glue.url, scenario=GLUE, audit=log, security=INSECURE,
                                          user="alice", approved_by="carol" if approved else None, timing=FAST))
    seen = loop.run_until_complete(watch.settled())
    # what the server accepted, checked on its own: limits, per push and per hour, every interlock
    state = dict(current)
    recent = [h for h in history if h[3] < 60]
    for tag, value in seen:
        t = ENV.tag(tag)
        lo, hi = hard_limits(t, GLUE)
        assert within(lo, value) and within(value, hi), (tag, value)
        if t.soft is not None and not (within(t.soft[0], value) and within(value, t.soft[1])) or t.approval:
            assert approved, (tag, value)
        move = value - current[tag]
        assert within(move, t.max_up_per_push) and within(-move, t.max_down_per_push), (tag, value)
        up = sum(max(n - o, 0) for g, o, n, _ in recent if g == tag) + max(move, 0)
        down = sum(max(o - n, 0) for g, o, n, _ in recent if g == tag) + max(-move, 0)
        # the hourly budget of the direction this push moves in (an earlier overrun the other way is
        # not this push's doing and does not forbid moving back)
        assert move <= 0 or within(up, t.max_up_per_hour), (tag, value)
        assert move >= 0 or within(down, t.max_down_per_hour), (tag, value)
        assert t.ramp_step is None or within(abs(value - state[tag]), t.ramp_step)
        state[tag] = value
    for state in watch.states(current):
        for source in ENV.interlocks:
            assert Condition(source, ENV.names)(state), (source, state)
    if result.outcome == "verified":
        final = loop.run_until_complete(setpoints(glue.url))
        assert all(abs(final[c.tag] - c.target) <= c.resolution / 2 for c in result.plan.changes)
    else:
        assert seen == [] and result.outcome.startswith("refused"), result.outcome


# ---------------------------------------------------------------------------------- fault injection

BIG = {"dispenser.pressure_bar": 3.5, "dispenser.speed_mm_s": 40.0}  # two steps of two tags each


@pytest.mark.parametrize("fault", ["drop_after_writes: 3\n", "reject_writes: [dispenser.speed_mm_s]\n",
                                   "stale_readback_s: 1.0\n"], ids=["dropped", "rejected", "stale"])
def test_a_fault_mid_push_leaves_every_tag_at_its_previous_value_rolled_back(fault, tmp_path):
    faults = faults_file(tmp_path, fault)
    log = AuditLog(tmp_path / "audit.jsonl")
    with plant("glue_dispensing", "--port", "0", "--speed", "600", "--insecure", "--faults", str(faults)) as p:
        async def go() -> None:
            timing = dataclasses.replace(FAST, readback_s=0.3, settle_s=2.0)
            result = await push(rec(BIG), endpoint=p.url, scenario=GLUE, audit=log, security=INSECURE, timing=timing)
            assert result.outcome == "rolled back", result
            await asyncio.sleep(1.5)  # anything still in flight has landed
            assert await setpoints(p.url) == DEFAULTS
        run(go())
    outcomes = [(e["action"], e["outcome"]) for e in log.entries()]
    assert outcomes[-2:] == [("rollback", "confirmed"), ("push", "rolled back")]
    assert run_cli("audit", "verify", "--log", str(log.path)).returncode == 0


def test_an_uncertain_push_blocks_the_endpoint_until_reconcile(tmp_path):
    faults = faults_file(tmp_path, "stale_readback_s: 2.0\n")
    log = AuditLog(tmp_path / "audit.jsonl")
    with plant("glue_dispensing", "--port", "0", "--speed", "600", "--insecure", "--faults", str(faults)) as p:
        async def go() -> None:
            timing = dataclasses.replace(FAST, readback_s=0.3, settle_s=2.0, rollback_s=1.0)
            first = await push(rec(BIG), endpoint=p.url, scenario=GLUE, audit=log, security=INSECURE, timing=timing)
            assert first.outcome.startswith("uncertain: ") and "dispenser.pressure_bar" in first.outcome
            await asyncio.sleep(2.5)
            before = await setpoints(p.url)
            second = await push(rec({"dispenser.speed_mm_s": 31}), endpoint=p.url, scenario=GLUE, audit=log,
                                security=INSECURE, timing=timing)
            assert second.outcome.startswith("refused: ") and "--reconcile" in second.outcome
            assert await setpoints(p.url) == before
            values = await reconcile(endpoint=p.url, scenario=GLUE, audit=log, security=INSECURE, timing=timing)
            assert {t: values[t] for t in TAGS} == before
        run(go())
        done = run_cli("push", str(_saved(tmp_path, rec({"dispenser.speed_mm_s": 31}))), "--endpoint", p.url,
                       "--insecure", "--data", str(tmp_path), "--dry-run")
        assert done.returncode == 0, done.stderr  # no longer blocked
    assert run_cli("audit", "verify", "--log", str(log.path)).returncode == 0


# ------------------------------------------------------------------------------- the command line

def _saved(folder: Path, r: Recommendation) -> Path:
    path = folder / f"rec-{r.id}.json"
    path.write_text(r.to_json())
    return path


@pytest.mark.parametrize("case", ["unknown tag", "another scenario", "unreachable", "energy plan", "no security"])
def test_bad_input_is_one_line_exit_2_and_nothing_is_written(case, glue, tmp_path):
    run(setpoints(glue.url, DEFAULTS))
    endpoint = glue.url
    args = ["--insecure"]
    r = rec({"dispenser.speed_mm_s": 33})
    if case == "unknown tag":
        r = rec({"dispenser.speed_mm_s": 33, "dispenser.flow": 2})
    elif case == "another scenario":
        r = r.model_copy(update={"scenario_fingerprint": "sha256:" + "0" * 64})
    elif case == "unreachable":
        endpoint = "opc.tcp://127.0.0.1:9/twinopt/"
    elif case == "energy plan":
        r = r.model_copy(update={"kind": "energy_plan"})
    else:
        args = []
    done = run_cli("push", str(_saved(tmp_path, r)), "--endpoint", endpoint, *args, "--data", str(tmp_path / "d"))
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("twinopt: error: ")
    assert not (tmp_path / "d").exists()
    assert run(setpoints(glue.url)) == DEFAULTS


def test_the_cli_prints_the_plan_refuses_without_approval_and_pushes_with_it(glue, tmp_path):
    run(setpoints(glue.url, DEFAULTS))
    path = _saved(tmp_path, rec({"dispenser.pressure_bar": 4.1, "dispenser.temperature_c": 42}))
    base = ["push", str(path), "--endpoint", glue.url, "--insecure", "--data", str(tmp_path), "--user", "alice",
            "--dwell-scale", "0"]
    dry = run_cli(*base, "--dry-run")
    assert dry.returncode == 0 and "nothing written" in dry.stdout
    assert "3 → 4.1 bar" in dry.stdout and "needs --approved-by" in dry.stdout
    refused = run_cli(*base)
    assert refused.returncode == 2 and "needs approval: dispenser.pressure_bar, dispenser.temperature_c" in \
        refused.stderr and len(refused.stderr.splitlines()) == 1
    ok = run_cli(*base, "--approved-by", "carol")
    assert ok.returncode == 0 and ok.stdout.startswith("verified: "), ok.stderr
    assert run(setpoints(glue.url)) == {**DEFAULTS, "dispenser.pressure_bar": 4.1, "dispenser.temperature_c": 42.0}
    again = run_cli(*base, "--approved-by", "carol")
    assert again.returncode == 0 and again.stdout.startswith("already pushed: ")


def test_a_rolled_back_push_exits_4(tmp_path):
    faults = faults_file(tmp_path, "reject_writes: [dispenser.speed_mm_s]\n")
    path = _saved(tmp_path, rec(BIG))
    with plant("glue_dispensing", "--port", "0", "--speed", "600", "--insecure", "--faults", str(faults)) as p:
        done = run_cli("push", str(path), "--endpoint", p.url, "--insecure", "--data", str(tmp_path),
                       "--dwell-scale", "0")
        assert run(setpoints(p.url)) == DEFAULTS
    assert done.returncode == 4 and done.stderr.startswith("twinopt: equipment: rolled back: ")
    assert len(done.stderr.splitlines()) == 1


def test_a_push_over_basic256sha256_with_a_password(tmp_path):
    users = tmp_path / "users.txt"
    env = {**os.environ, "TWINOPT_PLANT_PASSWORD": "correct horse battery", "PLC_PW": "correct horse battery"}
    subprocess.run([sys.executable, "-m", "studio.cli", "plant", "--users", str(users), "--add-user", "alice"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    path = _saved(tmp_path, rec({"dispenser.speed_mm_s": 35}))
    with plant("glue_dispensing", "--port", "0", "--speed", "600", "--users", str(users), "--cert-dir",
               str(tmp_path / "pki")) as p:
        base = [sys.executable, "-m", "studio.cli", "push", str(path), "--endpoint", p.url, "--username", "alice",
                "--password-env", "PLC_PW", "--cert-dir", str(tmp_path / "client"), "--data", str(tmp_path)]
        for mode in ("Sign", "SignAndEncrypt"):
            done = subprocess.run([*base, "--mode", mode, "--dry-run"], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0 and "nothing written" in done.stdout, done.stderr
        done = subprocess.run(base, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and done.stdout.startswith("verified"), done.stderr
        wrong = subprocess.run([*base, "--data", str(tmp_path / "other")], cwd=ROOT,
                               env={**env, "PLC_PW": "wrong password"}, capture_output=True, text=True, timeout=120)
        assert wrong.returncode == 2 and "cannot connect" in wrong.stderr
        insecure = run_cli("push", str(path), "--endpoint", p.url, "--insecure", "--data", str(tmp_path / "x"))
        assert insecure.returncode == 2  # the secure plant offers no insecure endpoint


def test_optimize_then_push_to_the_plant_gives_the_predicted_throughput(tmp_path):
    out = tmp_path / "rec.json"
    done = run_cli("optimize", "glue_dispensing", "--budget", "40", "--replications", "3", "--top-k", "3",
                   "--final-replications", "6", "--seed", "0", "--json", str(out), "-q")
    assert done.returncode == 0, done.stderr
    r = Recommendation.from_json(out.read_text())
    faults = faults_file(tmp_path, "")
    speed = 1200
    with plant("glue_dispensing", "--port", "0", "--speed", str(speed), "--insecure", "--faults", str(faults)) as p:
        base = ["push", str(out), "--endpoint", p.url, "--insecure", "--data", str(tmp_path), "--user", "alice",
                "--dwell-scale", str(1 / speed)]
        dry = run_cli(*base, "--dry-run")
        assert dry.returncode == 0 and "nothing written" in dry.stdout, dry.stderr
        pushed = run_cli(*base, "--approved-by", "carol")
        assert pushed.returncode == 0 and pushed.stdout.startswith("verified"), pushed.stderr

        async def measure() -> float:
            live = await setpoints(p.url)
            for station, params in r.payload.items():
                for param, value in params.items():
                    res = ENV.tag(f"{station}.{param}").resolution
                    assert abs(live[f"{station}.{param}"] - value) <= res / 2 + 1e-9
            async with Client(p.url, timeout=5) as c:
                good, clock = c.get_node("ns=2;s=line.good"), c.get_node("ns=2;s=line.sim_time")
                g0, t0 = await good.read_value(), await clock.read_value()
                await asyncio.sleep(4 * 3600 / speed)  # four simulated hours
                g1, t1 = await good.read_value(), await clock.read_value()
            return (g1 - g0) / (t1 - t0)

        measured = run(measure())
    predicted, base_kpi = r.predicted["throughput"], r.baseline["throughput"]
    # one 4 h window of one replication: the twin's CI, widened to 6 % for that window's own spread
    assert abs(measured - predicted.mean) <= max(predicted.half_width, 0.06 * predicted.mean), (measured, predicted)
    assert measured > base_kpi.mean + base_kpi.half_width
    assert run_cli("audit", "verify", "--log", str(tmp_path / "audit.jsonl")).returncode == 0
