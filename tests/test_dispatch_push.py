"""Schedules published as per-station dispatch lists: ``twinopt recommend schedule ft06`` →
``twinopt push`` → ``twinopt plant ft06 --hold`` (a real server on loopback), which then processes
every machine's jobs in the published order; faults roll every list back; bad input writes nothing."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

pytest.importorskip("asyncua")
from asyncua import Client, ua  # noqa: E402
from test_plant import plant  # noqa: E402

from optimizers.recommendation import Recommendation  # noqa: E402

STATIONS = [f"M{m}" for m in range(6)]


def run(coro: Any, timeout: float = 60) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


async def read(url: str, names: list[str]) -> dict[str, Any]:
    async with Client(url, timeout=5) as c:
        return {n: await c.get_node(f"ns=2;s={n}").read_value() for n in names}


async def write_list(url: str, station: str, names: list[str]) -> None:
    async with Client(url, timeout=5) as c:
        await c.get_node(f"ns=2;s={station}.dispatch_list").write_value(
            ua.DataValue(ua.Variant(names, ua.VariantType.String)))


def lists(url: str) -> dict[str, list[str]]:
    got = run(read(url, [f"{st}.dispatch_list" for st in STATIONS]))
    return {n.partition(".")[0]: list(v or []) for n, v in got.items()}


@pytest.fixture(scope="module")
def ft06_rec(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Recommendation]:
    path = tmp_path_factory.mktemp("rec") / "ft06.json"
    done = run_cli("recommend", "schedule", "ft06", "--solver", "cpsat", "--time-limit", "5", "--out", str(path))
    assert done.returncode == 0, done.stderr
    return path, Recommendation.from_json(path.read_text())


@pytest.fixture(scope="module")
def held() -> Iterator[Any]:
    with plant("ft06", "--hold", "--port", "0", "--speed", "3000", "--insecure") as p:
        yield p


def expected(rec: Recommendation) -> dict[str, list[str]]:
    return {st: [f"J{j}" for j in jobs] for st, jobs in rec.payload["sequences"].items()}


def test_a_published_schedule_is_what_the_plant_processes_machine_by_machine(ft06_rec, tmp_path):
    path, rec = ft06_rec
    with plant("ft06", "--hold", "--port", "0", "--speed", "3000", "--insecure") as p:
        base = ["push", str(path), "--endpoint", p.url, "--insecure", "--data", str(tmp_path), "--user", "alice"]
        dry = run_cli(*base, "--dry-run")
        assert dry.returncode == 0 and "6 of 6 dispatch lists change" in dry.stdout and "nothing written" in dry.stdout
        assert lists(p.url) == {st: [] for st in STATIONS} and not (tmp_path / "audit.jsonl").exists()
        done = run_cli(*base)
        assert done.returncode == 0 and done.stdout.startswith("verified: "), done.stderr
        assert lists(p.url) == expected(rec)
        run(_release(p.url))
        after = run(_until_done(p.url))
        assert {st: list(after[f"{st}.dispatched"]) for st in STATIONS} == expected(rec)
        assert after["line.last_exit"] == pytest.approx(rec.provenance.extra["replayed_makespan"], abs=1e-9)
        again = run_cli(*base)
        assert again.returncode == 0 and again.stdout.startswith("already pushed: ")
    entries = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(e["action"], e["outcome"]) for e in entries] == [("write", "confirmed"), ("push", "verified"),
                                                               ("push", "already pushed")]
    assert {c["tag"]: c["new"] for c in entries[0]["changes"]} == {f"{st}.dispatch_list": v
                                                                   for st, v in expected(rec).items()}
    assert run_cli("audit", "verify", "--log", str(tmp_path / "audit.jsonl")).returncode == 0


async def _release(url: str) -> None:
    async with Client(url, timeout=5) as c:
        await c.get_node("ns=2;s=line.hold").write_value(ua.DataValue(ua.Variant(False, ua.VariantType.Boolean)))


async def _until_done(url: str) -> dict[str, Any]:
    names = ["line.good", "line.last_exit", *(f"{st}.dispatched" for st in STATIONS)]
    while True:
        got = await read(url, names)
        if got["line.good"] == 6 and all(len(got[f"{st}.dispatched"] or []) == 6 for st in STATIONS):
            return got
        await asyncio.sleep(0.1)


def test_an_empty_list_returns_a_station_to_its_dispatch_rule_and_a_bad_list_is_refused(held):
    run(write_list(held.url, "M0", ["J1", "J0"]))
    got = run(read(held.url, ["M0.dispatch_remaining", "M0.dispatch_next"]))
    assert got == {"M0.dispatch_remaining": ["J1", "J0"], "M0.dispatch_next": "J1"}
    for bad in (["J9"], ["J0", "nope"]):
        with pytest.raises(ua.UaStatusCodeError):
            run(write_list(held.url, "M0", bad))
    assert lists(held.url)["M0"] == ["J1", "J0"]
    run(write_list(held.url, "M0", []))
    assert lists(held.url)["M0"] == [] and run(read(held.url, ["M0.dispatch_next"]))["M0.dispatch_next"] == ""


@pytest.mark.parametrize("fault", ["reject_writes: [M3.dispatch_list]\n", "drop_after_writes: 2\n"])
def test_a_fault_mid_publish_leaves_every_list_as_it_was_rolled_back(fault, ft06_rec, tmp_path):
    path, _ = ft06_rec
    faults = tmp_path / "faults.yaml"
    faults.write_text(fault)
    with plant("ft06", "--hold", "--port", "0", "--speed", "3000", "--insecure", "--faults", str(faults)) as p:
        before = {**{st: [] for st in STATIONS}, "M5": ["J3", "J2"]}
        run(write_list(p.url, "M5", before["M5"]))
        done = run_cli("push", str(path), "--endpoint", p.url, "--insecure", "--data", str(tmp_path),
                       "--settle", "0.5", "--readback-timeout", "1")
        assert lists(p.url) == before
    assert done.returncode == 4 and done.stderr.startswith("twinopt: equipment: rolled back: "), done.stderr
    outcomes = [json.loads(line)["outcome"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert outcomes[-1] == "rolled back"


@pytest.mark.parametrize("case", ["another scenario", "not a permutation", "unknown station", "setpoint plant"])
def test_bad_schedule_input_is_one_line_exit_2_and_nothing_is_written(case, ft06_rec, held, tmp_path):
    _, rec = ft06_rec
    payload = json.loads(json.dumps(rec.payload))
    endpoint = held.url
    if case == "another scenario":
        rec = rec.model_copy(update={"scenario_fingerprint": "sha256:" + "0" * 64})
    elif case == "not a permutation":
        payload["sequences"]["M0"] = [0, 0, 1, 2, 3, 4]
    elif case == "unknown station":
        payload["sequences"]["M9"] = [0]
    rec = rec.model_copy(update={"payload": payload})
    path = tmp_path / "rec.json"
    path.write_text(rec.to_json())
    before = lists(held.url)
    args = ["--scenario", "glue_dispensing"] if case == "setpoint plant" else []
    done = run_cli("push", str(path), "--endpoint", endpoint, "--insecure", *args, "--data", str(tmp_path / "d"))
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("twinopt: error: ")
    assert not (tmp_path / "d").exists()
    assert lists(held.url) == before


HANDSHAKE = """  handshake:
    staging: "ns=2;s=Recipe.Staged.{tag}"
    apply_object: "ns=2;s=Recipe"
    apply_method: "ns=2;s=Recipe.Apply"
    heartbeat: "ns=2;s=Gw.Beat"
    push_active: "ns=2;s=Gw.Active"
