"""Following an energy plan (``twinopt push PLAN --follow``) against real virtual plants on loopback:
in-process ``VirtualPlant`` objects (so the test watches the twin itself: its stations' modes and
machine states at simulated instants) and ``twinopt plant`` / ``twinopt push`` processes for what
only a process shows (Ctrl-C, exit codes)."""
from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, SCENARIOS, run_cli

pytest.importorskip("asyncua")
from asyncua import Client, ua  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_plant import plant  # noqa: E402

from optimizers.recommendation import Provenance, Recommendation, fingerprint  # noqa: E402
from studio.gateway import AuditLog  # noqa: E402
from studio.gateway.faults import Faults  # noqa: E402
from studio.gateway.follow import _write_modes, follow  # noqa: E402
from studio.gateway.modes import CheckedModes, ModeChange, ModeCommand, check_slot, timeline  # noqa: E402
from studio.gateway.plant import PlantSecurity, VirtualPlant  # noqa: E402
from studio.gateway.push import PushSecurity, Timing  # noqa: E402
from twins.energy import STATES  # noqa: E402
from twins.equipment import MODE_CODES, Condition  # noqa: E402
from twins.errors import EnvelopeViolation, ScenarioError  # noqa: E402
from twins.loader import load_scenario, parse_yaml, scenario_from_data  # noqa: E402

REFLOW = load_scenario("smt_reflow_energy")
ENV = REFLOW.equipment
SLOT = 900.0  # s: a quarter of an hour, the energy plans' default slot
SPEED = 3600.0  # a simulated hour per wall second: a slot every 0.25 s
FAST = Timing(call_s=2, readback_s=1, settle_s=0.2, rollback_s=5)
INSECURE = PushSecurity.insecure()


def energy_plan(states: dict[str, list[str]], *, scenario: Any = REFLOW, slot: float = SLOT) -> Recommendation:
    """An energy-plan recommendation in plan_payload's format: per station its mode per slot."""
    n = len(next(iter(states.values())))
    payload = {"stations": list(states), "time_unit": "s", "slot": slot, "horizon": slot * n, "start_clock": "06:00",
               "states": states}
    return Recommendation(kind="energy_plan", scenario=scenario.name, scenario_fingerprint=fingerprint(scenario),
                          payload=payload, provenance=Provenance(method="test"))


def run(coro: Any, timeout: float = 60) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


class Watcher:
    """The twin's reflow station seen from inside the plant every few milliseconds: each change of
    its mode with the simulated instant, and the machine states it had in each mode."""

    def __init__(self, p: VirtualPlant):
        self.plant, self.changes, self.states = p, [], {}
        self.on_mode: dict[str, Any] = {}

    async def watch(self) -> None:
        station, last = self.plant.line.station("reflow"), None
        while True:
            now, mode = self.plant.line.env.now, station.mode
            if mode != last:
                self.changes.append((now, mode))
                last = mode
                hook = self.on_mode.get(mode)
                if hook is not None:
                    hook()
            counts = [0] * len(STATES)
            for m in station.machines:
                counts[m.current_state(now)] += 1
            self.states.setdefault(mode, set()).add(tuple(counts))
            await asyncio.sleep(0.003)


async def _following(states: dict[str, list[str]], tmp: Path, *, faults: Faults | None = None,
                     again: bool = False):
    async with VirtualPlant(REFLOW, security=PlantSecurity.insecure(), speed=SPEED, port=0, faults=faults,
                            on_event=lambda _: None) as p:
        watcher = Watcher(p)
        task = asyncio.create_task(watcher.watch())
        audit = AuditLog(tmp / "audit.jsonl")
        rec = energy_plan(states)
        try:
            result = await follow(rec, endpoint=p.endpoint, scenario=REFLOW, audit=audit, security=INSECURE,
                                  user="alice", timing=FAST, reconnect_s=10)
            second = None
            if again:
                writes = p.accepted_writes
                second = await follow(rec, endpoint=p.endpoint, scenario=REFLOW, audit=audit, security=INSECURE,
                                      user="alice", timing=FAST)
                assert p.accepted_writes == writes
        finally:
            task.cancel()
        return result, second, watcher, p, audit


