"""The virtual plant, started the way users start it (``twinopt plant … --port 0``) and driven by a
real asyncua client: typed tags, bounds, staging, faults, the watchdog and security."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, run_cli

pytest.importorskip("asyncua")
from asyncua import Client, ua  # noqa: E402
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256  # noqa: E402

from studio.gateway.faults import Faults  # noqa: E402
from studio.gateway.plant import PlantSecurity, PlantTag, VirtualPlant, plant_signals, plant_tags  # noqa: E402
from studio.gateway.security import ensure_certificate  # noqa: E402
from twins.energy import STATES  # noqa: E402
from twins.loader import load_scenario, scenario_from_data  # noqa: E402

READY = re.compile(r"^twinopt plant: serving \S+ at (opc\.tcp://127\.0\.0\.1:\d+/twinopt/) ")
CALL_S = 5  # timeout of every client request


class Plant:
    """A running ``twinopt plant`` process: its endpoint and what it wrote to stderr so far."""

    def __init__(self, proc: subprocess.Popen[str], url: str):
        self.proc, self.url = proc, url
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)


@contextmanager
def plant(*args: str, cwd: Path = ROOT) -> Iterator[Plant]:
    """Start ``twinopt plant ARGS`` and wait for its ready line; stop it with SIGTERM at the end."""
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "plant", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(30)
        match = READY.match(lines[0]) if lines else None
        if match is None:
            proc.kill()
            raise AssertionError(f"no ready line: {lines} {proc.stderr.read() if proc.stderr else ''}")
        running = Plant(proc, match.group(1))
        yield running
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, "".join(running.stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def run(coro: Awaitable[Any]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 60)
    return asyncio.run(bounded())


def client(url: str) -> Client:
    return Client(url, timeout=CALL_S)


async def read(c: Client, node: str) -> Any:
    return await c.get_node(node).read_value()


async def write(c: Client, node: str, value: Any, vtype: ua.VariantType) -> None:
    await c.get_node(node).write_value(ua.DataValue(ua.Variant(value, vtype)))


PRESSURE, SPEED, TEMP = "ns=2;s=dispenser.pressure_bar", "ns=2;s=dispenser.speed_mm_s", "ns=2;s=dispenser.temperature_c"
D = ua.VariantType.Double


@pytest.fixture(scope="module")
def glue() -> Iterator[Plant]:
    with plant("glue_dispensing", "--port", "0", "--speed", "600", "--insecure") as p:
        yield p


def test_the_plant_serves_typed_tags_and_its_counters_advance(glue):
    async def check() -> None:
        async with client(glue.url) as c:
            node = c.get_node(PRESSURE)
            assert await node.read_value() == 3.0
            assert await node.read_data_type_as_variant_type() == ua.VariantType.Double
            assert await read(c, "ns=2;s=line.time_unit") == "s"
            t0, w0, good0 = await read(c, "ns=2;s=line.sim_time"), time.monotonic(), await read(c, "ns=2;s=line.good")
            await asyncio.sleep(1.5)
            t1, w1, good1 = await read(c, "ns=2;s=line.sim_time"), time.monotonic(), await read(c, "ns=2;s=line.good")
            assert 400 < (t1 - t0) / (w1 - w0) < 800  # 600 simulated s per wall s (published every 50 ms)
            assert good1 > good0
            assert await read(c, "ns=2;s=dispenser.operations") > 0
            assert await read(c, "ns=2;s=line.energy_kwh") > 0
            states = [await read(c, f"ns=2;s=dispenser.state.{s}") for s in ("off", "idle", "setup", "busy",
                                                                               "blocked", "down", "standby")]
            assert sum(states) == await read(c, "ns=2;s=dispenser.machines") == 1
            assert re.match(r"^\d\d:\d\d:\d\d$", await read(c, "ns=2;s=line.clock"))
            assert await read(c, "ns=2;s=line.running") is True
            assert await read(c, "ns=2;s=dispenser.mode_auto") is True  # the equipment section's signals
            assert await read(c, "ns=2;s=dispenser.alarm") in (True, False)
            with pytest.raises(ua.uaerrors.BadNotWritable):
                await write(c, "ns=2;s=dispenser.alarm", False, ua.VariantType.Boolean)
    run(check())


def test_a_typed_write_takes_effect_in_the_running_twin(glue):
    async def check() -> None:
        async with client(glue.url) as c:
            await write(c, SPEED, 35.0, D)
            assert await read(c, SPEED) == 35.0
            assert await read(c, "ns=2;s=active.dispenser.speed_mm_s") == 35.0
            ops0 = await read(c, "ns=2;s=dispenser.operations")
            await asyncio.sleep(1.2)
            assert await read(c, "ns=2;s=dispenser.operations") > ops0
    run(check())


def test_wrong_types_out_of_bounds_values_and_read_only_nodes_are_refused(glue):
    async def check() -> None:
        async with client(glue.url) as c:
            before = await read(c, PRESSURE)
            with pytest.raises(ua.uaerrors.BadTypeMismatch):
                await write(c, PRESSURE, 3.5, ua.VariantType.Float)
            with pytest.raises(ua.uaerrors.BadTypeMismatch):
                await write(c, PRESSURE, 3, ua.VariantType.Int32)
            with pytest.raises(ua.uaerrors.BadOutOfRange):
                await write(c, PRESSURE, 9.0, D)
            with pytest.raises(ua.uaerrors.BadOutOfRange):
                await write(c, PRESSURE, float("nan"), D)
            assert await read(c, PRESSURE) == before == await read(c, "ns=2;s=active.dispenser.pressure_bar")
            with pytest.raises(ua.uaerrors.BadNotWritable):
                await write(c, "ns=2;s=line.good", 5, ua.VariantType.Int32)
            with pytest.raises(ua.uaerrors.BadNotWritable):
                await write(c, "ns=2;s=active.dispenser.pressure_bar", 3.5, D)
    run(check())


def test_apply_staged_applies_all_targets_or_none(glue):
    async def check() -> None:
        async with client(glue.url) as c:
            staging = c.get_node("ns=2;s=staging")
            apply = ua.NodeId("staging.ApplyStaged", 2)
            before = {n: await read(c, n) for n in (TEMP, PRESSURE)}
            await write(c, "ns=2;s=staging.dispenser.temperature_c", 44.0, D)
            await write(c, "ns=2;s=staging.dispenser.pressure_bar", 7.5, D)  # staged, checked at apply
            with pytest.raises(ua.uaerrors.BadOutOfRange):
                await staging.call_method(apply)
            assert {n: await read(c, n) for n in (TEMP, PRESSURE)} == before  # none applied
            await write(c, "ns=2;s=staging.dispenser.pressure_bar", 3.25, D)
            assert await staging.call_method(apply) == 2
            assert (await read(c, TEMP), await read(c, PRESSURE)) == (44.0, 3.25)
            assert await read(c, "ns=2;s=active.dispenser.temperature_c") == 44.0
            assert await staging.call_method(apply) == 0  # nothing staged any more
    run(check())


def test_faults_reject_delay_and_stale_read_back(tmp_path):
    faults = tmp_path / "faults.yaml"
    faults.write_text("reject_writes: [dispenser.temperature_c]\nwrite_latency_s: 0.5\nstale_readback_s: 1.0\n"
                      "signals: {dispenser.mode_auto: false, dispenser.alarm: true}\n")
    with plant("glue_dispensing", "--port", "0", "--speed", "600", "--insecure", "--faults", str(faults)) as p:
        async def check() -> None:
            async with client(p.url) as c:
                assert (await read(c, "ns=2;s=dispenser.mode_auto"), await read(c, "ns=2;s=dispenser.alarm")) == \
                    (False, True)  # forced signals
                with pytest.raises(ua.uaerrors.BadDeviceFailure):
                    await write(c, TEMP, 42.0, D)
                t0 = time.monotonic()
                await write(c, PRESSURE, 3.5, D)
                assert time.monotonic() - t0 >= 0.5  # write latency
                assert await read(c, PRESSURE) == 3.0  # stale: the old value still reads back
                assert await read(c, "ns=2;s=active.dispenser.pressure_bar") == 3.0
                await asyncio.sleep(1.2)
                assert await read(c, PRESSURE) == 3.5
                assert await read(c, TEMP) == 40.0
        run(check())


def test_the_plant_drops_the_connection_after_k_writes(tmp_path):
    faults = tmp_path / "faults.json"
    faults.write_text('{"drop_after_writes": 2}')
    with plant("glue_dispensing", "--port", "0", "--speed", "600", "--insecure", "--faults", str(faults)) as p:
        async def check() -> None:
            c = client(p.url)
            await c.connect()
            try:
                await write(c, PRESSURE, 3.25, D)
                await write(c, PRESSURE, 3.5, D)  # the 2nd accepted write is answered, then the line drops
                with pytest.raises((ConnectionError, ua.UaError, asyncio.TimeoutError, TimeoutError)):
                    for _ in range(3):
                        await write(c, SPEED, 31.0, D)
                        await asyncio.sleep(0.2)
            finally:
                try:
                    await c.disconnect()
                except Exception:  # noqa: BLE001 - the connection is gone already
                    pass
            async with client(p.url) as again:  # the plant itself lives on, once dropped is enough
                assert await read(again, PRESSURE) == 3.5
                await write(again, SPEED, 31.0, D)
                assert await read(again, SPEED) == 31.0
        run(check())
        assert any("dropped the client connection" in line for line in p.stderr)


def test_the_watchdog_reverts_to_the_last_confirmed_setpoints():
    with plant("glue_dispensing", "--port", "0", "--speed", "600", "--insecure", "--watchdog", "0.6") as p:
        async def check() -> None:
            async with client(p.url) as c:
                beat = c.get_node("ns=2;s=gateway.heartbeat")
                active = "ns=2;s=gateway.push_active"
                # a push that completes: confirmed at push_active true -> false
                await write(c, active, True, ua.VariantType.Boolean)
                for k in range(1, 5):
                    await beat.write_value(ua.DataValue(ua.Variant(k, ua.VariantType.UInt32)))
                    if k == 2:
                        await write(c, SPEED, 40.0, D)
                    await asyncio.sleep(0.2)
                await write(c, active, False, ua.VariantType.Boolean)
                # a push whose gateway goes silent: reverted to 40
                await write(c, active, True, ua.VariantType.Boolean)
                await beat.write_value(ua.DataValue(ua.Variant(5, ua.VariantType.UInt32)))
                await write(c, SPEED, 50.0, D)
                await write(c, PRESSURE, 3.5, D)
                assert await read(c, SPEED) == 50.0
                await asyncio.sleep(1.3)
                assert await read(c, SPEED) == 40.0
                assert await read(c, PRESSURE) == 3.0
                assert await read(c, "ns=2;s=active.dispenser.speed_mm_s") == 40.0
                assert await read(c, active) is False
                assert await read(c, "ns=2;s=gateway.watchdog_trips") == 1
                with pytest.raises(ua.uaerrors.BadTypeMismatch):
                    await beat.write_value(ua.DataValue(ua.Variant(6, ua.VariantType.Double)))
        run(check())
        assert any("watchdog" in line for line in p.stderr)


def test_a_secure_plant_refuses_anonymous_and_wrong_passwords(tmp_path):
    users = tmp_path / "users.txt"
    env = {**os.environ, "TWINOPT_PLANT_PASSWORD": "correct horse battery"}
    add = subprocess.run([sys.executable, "-m", "studio.cli", "plant", "--users", str(users), "--add-user", "alice"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert add.returncode == 0, add.stderr
    assert "correct horse" not in users.read_text() and "alice: scrypt$" in users.read_text()
    pki = tmp_path / "pki"
    with plant("glue_dispensing", "--port", "0", "--speed", "600", "--users", str(users), "--cert-dir", str(pki)) as p:
        async def secure_client(mode: ua.MessageSecurityMode, user: str | None, password: str | None) -> Client:
            cert, key = await ensure_certificate(tmp_path / "client", "client", "urn:twinopt:test-client", server=False)
            c = client(p.url)
            c.application_uri = "urn:twinopt:test-client"
            await c.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key), mode=mode)
            if user is not None:
                c.set_user(user)
                c.set_password(password or "")
            return c

        async def plaintext_login(user: str | None, password: str | None) -> None:
            """What asyncua's client refuses to do, done by hand: a SecurityPolicy#None channel the
            plant does not offer, then a login with a plaintext password (or anonymous)."""
            c = client(p.url)
            try:
                await c.connect_socket()
                await c.send_hello()
                await c.open_secure_channel()
                with pytest.raises(ua.UaError, match="No matching endpoints"):  # the client's own check
                    await c.create_session()
                await c.activate_session(user, password)  # the server's check
                await read(c, PRESSURE)
            finally:
                c.disconnect_socket()

        async def check() -> None:
            with pytest.raises(ua.UaError, match="No matching endpoints"):  # no endpoint without security
                async with client(p.url) as c:
                    await read(c, PRESSURE)
            with pytest.raises(ua.uaerrors.BadIdentityTokenRejected):
                await plaintext_login(None, None)
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):  # the right password, but in plaintext
                await plaintext_login("alice", "correct horse battery")
            encrypt = ua.MessageSecurityMode.SignAndEncrypt
            with pytest.raises(ua.uaerrors.BadIdentityTokenRejected):
                async with await secure_client(encrypt, None, None) as c:
                    await read(c, PRESSURE)
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                async with await secure_client(encrypt, "alice", "wrong password") as c:
                    await read(c, PRESSURE)
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                async with await secure_client(encrypt, "mallory", "correct horse battery") as c:
                    await read(c, PRESSURE)
            for mode in (encrypt, ua.MessageSecurityMode.Sign):
                async with await secure_client(mode, "alice", "correct horse battery") as c:
                    assert await read(c, "ns=2;s=line.time_unit") == "s"
                    await write(c, SPEED, 32.0, D)
                    assert await read(c, SPEED) == 32.0
        run(check())
    assert (pki / "plant-cert.der").exists() and (pki / "plant-key.pem").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("args, message", [
    (["glue_dispensing"], "--insecure"),
    (["glue_dispensing", "--insecure", "--host", "0.0.0.0"], "loopback only"),
    (["glue_dispensing", "--insecure", "--speed", "0"], "speed"),
    (["glue_dispensing", "--insecure", "--faults", "{tmp}/faults.yaml"], "stale_readback_s"),
    (["glue_dispensing", "--insecure", "--faults", "{tmp}/unknown.yaml"], "reject_writes: unknown tag"),
    (["glue_dispensing", "--insecure", "--faults", "{tmp}/signal.yaml"], "not a signal"),
    (["glue_dispensing", "--insecure", "--faults", "{tmp}/slow.yaml"], "slow: unknown station"),
    (["glue_dispensing", "--insecure", "--faults", "{tmp}/slow0.yaml"], "must be a positive number"),
    (["glue_dispensing", "--users", "{tmp}/plain.txt"], "plaintext passwords are refused"),
    (["no_such_scenario", "--insecure"], "no shipped scenario"),
    (["--add-user", "bob"], "--users"),
], ids=lambda v: " ".join(v[1:]) if isinstance(v, list) else v)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    (tmp_path / "faults.yaml").write_text("stale_readback_s: -1\n")
    (tmp_path / "unknown.yaml").write_text("reject_writes: [dispenser.no_such]\n")
    (tmp_path / "plain.txt").write_text("alice: secret\n")
    (tmp_path / "signal.yaml").write_text("signals: {dispenser.no_such: true}\n")
    (tmp_path / "slow.yaml").write_text("slow: {no_such: 2}\n")
    (tmp_path / "slow0.yaml").write_text("slow: {dispenser: 0}\n")
    proc = run_cli("plant", *[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert message in proc.stderr


def test_the_slow_fault_stretches_one_stations_process_times_and_not_the_twins_plan():
    """``slow: {dispenser: 1.2}``: the dispenser (the bottleneck, 25 s) works 1.2 times longer per
    part, the loader does not, and the planned (ideal) time stays the twin's: performance drops."""
    scenario = load_scenario("glue_dispensing")
    healthy = VirtualPlant(scenario, security=PlantSecurity.insecure())
    slowed = VirtualPlant(scenario, security=PlantSecurity.insecure(), faults=Faults(slow={"dispenser": 1.2}))
    busy = STATES.index("busy")
    per_op = {}
    for name, p in (("healthy", healthy), ("slowed", slowed)):
        p.line.run(7200.0)
        snap = p.line.snapshot()
        per_op[name] = {st.name: s["time"][busy] / s["ops"] for st, s in zip(p.line.stations, snap["stations"],
                                                                               strict=True)}
        per_op[name]["ideal"] = snap["stations"][1]["ideal"] / snap["stations"][1]["ops"]
    assert per_op["slowed"]["dispenser"] / per_op["healthy"]["dispenser"] == pytest.approx(1.2, rel=0.02)
    assert per_op["slowed"]["loader"] == pytest.approx(per_op["healthy"]["loader"], rel=0.02)
    assert per_op["slowed"]["ideal"] == pytest.approx(per_op["healthy"]["ideal"], rel=0.02)
    assert slowed.line.good < healthy.line.good * 0.9


