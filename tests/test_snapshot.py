"""``twinopt snapshot``: a running ``twinopt plant`` read over OPC UA into a plant-state file, and a
what-if from it (docs/state.md, docs/plant.md) — the twin at t = 0 holds exactly the plant's parts,
and a run from the snapshot converges to the steady state of a normal run."""
from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from conftest import run_cli

pytest.importorskip("asyncua")
from asyncua import Client, ua  # noqa: E402
from test_plant import client, plant, run  # noqa: E402

from studio.gateway.plant import PlantSecurity, VirtualPlant  # noqa: E402
from studio.gateway.push import PushSecurity  # noqa: E402
from studio.gateway.snapshot import read_snapshot, snapshot  # noqa: E402
from twins.errors import InputError  # noqa: E402
from twins.loader import load_scenario  # noqa: E402
from twins.model import Line  # noqa: E402
from twins.state import PlantState, load_state, state_from_line  # noqa: E402

SNAPPED = re.compile(r"^snapshot: smt_line at \d\d:\d\d \(t = (\S+) s, WIP (\d+), (\d+) waiting\) -> ")


async def _sim_time(url: str) -> float:
    async with client(url) as c:
        return float(await c.get_node("ns=2;s=line.sim_time").read_value())


def _wait_until(url: str, t: float) -> None:
    deadline = time.monotonic() + 30
    while run(_sim_time(url)) < t:
        assert time.monotonic() < deadline, "the plant's clock does not advance"
        time.sleep(0.2)


def _settle(line: Line) -> None:
    """Process every event due at t = 0 (machines take up their start state), without advancing."""
    while line.env.peek() == 0.0:
        line.env.step()


def _working(state: PlantState) -> dict[str, list[tuple[int, str, str | None, float | None]]]:
    """Per station, the machines at work or holding a part: (index, state, product, time left)."""
    return {name: [(k, m.state, m.product, m.remaining) for k, m in enumerate(st.machines)
                   if m.state not in ("idle", "standby", "off")] for name, st in state.stations.items()
            if any(m.state not in ("idle", "standby", "off") for m in st.machines)}


def test_snapshot_of_a_running_plant_starts_a_what_if_with_its_wip_that_converges(tmp_path):
    sc = load_scenario("smt_line")
    out = tmp_path / "state.json"
    with plant("smt_line", "--port", "0", "--speed", "3000", "--insecure") as p:
        _wait_until(p.url, 3 * 3600)  # three simulated hours: the line is loaded
        r = run_cli("snapshot", "--endpoint", p.url, "--insecure", "--out", str(out))  # scenario: the plant's
        assert r.returncode == 0, r.stderr
        # the same read, in process: the state and the plant's own line.wip of the same instant
        snap = run(read_snapshot(p.url, scenario=sc, security=PushSecurity.insecure()))
    m = SNAPPED.match(r.stdout)
    assert m is not None, r.stdout
    assert float(m.group(1)) > 3 * 3600

    # (a) the file is a plant state of the scenario (fingerprint included)
    state = load_state(out, sc)
    assert state.fingerprint is not None and state.time_of_day is not None
    waiting = {name: st.waiting() for name, st in state.stations.items()}
    assert sum(map(len, waiting.values())) == int(m.group(3))
    assert sum(map(len, waiting.values())) > 0, "a loaded SMT line has parts waiting"

    # (b) the twin built from it holds, at t = 0, exactly the parts the file lists, buffer by buffer,
    # and as many parts in total as the plant's line.wip said in the same Read request: no tolerance
    # (the plant publishes the state nodes, line.sim_time and line.wip in one tick; the snapshot
    # reads them in one request and repeats a read that straddles two ticks)
    for state_, wip in ((state, int(m.group(2))), (snap.state, snap.wip)):
        line = Line(sc, seed=3, state=state_)
        # machines with work start exactly as the plant reported them (state, product, time left)
        assert _working(state_from_line(line)) == _working(state_)
        assert any(_working(state_).values()), "a loaded SMT line has machines at work"
        for st in line.stations:  # as built, before machines take parts at t = 0
            listed = state_.stations[st.name].waiting() if st.name in state_.stations else []
            assert [q.product.name for q in st.buffer.items] == listed, st.name
        assert line.wip == wip
        _settle(line)  # t = 0: idle machines take waiting parts (which stay in the line), sources release parts
        assert line.env.now == 0.0 and line.wip - line.arrivals == wip

    # (c) a what-if from the snapshot converges to the steady state of a normal run (same seed)
    outs = {}
    for name, extra in {"state": ("--from-state", str(out)), "normal": ()}.items():
        res = tmp_path / f"{name}.json"
        r = run_cli("run", "smt_line", *extra, "--replications", "5", "--seed", "1", "--json", str(res), "-q")
        assert r.returncode == 0, r.stderr
        outs[name] = json.loads(res.read_text())
    assert outs["state"]["from_state"] == str(out)
    a, b = outs["state"]["kpis"]["throughput"], outs["normal"]["kpis"]["throughput"]
    assert abs(a["mean"] - b["mean"]) <= a["half_width"] + b["half_width"], (a, b)


def test_snapshot_reads_the_setpoints_in_force_and_refuses_another_scenario():
    sc = load_scenario("glue_dispensing")

    async def go() -> tuple:
        async with VirtualPlant(sc, security=PlantSecurity.insecure(), speed=600, port=0) as vp:
            async with Client(vp.endpoint, timeout=5) as c:
                await c.get_node("ns=2;s=dispenser.pressure_bar").write_value(
                    ua.DataValue(ua.Variant(3.5, ua.VariantType.Double)))
            await asyncio.sleep(0.3)
            state = await snapshot(vp.endpoint, scenario=sc, security=PushSecurity.insecure())
            with pytest.raises(InputError, match="runs scenario 'glue_dispensing', not 'smt_line'"):
                await snapshot(vp.endpoint, scenario=load_scenario("smt_line"), security=PushSecurity.insecure())
            return state, vp.setpoints()

    state, live = run(go())
    assert state.setpoints["dispenser"]["pressure_bar"] == 3.5
    assert {f"{st}.{p}": v for st, values in state.setpoints.items() for p, v in values.items()} == live


def test_snapshot_of_an_unreachable_endpoint_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "state.json"
    r = run_cli("snapshot", "--endpoint", "opc.tcp://127.0.0.1:1/twinopt/", "--insecure", "--scenario", "smt_line",
                "--out", str(out), "--timeout", "2")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("twinopt: error: cannot connect to "), r.stderr
    assert not out.exists()
    r = run_cli("snapshot", "--endpoint", "opc.tcp://127.0.0.1:1/twinopt/", "--out", str(out))
    assert r.returncode == 2 and "--insecure" in r.stderr