def test_a_followed_plan_switches_the_plant_at_its_slot_starts_and_the_twin_follows(tmp_path):
    result, second, watcher, p, audit = run(_following({"reflow": ["on", "standby", "off", "on"]}, tmp_path,
                                                       again=True))
    assert result.outcome == "completed" and result.commands_written == 3 and result.slots_done == 4
    t0 = watcher.changes[0][0]
    assert [m for _, m in watcher.changes] == ["on", "standby", "off", "on"]
    for k, (at, _) in enumerate(watcher.changes[1:], start=1):  # each within the first half of its slot
        assert t0 + k * SLOT <= at <= t0 + (k + 0.5) * SLOT, (k, at)
    standby, off, setup = STATES.index("standby"), STATES.index("off"), STATES.index("setup")
    assert any(c[standby] == 10 for c in watcher.states["standby"])  # the idle oven waits warm
    assert any(c[off] == 10 for c in watcher.states["off"])
    assert all(c[standby] == 0 for c in watcher.states["off"])
    assert p.station_modes() == {"reflow": "on"} and any(c[setup] == 10 for c in watcher.states["on"])  # start-up
    entries = audit.entries()
    commands = [e for e in entries if e["action"] == "command"]
    assert [(c["changes"][0]["old"], c["changes"][0]["new"], c["outcome"]) for c in commands] == \
        [(2, 1, "confirmed"), (1, 0, "confirmed"), (0, 2, "confirmed")]
    assert [e["outcome"] for e in entries if e["action"] == "follow"] == ["started", "completed", "already followed"]
    assert second.outcome == "already followed" and audit.verify() == []


def test_a_dropped_connection_is_survived_and_the_plan_completes_without_writing_twice(tmp_path):
    result, _, watcher, p, audit = run(_following({"reflow": ["on", "standby", "off", "standby"]}, tmp_path,
                                                  faults=Faults(drop_after_writes=1)))
    assert result.outcome == "completed", result
    assert [m for _, m in watcher.changes] == ["on", "standby", "off", "standby"]
    assert p.accepted_writes == 3  # the command whose read-back was cut off is confirmed, not written again
    actions = [(e["action"], e["outcome"]) for e in audit.entries()]
    assert ("reconnect", "reconnected") in actions
    assert [e["detail"] for e in audit.entries() if e["action"] == "command"][0] == "read back after a reconnect"


def test_a_slot_refused_when_its_time_comes_writes_nothing_and_leaves_the_safe_mode(tmp_path):
    async def go():
        async with VirtualPlant(REFLOW, security=PlantSecurity.insecure(), speed=SPEED, port=0,
                                faults=Faults(signals={"reflow.alarm": False}), on_event=lambda _: None) as p:
            watcher = Watcher(p)
            # the operator switches the oven to manual once it is in standby: the permissive turns false
            watcher.on_mode["standby"] = lambda: p.faults.signals.__setitem__("reflow.mode_auto", False)
            task = asyncio.create_task(watcher.watch())
            audit = AuditLog(tmp_path / "audit.jsonl")
            try:
                result = await follow(energy_plan({"reflow": ["on", "standby", "off", "on"]}), endpoint=p.endpoint,
                                      scenario=REFLOW, audit=audit, security=INSECURE, user="alice", timing=FAST)
            finally:
                task.cancel()
            return result, watcher, p, audit

    result, watcher, p, audit = run(go())
    assert result.outcome.startswith("refused: slot 2: ") and "permissive" in result.outcome
    assert [m for _, m in watcher.changes] == ["on", "standby"]  # off never reached the oven
    assert p.accepted_writes == 1 and result.safe == (("reflow", "standby"),)
    refused = [e for e in audit.entries() if e["outcome"] == "refused"]
    assert refused[0]["action"] == "command" and refused[0]["changes"] == [{"tag": "reflow.mode", "old": 1.0,
                                                                            "new": 0.0}]
    assert refused[-1]["action"] == "follow"


def test_the_plant_checks_mode_commands_like_a_plc():
    async def go():
        faults = Faults(reject_writes=["reflow.mode_command"])
        async with VirtualPlant(REFLOW, security=PlantSecurity.insecure(), speed=60, port=0) as p, \
                Client(p.endpoint, timeout=5) as c:
            command = c.get_node("ns=2;s=reflow.mode_command")
            codes = {}
            for name, variant in (("standby", ua.Variant(1, ua.VariantType.Int32)),
                                  ("code 7", ua.Variant(7, ua.VariantType.Int32)),
                                  ("a Double", ua.Variant(0.0, ua.VariantType.Double))):
                try:
                    await command.write_value(ua.DataValue(variant))
                    codes[name] = "Good"
                except ua.UaStatusCodeError as err:
                    codes[name] = ua.StatusCode(err.code).name
            try:
                await c.get_node("ns=2;s=reflow.mode").write_value(ua.DataValue(ua.Variant(0, ua.VariantType.Int32)))
            except ua.UaStatusCodeError as err:
                codes["mode node"] = ua.StatusCode(err.code).name
            mode = await c.get_node("ns=2;s=reflow.mode").read_value()
            modes = p.station_modes()
        async with VirtualPlant(REFLOW, security=PlantSecurity.insecure(), speed=60, port=0, faults=faults) as p, \
                Client(p.endpoint, timeout=5) as c:
            try:
                await c.get_node("ns=2;s=reflow.mode_command").write_value(
                    ua.DataValue(ua.Variant(0, ua.VariantType.Int32)))
            except ua.UaStatusCodeError as err:
                codes["rejected"] = ua.StatusCode(err.code).name
            still = p.station_modes()
        return codes, mode, modes, still

    codes, mode, modes, still = run(go())
    assert codes == {"standby": "Good", "code 7": "BadOutOfRange", "a Double": "BadTypeMismatch",
                     "mode node": "BadNotWritable", "rejected": "BadDeviceFailure"}
    assert mode == MODE_CODES["standby"] and modes == {"reflow": "standby"} and still == {"reflow": "on"}