def test_tags_typed_float_int32_and_boolean_are_enforced_by_type_and_limits(glue_data):
    """Explicit tags (as the scenario's equipment section will give them), through the library
    API: a real server on a free loopback port, in this process."""
    glue_data["stations"][1]["parameters"].append({"name": "purge", "min": 0, "max": 1, "default": 0})
    scenario = scenario_from_data(glue_data)
    tags = [PlantTag("dispenser.pressure_bar", "ns=2;s=PLC1.DB10.pressure", "Float", 2.0, 4.0),
            PlantTag("dispenser.speed_mm_s", "ns=2;i=1001", "Int32"),
            PlantTag("dispenser.purge", "ns=2;s=PLC1.DB10.purge", "Boolean")]

    async def check() -> None:
        async with VirtualPlant(scenario, security=PlantSecurity.insecure(), speed=600, tags=tags) as p, \
                client(p.endpoint) as c:
            pressure, speed, purge = "ns=2;s=PLC1.DB10.pressure", "ns=2;i=1001", "ns=2;s=PLC1.DB10.purge"
            assert await c.get_node(pressure).read_data_type_as_variant_type() == ua.VariantType.Float
            with pytest.raises(ua.uaerrors.BadTypeMismatch):
                await write(c, pressure, 3.5, D)
            with pytest.raises(ua.uaerrors.BadOutOfRange):  # inside the parameter's bounds, outside the tag's
                await write(c, pressure, 4.5, ua.VariantType.Float)
            await write(c, pressure, 3.5, ua.VariantType.Float)
            with pytest.raises(ua.uaerrors.BadTypeMismatch):
                await write(c, speed, 35.0, D)
            await write(c, speed, 35, ua.VariantType.Int32)
            await write(c, purge, True, ua.VariantType.Boolean)
            assert (await read(c, pressure), await read(c, speed), await read(c, purge)) == (3.5, 35, True)
            assert p.setpoints() == {"dispenser.pressure_bar": 3.5, "dispenser.speed_mm_s": 35.0,
                                     "dispenser.purge": 1.0}
            assert p.line.station("dispenser").params["speed_mm_s"] == 35.0
            assert await read(c, "ns=2;s=active.dispenser.purge") == 1.0
    run(check())


def test_plant_tags_and_signals_come_from_the_equipment_section_else_from_the_parameters():
    glue = load_scenario("glue_dispensing")
    assert glue.equipment is not None
    assert plant_tags(glue)[0] == PlantTag("dispenser.pressure_bar", "ns=2;s=dispenser.pressure_bar", "Double",
                                           2.0, 4.5)  # the equipment's hard limits
    assert [(s.name, s.node, s.type) for s in plant_signals(glue)] == [
        ("dispenser.mode_auto", "ns=2;s=dispenser.mode_auto", "Boolean"),
        ("dispenser.alarm", "ns=2;s=dispenser.alarm", "Boolean")]
    bare = glue.model_copy(update={"equipment": None})
    assert plant_tags(bare)[0] == PlantTag("dispenser.pressure_bar", "ns=2;s=dispenser.pressure_bar", "Double",
                                           1.5, 5.0)  # the parameter's bounds
    assert plant_signals(bare) == []