"""


def _glue_with(tmp_path: Path, handshake: str) -> Path:
    from twins.shipped import shipped_scenario

    text = shipped_scenario("glue_dispensing").read_text()  # type: ignore[union-attr]
    path = tmp_path / "glue_dispensing.yaml"
    path.write_text(text.replace("\nequipment:\n", "\nequipment:\n" + handshake, 1))
    return path


def test_a_push_uses_the_handshake_nodes_the_envelope_declares(tmp_path):
    from test_push import DEFAULTS, rec, setpoints

    scenario = _glue_with(tmp_path, HANDSHAKE)
    faults = tmp_path / "faults.yaml"
    faults.write_text("signals: {dispenser.alarm: false}\n")
    r = rec({"dispenser.speed_mm_s": 33.0})
    path = tmp_path / "rec.json"
    path.write_text(r.to_json())
    with plant(str(scenario), "--port", "0", "--speed", "600", "--insecure", "--faults", str(faults)) as p:
        run(setpoints(p.url, DEFAULTS))
        got = run(read(p.url, ["Recipe.Staged.dispenser.speed_mm_s", "Gw.Beat", "Gw.Active"]))
        assert got["Gw.Active"] is False
        done = run_cli("push", str(path), "--endpoint", p.url, "--insecure", "--staging", "--scenario", str(scenario),
                       "--data", str(tmp_path), "--dwell-scale", "0")
        assert done.returncode == 0 and done.stdout.startswith("verified: "), done.stderr
        after = run(read(p.url, ["Recipe.Staged.dispenser.speed_mm_s", "Gw.Beat", "dispenser.speed_mm_s"]))
    assert after["Recipe.Staged.dispenser.speed_mm_s"] == 33.0 and after["dispenser.speed_mm_s"] == 33.0
    assert after["Gw.Beat"] > got["Gw.Beat"]  # the gateway beat the declared heartbeat


def test_a_bad_handshake_node_is_a_one_line_error_with_its_line_and_field(tmp_path):
    scenario = _glue_with(tmp_path, '  handshake:\n    staging: "ns=2;s=staged"\n')
    done = run_cli("run", str(scenario), "--replications", "1")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "glue_dispensing.yaml:94: equipment.handshake.staging" in done.stderr and "{tag}" in done.stderr