# ------------------------------------------------------------------------------- the command line

@pytest.fixture(scope="module")
def oven(tmp_path_factory: pytest.TempPathFactory):
    faults = tmp_path_factory.mktemp("faults") / "faults.yaml"
    faults.write_text("signals: {reflow.alarm: false}\n")
    with plant("smt_reflow_energy", "--port", "0", "--speed", "600", "--insecure", "--faults", str(faults)) as p:
        yield p


def read_mode(url: str) -> int:
    async def go() -> int:
        async with Client(url, timeout=5) as c:
            return int(await c.get_node("ns=2;s=reflow.mode").read_value())
    return run(go())


def _saved(folder: Path, r: Recommendation) -> Path:
    path = folder / f"plan-{r.id}.json"
    path.write_text(r.to_json())
    return path


def test_ctrl_c_leaves_the_oven_in_its_safe_mode_and_exits_cleanly(oven, tmp_path):
    path = _saved(tmp_path, energy_plan({"reflow": ["on"] + ["off"] * 39}))  # 10 simulated hours: a minute
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "push", str(path), "--follow", "--endpoint",
                             oven.url, "--insecure", "--data", str(data), "--user", "alice"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while read_mode(oven.url) != MODE_CODES["off"]:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130, err
    assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("twinopt: stopped: ") and err.strip().endswith("reflow standby")
    assert read_mode(oven.url) == MODE_CODES["standby"]
    audit = AuditLog(data / "audit.jsonl")
    assert audit.verify() == []
    assert [e["outcome"] for e in audit.entries() if e["action"] == "follow"] == ["started", "stopped"]
    last = [e for e in audit.entries() if e["action"] == "command"][-1]
    assert last["changes"] == [{"tag": "reflow.mode", "old": 0.0, "new": 1.0}] and "safe modes" in last["detail"]


def test_the_dry_run_prints_the_timeline_and_writes_nothing(oven, tmp_path):
    before = read_mode(oven.url)
    path = _saved(tmp_path, energy_plan({"reflow": ["on", "standby", "standby", "off"]}))
    done = run_cli("push", str(path), "--follow", "--dry-run", "--endpoint", oven.url, "--insecure",
                   "--data", str(tmp_path / "d"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "nothing written" in lines[0]
    assert [line.split() for line in lines[2:]] == [["0", "0", "06:00", "reflow", "on"],
                                                   ["1", "900", "06:15", "reflow", "standby"],
                                                   ["3", "2700", "06:45", "reflow", "off"]]
    assert not (tmp_path / "d").exists() and read_mode(oven.url) == before


@pytest.mark.parametrize("case", ["another scenario", "undeclared station", "mode not allowed", "without --follow"])
def test_bad_plans_are_one_line_exit_2_and_nothing_is_written(case, oven, tmp_path):
    before = read_mode(oven.url)
    r = energy_plan({"reflow": ["standby", "off"]})
    extra: list[str] = ["--follow"]
    if case == "another scenario":
        r = r.model_copy(update={"scenario_fingerprint": "sha256:" + "0" * 64})
    elif case == "undeclared station":
        r = energy_plan({"oven": ["standby", "off"]})
    elif case == "mode not allowed":
        envelope = tmp_path / "envelope.yaml"
        envelope.write_text("modes: [{station: reflow, allowed: [on, standby]}]\n")
        extra += ["--envelope", str(envelope)]
    else:
        extra = []
    done = run_cli("push", str(_saved(tmp_path, r)), *extra, "--endpoint", oven.url, "--insecure",
                   "--data", str(tmp_path / "d"))
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("twinopt: error: ")
    assert {"another scenario": "another scenario", "undeclared station": "undeclared station 'oven'",
            "mode not allowed": "'off' is not allowed", "without --follow": "add --follow"}[case] in done.stderr
    assert not (tmp_path / "d").exists() and read_mode(oven.url) == before


# ------------------------------------------------------------------------------- the checker

LIVE_NAMES = ("reflow.mode", "reflow.mode_auto", "reflow.alarm", "reflow.buffer_level")
mode_names = st.sampled_from(["on", "standby", "off"])


@settings(max_examples=150, deadline=None)
@given(plan=st.lists(mode_names, min_size=1, max_size=8), k=st.integers(0, 7),
       live=st.fixed_dictionaries({"reflow.mode": st.sampled_from([0.0, 1.0, 2.0, 3.0, math.nan]),
                                   "reflow.mode_auto": st.sampled_from([0.0, 1.0, math.nan]),
                                   "reflow.alarm": st.sampled_from([0.0, 1.0]),
                                   "reflow.buffer_level": st.sampled_from([0.0, 1.0, 2.0])}),
       allowed=st.lists(mode_names, min_size=1, max_size=3, unique=True),
       changes=st.lists(st.floats(0, 7200), max_size=6), now=st.floats(0, 7200))
def test_no_disallowed_or_unpermitted_mode_command_is_ever_checked(plan, k, live, allowed, changes, now):
    """Random plans, live states and histories: whatever the checker lets through is allowed by the
    envelope, permitted now, keeps the interlock, respects the dwell and the hourly switch limit."""
    env = ENV.model_copy(update={"modes": [ENV.modes[0].model_copy(update={"allowed": allowed,
                                                                            "safe_mode": allowed[0]})]})
    k = k % len(plan)
    full = energy_plan({"reflow": ["on" if m not in allowed else m for m in plan]})
    if any(m not in allowed for m in full.payload["states"]["reflow"]):
        return  # refused offline: bad input
    tl = timeline(full, REFLOW, env)
    history = [ModeChange("reflow", t, "on", "standby") for t in sorted(changes) if t <= now]
    verdict = check_slot(tl, k, live, history, envelope=env, now=now)
    assert (verdict.commands is None) == bool(verdict.violations)
    if verdict.commands is None:
        return
    spec = env.modes[0]
    for c in verdict.commands.commands:
        assert c.mode in allowed and c.mode == tl.mode("reflow", k) and MODE_CODES[c.mode] != live["reflow.mode"]
        assert Condition(env.permissives[0], env.names)(live)
        assert Condition(env.interlocks[0], env.names)({**live, "reflow.mode": float(c.code)})
        if history:
            assert now - history[-1].time >= spec.min_dwell_s - 1e-6
        assert sum(1 for h in history if h.time > now - 3600) + 1 <= spec.max_switches_per_hour
    if not verdict.commands.commands:
        assert live["reflow.mode"] == MODE_CODES[tl.mode("reflow", k)]


def test_only_the_checker_makes_mode_commands_and_the_writer_takes_nothing_else():
    with pytest.raises(EnvelopeViolation):
        CheckedModes(None, None, None, (ModeCommand("reflow", "ns=2;s=reflow.mode_command", "off", 0, "on"),), 0.0,
                     seal="0" * 64)
    tl = timeline(energy_plan({"reflow": ["on", "off"]}), REFLOW)
    ok = check_slot(tl, 1, {"reflow.mode": 2, "reflow.mode_auto": 1, "reflow.alarm": 0, "reflow.buffer_level": 0},
                    envelope=ENV, now=0.0)
    assert ok.commands is not None and [c.mode for c in ok.commands.commands] == ["off"]
    forged = object.__new__(CheckedModes)
    object.__setattr__(forged, "commands", ok.commands.commands)
    with pytest.raises(EnvelopeViolation):
        asyncio.run(_write_modes(None, forged))  # type: ignore[arg-type]
    with pytest.raises(EnvelopeViolation):
        check_slot(object.__new__(type(tl)), 0, {}, envelope=ENV, now=0.0)


def test_an_equipment_section_may_declare_modes_only_and_is_checked_against_the_scenario():
    data = parse_yaml((SCENARIOS / "smt_reflow_energy.yaml").read_text())[0]
    data["equipment"] = {"modes": [{"station": "reflow"}]}
    eq = scenario_from_data(data).equipment
    assert eq.modes[0].safe_mode == "standby" and eq.names == ("reflow.mode",)
    assert eq.node_of("reflow.mode") == "ns=2;s=reflow.mode" and eq.modes[0].node_id == "ns=2;s=reflow.mode_command"
    for bad in ({"modes": [{"station": "oven"}]}, {"modes": [{"station": "reflow", "allowed": ["on"]}]},
                {"signals": [{"name": "reflow.alarm"}]}):
        data["equipment"] = bad
        with pytest.raises(ScenarioError):
            scenario_from_data(data)


def test_the_shipped_energy_case_declares_the_oven_modes():
    spec = ENV.station_modes("reflow")
    assert spec is not None and spec.safe_mode == "standby" and set(spec.allowed) == {"on", "standby", "off"}
    assert json.loads(json.dumps(REFLOW.model_dump(mode="json")))["equipment"]["modes"][0]["station"] == "reflow"
